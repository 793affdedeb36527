"""The engine's growable vertex and tile tables, and the memory they may take."""

import pytest
import torch

from splinetool.engine import memory
from splinetool.engine.store import (
    OutOfMemory,
    TileStore,
    VertexStore,
    available_memory,
    check_memory,
    grow,
    take_rows,
)

F64 = torch.float64
GIB = 1 << 30


def test_grow_doubles_and_keeps_the_rows():
    t = torch.arange(6.0).reshape(3, 2)
    assert grow(t, 3) is t  # room enough: the same tensor
    out = grow(t, 4, fill=-1)
    assert out.shape == (6, 2)  # doubled, not just the 4 asked for
    torch.testing.assert_close(out[:3], t)
    assert (out[3:] == -1).all()
    assert grow(t, 20).shape == (20, 2)  # more than double: as many as asked


def test_take_rows_is_indexing_by_ids_of_any_shape():
    t = torch.arange(24.0).reshape(6, 2, 2)
    ids = torch.tensor([[5, 0, 2], [1, 1, 4]])
    torch.testing.assert_close(take_rows(t, ids), t[ids])
    assert take_rows(t, ids).shape == (2, 3, 2, 2)


def test_vertices_appended_on_edges_and_inside_tiles_carry_interpolated_fields():
    coords = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]], dtype=F64)
    # fields affine in the coordinates: f = 3x - y + 1, g = (x, y, x + y) per row
    f = 3 * coords[:, 0] - coords[:, 1] + 1
    g = torch.stack([coords[:, 0], coords[:, 1], coords.sum(dim=1)], dim=1)
    store = VertexStore(coords.clone(), {"f": f.clone(), "g": g.clone()})
    for _ in range(3):  # past the first doubling of every table
        store.interpolate(torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([0.25, 0.5], dtype=F64))
    ids = store.combine(torch.tensor([[0, 1, 2]]), torch.tensor([[0.5, 0.25, 0.25]], dtype=F64))
    assert store.n == 10 and ids.tolist() == [9]
    torch.testing.assert_close(store.coords[:3], coords)  # the first rows survive growing
    torch.testing.assert_close(store.coords[3], torch.tensor([0.5, 0.0], dtype=F64))
    torch.testing.assert_close(store.coords[4], torch.tensor([1.0, 2.0], dtype=F64))
    torch.testing.assert_close(store.coords[9], torch.tensor([0.5, 1.0], dtype=F64))
    x, y = store.coords[:, 0], store.coords[:, 1]
    torch.testing.assert_close(store.field("f"), 3 * x - y + 1)
    torch.testing.assert_close(store.field("g"), torch.stack([x, y, x + y], dim=1))


def test_vertices_appended_within_the_room_reserved_move_no_table():
    coords = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]], dtype=F64)
    store = VertexStore(coords.clone(), {"f": coords.sum(dim=1), "g": coords.repeat(1, 3)})
    store.reserve(40)
    assert store.capacity() == 40 and store.n == 3
    tables = [store.coords.data_ptr(), store.field("f").data_ptr(), store.field("g").data_ptr()]
    for _ in range(18):  # 36 more vertices: every doubling from 3 rows would have copied the tables
        store.interpolate(torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([0.25, 0.5], dtype=F64))
    assert store.n == 39 and store.capacity() == 40
    assert [store.coords.data_ptr(), store.field("f").data_ptr(), store.field("g").data_ptr()] == tables
    torch.testing.assert_close(store.field("f"), store.coords.sum(dim=1))
    torch.testing.assert_close(store.field("g"), store.coords.repeat(1, 3))
    store.interpolate(torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([0.25, 0.5], dtype=F64))
    assert store.capacity() == 80  # past the room: doubling again


def test_a_vertex_table_past_its_budget_is_refused_before_growing():
    coords = torch.zeros(4, 2, dtype=F64)
    store = VertexStore(coords, {}, budget=380)  # 16 bytes a row: growing to 8 rows needs 3 × 8 × 16
    with pytest.raises(OutOfMemory, match="`margin`"):
        store.interpolate(torch.tensor([0] * 4), torch.tensor([1] * 4), torch.full((4,), 0.5, dtype=F64))
    assert store.n == 4
    VertexStore(coords, {}, budget=384).interpolate(  # 384 bytes: just enough
        torch.tensor([0] * 4), torch.tensor([1] * 4), torch.full((4,), 0.5, dtype=F64)
    )


