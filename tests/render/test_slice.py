import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PathCollection, PolyCollection
from matplotlib.path import Path

from splinetool.analyses.slice import SliceList, SliceResult
from splinetool.errors import UsageError
from splinetool.io import Provenance, write
from splinetool.render import COLOURINGS, draw_slice, draw_slice_file, save_figure
from splinetool.render import slice as render_slice

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


def colour_bar(fig):
    tiles, bar = fig.axes
    return bar


def test_jacobian_colour_bar_names_the_norm():
    fig = draw_slice(grid(2))
    assert len(fig.axes) == 2
    assert "_2" in colour_bar(fig).get_ylabel()
    frobenius = grid(2)
    frobenius.norm = "fro"
    assert "_F" in colour_bar(draw_slice(frobenius)).get_ylabel()


def test_region_colours_differ_between_tiles_that_touch():
    fig = draw_slice(grid(6), color="region")
    colours = tiles_of(fig).get_facecolor().reshape(6, 6, 4)
    assert not (colours[1:] == colours[:-1]).all(axis=-1).any()
    assert not (colours[:, 1:] == colours[:, :-1]).all(axis=-1).any()


def test_layer_colouring_has_a_legend_of_nodes():
    (legend,) = draw_slice(grid(2), color="layer").legends
    assert [t.get_text() for t in legend.get_texts()][:3] == ["fc1.relu", "fc2.relu", "domain edge"]


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


def test_jacobian_colouring_needs_the_norms():
    result = grid(4)
    result.jacobian_norm = None
    with pytest.raises(UsageError, match="Jacobian norm: it was not computed"):
        draw_slice(result)
    for color in ("region", "layer", "class"):
        assert len(tiles_of(draw_slice(result, color=color)).get_paths()) == 16


@pytest.fixture
def lump(monkeypatch):
    """lump(True): draw the tiles of slices over 5,000 tiles as compound paths of at most 1,500
    tiles; lump(False): every tile its own polygon."""
    monkeypatch.setattr(render_slice, "POLYGONS_PER_PATH", 1_500)

    def switch(on: bool) -> None:
        monkeypatch.setattr(render_slice, "LUMP_ABOVE", 5_000 if on else 10**9)

    switch(True)
    return switch


