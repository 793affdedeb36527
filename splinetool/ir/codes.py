"""Activation codes: bit-packing and region ids."""

from __future__ import annotations

import numpy as np
import torch

_WEIGHTS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """[B, n] bool -> [B, ceil(n/8)] uint8, most significant bit first (numpy.packbits layout)."""
    if bits.device.type == "cpu":
        return torch.from_numpy(np.packbits(bits.numpy(), axis=1))
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


def bytes_as_words(packed: torch.Tensor) -> torch.Tensor:
    """[B, n] uint8 -> [B, ceil(n/8)] int64: the same bits read as words, cheaper to sort and compare."""
    pad = -packed.shape[1] % 8
    if pad:
        packed = torch.nn.functional.pad(packed, (0, pad))
    return packed.contiguous().view(torch.int64)


def bit_range(packed: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """The bytes holding bits start..stop-1 of packed rows, every other bit cleared."""
    first, last = start // 8, -(-stop // 8)
    part = packed[:, first:last].clone()
    part[:, 0] &= 0xFF >> (start - 8 * first)  # most significant bit first
    part[:, -1] &= (0xFF << (8 * last - stop)) & 0xFF
    return part


# odd multipliers for mixing the columns of a row into one 64-bit sort key
_MIX = (0x9E3779B97F4A7C15 - 2**64, 0xC2B2AE3D27D4EB4F - 2**64, 0x165667B19E3779F9)


def unique_rows(keys: torch.Tensor) -> tuple[torch.Tensor, int]:
    """For integer rows [N, W]: the index of each row among the distinct rows, and how many there are.

    Rows are sorted by a 64-bit mix of their columns, then compared in full; only if two different
    rows share a mix (vanishingly rare) does it fall back to a column-by-column lexicographic sort.
    """
    n = keys.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=keys.device), 0
    mixed = torch.zeros(n, dtype=torch.int64, device=keys.device)
    for column in range(keys.shape[1]):
        mixed = (mixed ^ keys[:, column]) * _MIX[column % len(_MIX)]
        mixed ^= mixed >> 29
    order = torch.argsort(mixed)
    ordered = keys[order]
    differs = (ordered[1:] != ordered[:-1]).any(dim=1)
    if (differs & (mixed[order][1:] == mixed[order][:-1])).any():
        order = torch.arange(n, device=keys.device)
        for column in reversed(range(keys.shape[1])):
            order = order[torch.argsort(keys[order, column], stable=True)]
        ordered = keys[order]
        differs = (ordered[1:] != ordered[:-1]).any(dim=1)
    starts = torch.ones(n, dtype=torch.bool, device=keys.device)
    starts[1:] = differs
    group = torch.cumsum(starts, 0) - 1
    inverse = torch.empty_like(group)
    inverse[order] = group
    return inverse, int(group[-1]) + 1
