"""One module per command: pure functions from a model (and data) to a result dataclass."""

from collections.abc import Callable

# how every analysis reports progress: progress(done, total, note=""), note a few words on the item
Progress = Callable[..., None]
