"""Torch's notices about its own internals, hidden only around the torch calls that print them.

A user can do nothing about them, and one run would print them once per model it traces (a sweep
traces dozens). Each is matched by category and message, so every other warning, torch's or the
tool's own, still shows.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

TORCH_NOTICES = (
    # torch 2.13's pytree specs, on every copy of an exported program (run_decompositions, deepcopy)
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
)


@contextmanager
def torch_notices_hidden() -> Iterator[None]:
    with warnings.catch_warnings():
        for category, message in TORCH_NOTICES:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield
