import torch
from rich.console import Console

from splinetool.analyses import count_regions, info
from splinetool.frontends.loading import load_model
from splinetool.ir import lower
from splinetool.render import tables
from tests.conftest import SAMPLES
from tests.zoo import tent_network


def printed(printer, *args, width: int = 400) -> str:
    console = Console(record=True, width=width, color_system=None)
    printer(console, *args)
    return console.export_text()


def rows(text: str) -> list[list[str]]:
    """The cells of each body row of the tables in `text`."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in text.splitlines()
        if "│" in line
    ]


def test_tent_pieces_are_printed_per_prefix_network():
    # a depth-3 tent composition has 2, 4, 8 pieces on [0, 1] after 1, 2, 3 of its layers
    net = lower(tent_network(3), (1,)).to(dtype=torch.float64)
    where = count_regions.Segments(
        torch.zeros(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64)
    )
    result = count_regions.run(net, where)
    text = printed(tables.print_count, result, "tent.pt")
    assert "pieces per prefix network: tent.pt" in " ".join(text.split())
    assert [row[-1] for row in rows(text) if row[0].startswith("1..")] == ["2", "4", "8"]


def test_the_lowering_check_is_printed_with_its_verdict():
    result = info.run(load_model(SAMPLES / "moons-mlp.ts.pt"))
    text = printed(tables.print_info, result)
    assert f"{result.parameters:,} parameters" in text
    assert "ok" in text.splitlines()[-1] and "MISMATCH" not in text


def test_slice_summaries_print_every_number():
    summary = {
        "regions": 1234,
        "domain_area": 16.0,
        "covered_area": 16.0,
        "boundary_segments": 56,
        "boundary_length": 7.25,
        "tiles_per_node": {"relu": 100, "relu_1": 1234},
        "seconds": 2.0,
        "tiles_per_second": 617.0,
        "peak_memory_bytes": 3 * 2**20,
        "verify": {"points": 4936, "tiles_checked": 1234, "passed": False, "tiles_mismatched": 2},
    }
    text = printed(tables.print_slice, summary)
    assert "1,234 regions covering 16 of the domain's 16; decision boundary: 56 segments" in text
    assert "(617 tiles/s, peak memory 3 MiB)" in text
    assert "verify: 4,936 interior points in 1,234 tiles 2 tiles MISMATCHED" in text
    listed = {"planes": 1, "slices": [{**summary, "plane": 0}]}
    text = printed(tables.print_slice_list, listed, [(1, 2, 3)])
    assert ["0", "1,2,3", "1,234", "56", "7.25", "2.00"] in rows(text)


def test_shards_and_merges_say_where_they_went():
    shard = {"shard": "1/4", "items": [25, 50], "total": 100}
    assert printed(tables.print_shard, shard, "s1.h5").strip() == (
        "share 1/4: items 25:50 of 100 written to s1.h5; join the shares with splinetool merge"
    )
    text = printed(tables.print_merged, "slice", 4, 1000, "m.h5").strip()
    assert text == "merged 4 shards of 'slice' (1,000 items) into m.h5"


def test_a_narrow_console_folds_cells_and_never_cuts_a_digit():
    wide = {
        "regions": 123_456_789_012_345,
        "boundary_segments": 98_765_432_101,
        "boundary_length": 8.412345e-05,
        "seconds": 12345.67,
    }
    listed = {"planes": 1, "slices": [wide]}
    for width in (80, 40):
        text = printed(tables.print_slice_list, listed, [(1000, 2000, 3000)], width=width)
        assert "…" not in text
        assert all(len(line) <= width for line in text.splitlines())
        body = rows(text.split("┡")[1])  # the lines of the one data row, folded
        cells = ["".join(line[k] for line in body) for k in range(len(body[0]))]
        assert cells == [
            "0",
            "1000,2000,3000",
            "123,456,789,012,345",
            "98,765,432,101",
            "8.412e-05",
            "12345.67",
        ]
