"""Shares of the items, --shard parsing, and the single-process path of splinetool.parallel."""

import pytest

from splinetool import parallel
from splinetool.errors import UsageError


@pytest.mark.parametrize("total", [0, 1, 5, 7, 100])
@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_shares_cover_every_item_once_in_order_and_evenly(total, count):
    shares = [parallel.Share(i, count).items(total) for i in range(count)]
    assert [i for share in shares for i in share] == list(range(total))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


@pytest.mark.parametrize(("text", "share"), [("0/1", (0, 1)), ("3/4", (3, 4)), (" 1 / 2 ", (1, 2))])
def test_parse_share(text, share):
    assert parallel.parse_share(text) == parallel.Share(*share)


@pytest.mark.parametrize("text", ["1", "a/b", "1/0", "4/4", "-1/4", "1/2/3", "1.0/2"])
def test_parse_share_refuses(text):
    with pytest.raises(UsageError, match="`shard`"):
        parallel.parse_share(text)


def test_alone_the_work_gets_every_item(monkeypatch):
    for name in parallel.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert parallel.world() is None and parallel.is_leader()
    parts = parallel.run_shared(lambda share: share.items(10), None, __import__("torch").device("cpu"))
    assert parts == [range(10)]
    assert parallel.run_shared(lambda share: share.items(10), parallel.Share(1, 3), None) == [range(3, 6)]


def test_world_comes_from_torchrun_variables(monkeypatch):
    values = {"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "node7"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    assert parallel.world() == parallel.World(rank=2, size=4, local_rank=0)
    assert not parallel.is_leader()
    with pytest.raises(UsageError, match="`shard` is for job arrays"):
        parallel.run_shared(lambda share: None, parallel.Share(0, 2), None)
