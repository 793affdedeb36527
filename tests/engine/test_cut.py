"""Cutting convex polygons by the zero line of an affine function: pieces, areas, shared vertices."""

import numpy as np
import pytest
import torch

from splinetool.engine.cut import crossed, cut
from splinetool.engine.store import VertexStore

F64 = torch.float64
SQUARE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]  # counter-clockwise
EDGES = [10, 11, 12, 13]  # edge k runs from corner k to corner k + 1
CUT = 99


def affine(coords: torch.Tensor, a: float, b: float, c: float) -> torch.Tensor:
    return a * coords[:, 0] + b * coords[:, 1] + c


def cut_tiles(coords, tiles, labels, line, tag=None, created=None):
    """Cut `tiles` (rows of vertex ids) by the zero line of a x + b y + c; the function is also a field."""
    coords = torch.tensor(coords, dtype=F64)
    values = affine(coords, *line)
    vertices = VertexStore(coords.clone(), {"f": values.clone()})
    verts = torch.tensor(tiles)
    corner_values = values[verts]
    signs = torch.sign(corner_values).to(torch.int8)
    ids, edge_labels = cut(
        vertices, verts, torch.tensor(labels), corner_values, signs, CUT, tag=tag, created=created
    )
    return vertices, list(zip(ids, edge_labels))  # (ids, labels) of each side


def polygons(vertices: VertexStore, ids: torch.Tensor) -> list[np.ndarray]:
    coords = vertices.coords.numpy()
    return [coords[row[row >= 0].numpy()] for row in ids]


def area(polygon: np.ndarray) -> float:
    """Signed shoelace area: positive for counter-clockwise corners."""
    x, y = polygon[:, 0], polygon[:, 1]
    return float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) / 2


def test_a_line_through_two_edges_splits_the_square_as_the_trapezoids_do():
    # y = 0.2 + 0.4 x crosses the left edge at y = 0.2 and the right one at y = 0.6
    vertices, ((pos, pos_labels), (neg, neg_labels)) = cut_tiles(
        SQUARE, [[0, 1, 2, 3]], [EDGES], (-0.4, 1.0, -0.2)
    )
    assert vertices.n == 6  # two new vertices
    np.testing.assert_allclose(
        vertices.coords[4:].numpy()[np.argsort(vertices.coords[4:, 0].numpy())], [[0, 0.2], [1, 0.6]]
    )
    # every field is interpolated: the function is zero on its own line
    np.testing.assert_allclose(vertices.field("f")[4:].numpy(), 0, atol=1e-15)
    (above,), (below,) = polygons(vertices, pos), polygons(vertices, neg)
    assert area(above) == pytest.approx(0.6, abs=1e-15)  # (0.8 + 0.4) / 2
    assert area(below) == pytest.approx(0.4, abs=1e-15)  # (0.2 + 0.6) / 2
    assert area(above) + area(below) == pytest.approx(area(np.array(SQUARE)), abs=1e-15)
    # each piece keeps the labels of the square's edges it runs along and one edge on the line
    assert sorted(pos_labels[0][pos_labels[0] >= 0].tolist()) == [11, 12, 13, CUT]
    assert sorted(neg_labels[0][neg_labels[0] >= 0].tolist()) == [10, 11, 13, CUT]


def test_a_line_through_two_corners_makes_no_vertex():
    vertices, ((pos, pos_labels), (neg, neg_labels)) = cut_tiles(
        SQUARE, [[0, 1, 2, 3]], [EDGES], (-1.0, 1.0, 0.0)
    )
    assert vertices.n == 4
    (above,), (below,) = polygons(vertices, pos), polygons(vertices, neg)
    np.testing.assert_array_equal(above, [[0, 0], [1, 1], [0, 1]])
    np.testing.assert_array_equal(below, [[0, 0], [1, 0], [1, 1]])
    assert area(above) == area(below) == 0.5
    assert pos_labels[0].tolist() == [CUT, 12, 13] and neg_labels[0].tolist() == [10, 11, CUT]


@pytest.mark.parametrize("tags, new", [([0, 0], 3), ([0, 1], 4)])
def test_tiles_of_one_function_share_the_vertex_on_their_common_edge(tags, new):
    # two unit squares side by side, cut by y = 0.5: the middle edge's crossing is shared by
    # rows with the same tag (one function) and made twice for different tags
    coords = [*SQUARE, [2.0, 0.0], [2.0, 1.0]]
    tiles = [[0, 1, 2, 3], [1, 4, 5, 2]]
    created = []
    vertices, ((pos, _), (neg, _)) = cut_tiles(
        coords, tiles, [EDGES, EDGES], (0.0, 1.0, -0.5), tag=torch.tensor(tags), created=created
    )
    assert vertices.n == 6 + new
    (ids, on_edge, row_tag) = created[0]
    assert ids.tolist() == list(range(6, 6 + new))
    assert set(row_tag.tolist()) == set(tags)
    assert set(on_edge.tolist()) <= set(EDGES)
    for side in (pos, neg):
        assert [area(p) for p in polygons(vertices, side)] == pytest.approx([0.5, 0.5], abs=1e-15)


def test_only_rows_with_corners_strictly_on_both_sides_are_crossed():
    signs = torch.tensor([[1, -1, 0], [1, 0, 0], [0, 0, 0], [-1, -1, 1]], dtype=torch.int8)
    assert crossed(signs).tolist() == [True, False, False, True]
