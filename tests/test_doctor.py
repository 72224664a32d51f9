"""`rtctl doctor` against reality: each misconfiguration is made for real (a .env that disagrees
with a running Soketi, a port held by another process, a server that is down) and caught."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from pathlib import Path

import pytest

from rtctl.config import read_layers
from rtctl.ops.doctor import (
    CONFIG_CHECKS,
    RUNTIME_CHECKS,
    SERVER_CHECKS,
    WEBHOOK_CHECKS,
    CheckResult,
    clock_skew_result,
    config_checks,
    run_doctor,
    server_checks,
)
from rtctl.runtime import health, native
from tests.helpers import SoketiServer, free_port, make_server, run_cli, write_env
from tests.waiting import wait_until

ALL_CHECKS = [*CONFIG_CHECKS, *RUNTIME_CHECKS, *SERVER_CHECKS, *WEBHOOK_CHECKS]
# Without webhooks configured there is no URL to reach (tests/test_webhooks_config.py has both).
HEALTHY = {**dict.fromkeys(ALL_CHECKS, "✓"), "webhooks-reachable": "-"}


@pytest.fixture
def ours(soketi: SoketiServer, monkeypatch: pytest.MonkeyPatch) -> SoketiServer:
    """Point the state folder at the session Soketi's, so its ports count as "ours"."""
    monkeypatch.setenv("RTCTL_STATE_DIR", str(soketi.state))
    return soketi


def lines_by_check(stdout: str) -> dict[str, str]:
    """{check name: its line} from the human report."""
    found = {}
    for line in stdout.splitlines():
        if line[:1] in "✓✗!-" and line[1:2] == " ":
            found[line[2:].split()[0]] = line
    return found


def statuses(stdout: str) -> dict[str, str]:
    return {name: line[0] for name, line in lines_by_check(stdout).items()}


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {result.name: result for result in results}


def test_healthy_setup_passes_every_check(ours: SoketiServer, tmp_path: Path) -> None:
    ours.write_env(tmp_path / ".env")
    result = run_cli(["doctor"])
    assert result.exit_code == 0, result.stdout
    assert statuses(result.stdout) == HEALTHY
    assert result.stderr == f"{len(ALL_CHECKS) - 1} passed, 0 failed, 0 warnings, 1 skipped\n"
    lines = lines_by_check(result.stdout)
    pid = native.read_running(ours.state).pid  # type: ignore[union-attr]
    assert lines["ports"].endswith(
        f"{ours.port} ours (native pid {pid}), {ours.metrics_port} ours (native pid {pid})"
    )
    assert lines["api-signature"].startswith(
        f"✓ api-signature          GET /apps/{ours.app_id}/channels accepted our signature ("
    )
    assert lines["websocket-key"].endswith(
        f"ws://127.0.0.1:{ours.port}/app/{ours.key} -> pusher:connection_established"
    )


