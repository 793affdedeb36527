import numpy as np
import pytest
from matplotlib.collections import LineCollection, PolyCollection

from splinetool.analyses.slice import SliceResult
from splinetool.errors import UsageError
from splinetool.render import COLOURINGS, draw_slice, save_figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def grid(n: int, outputs: int = 3) -> SliceResult:
    """An n x n grid of unit squares over [0, n]^2, as if each grid line were one neuron of two nodes."""
    corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    lower_left = np.stack([i.ravel(), j.ravel()], axis=1).astype(np.float64)
    vertices = (lower_left[:, None, :] + corners).reshape(-1, 2)
    edge_node = np.tile(np.array([0, 1, 0, 1], dtype=np.int32), n * n)
    regions = n * n
    rng = np.random.default_rng(0)
    return SliceResult(
        vertices=vertices,
        offsets=np.arange(regions + 1) * 4,
        codes=np.zeros((regions, 1), dtype=np.uint8),
        affine_A=rng.normal(size=(regions, outputs, 2)),
        affine_c=rng.normal(size=(regions, outputs)),
        jacobian_norm=rng.random(regions),
        edge_node=edge_node,
        boundary=np.array([[[0.0, 0.5], [n, n - 0.5]], [[0.5, 0.0], [0.5, n]]]),
        origin=np.zeros(3),
        directions=np.eye(2, 3),
        domain=np.array([[0, 0], [n, 0], [n, n], [0, n]], dtype=np.float64),
        node_names=["fc1.relu", "fc2.relu"],
        node_kinds=["relu", "relu"],
        node_code_bits=[n, n],
        anchors=np.array([[0.5, 0.5], [n - 0.5, 0.5], [0.5, n - 0.5]]),
        tiles_per_node=[n, regions],
    )


def tiles_of(fig) -> PolyCollection:
    (collection,) = [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
    return collection


@pytest.mark.parametrize("color", COLOURINGS)
def test_every_colouring_draws_all_tiles_and_the_boundary(color):
    result = grid(3)
    points = np.array([[0.5, 1.5], [2.5, 2.5]])
    fig = draw_slice(result, color=color, data=points, labels=np.array([0, 1]), title=color)
    ax = fig.axes[0]
    assert len(tiles_of(fig).get_paths()) == 9
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert any(len(c.get_segments()) == 2 for c in lines)
    assert ax.get_xlabel() == "t₁" and ax.get_ylabel() == "t₂"
    assert ax.get_xlim() == (0.0, 3.0)
    fig.canvas.draw()  # headless, through Agg


def test_jacobian_colour_bar_names_the_norm():
    fig = draw_slice(grid(2))
    assert len(fig.axes) == 2
    assert "_2" in fig.axes[1].get_ylabel()
    frobenius = grid(2)
    frobenius.norm = "fro"
    assert "_F" in draw_slice(frobenius).axes[1].get_ylabel()


def test_region_colours_differ_between_tiles_that_touch():
    fig = draw_slice(grid(6), color="region")
    colours = tiles_of(fig).get_facecolor().reshape(6, 6, 4)
    assert not (colours[1:] == colours[:-1]).all(axis=-1).any()
    assert not (colours[:, 1:] == colours[:, :-1]).all(axis=-1).any()


def test_layer_colouring_has_a_legend_of_nodes():
    legend = draw_slice(grid(2), color="layer").axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["fc1.relu", "fc2.relu", "domain edge"]


def test_class_colouring_with_one_output_uses_the_sign():
    result = grid(2, outputs=1)
    result.affine_A[:] = 0
    result.affine_c[:, 0] = [1, -1, 1, -1]
    colours = tiles_of(draw_slice(result, color="class")).get_facecolor()
    assert (colours[0] == colours[2]).all() and (colours[1] == colours[3]).all()
    assert not (colours[0] == colours[1]).all()


def test_unknown_colouring_and_bad_data_are_usage_errors():
    with pytest.raises(UsageError, match="colouring"):
        draw_slice(grid(2), color="rainbow")
    with pytest.raises(UsageError, match=r"\[N, 2\]"):
        draw_slice(grid(2), data=np.zeros((4, 3)))


def test_png_and_svg_are_written(tmp_path):
    fig = draw_slice(grid(3), data=np.array([[1.0, 1.0]]))
    png, svg = tmp_path / "slice.png", tmp_path / "slice.SVG"
    save_figure(fig, png)
    save_figure(fig, svg)
    content = png.read_bytes()
    assert content.startswith(PNG_SIGNATURE) and len(content) > 10_000
    assert b"<svg" in svg.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slice.SVG", "slice.png"]


def test_bad_extension_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match=r"slice\.jpg.*\.png or \.svg"):
        save_figure(draw_slice(grid(2)), tmp_path / "slice.jpg")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("n", "note"), [(80, "edges thinned"), (230, "edges not drawn")])
def test_edges_are_thinned_then_dropped_for_many_tiles(n, note):
    fig = draw_slice(grid(n))
    tiles = tiles_of(fig)
    assert len(tiles.get_paths()) == n * n
    assert any(note in t.get_text() for t in fig.axes[0].texts)
    assert tiles.get_linewidth()[0] < 0.3


def test_small_slices_have_no_note():
    assert len(draw_slice(grid(3)).axes[0].texts) == 0
