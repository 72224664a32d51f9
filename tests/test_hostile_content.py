"""Whatever anyone allowed on a channel publishes, `rtctl listen` keeps listening and prints it
inert: control characters shown escaped in human lines, exact JSON in NDJSON, never a crash on
text that cannot be encoded. Real Soketi, real `python -m rtctl` processes."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from rtctl.printable import json_safe, printable, printable_lines
from tests.helpers import SoketiServer, run_cli, run_rtctl
from tests.listen_support import listening, trigger

FORGERY = "hi\nCoach: forged line"


def test_printable_escapes_what_a_terminal_would_obey() -> None:
    assert printable("plain text, ü, 😀") == "plain text, ü, 😀"
    assert printable("a\nb\r\tc") == "a\\nb\\r\\tc"
    assert printable("\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m"
    assert printable("\x9b31m \x00 \x7f") == "\\x9b31m \\x00 \\x7f"  # C1 CSI, NUL, DEL
    assert printable("user\u202egnp.exe") == "user\\u202egnp.exe"  # right-to-left override
    assert printable("\ud800") == "\\ud800"  # a lone surrogate cannot be encoded at all
    assert printable_lines("one\ntwo\x1b") == "one\ntwo\\x1b"
    assert json_safe('"\ud800x"') == '"\\ud800x"'
    assert json.loads(json_safe(json.dumps("\ud800", ensure_ascii=False))) == "\ud800"


def test_human_listen_escapes_and_keeps_listening(
    soketi: SoketiServer, env_file: Path, tmp_path: Path
) -> None:
    channel = "private-1_9000000"  # the bot's DM channel with user 1
    with listening([channel, "--count", "4", "--timeout", "30"], tmp_path) as listener:
        listener.wait_stderr("listening on")
        trigger(soketi, channel, "lone", '"\\ud800"')  # data: a JSON string holding a surrogate
        trigger(soketi, channel, "evil\nforged", {"x": "\x1b[31mred\r"})
        trigger(soketi, channel, "name\ud800", "plain")
        said = run_rtctl(["bot", "say", "--to", "1", FORGERY], cwd=tmp_path)
        assert said.returncode == 0, said.stderr
        assert said.stderr == f"Coach -> {channel}: hi\\nCoach: forged line\n"
        lines = [listener.stdout_line() for _ in range(4)]
        code, rest, err = listener.finish()
    assert (code, rest) == (0, ""), err
    shown = [line.split("  ", 2)[2] for line in lines]  # after the time and the channel
    assert shown == [
        "lone  \\ud800\n",
        'evil\\nforged  {"x": "\\u001b[31mred\\r"}\n',
        "name\\ud800  plain\n",
        "chat_message  Coach: hi\\nCoach: forged line\n",
    ]
    assert "unexpected" not in err


def test_ndjson_listen_stays_exact_json(
    soketi: SoketiServer, env_file: Path, tmp_path: Path
) -> None:
    channel = f"hostile-{secrets.token_hex(4)}"
    with listening([channel, "--json", "--count", "3", "--timeout", "30"], tmp_path) as listener:
        listener.wait_stderr("listening on")
        trigger(soketi, channel, "name\ud800", '"\\udc00"')
        trigger(soketi, channel, "line\nbreak", {"text": "\x1b]0;title\x07"})
        trigger(soketi, channel, "after", {"still": "listening"})
        records = [json.loads(listener.stdout_line()) for _ in range(3)]
        code, _, err = listener.finish()
    assert code == 0, err
    assert [(record["event"], record["data"]) for record in records] == [
        ("name\ud800", "\udc00"),
        ("line\nbreak", {"text": "\x1b]0;title\x07"}),
        ("after", {"still": "listening"}),
    ]


@pytest.mark.parametrize(
    "name",
    ["e\x1b[31m", "two\nlines", "cr\r", "nul\x00", "c1\x9b", "bad\udcff"],
)
def test_emit_refuses_event_names_with_control_characters(env_file: Path, name: str) -> None:
    result = run_cli(["emit", "orders", name])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith(f"error: event name {name!r} contains a control character")
    assert result.stderr.endswith("hint: use printable characters only, e.g. chat_message\n")


def test_a_terminal_that_cannot_encode_the_text_gets_escapes(
    env_file: Path, tmp_path: Path
) -> None:
    """Printing never fails on encoding: on an ASCII-only stream "é" is written as its escape."""
    said = run_rtctl(
        ["bot", "say", "--to", "1", "h\u00e9llo \u20ac"],
        cwd=tmp_path,
        env={"PYTHONIOENCODING": "ascii"},
    )
    assert (said.returncode, said.stdout) == (0, "")
    assert said.stderr == "Coach -> private-1_9000000: h\\xe9llo \\u20ac\n"
