"""Write sample_models/data/digits.npz from scikit-learn's bundled copy of the UCI digits.

Run once by hand (`python sample_models/make_digits_data.py`); scikit-learn is needed only here and is
not a dependency of splinetool. The file holds the 1797 8x8 images flattened to 64 pixels scaled to
[0, 1] (float32), their labels (int64), and a fixed stratified split of 1347 training and 450 test images.
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

OUT = Path(__file__).parent / "data" / "digits.npz"


def main() -> None:
    digits = load_digits()
    # Pixels are counts of set bits in 4x4 blocks of a 32x32 bitmap, so 16 is the largest value.
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=450, stratify=y, random_state=0)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, x=x, y=y, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    print(f"wrote {OUT}: {len(x_train)} train, {len(x_test)} test images")


if __name__ == "__main__":
    main()
