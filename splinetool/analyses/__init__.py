"""One module per command: pure functions from a model (and data) to a result dataclass."""
