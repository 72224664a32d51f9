"""What `rtctl listen` does with frames beyond plain events: malformed frames from the server,
``pusher_internal:subscription_count`` (Pusher sends it; Soketi 1.6.1 never does, so a relay in
front of a real Soketi adds it), and cache channels (real Soketi)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.helpers import SoketiServer, run_cli
from tests.listen_support import InjectingRelay, listening, trigger

pytestmark = pytest.mark.soketi


def test_malformed_frames_are_skipped_with_a_warning_and_subscription_count_is_shown(
    soketi: SoketiServer, tmp_path: Path
) -> None:
    channel = f"counted-{secrets.token_hex(3)}"
    relay = InjectingRelay(
        soketi,
        [
            json.dumps({"channel": channel, "data": "{}"}),  # no event
            "not json at all",
            "[1, 2]",
            json.dumps(
                {
                    "event": "pusher_internal:subscription_count",
                    "channel": channel,
                    "data": json.dumps({"subscription_count": 3}),
                }
            ),
        ],
    )
    try:
        soketi.write_env(tmp_path / ".env", REALTIME_PORT=str(relay.port))
        with listening([channel, "--json", "--count", "2"], tmp_path) as tail:
            first = json.loads(tail.stdout_line())
            assert (first["event"], first["data"]) == (
                "pusher:subscription_count",
                {"subscription_count": 3},
            )
            trigger(soketi, channel, "after", {"still": "listening"})
            code, out, err = tail.finish()
    finally:
        relay.close()
    assert code == 0, err
    assert (json.loads(out)["event"], json.loads(out)["data"]) == ("after", {"still": "listening"})
    warnings = [line for line in err.splitlines() if line.startswith("skipped")]
    assert warnings == [
        "skipped a malformed frame from the server (no event name): "
        + repr(json.dumps({"channel": channel, "data": "{}"})),
        "skipped a malformed frame from the server (no event name): 'not json at all'",
        "skipped a malformed frame from the server (no event name): '[1, 2]'",
    ]
    assert "unexpected" not in err


def test_subscription_count_human_line(soketi: SoketiServer, tmp_path: Path) -> None:
    channel = f"counted-{secrets.token_hex(3)}"
    count = json.dumps({"subscription_count": 1})
    relay = InjectingRelay(
        soketi,
        [
            json.dumps(
                {"event": "pusher_internal:subscription_count", "channel": channel, "data": count}
            )
        ],
    )
    try:
        soketi.write_env(tmp_path / ".env", REALTIME_PORT=str(relay.port))
        result = run_cli(["listen", channel, "--count", "1", "--timeout", "10"])
    finally:
        relay.close()
    assert result.exit_code == 0, result.stderr
    assert (
        result.stdout.split("  ", 1)[1] == f"{channel}  pusher:subscription_count  1 subscription\n"
    )


def test_cache_channel_shows_the_miss_then_the_cached_event(
    soketi: SoketiServer, tmp_path: Path
) -> None:
    soketi.write_env(tmp_path / ".env")
    channel = f"cache-prices-{secrets.token_hex(3)}"
    first = run_cli(["listen", channel, "--json", "--count", "1", "--timeout", "10"])
    assert first.exit_code == 0, first.stderr
    miss = json.loads(first.stdout)
    assert (miss["channel"], miss["event"], miss["data"]) == (channel, "pusher:cache_miss", None)

    assert run_cli(["emit", channel, "price", "--data", '{"eur":1.08}']).exit_code == 0
    # A late subscriber gets the last event at once, without anything new being published.
    late = run_cli(["listen", channel, "--json", "--count", "1", "--timeout", "10"])
    assert late.exit_code == 0, late.stderr
    cached = json.loads(late.stdout)
    assert (cached["event"], cached["data"]) == ("price", {"eur": 1.08})

    human = run_cli(
        ["listen", f"cache-empty-{secrets.token_hex(3)}", "--count", "1", "--timeout", "10"]
    )
    assert human.stdout.endswith("pusher:cache_miss  nothing cached yet\n")


def test_private_and_presence_cache_channels_are_signed(
    soketi: SoketiServer, tmp_path: Path
) -> None:
    soketi.write_env(tmp_path / ".env")
    tag = secrets.token_hex(3)
    channels = [f"private-cache-orders-{tag}", f"presence-cache-lobby-{tag}"]
    result = run_cli(["listen", *channels, "--as-user", "5", "--json", "--count", "2"])
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted((line["channel"], line["event"]) for line in lines) == sorted(
        (channel, "pusher:cache_miss") for channel in channels
    )
