"""Batched geometry on tensors (CPU or CUDA): no I/O, no printing."""
