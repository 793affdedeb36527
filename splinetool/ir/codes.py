"""Activation codes: bit-packing and region ids."""

from __future__ import annotations

import torch

_WEIGHTS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """[B, n] bool -> [B, ceil(n/8)] uint8, most significant bit first (numpy.packbits layout)."""
    b, n = bits.shape
    padded = torch.zeros((b, -(-n // 8) * 8), dtype=torch.uint8, device=bits.device)
    padded[:, :n] = bits.to(torch.uint8)
    return (padded.reshape(b, padded.shape[1] // 8, 8) * _WEIGHTS.to(bits.device)).sum(
        dim=-1, dtype=torch.uint8
    )


def unpack_bits(packed: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of pack_bits."""
    bits = (packed[..., None] & _WEIGHTS.to(packed.device)) > 0
    return bits.reshape(packed.shape[0], -1)[:, :n]


def region_ids(packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct codes and, for each row, the index of its code among them."""
    unique, inverse = torch.unique(packed, dim=0, return_inverse=True)
    return unique, inverse
