"""Pusher's user features: send an event to one user, and listen as a signed-in user.

Against a real Soketi with user authentication on (it ignores pusher:signin otherwise), and with
pusher-js 8.6.0's own pusher.signin() and pusher.user.bind as the receiving client."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.events_support import JsUser
from tests.helpers import SoketiServer, run_cli
from tests.listen_support import listening

pytestmark = pytest.mark.soketi


@pytest.fixture(scope="module")
def users_soketi(soketi_factory) -> SoketiServer:
    return soketi_factory(SOKETI_DEFAULT_APP_USER_AUTHENTICATION="true")


def test_pusher_js_user_bind_receives_what_rtctl_sends_to_the_user(
    users_soketi: SoketiServer, tmp_path: Path
) -> None:
    env_file = users_soketi.write_env(tmp_path / ".env")
    user_id = f"u{secrets.token_hex(3)}"
    user = JsUser(users_soketi, user_id, env_file, events=["greet", "nudge"], count=2)
    try:
        user.wait_for("signed_in")
        sent = run_cli(["send-to-user", user_id, "greet", "--data", '{"text":"hi"}', "--json"])
        assert sent.exit_code == 0, sent.stderr
        assert json.loads(sent.stdout) == {
            "ok": True,
            "user_id": user_id,
            "channel": f"#server-to-user-{user_id}",
            "event": "greet",
        }
        # emit allows Pusher's server-to-user channel too (what the SDKs' sendToUser triggers on)
        emitted = run_cli(["emit", f"#server-to-user-{user_id}", "nudge", "--data", '"psst"'])
        assert emitted.exit_code == 0, emitted.stderr
        code, lines = user.finish()
    finally:
        user.stop()
    assert code == 0, lines
    events = [(line["event"], line["data"]) for line in lines if line["type"] == "event"]
    assert events == [("greet", {"text": "hi"}), ("nudge", "psst")]


def test_listen_as_a_signed_in_user(users_soketi: SoketiServer, tmp_path: Path) -> None:
    users_soketi.write_env(tmp_path / ".env")
    user_id = f"ada{secrets.token_hex(2)}@example.com"
    with listening(["--signin", "--as-user", user_id, "--json", "--count", "1"], tmp_path) as tail:
        tail.wait_stderr("listening on")
        assert run_cli(["send-to-user", user_id, "greet", "--data", '{"n":1}']).exit_code == 0
        code, out, err = tail.finish()
    assert code == 0, err
    line = json.loads(out)
    assert (line["channel"], line["event"], line["data"]) == (
        f"#server-to-user-{user_id}",
        "greet",
        {"n": 1},
    )
    assert err.splitlines()[:2] == [
        f"signed in as user {user_id}: events sent to this user arrive too",
        f"listening on #server-to-user-{user_id} (socket {err.split('(socket ')[1].split(')')[0]})",
    ]


def test_listen_signin_without_user_authentication_says_how_to_enable_it(
    soketi: SoketiServer, tmp_path: Path
) -> None:
    soketi.write_env(tmp_path / ".env")
    result = run_cli(["listen", "--signin", "--as-user", "7", "--timeout", "1.5"])
    assert result.exit_code == 6
    error, hint = result.stderr.splitlines()
    assert error.startswith("error: no pusher:signin_success within 1.")
    assert hint == (
        "hint: Soketi answers pusher:signin only with SOKETI_DEFAULT_APP_USER_AUTHENTICATION=true "
        "(Pusher always does)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["emit", "room,#server-to-user-1", "e"],
            "events for users (#server-to-user-*) cannot share a trigger with other channels",
        ),
        (["emit", "#server-to-user-a b", "e"], "'#server-to-user-a b': user id 'a b' contains "),
        (["emit", "#other", "e"], "channel name '#other' contains characters Pusher refuses: '#'"),
        (["send-to-user", "a/b", "e"], "user id 'a/b' contains characters Pusher refuses: '/'"),
        (["listen", "#server-to-user-1"], "'#server-to-user-1' is Pusher's channel for events "),
        (["listen", "--signin"], "--signin needs the user: --as-user ID, or --user-auth-endpoint"),
        (["auth", "#server-to-user-1", "--socket-id", "1.1"], "'#server-to-user-1' is Pusher's"),
    ],
)
def test_server_to_user_input_is_checked_locally(env_file: Path, args, message) -> None:
    result = run_cli(args)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith(f"error: {message}")


@pytest.mark.parametrize(
    ("data", "error", "hint"),
    [
        ("@missing.json", "cannot read data file 'missing.json': No such file or directory",
         "check the path after @ (relative to the current folder)"),
        ("@", "--data @ names no file", "write --data @payload.json"),
        ("caf\udce9", "--data is not UTF-8 text", "event data is JSON text"),
    ],
)  # fmt: skip
def test_send_to_user_data_that_cannot_be_read_names_data(
    env_file: Path, data: str, error: str, hint: str
) -> None:
    result = run_cli(["send-to-user", "42", "e", "--data", data])
    assert result.exit_code == 2
    assert result.stderr == f"error: {error}\nhint: {hint}\n"