def test_tiles_append_inherit_their_parents_payload_and_keep_trims():
    verts = torch.tensor([[0, 1, 2, -1], [2, 3, 4, 5]])
    tiles = TileStore(
        verts, torch.where(verts >= 0, verts + 10, -1), torch.tensor([[7], [9]], dtype=torch.uint8)
    )
    tiles.append(torch.tensor([[6, 7, 8, 9, 10]]), torch.tensor([[1, 2, 3, 4, 5]]), torch.tensor([1]))
    assert tiles.n == 3 and tiles.verts.shape == (3, 5)
    assert tiles.count.tolist() == [3, 4, 5] and tiles.payload[:, 0].tolist() == [7, 9, 9]
    assert tiles.verts[0].tolist() == [0, 1, 2, -1, -1]  # widened with padding
    tiles.keep(torch.tensor([1, 0]))
    assert tiles.n == 2 and tiles.verts.tolist() == [[2, 3, 4, 5], [0, 1, 2, -1]]
    assert tiles.labels.tolist() == [[12, 13, 14, 15], [10, 11, 12, -1]]
    assert tiles.payload[:, 0].tolist() == [9, 7]


def test_tiles_divided_keep_their_first_pieces_in_place_and_append_the_second_with_the_payload():
    verts = torch.tensor([[0, 1, 2, -1], [2, 3, 4, 5], [5, 6, 7, -1]])
    payload = torch.tensor([[7], [8], [9]], dtype=torch.uint8)
    tiles = TileStore(verts, torch.where(verts >= 0, verts + 10, -1), payload)
    # rows 2 and 1 each cut in two; the pieces wider than the table widen it
    pieces = torch.tensor(
        [[[5, 6, 20, -1, -1], [2, 3, 21, 22, 23]], [[20, 7, 5, -1, -1], [21, 4, 5, 22, -1]]]
    )
    tiles.divide(torch.tensor([2, 1]), pieces, pieces + 100 * (pieces >= 0))
    assert tiles.n == 5 and tiles.verts.shape == (5, 5)
    assert tiles.verts.tolist() == [
        [0, 1, 2, -1, -1],
        [2, 3, 21, 22, 23],
        [5, 6, 20, -1, -1],
        [20, 7, 5, -1, -1],
        [21, 4, 5, 22, -1],
    ]
    assert tiles.labels[3].tolist() == [120, 107, 105, -1, -1]
    assert tiles.count.tolist() == [3, 5, 3, 3, 4]
    assert tiles.payload[:, 0].tolist() == [7, 8, 9, 9, 8]


def test_tiles_narrow_to_the_most_corners_a_tile_has_now_and_relabel_rows_in_place():
    verts = torch.tensor([[0, 1, 2, 3, 4, 5], [2, 3, 4, -1, -1, -1]])
    tiles = TileStore(verts, torch.where(verts >= 0, verts + 10, -1))
    tiles.replace(torch.tensor([0]), torch.tensor([[0, 1, 2, 3]]), torch.tensor([[10, 11, 12, 13]]))
    assert tiles.verts.shape == (2, 6)  # the widest tile so far
    tiles.narrow()
    assert tiles.verts.tolist() == [[0, 1, 2, 3], [2, 3, 4, -1]]
    tiles.relabel(
        torch.tensor([1]), verts=torch.tensor([[7, 8, 9, -1]]), labels=torch.tensor([[1, 2, 3, -1]])
    )
    assert tiles.verts.tolist() == [[0, 1, 2, 3], [7, 8, 9, -1]]
    assert tiles.labels.tolist() == [[10, 11, 12, 13], [1, 2, 3, -1]]
    tiles.append(torch.tensor([[6, 7, 8, 9, 10]]), torch.tensor([[1, 2, 3, 4, 5]]), torch.tensor([1]))
    assert tiles.verts.shape == (3, 5) and tiles.count.tolist() == [4, 3, 5]


def test_check_memory_names_the_work_and_the_advice(monkeypatch):
    monkeypatch.setattr(memory, "host_available", lambda proc: 4 * GIB)
    monkeypatch.setattr(memory, "cgroup_left", lambda proc: None)
    monkeypatch.setattr(memory, "rlimit_left", lambda proc: None)
    check_memory(2 * GIB, "`grid` 10", "use a smaller `grid`")  # half of 4 GiB: allowed
    with pytest.raises(OutOfMemory, match=r"`grid` 10 needs about 3.0 GiB, more than the 2.0 GiB .*smaller"):
        check_memory(3 * GIB, "`grid` 10", "use a smaller `grid`")


def test_available_memory_is_half_the_least_limit(monkeypatch):
    monkeypatch.setattr(memory, "host_available", lambda proc: 40 * GIB)
    monkeypatch.setattr(memory, "cgroup_left", lambda proc: 6 * GIB)
    monkeypatch.setattr(memory, "rlimit_left", lambda proc: None)
    assert available_memory(torch.device("cpu")) == 3 * GIB
    monkeypatch.setattr(memory, "rlimit_left", lambda proc: -5)  # already past the limit
    assert available_memory(torch.device("cpu")) == 0
    monkeypatch.setattr(memory, "cgroup_left", lambda proc: None)
    monkeypatch.setattr(memory, "rlimit_left", lambda proc: None)
    monkeypatch.setattr(memory, "host_available", lambda proc: None)
    assert available_memory(torch.device("cpu")) == 8 * GIB
