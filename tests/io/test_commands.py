import pytest

from splinetool.cli import app
from splinetool.io.commands import COMMANDS, GROUP_OF_OLD, KINDS, kind_of


def test_every_command_that_writes_a_run_file_is_registered():
    typer_names = {command.name for command in app.registered_commands}
    assert set(COMMANDS) == typer_names - {"info", "merge"}


def test_one_encoding_is_one_codec_and_every_result_type_is_registered_once():
    # count-regions' three result types share one encoding, whose reader picks the type by method
    by_encoding = {}
    for kind in KINDS.values():
        assert by_encoding.setdefault(kind.codec.encoding_type, kind.codec) == kind.codec
    assert len(by_encoding) == 10
    assert len(KINDS) == sum(len(spec.results) for spec in COMMANDS.values()) == 12


def test_renderers_resolve_and_joined_results_say_what_they_hold_per_item():
    for kind in KINDS.values():
        if kind.draw is not None:
            assert callable(kind.drawer())
        if kind.combine is not None:  # merge checks each share's items before joining
            assert kind.items is not None, kind.type.__name__


def test_old_group_names_map_to_their_command():
    assert GROUP_OF_OLD == {
        "count": "count-regions",
        "local_complexity": "local-complexity",
        "bn_density": "bn-density",
        "debias": "debias-sample",
    }


def test_an_unregistered_result_is_refused():
    with pytest.raises(TypeError, match="no registered command returns dict"):
        kind_of({})