def lumped_tiles(fig, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(grid index, RGBA) of every polygon in the compound paths drawn for the tiles of grid(n)."""
    (collection,) = [c for c in fig.axes[0].collections if type(c) is PathCollection and c.get_zorder() == 1]
    assert collection.get_rasterized()
    index, colours = [], []
    for path, colour in zip(collection.get_paths(), collection.get_facecolor(), strict=True):
        starts = np.flatnonzero(path.codes == Path.MOVETO)
        assert len(starts) <= 1_500
        assert (np.flatnonzero(path.codes == Path.CLOSEPOLY) == starts + 4).all()  # four corners, closed
        np.testing.assert_array_equal(path.vertices[starts + 4], path.vertices[starts])
        np.testing.assert_array_equal(
            path.vertices[starts + 2] - path.vertices[starts], np.ones((len(starts), 2))
        )
        corner = path.vertices[starts].astype(int)  # the lower-left corner (i, j) of tile i * n + j
        index.append(corner[:, 0] * n + corner[:, 1])
        colours.append(np.tile(colour, (len(starts), 1)))
    return np.concatenate(index), np.concatenate(colours)


@pytest.mark.parametrize("color", ["jacobian", "region", "class"])
def test_many_tiles_are_drawn_as_compound_paths_of_the_same_colours(lump, color):
    n = 100
    result = grid(n)
    lump(False)
    expected = tiles_of(draw_slice(result, color=color)).get_facecolor()
    lump(True)
    fig = draw_slice(result, color=color)
    assert not [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
    index, colours = lumped_tiles(fig, n)
    assert sorted(index) == list(range(n * n))
    np.testing.assert_allclose(colours[np.argsort(index)], expected)
    assert any("10,000 tiles" in t.get_text() for t in fig.axes[0].texts)


def test_many_tiles_coloured_by_layer_draw_every_edge_in_its_node_colour(lump):
    n = 100
    fig = draw_slice(grid(n), color="layer")
    edges = [c for c in fig.axes[0].collections if type(c) is PathCollection and c.get_zorder() == 2]
    (collection,) = edges
    assert collection.get_rasterized()
    colours = render_slice._node_colours(2)
    horizontal = vertical = 0
    for path, colour in zip(collection.get_paths(), collection.get_edgecolor(), strict=True):
        segments = path.vertices.reshape(-1, 2, 2)
        assert (path.codes[0::2] == Path.MOVETO).all() and (path.codes[1::2] == Path.LINETO).all()
        # grid(n) labels its horizontal edges with node 0 (fc1.relu), its vertical ones with node 1
        if np.allclose(colour[:3], colours[0]):
            assert (segments[:, 0, 1] == segments[:, 1, 1]).all()
            horizontal += len(segments)
        else:
            np.testing.assert_allclose(colour[:3], colours[1])
            assert (segments[:, 0, 0] == segments[:, 1, 0]).all()
            vertical += len(segments)
    assert horizontal == vertical == 2 * n * n  # every tile's four edges, each tile drawing its own
    assert "edges drawn very thin" not in " ".join(t.get_text() for t in fig.axes[0].texts)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()][:3] == ["fc1.relu", "fc2.relu", "domain edge"]


def pixels(fig) -> np.ndarray:
    FigureCanvasAgg(fig).draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def test_many_tiles_cover_the_picture_in_proportion_to_their_area(lump, monkeypatch):
    monkeypatch.setattr(render_slice, "NO_EDGES_ABOVE", 5_000)  # the polygons drawn without edges too
    n = 100
    result = grid(n, outputs=1)
    result.affine_A[:] = 0
    column = np.arange(n * n) // n  # tile i * n + j lies over [i, i + 1] x [j, j + 1]
    result.affine_c[:, 0] = np.where(column < 30, 1.0, -1.0)  # class 1 on x < 30, class 0 beyond
    result.boundary = np.zeros((0, 2, 2))
    result.anchors = None
    shares = []
    for on in (False, True):
        lump(on)
        fig = draw_slice(result, color="class")
        fig.legends.clear()
        for text in list(fig.axes[0].texts):
            text.remove()
        image = pixels(fig).reshape(-1, 3)
        palette = np.round(255 * (0.55 * np.array(render_slice.colormaps["tab10"].colors) + 0.45))
        ones = (np.abs(image - palette[1]).max(axis=1) <= 1).sum()
        zeros = (np.abs(image - palette[0]).max(axis=1) <= 1).sum()
        box = fig.axes[0].bbox
        assert ones + zeros > 0.97 * box.width * box.height  # the tiles fill the axes
        shares.append(ones / (ones + zeros))
    assert shares[1] == pytest.approx(0.3, abs=0.01)
    assert shares[1] == pytest.approx(shares[0], abs=0.005)


def test_many_tiles_keep_the_svg_small_and_the_boundary_a_vector(lump, tmp_path):
    n = 100
    fig = draw_slice(grid(n), data=np.array([[10.0, 20.0]]))
    save_figure(fig, tmp_path / "slice.svg")
    save_figure(fig, tmp_path / "slice.png")
    svg = (tmp_path / "slice.svg").read_bytes()
    assert svg.count(b"<image") == 2  # the tiles and the colour bar
    assert b"stroke: #ff0000" in svg  # the decision boundary
    assert len(svg) < 300_000
    lump(False)
    save_figure(draw_slice(grid(n), data=np.array([[10.0, 20.0]])), tmp_path / "polygons.svg")
    assert (tmp_path / "polygons.svg").stat().st_size > 5 * len(svg)
    assert (tmp_path / "slice.png").read_bytes().startswith(PNG_SIGNATURE)


def test_tiles_beyond_the_edge_limit_are_rasterised_in_vector_output(monkeypatch):
    monkeypatch.setattr(render_slice, "NO_EDGES_ABOVE", 1_000)
    fig = draw_slice(grid(40), color="layer")
    assert tiles_of(fig).get_rasterized()
    (edges,) = [c for c in fig.axes[0].collections if c.get_zorder() == 2]
    assert edges.get_rasterized() and len(edges.get_segments()) == 4 * 40 * 40
    assert not tiles_of(draw_slice(grid(30))).get_rasterized()


PROVENANCE = Provenance("slice", ["slice"], "ab" * 32, "cpu", 0)


@pytest.mark.parametrize("color", COLOURINGS)
def test_a_file_is_drawn_a_part_at_a_time_as_its_result_is(tmp_path, monkeypatch, lump, color):
    n = 100
    result = grid(n)
    write(tmp_path / "run.h5", {"slice": result}, PROVENANCE)
    monkeypatch.setattr(render_slice, "READ_BYTES", 200_000)  # parts of about 1,200 tiles
    reads = []
    original = render_slice._gather
    monkeypatch.setattr(
        render_slice, "_gather", lambda part, c: reads.append(part.regions) or original(part, c)
    )
    fig = draw_slice_file(tmp_path / "run.h5", color=color, data=np.array([[1.0, 2.0]]), title="file")
    assert len(reads) >= 8 and sum(reads) == n * n
    np.testing.assert_array_equal(
        pixels(fig), pixels(draw_slice(result, color=color, data=np.array([[1.0, 2.0]]), title="file"))
    )


def test_a_small_plane_of_a_list_is_drawn_from_its_file(tmp_path):
    planes = [grid(2), grid(5)]
    write(tmp_path / "run.h5", {"slice": SliceList(planes)}, PROVENANCE)
    fig = draw_slice_file(tmp_path / "run.h5", "slice/0001", color="region")
    np.testing.assert_array_equal(
        tiles_of(fig).get_facecolor(), tiles_of(draw_slice(planes[1], color="region")).get_facecolor()
    )
    assert fig.axes[0].get_xlim() == (0.0, 5.0)


def test_a_file_without_jacobian_norms_cannot_be_coloured_by_them(tmp_path):
    result = grid(3)
    result.jacobian_norm = None
    write(tmp_path / "run.h5", {"slice": result}, PROVENANCE)
    with pytest.raises(UsageError, match="not computed"):
        draw_slice_file(tmp_path / "run.h5")
    assert len(tiles_of(draw_slice_file(tmp_path / "run.h5", color="class")).get_paths()) == 9


def drawn(fig):
    FigureCanvasAgg(fig).draw()
    return fig


@pytest.mark.parametrize("color", COLOURINGS)
def test_the_legend_lies_beside_the_axes_never_over_the_tiles(color):
    fig = drawn(draw_slice(grid(3), color=color, data=np.array([[0.5, 1.5]]), labels=np.array([0])))
    ax = fig.axes[0]
    (legend,) = fig.legends
    assert ax.get_legend() is None
    box, data_area = legend.get_window_extent(), ax.get_window_extent()
    assert box.x0 > data_area.x1 and not box.overlaps(data_area)
    for bar in fig.axes[1:]:  # nor over the colour bar
        assert not box.overlaps(bar.get_window_extent())


def test_the_legend_names_the_boundary_the_classes_and_the_anchors():
    labels = np.array([0, 1, 1])
    fig = draw_slice(
        grid(3), color="class", data=np.array([[0.5, 1.5], [2.5, 2.5], [1.5, 0.5]]), labels=labels
    )
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert "decision boundary" in texts and "anchors" in texts
    assert {"data: class 0", "data: class 1"} <= set(texts)
    assert any(t.startswith("tiles: class") for t in texts)
    unlabelled = [
        t.get_text() for t in draw_slice(grid(3), data=np.array([[1.0, 1.0]])).legends[0].get_texts()
    ]
    assert unlabelled == ["decision boundary", "data", "anchors"]


def test_the_legend_leaves_out_data_hidden_under_the_anchors():
    # grid(3)'s anchors are (0.5, 0.5), (2.5, 0.5) and (0.5, 2.5): class 2 lies under two of them only
    points = np.array([[0.5, 0.5], [2.5, 0.5], [1.5, 1.5], [0.5, 2.5]])
    fig = draw_slice(grid(3), data=points, labels=np.array([2, 2, 1, 3]))
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "data: class 1" in texts and "data: class 2" not in texts and "data: class 3" not in texts
    only_anchors = draw_slice(grid(3), data=points[[0, 1, 3]]).legends[0].get_texts()
    assert [t.get_text() for t in only_anchors] == ["decision boundary", "anchors"]


@pytest.mark.parametrize("n", [3, 230])
def test_the_colour_bar_is_as_tall_as_the_axes(n):
    fig = drawn(draw_slice(grid(n), title="a title"))
    ax = fig.axes[0]
    bar = colour_bar(fig).get_position(original=False)
    tiles = ax.get_position(original=False)
    assert bar.height == pytest.approx(tiles.height, rel=1e-6)
    assert bar.y0 == pytest.approx(tiles.y0, rel=1e-6)
    assert bar.x0 > tiles.x1


@pytest.mark.parametrize(("n", "edges"), [(3, True), (230, False)])
def test_tiles_drawn_without_edges_leave_no_seams(n, edges):
    # antialiased fills without edges let the background show through every shared side
    tiles = tiles_of(draw_slice(grid(n)))
    assert (tiles.get_linewidth()[0] > 0) == edges
    assert list(tiles.get_antialiased()) == [edges]


def test_a_2d_models_own_input_space_is_labelled_x1_x2():
    own = grid(3)
    own.origin, own.directions, own.anchors = np.zeros(2), np.eye(2), None
    ax = draw_slice(own).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x₁", "x₂")
    through_anchors = grid(3)
    through_anchors.origin, through_anchors.directions = np.array([1.5, 1.5]), np.eye(2)
    ax = draw_slice(through_anchors).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("t₁", "t₂")


def test_notes_sit_on_a_white_box_legible_over_any_tile():
    (note,) = draw_slice(grid(80)).axes[0].texts
    box = note.get_bbox_patch()
    assert box is not None
    red, green, blue, alpha = box.get_facecolor()
    assert (red, green, blue) == (1.0, 1.0, 1.0) and alpha >= 0.7
    assert note.get_color() == "black"
