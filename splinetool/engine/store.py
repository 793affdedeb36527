"""Growable tables of vertices and convex tiles, kept on the engine's device.

Vertices carry their plane coordinates and every network value still needed downstream; tiles are
convex polygons as rows of vertex ids (padded with -1) in counter-clockwise order, each edge labelled
with what drew it. Both grow by doubling so that adding rows one cut at a time stays cheap.
"""

from __future__ import annotations

import torch

from splinetool.engine.memory import memory_left
from splinetool.errors import UsageError


def grow(t: torch.Tensor, rows: int, fill: float | int | None = 0, double: bool = True) -> torch.Tensor:
    """`t` with room for at least `rows` rows (doubling, unless not `double`); new rows hold `fill`,
    or nothing if None."""
    if t.shape[0] >= rows:
        return t
    out = torch.empty(
        (max(rows, 2 * t.shape[0] if double else 0), *t.shape[1:]), dtype=t.dtype, device=t.device
    )
    out[: t.shape[0]] = t
    if fill is not None:
        out[t.shape[0] :] = fill
    return out


def take_rows(t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """`t[ids]` for integer `ids` of any shape: `index_select` is 2x faster than advanced indexing
    on wide CPU tables, and the engine's vertex tables are wide."""
    if ids.dim() == 1:  # most calls, in rounds of small tables where each reshape costs its call
        return t.index_select(0, ids)
    return t.index_select(0, ids.reshape(-1)).reshape(*ids.shape, *t.shape[1:])


class OutOfMemory(UsageError):
    pass


def available_memory(device: torch.device) -> int:
    """Bytes the engine may use on the device: half of what it may still allocate now.

    On the CPU that is the least of the host's available memory, the job's memory cgroup and the
    process's address-space limit (see engine/memory.py), not the host's free pages alone: under a
    batch job's limit those overstate the room, and tensors sized by them die in the allocator.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    left = memory_left()
    return (left if left is not None else 16 << 30) // 2


def check_memory(needed: int, what: str, advice: str, device: torch.device | None = None) -> None:
    """Refuse work whose arrays alone would not fit, before allocating them: an allocator's failure
    names neither the option nor the number that asked for too much (and under overcommit the process
    is killed instead). `what` names the work ("`grid` 100000: a 100,000 × 100,000 grid"), `advice`
    the option to change."""
    allowed = available_memory(device or torch.device("cpu"))
    if needed > allowed:
        raise OutOfMemory(
            f"{what} needs about {needed / 2**30:,.1f} GiB, more than the {allowed / 2**30:,.1f} GiB this "
            f"process may use (half of what it may still allocate); {advice}"
        )


class VertexStore:
    def __init__(self, coords: torch.Tensor, fields: dict[object, torch.Tensor], budget: int | None = None):
        self.n = coords.shape[0]
        self._coords = coords
        self._fields = dict(fields)
        self.budget = budget

    @property
    def coords(self) -> torch.Tensor:
        return self._coords[: self.n]

    def field(self, key: object) -> torch.Tensor:
        return self._fields[key][: self.n]

    def field_keys(self) -> list[object]:
        return list(self._fields)

    def restart(self, coords: torch.Tensor, fields: dict[object, torch.Tensor]) -> None:
        """Hold these vertices instead (e.g. after pushing those still in use through the next
        layers); rows of `fields` past the coordinates' are room to grow."""
        self._coords, self._fields, self.n = coords, dict(fields), coords.shape[0]

    def empty_field(self, like: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """Storage for a field shaped like `like` per row, `rows` rows (default: as many as the
        coordinates have room for): a field filled in place needs no copy when the next cut appends
        vertices."""
        rows = self.capacity() if rows is None else rows
        return torch.empty((rows, *like.shape[1:]), dtype=like.dtype, device=like.device)

    def reserve(self, rows: int) -> None:
        """Room for `rows` vertices in every table, so that appending up to that many copies nothing."""
        self._coords = grow(self._coords, rows, None, double=False)
        self._fields = {key: grow(values, rows, None, double=False) for key, values in self._fields.items()}

    def capacity(self) -> int:
        return self._coords.shape[0]

    def add_field(self, key: object, values: torch.Tensor) -> None:
        self._fields[key] = values

    def drop_field(self, key: object) -> None:
        self._fields.pop(key, None)

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        """Append the points a + lam (b - a) on edges (a, b); every field is affine along such an edge."""
        m = a.shape[0]
        ids = torch.arange(self.n, self.n + m, device=a.device)
        end = self.n + m
        self._check_budget(end)
        self._coords = grow(self._coords, end, None)
        weights: dict = {}  # lam shaped once for each kind of field: [m, 1] for the coordinates, ...

        def weight(values: torch.Tensor) -> torch.Tensor:
            kind = (values.dim(), values.dtype)
            if kind not in weights:
                weights[kind] = lam.reshape(-1, *[1] * (values.dim() - 1)).to(values.dtype)
            return weights[kind]

        lerp_rows(self._coords[: self.n], a, b, weight(self._coords), out=self._coords[self.n : end])
        for key, values in self._fields.items():
            values = grow(values, end, None)
            lerp_rows(values[: self.n], a, b, weight(values), out=values[self.n : end])
            self._fields[key] = values
        self.n = end
        return ids

    def combine(self, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Append points sum_j weights[:, j] * vertex ids[:, j] (affine weights, summing to one).

        Every field is affine on a tile, so a point inside a tile takes its values from three of
        the tile's corners.
        """
        m = ids.shape[0]
        new = torch.arange(self.n, self.n + m, device=ids.device)
        end = self.n + m
        self._check_budget(end)
        for key, values in [("coords", self._coords), *self._fields.items()]:
            values = grow(values, end, None)
            w = weights.to(values.dtype).reshape(m, ids.shape[1], *[1] * (values.dim() - 1))
            values[self.n : end] = (take_rows(values, ids) * w).sum(dim=1)
            if key == "coords":
                self._coords = values
            else:
                self._fields[key] = values
        self.n = end
        return new

    def row_bytes(self) -> int:
        tensors = [self._coords, *self._fields.values()]
        return sum(t[0].numel() * t.element_size() for t in tensors if t.shape[0])

    def _check_budget(self, rows: int) -> None:
        if self.budget is None or rows <= self._coords.shape[0]:
            return
        row_bytes = self.row_bytes()
        # growing doubles the tables and copies them once
        needed = 3 * max(rows, 2 * self._coords.shape[0]) * row_bytes
        if needed > self.budget:
            raise OutOfMemory(
                f"the slice needs about {needed / 2**30:.1f} GiB for {rows:,} vertices "
                f"({row_bytes:,} bytes each), more than the {self.budget / 2**30:.1f} GiB allowed "
                "(half of what this process may still allocate); shrink the domain (`margin`, `bounds`) "
                "or use a GPU with more memory"
            )


def lerp(x: torch.Tensor, y: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    return torch.lerp(x, y, lam.reshape(-1, *[1] * (x.dim() - 1)).to(x.dtype))


def lerp_rows(
    values: torch.Tensor, a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor, out: torch.Tensor
) -> None:
    """out = values[a] + weight (values[b] - values[a]), row by row (`weight` shaped to broadcast).
    `values[a]` is gathered straight into `out`: one wide temporary fewer per field (`out` must not
    overlap `values`)."""
    torch.index_select(values, 0, a, out=out)
    out.lerp_(values.index_select(0, b), weight)


class TileStore:
    """Convex tiles as padded rows of vertex ids, with a label per edge and a per-tile payload.

    The payload (e.g. the bit-packed activation codes of the nodes already passed) is inherited by
    every piece a tile is cut into.
    """

    def __init__(self, verts: torch.Tensor, labels: torch.Tensor, payload: torch.Tensor | None = None):
        self.n = verts.shape[0]
        self._verts = verts
        self._labels = labels
        self._count = (verts >= 0).sum(dim=1)
        if payload is None:
            payload = torch.zeros((self.n, 0), dtype=torch.uint8, device=verts.device)
        self._payload = payload

    @property
    def verts(self) -> torch.Tensor:
        return self._verts[: self.n]

    @property
    def labels(self) -> torch.Tensor:
        return self._labels[: self.n]

    @property
    def count(self) -> torch.Tensor:
        return self._count[: self.n]

    @property
    def payload(self) -> torch.Tensor:
        return self._payload[: self.n]

    def extend_payload(self, columns: torch.Tensor) -> None:
        self._payload = torch.cat([self.payload, columns], dim=1)

    def _widen(self, width: int) -> None:
        if width > self._verts.shape[1]:
            pad = width - self._verts.shape[1]
            self._verts = torch.nn.functional.pad(self._verts, (0, pad), value=-1)
            self._labels = torch.nn.functional.pad(self._labels, (0, pad), value=-1)

    def replace(self, rows: torch.Tensor, verts: torch.Tensor, labels: torch.Tensor) -> None:
        self._write(rows, verts, labels)

    def _write(self, rows: torch.Tensor, verts: torch.Tensor, labels: torch.Tensor) -> None:
        """Rows `rows` become these tiles (padded to the table's width), their corner counts too."""
        self._widen(verts.shape[1])
        pad = (0, self._verts.shape[1] - verts.shape[1])
        self._verts.index_copy_(0, rows, torch.nn.functional.pad(verts, pad, value=-1))
        self._labels.index_copy_(0, rows, torch.nn.functional.pad(labels, pad, value=-1))
        self._count.index_copy_(0, rows, (verts >= 0).sum(dim=1))

    def _grow_to(self, rows: int) -> None:
        self._verts = grow(self._verts, rows, -1)
        self._labels = grow(self._labels, rows, -1)
        self._count = grow(self._count, rows)
        self._payload = grow(self._payload, rows)

    def relabel(
        self, rows: torch.Tensor, verts: torch.Tensor | None = None, labels: torch.Tensor | None = None
    ):
        """New vertex ids or edge labels for the tiles `rows`, in place (shaped like their `verts`,
        `labels`; the corners stay where they are)."""
        if verts is not None:
            self._verts.index_copy_(0, rows, verts)
        if labels is not None:
            self._labels.index_copy_(0, rows, labels)

    def narrow(self) -> None:
        """Drop the padding columns past the most corners any tile has now: the store widens to its
        widest tile ever, and every read of a whole row pays for the columns."""
        width = max(1, int(self.count.max())) if self.n else 1
        if width < self._verts.shape[1]:
            self._verts = self._verts[:, :width].contiguous()
            self._labels = self._labels[:, :width].contiguous()

    def append(self, verts: torch.Tensor, labels: torch.Tensor, parents: torch.Tensor) -> None:
        """Add tiles; `parents` are the rows whose payload each new tile inherits."""
        end = self.n + verts.shape[0]
        self._grow_to(end)
        self._write(torch.arange(self.n, end, device=verts.device), verts, labels)
        self._payload[self.n : end] = take_rows(self._payload, parents)
        self.n = end

    def divide(self, rows: torch.Tensor, verts: torch.Tensor, labels: torch.Tensor) -> None:
        """Replace each of `rows` by its first piece and append its second (inheriting its payload):
        `verts` and `labels` are [2, len(rows), width]. One write for both pieces, since a cut round
        is small and each table operation costs its call."""
        m, width = rows.shape[0], verts.shape[2]
        end = self.n + m
        self._grow_to(end)
        targets = torch.cat([rows, torch.arange(self.n, end, device=rows.device)])
        self._write(targets, verts.reshape(2 * m, width), labels.reshape(2 * m, width))
        self._payload[self.n : end] = take_rows(self._payload, rows)
        self.n = end

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only these rows (in this order), trimmed to the widest of them."""
        width = max(1, int(self.count[rows].max())) if rows.numel() else 1
        self._verts, self._labels = self.verts[rows, :width], self.labels[rows, :width]
        self._count, self._payload = self.count[rows], self.payload[rows]
        self.n = rows.shape[0]

    def bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self._verts, self._labels, self._payload))
