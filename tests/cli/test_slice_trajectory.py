"""`splinetool slice` over a training trajectory, from the shell: the numbers of hand-placed lines,
the table, the run file read back, the figures and the animation, and bad input refused."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from splinetool.analyses.slice import SliceTrajectory
from splinetool.cli import app
from splinetool.io import read
from tests.analyses.test_tile_placement import DELTA, MOVES, expected, lines_net
from tests.cli.test_slice_list import invoke

runner = CliRunner()
PLANE = ("--bounds=-1,1,-1,1", "--delta", DELTA)


def save(model, path, inputs: int = 2):
    traced = torch.jit.trace(model.eval(), torch.zeros(1, inputs, dtype=torch.float64))
    torch.jit.save(traced, str(path), _extra_files={"splinetool.json": json.dumps({"input_shape": [inputs]})})
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two checkpoints, the lines through the data point at step 0 and moved away at step 10 (named
    out of order on purpose), their data point, and the trajectory's --json and -o."""
    folder = tmp_path_factory.mktemp("lines")
    for step, move in zip((10, 0), [MOVES[1], MOVES[0]]):
        save(lines_net(*move), folder / f"step-{step:04d}.ts.pt")
    np.save(folder / "data.npy", np.zeros((1, 2)))
    args = [folder / "step-*.ts.pt", "--data", folder / "data.npy", *PLANE]
    result = invoke(*args, "-o", folder / "run.h5", "--json")
    assert result.exit_code == 0, result.output
    return folder, args, json.loads(result.stdout)


def test_the_json_gives_the_numbers_of_the_lines_in_step_order(run):
    _, _, payload = run
    assert payload["delta"] == DELTA and payload["data_points"] == 1
    assert [c["step"] for c in payload["checkpoints"]] == [0, 10]
    for entry, move in zip(payload["checkpoints"], [MOVES[0], MOVES[1]]):
        answer = expected(*move)
        assert entry["regions"] == answer["tiles"]
        for target in ("data", "boundary"):
            for what in ("tiles", "edges", "area"):
                got = entry["placement"][target][f"{what}_within_delta"]
                assert got == pytest.approx(answer[target][what], rel=0.04, abs=1e-12)
        assert entry["placement"]["data"]["density"][0] == pytest.approx(answer["near_density"], rel=0.04)


def test_the_run_file_reads_back_as_the_trajectory_it_printed(run):
    folder, _, payload = run
    result = read(folder / "run.h5")["slice"]
    assert isinstance(result, SliceTrajectory)
    assert result.steps == [0, 10] and [s.regions for s in result.slices] == [6, 6]
    assert [p.summary() for p in result.placements] == [c["placement"] for c in payload["checkpoints"]]
    np.testing.assert_array_equal(result.data, np.zeros((1, 2)))


def test_the_table_prints_each_checkpoints_shares(run):
    _, args, payload = run
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert f"δ = {DELTA:.4g} (plane coordinates); 1 data points in the plane" in result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    assert len(rows) == 2
    for row, entry in zip(rows, payload["checkpoints"]):
        cells = [cell.strip() for cell in row.strip("│").split("│")]
        placed = entry["placement"]
        shares = [
            placed[t][f"{w}_within_delta"] for t in ("data", "boundary") for w in ("area", "tiles", "edges")
        ]
        assert cells == [f"{entry['step']:,}", "6", *(f"{share:.2%}" for share in shares)]


