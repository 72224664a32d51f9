"""`rtctl smoke`'s webhooks check against real Soketis started with webhook settings: every event
arrives signed and verified, Soketi's deviations are named warnings, and each way it breaks
fails with its exit code."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from rtctl.ops.webhook_receiver import WebhookReceiver
from tests.helpers import SoketiServer, free_port, run_cli

pytestmark = pytest.mark.soketi


@pytest.fixture(scope="module")
def hooked(soketi_factory: Callable[..., SoketiServer]) -> SoketiServer:
    return soketi_factory(REALTIME_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/webhooks")


def smoke(env_file: Path, *args: str) -> tuple[int, dict, str]:
    result = run_cli(["--env-file", str(env_file), "smoke", "--json", "--timeout", "5", *args])
    return result.exit_code, json.loads(result.stdout), result.stderr


def check(report: dict, name: str) -> dict:
    return next(c for c in report["checks"] if c["name"] == name)


def test_every_webhook_arrives_and_deviations_are_warnings(
    hooked: SoketiServer, tmp_path: Path
) -> None:
    code, report, _ = smoke(hooked.write_env(tmp_path / ".env"))
    assert code == 0, report
    webhooks = check(report, "webhooks")
    assert webhooks["status"] == "pass", webhooks
    channel = f"presence-smoke-wh-{report['run_id']}"
    assert webhooks["details"]["channel"] == channel
    assert sorted(webhooks["details"]["latency_ms"]) == sorted(
        [
            "channel_occupied",
            f"member_added smoke-a-{report['run_id']}",
            f"member_added smoke-b-{report['run_id']}",
            f"client_event smoke-b-{report['run_id']}",
            f"member_removed smoke-a-{report['run_id']}",
            f"member_removed smoke-b-{report['run_id']}",
            "channel_vacated",
        ]
    )
    names = [warning["name"] for warning in webhooks["details"]["warnings"]]
    assert "client-event-data-object" in names and "no-vacate-delay" in names
    assert set(names) <= {
        "client-event-data-object",
        "no-vacate-delay",
        "vacated-before-member-removed",
    }
    assert webhooks["evidence"].startswith(
        f"7 webhooks for {channel} arrived at {hooked.env['REALTIME_WEBHOOK_URL']}, each verified "
        "(key, signature, time_ms); latency max "
    )
    assert "Soketi deviations: client-event-data-object" in webhooks["evidence"]
    assert check(report, "cleanup")["status"] == "pass"


def test_not_configured_is_a_skip_unless_asked_for(soketi: SoketiServer, tmp_path: Path) -> None:
    env_file = soketi.write_env(tmp_path / ".env")
    code, report, _ = smoke(env_file)
    assert check(report, "webhooks")["status"] == "skip"
    assert check(report, "webhooks")["evidence"] == "no webhooks configured (REALTIME_WEBHOOK_URL)"
    code, report, _ = smoke(env_file, "--checks", "webhooks")
    assert code == 3
    failed = check(report, "webhooks")
    assert (failed["status"], failed["evidence"]) == (
        "fail",
        "webhooks are not configured: the server sends none",
    )


def test_a_server_started_before_the_webhook_settings_times_out(
    soketi: SoketiServer, tmp_path: Path
) -> None:
    """.env now says webhooks go to a local URL, but the running Soketi was started without."""
    url = f"http://127.0.0.1:{free_port()}/webhooks"
    env_file = soketi.write_env(tmp_path / ".env", REALTIME_WEBHOOK_URL=url)
    result = run_cli(
        ["--env-file", str(env_file), "smoke", "--checks", "webhooks", "--timeout", "1"]
    )
    assert result.exit_code == 6
    assert result.stderr.splitlines()[0].startswith("error: smoke check webhooks failed: ")
    assert f"did not arrive at {url} within 1 s (0 of 7 did)" in result.stderr
    assert result.stderr.splitlines()[1] == (
        "hint: Soketi reads its webhook settings at start: after changing REALTIME_WEBHOOK_*, "
        "restart it (`rtctl down && rtctl up`)"
    )


def test_a_busy_receiver_port_fails_with_the_reason(hooked: SoketiServer, tmp_path: Path) -> None:
    url = hooked.env["REALTIME_WEBHOOK_URL"]
    port = int(url.split(":")[2].split("/")[0])
    with WebhookReceiver(hooked.key, hooked.secret, port=port):
        code, report, _ = smoke(hooked.write_env(tmp_path / ".env"), "--checks", "webhooks")
    assert code == 1
    failed = check(report, "webhooks")
    assert failed["evidence"] == (
        f"cannot receive at {url}: port {port} on 127.0.0.1 is already in use"
    )
    assert (
        failed["hint"]
        == "stop `rtctl webhooks listen` (or whatever holds that port) while smoke runs"
    )


def test_the_channel_follows_the_filter_and_the_types(
    soketi_factory: Callable[..., SoketiServer], tmp_path: Path
) -> None:
    server = soketi_factory(
        REALTIME_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/orders-hooks",
        REALTIME_WEBHOOK_CHANNEL_PREFIX="private-orders-",
        REALTIME_WEBHOOK_EVENTS="channel_occupied,channel_vacated,client_event",
    )
    code, report, _ = smoke(server.write_env(tmp_path / ".env"), "--checks", "webhooks")
    assert code == 0, report
    webhooks = check(report, "webhooks")
    assert webhooks["details"]["channel"] == f"private-orders-smoke-wh-{report['run_id']}"
    assert sorted(webhooks["details"]["latency_ms"]) == [
        "channel_occupied",
        "channel_vacated",
        "client_event",
    ]
    assert webhooks["details"]["notes"] == [
        f"private-orders-smoke-wh-{report['run_id']} is not a presence channel (filter): no "
        "member events"
    ]
