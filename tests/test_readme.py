"""The README renders and its examples can be pasted in turn: every code fence is closed, and every
file an example writes lies under out/ and is written by no other example."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
# the options through which a command writes a file, and a shell redirection
WRITES = re.compile(r"(?:^|\s)(?:-o|--png|--svg|--tessellation|--animate|>)\s+(\"[^\"]+\"|'[^']+'|\S+)")


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block; an unclosed fence fails the test that reads it."""
    blocks, language, body = [], None, []
    for number, line in enumerate(text.splitlines(), 1):
        fence = FENCE.match(line)
        if language is None:
            if fence:
                language, body, opened = fence.group(2), [], number
        elif fence and not fence.group(2):
            blocks.append((language, "\n".join(body)))
            language = None
        else:
            assert not fence, f"README.md line {number}: a fence opens in the block opened on line {opened}"
            body.append(line)
    assert language is None, f"README.md: the fence opened on line {opened} is never closed"
    return blocks


def written_files(text: str) -> list[str]:
    shell = [body for language, body in code_blocks(text) if language in ("bash", "sh", "console")]
    joined = [re.sub(r"\\\n\s*", " ", body) for body in shell]  # continued lines read as one
    return [
        match.strip("\"'")
        for body in joined
        for line in body.splitlines()
        if not line.lstrip().startswith("#")
        for match in WRITES.findall(line)
    ]


def test_every_code_fence_is_closed():
    assert len(code_blocks(README.read_text(encoding="utf-8"))) > 20


def test_an_unclosed_fence_is_found():
    try:
        code_blocks("text\n```bash\nsplinetool info x.pt\n\n## Next section\n")
    except AssertionError as err:
        assert "line 2" in str(err) and "never closed" in str(err)
    else:
        raise AssertionError("the unclosed fence went unnoticed")


def test_examples_write_under_out_and_never_the_same_file():
    written = written_files(README.read_text(encoding="utf-8"))
    assert len(written) > 20
    assert [path for path in written if not path.startswith("out/")] == []
    assert sorted({path for path in written if written.count(path) > 1}) == []


def test_written_files_are_read_from_every_option_and_redirection():
    text = "```bash\nsplinetool slice m.pt --png out/a.png \\\n    -o out/a.h5 --json > out/a.json\n```\n"
    assert written_files(text) == ["out/a.png", "out/a.h5", "out/a.json"]