def test_steps_given_order_the_checkpoints(run):
    folder, _, _ = run
    files = [folder / "step-0010.ts.pt", folder / "step-0000.ts.pt"]
    result = invoke(*files, "--steps", "5,3", "--data", folder / "data.npy", *PLANE, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [(c["step"], c["checkpoint"]) for c in payload["checkpoints"]] == [
        (3, str(files[1])),
        (5, str(files[0])),
    ]


def test_figures_and_the_animation_have_a_panel_and_a_frame_per_checkpoint(run, tmp_path):
    folder, args, _ = run
    png, gif = tmp_path / "t.png", tmp_path / "t.gif"
    result = invoke(*args, "--png", png, "--animate", gif, "--quiet")
    assert result.exit_code == 0, result.output
    assert Image.open(png).size[0] > 0
    with Image.open(gif) as frames:
        assert frames.format == "GIF" and frames.n_frames == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.gif", "t.png"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--steps", "1,2,3"], "--steps '1,2,3': expected 2 integers separated by commas"),
        (["--animate", "out.png"], "--animate out.png: expected a file name ending in .gif"),
    ],
)
def test_bad_trajectory_options_exit_2_writing_nothing(run, tmp_path, extra, message):
    folder, args, _ = run
    extra = [str(tmp_path / e) if e.endswith(".png") else e for e in extra]
    result = invoke(*args, *extra, "-o", tmp_path / "t.h5")
    assert result.exit_code == 2, result.output
    assert message.replace("out.png", str(tmp_path / "out.png")) in " ".join(result.output.split())
    assert list(tmp_path.iterdir()) == []


def test_a_list_of_planes_is_refused_for_a_trajectory(run, tmp_path):
    folder, args, _ = run
    (tmp_path / "planes.txt").write_text("0 0 0\n")
    result = invoke(
        folder / "step-*.ts.pt", "--data", folder / "data.npy", "--anchor-index-list", tmp_path / "planes.txt"
    )
    assert result.exit_code == 2, result.output
    assert (
        "--anchors-list and --anchor-index-list slice one checkpoint; a trajectory is sliced on one plane"
        in (" ".join(result.output.split()))
    )


def test_a_glob_matching_nothing_exits_2(tmp_path):
    result = invoke(tmp_path / "step-*.pt", "--bounds=-1,1,-1,1")
    assert result.exit_code == 2
    assert f"checkpoint pattern {tmp_path / 'step-*.pt'}: no file matches it" in " ".join(
        result.output.split()
    )


def test_checkpoints_of_another_input_shape_exit_2(run, tmp_path):
    folder, _, _ = run
    wide = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1)).double()
    other = save(wide, tmp_path / "step-0020.ts.pt", inputs=3)
    files = [folder / "step-0000.ts.pt", other]
    result = invoke(*files, "--data", folder / "data.npy", *PLANE, "-o", tmp_path / "t.h5")
    assert result.exit_code == 2, result.output
    assert f"checkpoint {other}: its inputs have shape (3,), the trajectory's plane lives in 2-D" in " ".join(
        result.output.split()
    )
    assert not (tmp_path / "t.h5").exists()


def test_shards_of_the_checkpoints_merge_into_the_whole_run(run, tmp_path):
    folder, args, payload = run
    for index in (0, 1):
        result = invoke(*args, "--shard", f"{index}/2", "-o", tmp_path / f"share-{index}.h5", "--quiet")
        assert result.exit_code == 0, result.output
    merged = runner.invoke(
        app, ["merge", *(str(tmp_path / f"share-{i}.h5") for i in (0, 1)), "-o", str(tmp_path / "all.h5")]
    )
    assert merged.exit_code == 0, merged.output
    result = read(tmp_path / "all.h5")["slice"]
    assert result.steps == [0, 10]
    assert [p.summary() for p in result.placements] == [c["placement"] for c in payload["checkpoints"]]


def test_trajectory_options_on_one_checkpoint_exit_2(run, tmp_path):
    folder, _, _ = run
    result = invoke(folder / "step-0000.ts.pt", *PLANE, "--animate", tmp_path / "t.gif")
    assert result.exit_code == 2, result.output
    message = "--animate, --delta describe(s) a training trajectory: give several checkpoints (or --steps)"
    assert message in " ".join(result.output.split())
    assert list(tmp_path.iterdir()) == []


def test_the_animation_alone_draws_the_jacobian_norms(run, tmp_path):
    folder, args, _ = run
    result = invoke(*args, "--animate", tmp_path / "t.gif", "--quiet")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "t.gif") as frames:
        assert frames.n_frames == 2
