"""Run small dense linear algebra on one thread."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    # LAPACK on one small matrix gains nothing from threads, and on a busy machine their spin-waits
    # made each decomposition tens of times slower (bench/README.md)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
