"""`rtctl compat` against real servers: the session Soketi (defaults), a Soketi tuned towards
Pusher's limits (so the verdicts follow what the server does, not its version), and the TLS
stand-in for the Pusher provider."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import SoketiServer, free_port, run_cli, write_env

pytestmark = pytest.mark.soketi

SOKETI_DEFAULTS = {
    "payload-size": "deviates",
    "client-events-public": "deviates",
    "activity-timeout": "deviates",
    "error-status": "deviates",
    "long-channel-names": "deviates",
    "presence-members": "same",
    "webhooks": "unknown",
    "subscription-count": "deviates",
    "auth-timestamp": "deviates",
}


def statuses(stdout: str) -> dict[str, str]:
    return {probe["name"]: probe["status"] for probe in json.loads(stdout)["probes"]}


@pytest.fixture(scope="module")
def report_of_soketi(soketi: SoketiServer, tmp_path_factory) -> dict:
    """One full compat run against the session Soketi, shared by the assertions below."""
    folder = tmp_path_factory.mktemp("compat")
    soketi.write_env(folder / ".env")
    result = run_cli(["--env-file", str(folder / ".env"), "compat", "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_every_deviation_of_a_default_soketi_is_found(report_of_soketi: dict) -> None:
    assert {p["name"]: p["status"] for p in report_of_soketi["probes"]} == SOKETI_DEFAULTS
    assert report_of_soketi["verdict"] == "pass"  # nothing was required
    assert report_of_soketi["counts"] == {"same": 1, "deviates": 7, "unknown": 1}
    evidence = {p["name"]: p["evidence"] for p in report_of_soketi["probes"]}
    assert evidence["activity-timeout"] == "activity_timeout 30 s"
    assert evidence["auth-timestamp"] == "a request signed 2 hours ago was accepted (HTTP 200)"
    assert evidence["error-status"] == (
        "a wrongly signed request got HTTP 200 with the error in the body: "
        "{'error': 'The secret authentication failed', 'code': 401}"
    )
    assert evidence["presence-members"].startswith("100 users joined; the next was refused: ")
    impact = {p["name"]: p["impact"] for p in report_of_soketi["probes"]}
    assert impact["payload-size"].startswith("events between 10 KB and 100 KB that work here")


def test_required_points_decide_the_exit_code(env_file: Path) -> None:
    ok = run_cli(["compat", "--probes", "presence-members", "--require", "presence-members"])
    assert ok.exit_code == 0, ok.stderr
    assert ok.stdout.endswith("0 deviate, 1 as on Pusher, 0 undecided\n")

    failed = run_cli(["compat", "--require", "activity-timeout,webhooks", "--probes", "webhooks"])
    assert failed.exit_code == 1
    # required points run even when --probes leaves them out
    assert "activity-timeout (required)" in failed.stdout
    assert failed.stderr == (
        "error: required points not as on Pusher: activity-timeout (deviates), webhooks (unknown)\n"
        "hint: the report says, point by point, what an app relying on it sees after the switch\n"
    )


def test_unknown_probe_names_are_usage_errors(env_file: Path) -> None:
    result = run_cli(["compat", "--require", "payload"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: unknown probe 'payload' in --require\n")
    bad = run_cli(["compat", "--webhook-listen", "6080"])
    assert (bad.exit_code, bad.stdout) == (2, "")
    assert bad.stderr.startswith("error: --webhook-listen '6080' is not HOST:PORT\n")


def test_verdicts_follow_the_server_not_its_version(soketi_factory, tmp_path: Path) -> None:
    # Soketi's own settings move it to Pusher's limits (or past them): the probes must see that.
    tuned = soketi_factory(start=False)
    tuned.soketi_env = {
        "SOKETI_EVENT_MAX_SIZE_IN_KB": "10",
        "SOKETI_CHANNEL_LIMITS_MAX_NAME_LENGTH": "164",
        "SOKETI_PRESENCE_MAX_MEMBERS": "150",
    }
    tuned.start()
    tuned.write_env(tmp_path / ".env")
    result = run_cli(
        [
            "compat",
            "--json",
            "--probes",
            "payload-size,long-channel-names,presence-members",
            "--require",
            "payload-size,long-channel-names",
        ]
    )
    assert result.exit_code == 0, result.stderr
    assert statuses(result.stdout) == {
        "payload-size": "same",
        "long-channel-names": "same",
        "presence-members": "deviates",
    }
    members = next(
        p for p in json.loads(result.stdout)["probes"] if p["name"] == "presence-members"
    )
    assert members["evidence"] == "101 distinct users joined one presence channel"


def test_against_the_pusher_provider_over_tls(pusher_standin, tmp_path: Path) -> None:
    write_env(tmp_path / ".env", pusher_standin.env())
    result = run_cli(["compat", "--json", "--require", "presence-members"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    port = pusher_standin.server.port
    assert (report["provider"], report["target"]) == (
        "pusher",
        {
            "ws": f"wss://127.0.0.1:{port}/app/{pusher_standin.server.key}",
            "api": f"https://127.0.0.1:{port}",
        },
    )
    # The stand-in is a Soketi: over TLS, as the Pusher provider, the same deviations show.
    assert statuses(result.stdout) == SOKETI_DEFAULTS


def test_webhooks_probed_where_the_deployment_posts_them(soketi_factory, tmp_path: Path) -> None:
    port = free_port()
    hooked = soketi_factory(start=False)
    hooked.soketi_env = {
        "SOKETI_DEFAULT_APP_WEBHOOKS": json.dumps(
            [
                {
                    "url": f"http://127.0.0.1:{port}/pusher/webhooks",
                    "event_types": ["client_event", "channel_occupied", "channel_vacated"],
                }
            ]
        )
    }
    hooked.start()
    hooked.write_env(tmp_path / ".env")
    result = run_cli(
        [
            "compat",
            "--json",
            "--probes",
            "webhooks",
            "--webhook-listen",
            f"127.0.0.1:{port}",
            "--webhook-wait",
            "3",
        ]
    )
    assert result.exit_code == 0, result.stderr
    (probe,) = json.loads(result.stdout)["probes"]
    assert (probe["name"], probe["status"]) == ("webhooks", "deviates")
    assert probe["evidence"].startswith(
        "client_event data arrived as a JSON dict; channel_vacated was sent at once for a channel "
        "re-joined after 0.3 s ("
    )
    assert probe["evidence"].endswith(
        "; a delivery answered with 500 was not sent again within 3 s"
    )
    assert probe["details"]["client_event_data_type"] == "dict"


def test_webhooks_that_never_come_are_undecided(env_file: Path) -> None:
    port = free_port()
    result = run_cli(
        [
            "compat",
            "--json",
            "--probes",
            "webhooks",
            "--webhook-listen",
            f"127.0.0.1:{port}",
            "--webhook-wait",
            "1",
            "--require",
            "webhooks",
        ]
    )
    assert result.exit_code == 1
    (probe,) = json.loads(result.stdout)["probes"]
    assert probe["status"] == "unknown"
    assert probe["evidence"].startswith(f"no webhook reached 127.0.0.1:{port} within 1 s: ")


def test_the_webhook_receiver_verifies_and_refuses_without_a_traceback(
    soketi: SoketiServer, capfd
) -> None:
    """compat receives with the verifying receiver of `rtctl webhooks listen`: a delivery signed
    for another app key, or signed bodies that are not webhooks, are refused (401, 400), count
    as no event, are named in the evidence, and leave nothing on the user's terminal."""
    import http.client
    from concurrent.futures import ThreadPoolExecutor

    from rtctl.ops.compat import run_compat
    from rtctl.protocol.webhooks import build_body, signed_headers
    from rtctl.runtime.native import port_is_free
    from tests.waiting import wait_until

    port = free_port()
    settings = soketi.settings()

    def post(body: bytes, key: str = settings.key) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("POST", "/hooks", body, signed_headers(key, settings.secret, body))
            return connection.getresponse().status
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(
            run_compat,
            settings,
            ["webhooks"],
            webhook_listen=f"127.0.0.1:{port}",
            webhook_wait=3,
        )
        wait_until(lambda: not port_is_free("127.0.0.1", port), 10, "compat never listened")
        assert post(build_body([{"name": "channel_occupied", "channel": "x"}]), "other") == 401
        for body in (b'{"time_ms": 1, "events": ["not an object"]}', b"[1, 2]"):
            assert post(body) == 400
        report = running.result(timeout=30)
    (probe,) = report.probes
    assert probe.status == "unknown"
    assert probe.evidence.startswith(
        f"no webhook reached 127.0.0.1:{port} within 3 s (3 refused, the first: 401 unknown_key: "
        "POST /hooks from 127.0.0.1: X-Pusher-Key 'other' is not this app's key): is the "
    )
    assert capfd.readouterr().err == ""


def test_a_webhook_address_it_cannot_listen_on(env_file: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_cli(["compat", "--probes", "webhooks", "--webhook-listen", f"127.0.0.1:{port}"])
    assert busy.exit_code == 9
    assert busy.stderr == (
        f"error: cannot listen for webhooks on 127.0.0.1:{port}: the port is already in use\n"
        "hint: stop what listens there (`rtctl webhooks listen`?), or pick a free port the "
        "deployment's webhook URL points to\n"
    )
    elsewhere = run_cli(["compat", "--probes", "webhooks", "--webhook-listen", "192.0.2.1:6080"])
    assert elsewhere.exit_code == 2
    assert elsewhere.stderr == (
        "error: --webhook-listen '192.0.2.1:6080': 192.0.2.1 is not an address of this machine\n"
        "hint: e.g. --webhook-listen 0.0.0.0:6080 (where the deployment posts webhooks)\n"
    )