def test_json_report(ours: SoketiServer, tmp_path: Path) -> None:
    ours.write_env(tmp_path / ".env")
    result = run_cli(["doctor", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert data["summary"] == {"pass": len(ALL_CHECKS) - 1, "fail": 0, "warn": 0, "skip": 1}
    assert [check["name"] for check in data["checks"]] == ALL_CHECKS
    assert set(data["checks"][0]) == {"name", "status", "evidence", "fix"}


def test_wrong_secret_is_refused_by_the_running_server(ours: SoketiServer, tmp_path: Path) -> None:
    ours.write_env(tmp_path / ".env", PUSHER_APP_SECRET="secWRONGsecret1")
    result = run_cli(["doctor"])
    assert result.exit_code == 1
    line = lines_by_check(result.stdout)["api-signature"]
    assert line == (
        "✗ api-signature          the server refused our credentials (401): "
        "The secret authentication failed"
    )
    assert result.stderr.splitlines()[-2:] == [
        "error: 1 check failed: api-signature",
        "hint: apply the fixes shown under ✗ (or !), then run `rtctl doctor` again",
    ]


def test_wrong_app_id(ours: SoketiServer, tmp_path: Path) -> None:
    ours.write_env(tmp_path / ".env", PUSHER_APP_ID="424242")
    result = run_cli(["doctor", "--json"])
    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["api-signature"] == {
        "name": "api-signature",
        "status": "fail",
        "evidence": "the server does not know this app (404): The app 424242 could not be found.",
        "fix": "PUSHER_APP_ID must match the server's app id (`rtctl doctor`)",
    }


def test_wrong_key_is_caught_by_the_websocket_check(ours: SoketiServer, tmp_path: Path) -> None:
    """Soketi's HTTP API never looks at the key; a client does."""
    ours.write_env(tmp_path / ".env", PUSHER_APP_KEY="keyWRONG1")
    result = run_cli(["doctor"])
    assert result.exit_code == 1
    found = statuses(result.stdout)
    assert found["api-signature"] == "✓"
    assert lines_by_check(result.stdout)["websocket-key"] == (
        f"✗ websocket-key          ws://127.0.0.1:{ours.port}/app/keyWRONG1 -> pusher:error: "
        "4001 App key keyWRONG1 does not exist."
    )


def test_wrong_app_manager_driver_in_config(ours: SoketiServer, tmp_path: Path) -> None:
    ours.write_env(tmp_path / ".env", SOKETI_APP_MANAGER_DRIVER="local")
    result = run_cli(["doctor"])
    assert result.exit_code == 1
    assert lines_by_check(result.stdout)["app-manager-driver"] == (
        "✗ app-manager-driver     SOKETI_APP_MANAGER_DRIVER='local' is not an app manager driver "
        "(Soketi starts, then dies at the first connection)"
    )
    assert "fix: set SOKETI_APP_MANAGER_DRIVER=array ('local'/'redis' are adapter names)" in (
        result.stdout
    )
    # with a broken configuration the network checks are not run against a guess
    assert all(statuses(result.stdout)[name] == "-" for name in SERVER_CHECKS)


def test_a_real_server_with_a_wrong_driver_dies_at_first_use(
    tmp_path: Path, native_soketi: Path
) -> None:
    """What the driver check prevents, shown for real: rtctl's loader refuses 'local', so the
    settings are replaced after loading; the server boots, answers the signed call with an
    empty 200, and exits. The doctor's server checks say so."""
    server = make_server(tmp_path / "state")
    settings = dataclasses.replace(server.settings(), app_manager_driver="local")
    _, started = native.start(settings, server.state, timeout=30)
    try:
        assert started
        assert health.fetch(f"{settings.api_base}/", settings).body == "OK"  # boots fine
        results = by_name(server_checks(settings, timeout=3, folder=server.state))
        assert results["api-signature"] == CheckResult(
            "api-signature",
            "fail",
            f"GET /apps/{server.app_id}/channels answered 200 with an empty body instead of a "
            "channel list",
            "the server's app manager failed: check SOKETI_APP_MANAGER_DRIVER=array and "
            "`rtctl logs`",
        )
        wait_until(  # it died at first use
            lambda: native.read_running(server.state) is None, 10, "the server kept running"
        )
    finally:
        native.stop(server.state)


def test_all_digit_secret(ours: SoketiServer, tmp_path: Path) -> None:
    ours.write_env(tmp_path / ".env", PUSHER_APP_SECRET="1234567890")
    result = run_cli(["doctor"])
    assert result.exit_code == 1
    assert lines_by_check(result.stdout)["key-secret"] == (
        "✗ key-secret             PUSHER_APP_SECRET is all digits"
    )
    assert (
        "fix: add letters: Soketi JSON-parses env values and crashes on a numeric secret"
        in result.stdout
    )


def test_soketi_credentials_drifting_from_pusher(ours: SoketiServer, tmp_path: Path) -> None:
    ours.write_env(tmp_path / ".env", SOKETI_DEFAULT_APP_KEY="someotherkey")
    result = run_cli(["doctor", "--json"])
    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["soketi-matches-pusher"]["status"] == "fail"
    assert checks["soketi-matches-pusher"]["evidence"] == (
        "SOKETI_DEFAULT_APP_KEY differs from PUSHER_APP_KEY: Soketi and clients would use "
        "different credentials"
    )


def test_non_numeric_app_id_and_missing_credentials(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", {"PUSHER_APP_ID": "app-one", "PUSHER_APP_KEY": "abckey"})
    found = by_name(config_checks(read_layers(tmp_path / ".env", environ={})))
    assert (found["app-id"].status, found["app-id"].evidence) == (
        "fail",
        "PUSHER_APP_ID='app-one' is not numeric",
    )
    assert (found["credentials"].status, found["credentials"].evidence) == (
        "fail",
        "PUSHER_APP_SECRET is not set",
    )


def test_pusher_provider_with_realtime_host(tmp_path: Path) -> None:
    write_env(
        tmp_path / ".env",
        {
            "REALTIME_PROVIDER": "pusher",
            "REALTIME_HOST": "127.0.0.1",
            "PUSHER_APP_ID": "123456",
            "PUSHER_APP_KEY": "abckey",
            "PUSHER_APP_SECRET": "abcsecret",
            "PUSHER_APP_CLUSTER": "eu",
        },
    )
    result = run_cli(["doctor"])
    assert result.exit_code == 1
    assert lines_by_check(result.stdout)["provider"] == (
        "✗ provider               provider is pusher but REALTIME_HOST is set (Pusher hosts come "
        "from the cluster)"
    )


def test_scheme_mismatch_against_the_real_server(ours: SoketiServer, tmp_path: Path) -> None:
    ours.write_env(tmp_path / ".env", REALTIME_SCHEME="https")
    result = run_cli(["doctor", "--timeout", "1"])
    assert result.exit_code == 1
    line = lines_by_check(result.stdout)["reachable"]
    assert line.startswith(f"✗ reachable              https://127.0.0.1:{ours.port}/: ")
    assert line.endswith(
        "but the server answers with http: REALTIME_SCHEME=https does not match the server"
    )
    assert "fix: set REALTIME_SCHEME=http in .env" in result.stdout


def test_scheme_port_mismatch_in_config_is_a_warning(tmp_path: Path) -> None:
    env = make_server(tmp_path).env
    write_env(tmp_path / ".env", {**env, "REALTIME_PORT": "443", "REALTIME_SCHEME": "http"})
    found = by_name(config_checks(read_layers(tmp_path / ".env", environ={})))
    assert found["scheme-tls-port"] == CheckResult(
        "scheme-tls-port",
        "warn",
        "REALTIME_PORT=443 with REALTIME_SCHEME=http",
        "443 is the TLS port: set REALTIME_SCHEME=https or another port",
    )


def test_tls_files_missing(tmp_path: Path) -> None:
    env = make_server(tmp_path).env
    write_env(
        tmp_path / ".env",
        {
            **env,
            "REALTIME_SCHEME": "https",
            "SOKETI_SSL_CERT": "/nonexistent/cert.pem",
            "SOKETI_SSL_KEY": "/nonexistent/key.pem",
        },
    )
    found = by_name(config_checks(read_layers(tmp_path / ".env", environ={})))
    assert found["scheme-tls-port"].status == "fail"
    assert found["scheme-tls-port"].evidence == (
        "SOKETI_SSL_CERT=/nonexistent/cert.pem is not a file (Soketi exits at start without it); "
        "SOKETI_SSL_KEY=/nonexistent/key.pem is not a file (Soketi exits at start without it)"
    )


def test_busy_port_not_ours(tmp_path: Path) -> None:
    env = make_server(tmp_path / "state").env
    write_env(tmp_path / ".env", env)
    port = int(env["REALTIME_PORT"])
    with socket.socket() as holder:  # a listener that is not Soketi and never answers
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = run_cli(["doctor", "--timeout", "1"])
    assert result.exit_code == 1
    lines = lines_by_check(result.stdout)
    assert lines["ports"] == (
        f"✗ ports                  port {port} (REALTIME_PORT) is in use by a process rtctl did "
        "not start, and it is not a Soketi that accepts our credentials"
    )
    assert lines["reachable"].startswith("✗ reachable")


def test_port_of_a_server_rtctl_did_not_start_here_is_a_warning(
    soketi: SoketiServer, tmp_path: Path
) -> None:
    """The session Soketi was started from another state folder: not ours, but it accepts us."""
    soketi.write_env(tmp_path / ".env")
    result = run_cli(["doctor"])
    assert result.exit_code == 0
    assert statuses(result.stdout)["ports"] == "!"
    assert "that server accepts our credentials, but `rtctl down` cannot stop it" in result.stdout
    strict = run_cli(["doctor", "--strict"])
    assert strict.exit_code == 1
    assert strict.stderr.splitlines()[-2] == "error: 1 check failed: ports"


def test_server_down(tmp_path: Path) -> None:
    env = make_server(tmp_path / "state").env
    write_env(tmp_path / ".env", env)
    result = run_cli(["doctor"])
    assert result.exit_code == 1
    found = statuses(result.stdout)
    assert found["ports"] == "✓"
    assert lines_by_check(result.stdout)["reachable"] == (
        f"✗ reachable              nothing answers at http://127.0.0.1:{env['REALTIME_PORT']}/ "
        "(connection refused)"
    )
    assert [found[name] for name in SERVER_CHECKS[2:]] == ["-"] * len(SERVER_CHECKS[2:])
    assert "fix: start it with `rtctl up` (or fix REALTIME_HOST/REALTIME_PORT)" in result.stdout


def test_metrics_port_mismatch(ours: SoketiServer, tmp_path: Path) -> None:
    other = free_port()
    ours.write_env(tmp_path / ".env", SOKETI_METRICS_SERVER_PORT=str(other))
    found = by_name(run_doctor(read_layers(tmp_path / ".env", environ={}), timeout=2))
    assert found["metrics"].status == "fail"
    assert found["metrics"].evidence == (
        f"http://127.0.0.1:{other}/metrics: no answer (connection refused)"
    )


def test_missing_env_file(tmp_path: Path) -> None:
    result = run_cli(["doctor"])
    assert result.exit_code == 1
    lines = lines_by_check(result.stdout)
    assert lines["env-file"] == "✗ env-file               .env does not exist"
    assert lines["credentials"].startswith("✗ credentials")
    explicit = run_cli(["--env-file", "nowhere.env", "doctor", "--json"])
    assert explicit.exit_code == 1
    first = json.loads(explicit.stdout)["checks"][0]
    assert first == {
        "name": "env-file",
        "status": "fail",
        "evidence": "nowhere.env does not exist",
        "fix": "create it with `rtctl init`, or pass --env-file with an existing file",
    }


def test_clock_skew_from_the_real_date_header(soketi: SoketiServer) -> None:
    settings = soketi.settings()
    date = health.fetch(f"{settings.api_base}/", settings).date
    assert date is not None
    now = time.time()
    assert clock_skew_result(date, now).status == "pass"
    late = clock_skew_result(date, now + 700)
    assert late.status == "fail"
    assert late.evidence.startswith("server clock 70")  # 700 s ± the header's 1 s resolution
    assert late.evidence.endswith(
        f"behind ours (Date: {date}): signed requests are refused beyond ±600 s"
    )
    early = clock_skew_result(date, now - 650)
    assert (early.status, "ahead of ours" in early.evidence) == ("fail", True)
    assert clock_skew_result(None).status == "skip"


def test_api_for_smoke_names_and_order(ours: SoketiServer, tmp_path: Path) -> None:
    """The reusable API: run_doctor returns every check, in the documented order."""
    ours.write_env(tmp_path / ".env")
    results = run_doctor(read_layers(tmp_path / ".env", environ={}))
    assert [r.name for r in results] == ALL_CHECKS
    assert {r.name: r.status for r in results if r.status != "pass"} == {
        "webhooks-reachable": "skip"
    }


def test_pusher_provider_against_a_local_endpoint(
    ours: SoketiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Provider pusher: no ports or health routes, the signed call still runs (here against the
    local Soketi through RTCTL_PUSHER_ENDPOINT, over plain http is impossible: https only)."""
    write_env(
        tmp_path / ".env",
        {
            "REALTIME_PROVIDER": "pusher",
            "PUSHER_APP_ID": ours.app_id,
            "PUSHER_APP_KEY": ours.key,
            "PUSHER_APP_SECRET": ours.secret,
            "PUSHER_APP_CLUSTER": "eu",
            "RTCTL_PUSHER_ENDPOINT": f"127.0.0.1:{free_port()}",
        },
    )
    found = by_name(run_doctor(read_layers(tmp_path / ".env", environ={}), timeout=1))
    assert found["provider"].status == "pass"
    assert found["runtime"].status == "skip"
    assert [found[n].status for n in ("ports", "reachable", "ready")] == ["skip"] * 3
    assert found["api-signature"].status == "fail"  # nothing listens on that endpoint
    assert found["api-signature"].evidence.startswith(
        f"GET /apps/{ours.app_id}/channels: cannot reach the HTTP API at https://127.0.0.1:"
    )
    assert found["metrics"].status == "skip"


def test_config_errors_skip_the_network_checks_with_a_reason(tmp_path: Path) -> None:
    env = make_server(tmp_path / "state").env
    write_env(tmp_path / ".env", {**env, "PUSHER_APP_SECRET": "12345678"})
    found = by_name(run_doctor(read_layers(tmp_path / ".env", environ={})))
    for name in (*RUNTIME_CHECKS, *SERVER_CHECKS, *WEBHOOK_CHECKS):
        assert found[name] == CheckResult(
            name, "skip", "not run until the configuration errors above are fixed"
        )
