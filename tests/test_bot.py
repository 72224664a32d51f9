"""`rtctl bot say`: the bot-user pattern's chat_message, exactly as a subscriber receives it."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.events_support import JsReceiver, RawSocket
from tests.helpers import SoketiServer, run_cli


def received_chat(sock: RawSocket) -> tuple[dict, dict]:
    [frame] = sock.wait_events(1, "chat_message")
    return frame, json.loads(frame["data"])


def test_payload_shape_over_the_socket(env_file: Path, soketi: SoketiServer) -> None:
    user = "u" + secrets.token_hex(3)
    channel = f"private-{user}_9000000"
    sock = RawSocket(soketi)
    sock.subscribe(channel)
    sock.start()
    try:
        before = datetime.now(timezone.utc)
        result = run_cli(["bot", "say", "--to", user, "Great! Keep going."])
        after = datetime.now(timezone.utc)
        assert (result.exit_code, result.stdout) == (0, "")
        assert result.stderr == f"Coach -> {channel}: Great! Keep going.\n"
        frame, payload = received_chat(sock)
    finally:
        sock.close()
    assert (frame["event"], frame["channel"]) == ("chat_message", channel)
    created = payload.pop("created_at")
    assert payload == {
        "channel": channel,
        "actor": {"id": 9000000, "name": "Coach", "avatar": "/assets/bot.png"},
        "body": "Great! Keep going.",
        "audio_url": None,
    }
    assert len(created) == 24 and created.endswith("Z") and created[19] == "."
    moment = datetime.strptime(created, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert before - timedelta(milliseconds=1) <= moment <= after


def test_configured_bot_identity_audio_and_json(tmp_path: Path, soketi: SoketiServer) -> None:
    soketi.write_env(
        tmp_path / ".env",
        REALTIME_BOT_ID="coach-7",
        REALTIME_BOT_NAME="Trainer",
        REALTIME_BOT_AVATAR="https://cdn.example/t.png",
    )
    channel = "private-42_coach-7"
    sock = RawSocket(soketi)
    sock.subscribe(channel)
    sock.start()
    try:
        result = run_cli(
            [
                "bot",
                "say",
                "--to",
                "42",
                "Listen",
                "--audio-url",
                "https://cdn.example/a.mp3",
                "--json",
            ]
        )
        assert result.exit_code == 0, result.stderr
        _, payload = received_chat(sock)
    finally:
        sock.close()
    printed = json.loads(result.stdout)
    assert printed == {"ok": True, "channel": channel, "event": "chat_message", "data": payload}
    assert payload["actor"] == {
        "id": "coach-7",
        "name": "Trainer",
        "avatar": "https://cdn.example/t.png",
    }
    assert (payload["body"], payload["audio_url"]) == ("Listen", "https://cdn.example/a.mp3")


def test_pusher_js_receives_the_bot_message(env_file: Path, soketi: SoketiServer) -> None:
    channel = "private-js7_9000000"
    receiver = JsReceiver(soketi, [channel], count=1, env_file=env_file)
    try:
        receiver.wait_subscribed()
        assert run_cli(["bot", "say", "--to", "js7", "Hi from the bot"]).exit_code == 0
        code, events, _ = receiver.finish()
    finally:
        receiver.stop()
    assert code == 0
    [event] = events
    assert (event["channel"], event["event"]) == (channel, "chat_message")
    assert event["data"]["body"] == "Hi from the bot"
    assert event["data"]["actor"] == {"id": 9000000, "name": "Coach", "avatar": "/assets/bot.png"}


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (["Hi"], "--to is required", 'rtctl bot say --to 123 "Great! Keep going."'),
        (
            ["--to", "42", "  "],
            "the message text is empty",
            'say something: rtctl bot say --to 123 "Hi"',
        ),
        (
            ["--to", "a b", "Hi"],
            "channel name 'private-a b_9000000' contains characters Pusher refuses: ' '",
            "use only letters, digits and - _ = @ , . ;",
        ),
        (
            ["--to", "42", "x" * 10_300],
            "event data is 10464 bytes; the limit is 10240",
            "Pusher refuses events over 10 KB; send less, or pass --allow-large for Soketi-only setups",
        ),
    ],
)
def test_refusals(env_file: Path, args, message, hint) -> None:
    result = run_cli(["bot", "say", *args])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"error: {message}\nhint: {hint}\n"


def test_wrong_secret_is_exit_5(soketi: SoketiServer, tmp_path: Path) -> None:
    soketi.write_env(tmp_path / ".env", PUSHER_APP_SECRET="sec" + "2" * 24)
    result = run_cli(["bot", "say", "--to", "42", "Hi", "--json"])
    assert result.exit_code == 5
    assert json.loads(result.stdout)["error"]["message"] == (
        "the server refused our credentials (401): The secret authentication failed"
    )
