"""`rtctl smoke` against real native Soketis: a healthy one passes, each broken one fails in the
check that can see the breakage, with the documented exit code."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import jwt
import pytest

from rtctl.config import read_layers
from rtctl.ops.smoke import CHECK_NAMES, CheckResult, SmokeOptions, run_smoke
from rtctl.protocol.httpapi import ApiClient
from rtctl.protocol.signing import sign
from tests.helpers import JS_DIR, REPO, SoketiServer, free_port, run_cli, run_rtctl, write_env
from tests.waiting import wait_until

GATEWAY_SKIP = "not requested (--via-gateway URL --token TOKEN)"


def smoke_json(env: Path, *args: str) -> tuple[int, dict]:
    result = run_cli(["--env-file", str(env), "smoke", "--json", "--timeout", "5", *args])
    return result.exit_code, json.loads(result.stdout)


def by_name(report: dict) -> dict[str, dict]:
    return {check["name"]: check for check in report["checks"]}


def statuses(report: dict) -> dict[str, str]:
    return {check["name"]: check["status"] for check in report["checks"]}


def assert_left_nothing_behind(server: SoketiServer, run_id: str) -> None:
    with ApiClient(server.settings(), timeout=5) as api:
        for channel in (f"smoke-{run_id}", f"private-smoke-{run_id}", f"presence-smoke-{run_id}"):
            assert api.channel(channel).get("occupied") is False, channel


# --- healthy ------------------------------------------------------------------------------------


def test_healthy_soketi_passes_every_check(soketi: SoketiServer, env_file: Path) -> None:
    code, report = smoke_json(env_file)
    assert code == 0
    assert [check["name"] for check in report["checks"]] == list(CHECK_NAMES)
    assert statuses(report) == {
        "config": "pass",
        "health": "pass",
        "connect": "pass",
        "subscribe": "pass",
        "deliver": "pass",
        "client-event": "pass",
        "cache": "pass",
        "api-read": "pass",
        "gateway": "skip",
        "webhooks": "skip",  # no REALTIME_WEBHOOK_URL (tests/test_webhooks_smoke.py)
        "cleanup": "pass",
    }
    assert (report["verdict"], report["exit_code"], report["failed_check"]) == ("pass", 0, None)
    checks = by_name(report)
    run_id = report["run_id"]
    channels = [f"smoke-{run_id}", f"private-smoke-{run_id}", f"presence-smoke-{run_id}"]
    assert checks["gateway"]["evidence"] == GATEWAY_SKIP
    assert checks["health"]["evidence"] == "GET /ready -> 200 OK"
    assert checks["connect"]["details"]["activity_timeout"] == 30  # Soketi's hard-coded value
    assert checks["connect"]["details"]["socket_id"] in checks["connect"]["evidence"]
    assert checks["subscribe"]["details"][channels[2]]["members"] == [f"rtctl-smoke-{run_id}"]
    assert sorted(checks["deliver"]["details"]["latency_ms"]) == sorted(channels)
    assert checks["deliver"]["evidence"].startswith("rtctl-smoke arrived byte-identical (")
    assert checks["client-event"]["evidence"].startswith(
        f"client-rtctl-smoke arrived byte-identical on private-smoke-{run_id} in "
    )
    assert checks["cache"]["evidence"].startswith(f"cache-smoke-{run_id}: pusher:cache_miss in ")
    assert (
        " a late subscriber got the cached rtctl-smoke byte-identical "
        in (checks["cache"]["evidence"])
    )
    assert checks["api-read"]["details"]["users"] == [f"rtctl-smoke-{run_id}"]
    assert checks["cleanup"]["evidence"].startswith(
        "4 socket(s) closed; API shows none of 4 channels occupied after "
    )
    assert report["target"]["api"] == f"http://127.0.0.1:{soketi.port}"
    assert_left_nothing_behind(soketi, run_id)


def test_table_for_people_on_stdout(soketi: SoketiServer, env_file: Path) -> None:
    result = run_cli(["--env-file", str(env_file), "smoke"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith("rtctl smoke ")
    for name in CHECK_NAMES:
        assert any(line.startswith(f"│ {name} ") for line in lines), name
    assert any("│ gateway " in line and "│ skip " in line for line in lines)
    assert lines[-1].startswith(
        f"PASS: 9 passed, 0 failed, 2 skipped against http://127.0.0.1:{soketi.port} in "
    )


def test_each_run_uses_fresh_channel_names(env_file: Path) -> None:
    _, first = smoke_json(env_file, "--checks", "subscribe")
    _, second = smoke_json(env_file, "--checks", "subscribe")
    assert first["run_id"] != second["run_id"]
    assert f"private-smoke-{first['run_id']}" in by_name(first)["subscribe"]["evidence"]


# --- broken deployments -------------------------------------------------------------------------


def test_wrong_secret_fails_in_subscribe_with_exit_5(soketi: SoketiServer, tmp_path: Path) -> None:
    env = soketi.write_env(tmp_path / ".env", PUSHER_APP_SECRET="sec" + "0" * 20 + "wrong")
    code, report = smoke_json(env)
    assert (code, report["verdict"], report["failed_check"]) == (5, "fail", "subscribe")
    run_id = report["run_id"]
    checks = by_name(report)
    assert checks["connect"]["status"] == "pass"  # the key is right: the socket opens
    assert checks["subscribe"]["evidence"] == (
        f"subscription to 'private-smoke-{run_id}' refused: The connection is unauthorized. "
        "(status 401)"
    )
    assert checks["subscribe"]["failure"] == "auth_rejected"
    assert "PUSHER_APP_SECRET" in checks["subscribe"]["hint"]
    socket_id = checks["connect"]["details"]["socket_id"]
    assert checks["subscribe"]["hint"].endswith(
        f"; see why: rtctl verify auth --socket-id {socket_id} --channel private-smoke-{run_id} "
        f"--auth {soketi.key}:"
        + sign("sec" + "0" * 20 + "wrong", f"{socket_id}:private-smoke-{run_id}")
    )
    for name in ("deliver", "client-event", "api-read"):
        assert (checks[name]["status"], checks[name]["evidence"]) == (
            "skip",
            "depends on subscribe (fail)",
        )
    # cleanup still closes the socket, but cannot verify through an API that refuses our secret
    assert checks["cleanup"]["status"] == "fail"
    assert checks["cleanup"]["evidence"].startswith("the server refused our credentials (401)")


def test_client_messages_disabled_is_a_skip_with_the_servers_reason(soketi_factory) -> None:
    server = soketi_factory(SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES="false")
    env = server.write_env(Path(".env"))
    code, report = smoke_json(env)
    assert code == 0, json.dumps([(c["name"], c["evidence"]) for c in report["checks"]], indent=1)
    check = by_name(report)["client-event"]
    assert (check["status"], check["evidence"]) == (
        "skip",
        "client events are disabled on this app: The app does not have client messaging enabled.",
    )
    assert statuses(report)["deliver"] == "pass"
    assert statuses(report)["cleanup"] == "pass"


def test_wrong_app_key_fails_connect_with_exit_5(soketi: SoketiServer, tmp_path: Path) -> None:
    env = soketi.write_env(tmp_path / ".env", PUSHER_APP_KEY="keywrong123")
    code, report = smoke_json(env)
    assert (code, report["failed_check"]) == (5, "connect")
    checks = by_name(report)
    assert checks["health"]["status"] == "pass"
    assert checks["connect"]["evidence"] == (
        "app key 'keywrong123' is unknown to the server (App key keywrong123 does not exist.)"
    )
    assert checks["subscribe"]["evidence"] == "depends on connect (fail)"
    assert checks["cleanup"]["evidence"] == "depends on connect (fail)"


def test_nothing_listening_exits_4(tmp_path: Path) -> None:
    port = free_port()
    env = write_env(
        tmp_path / ".env",
        {
            "REALTIME_HOST": "127.0.0.1",
            "REALTIME_PORT": str(port),
            "PUSHER_APP_ID": "123456",
            "PUSHER_APP_KEY": "keyabc",
            "PUSHER_APP_SECRET": "secabc",
        },
    )
    code, report = smoke_json(env)
    assert (code, report["failed_check"]) == (4, "health")
    checks = by_name(report)
    assert checks["health"]["evidence"] == f"nothing answers GET http://127.0.0.1:{port}/ready"
    assert checks["health"]["failure"] == "unreachable"
    assert checks["connect"]["status"] == "fail"
    assert checks["connect"]["evidence"].startswith(f"cannot connect to ws://127.0.0.1:{port}/app/")
    assert [c["status"] for c in report["checks"][3:]] == ["skip"] * 8
    assert by_name(report)["gateway"]["evidence"] == GATEWAY_SKIP  # not "depends on connect"
    assert by_name(report)["cleanup"]["evidence"] == "depends on connect (fail)"


def test_invalid_config_exits_3_without_touching_the_network(tmp_path: Path) -> None:
    env = write_env(
        tmp_path / ".env",
        {"PUSHER_APP_ID": "not-digits", "PUSHER_APP_KEY": "keyabc", "PUSHER_APP_SECRET": "secabc"},
    )
    code, report = smoke_json(env)
    assert (code, report["failed_check"]) == (3, "config")
    checks = by_name(report)
    assert checks["config"]["evidence"] == "app-id: PUSHER_APP_ID='not-digits' is not numeric"
    assert (
        checks["config"]["hint"] == "use digits only: the pusher Python SDK refuses other app ids"
    )
    assert {c["evidence"] for c in report["checks"][1:] if c["name"] != "gateway"} == {
        "depends on config (fail)"
    }


class SplitRouter:
    """A real misrouting front end: WebSocket upgrades go to one Soketi, plain HTTP to another,
    like a load balancer over two nodes that share no adapter. Each connection is piped as is."""

    def __init__(
        self, ws_port: int, http_port: int, rewrite: tuple[bytes, bytes] | None = None
    ) -> None:
        import socketserver
        import threading

        router = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                router.pipe(self.request)

        self.ws_port, self.http_port, self.rewrite = ws_port, http_port, rewrite
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def pipe(self, client) -> None:
        import socket
        import threading

        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        websocket = b"upgrade: websocket" in head.lower()
        upstream = socket.create_connection(
            ("127.0.0.1", self.ws_port if websocket else self.http_port)
        )
        upstream.sendall(head)
        # Server frames are unmasked: a same-length replacement keeps them valid WebSocket frames.
        rewrite = self.rewrite if websocket else None

        def copy(source, target, rewrite=None) -> None:
            try:
                while data := source.recv(65536):
                    if rewrite:
                        data = data.replace(*rewrite)
                    target.sendall(data)
            except OSError:
                pass
            finally:
                for end in (source, target):
                    with contextlib.suppress(OSError):
                        end.shutdown(socket.SHUT_RDWR)

        back = threading.Thread(target=copy, args=(upstream, client, rewrite), daemon=True)
        back.start()
        copy(client, upstream)
        back.join(timeout=5)
        upstream.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_no_delivery_when_api_and_sockets_reach_different_nodes(soketi_factory) -> None:
    node_a = soketi_factory()
    node_b = soketi_factory(
        **{k: node_a.env[k] for k in ("PUSHER_APP_ID", "PUSHER_APP_KEY", "PUSHER_APP_SECRET")}
    )
    router = SplitRouter(ws_port=node_a.port, http_port=node_b.port)
    try:
        env = node_a.write_env(Path(".env"), REALTIME_PORT=str(router.port))
        code, report = smoke_json(env, "--timeout", "1")
    finally:
        router.close()
    run_id = report["run_id"]
    assert (code, report["failed_check"]) == (6, "deliver")
    checks = by_name(report)
    assert [checks[name]["status"] for name in ("health", "connect", "subscribe")] == ["pass"] * 3
    assert checks["deliver"]["evidence"] == (
        f"rtctl-smoke did not arrive on smoke-{run_id}, private-smoke-{run_id}, "
        f"presence-smoke-{run_id} within 1 s (arrived on 0 of 3)"
    )
    assert checks["deliver"]["failure"] == "timeout"
    assert checks["api-read"]["evidence"].startswith(
        f"GET /channels?filter_by_prefix=smoke-{run_id} does not list it"
    )


def test_a_payload_rewritten_on_the_way_fails_delivery(soketi: SoketiServer) -> None:
    """A middlebox that alters event data (same length, frames stay valid) is caught."""
    router = SplitRouter(soketi.port, soketi.port, rewrite=(b"quoted", b"QUOTED"))
    try:
        env = soketi.write_env(Path(".env"), REALTIME_PORT=str(router.port))
        code, report = smoke_json(env, "--checks", "deliver")
    finally:
        router.close()
    assert (code, report["failed_check"]) == (1, "deliver")
    evidence = by_name(report)["deliver"]["evidence"]
    assert evidence.startswith(f"smoke-{report['run_id']}: rtctl-smoke arrived altered: sent ")
    sent, received = evidence.split(", received ")
    assert "quoted" in sent and "QUOTED" not in sent
    assert "QUOTED" in received and "quoted" not in received


def test_missing_env_file_is_the_config_checks_failure() -> None:
    result = run_cli(["--env-file", "nope.env", "smoke"])
    assert result.exit_code == 3
    assert result.stderr == (
        "error: smoke check config failed: nope.env does not exist\n"
        "hint: create it with `rtctl init`, or pass --env-file with an existing file\n"
    )
    assert result.stdout.splitlines()[-1].startswith("FAIL: 0 passed, 1 failed, 10 skipped in ")


def _stop_after(server: SoketiServer, check_name: str):
    def on_result(result: CheckResult) -> None:
        if result.name == check_name and result.status == "pass":
            server.stop()  # SIGTERM by PID, waits for the process to exit

    return on_result


def test_server_killed_after_connect_fails_subscribe(soketi_factory) -> None:
    server = soketi_factory()
    report = run_smoke(
        lambda: read_layers(environ=server.env),
        SmokeOptions(timeout=5),
        on_result=_stop_after(server, "connect"),
    )
    checks = {check.name: check for check in report.checks}
    assert (report.exit_code, report.first_failure and report.first_failure.name) == (
        4,
        "subscribe",
    )
    subscribe = checks["subscribe"]
    assert subscribe.failure == "disconnected"
    # Which side notices first is a race: our send (broken pipe) or the server's 4200 close.
    assert subscribe.evidence.startswith(
        ("the server closed the connection (4200", "the connection dropped: ")
    ), subscribe.evidence
    assert subscribe.hint is not None and subscribe.hint.startswith(
        "the server closed or dropped the connection mid-run"
    )
    assert checks["deliver"].evidence == "depends on subscribe (fail)"
    assert checks["cleanup"].status == "fail"  # the API is gone too: nothing can be verified


def test_server_killed_after_subscribe_fails_delivery(soketi_factory) -> None:
    server = soketi_factory()
    report = run_smoke(
        lambda: read_layers(environ=server.env),
        SmokeOptions(timeout=5),
        on_result=_stop_after(server, "subscribe"),
    )
    failed = report.first_failure
    assert failed is not None
    assert (report.exit_code, failed.name, failed.failure) == (4, "deliver", "unreachable")
    assert failed.evidence.startswith(
        f"cannot reach the HTTP API at http://127.0.0.1:{server.port}"
    )
    checks = {check.name: check for check in report.checks}
    # the next checks run, and fail on their own evidence rather than passing on stale state
    assert checks["client-event"].status == "fail"
    assert checks["api-read"].status == "fail"


def test_cleanup_fails_when_a_test_channel_stays_occupied(soketi: SoketiServer) -> None:
    """The cleanup verdict comes from the HTTP API, not from our own bookkeeping."""
    from rtctl.protocol import PusherSocket

    intruder = PusherSocket(soketi.settings())
    run: dict[str, str] = {}

    def on_result(result: CheckResult) -> None:
        if result.name == "subscribe":
            run["channel"] = result.evidence.split()[1]  # "subscribed smoke-<run> (...)"
            intruder.connect(5)
            intruder.subscribe(run["channel"], 5)

    try:
        report = run_smoke(
            lambda: read_layers(environ=soketi.env),
            SmokeOptions(timeout=1, checks=("subscribe",)),
            on_result=on_result,
        )
    finally:
        intruder.close()
    failed = report.first_failure
    assert failed is not None
    assert (failed.name, report.exit_code) == ("cleanup", 1)
    assert failed.evidence == f"still occupied 1 s after closing: {run['channel']}"


# --- reports ------------------------------------------------------------------------------------


def test_junit_report_parses_with_one_testcase_per_check(
    soketi: SoketiServer, tmp_path: Path
) -> None:
    env = soketi.write_env(tmp_path / ".env", PUSHER_APP_SECRET="secwrongwrongwrong")
    junit = tmp_path / "reports" / "smoke.xml"
    junit.parent.mkdir()
    code, report = smoke_json(env, "--junit", str(junit))
    assert code == 5
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert [case.get("name") for case in cases] == [c["name"] for c in report["checks"]]
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("11", "3", "5")
    checks = by_name(report)
    for case in cases:
        check = checks[case.get("name")]
        failure, skipped = case.find("failure"), case.find("skipped")
        if check["status"] == "fail":
            assert failure is not None and failure.text == check["evidence"]
            assert failure.get("type") == check["failure"]
            assert case.findtext("system-out") == f"hint: {check['hint']}"
        elif check["status"] == "skip":
            assert failure is None and skipped is not None
            assert skipped.get("message") == check["evidence"]
        else:
            assert failure is None and skipped is None
    assert [p.get("name") for p in suite.iter("property")][:4] == [
        "run_id",
        "provider",
        "verdict",
        "exit_code",
    ]
    assert list(tmp_path.joinpath("reports").iterdir()) == [junit]  # no temp file left


def test_junit_into_a_missing_folder_is_a_usage_error(env_file: Path) -> None:
    result = run_cli(["--env-file", str(env_file), "smoke", "--junit", "nope/smoke.xml"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --junit nope/smoke.xml: folder nope does not exist\nhint: create it: mkdir -p nope\n"
    )


def test_checks_subset_runs_prerequisites_and_cleanup(env_file: Path) -> None:
    code, report = smoke_json(env_file, "--checks", "connect")
    assert code == 0
    assert statuses(report) == {"config": "pass", "connect": "pass", "cleanup": "pass"}
    assert by_name(report)["cleanup"]["evidence"] == (
        "1 socket(s) closed; no channels were subscribed"
    )
    code, report = smoke_json(env_file, "--checks", "config,health")
    assert (code, list(statuses(report))) == (0, ["config", "health"])


def test_unknown_check_is_a_usage_error(env_file: Path) -> None:
    result = run_cli(["--env-file", str(env_file), "smoke", "--checks", "connect,bogus"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: unknown check 'bogus' in --checks\n"
        "hint: choose from: config, health, connect, subscribe, deliver, client-event, cache, "
        "api-read, gateway, webhooks, cleanup, cluster-bus, cross-node, cross-node-client-event, "
        "cross-node-presence, cross-node-api, cross-node-terminate, failover\n"
    )


def test_gateway_check_needs_a_gateway(env_file: Path) -> None:
    result = run_cli(["--env-file", str(env_file), "smoke", "--checks", "gateway"])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: --checks gateway needs --via-gateway URL and --token JWT\n"
    )


def test_failure_summary_goes_to_stderr(soketi: SoketiServer, tmp_path: Path) -> None:
    env = soketi.write_env(tmp_path / ".env", PUSHER_APP_KEY="keywrong123")
    result = run_cli(["--env-file", str(env), "smoke", "--timeout", "5"])
    assert result.exit_code == 5
    assert result.stderr == (
        "error: smoke check connect failed: app key 'keywrong123' is unknown to the server "
        "(App key keywrong123 does not exist.)\n"
        "hint: check PUSHER_APP_KEY matches the server's app key\n"
    )
    assert result.stdout.splitlines()[-1].startswith("FAIL: 2 passed, 1 failed, 8 skipped")


# --- Pusher: the same smoke, only the provider differs ------------------------------------------


def test_pusher_provider_runs_unchanged_and_skips_health(pusher_standin) -> None:
    # REQUESTS_CA_BUNDLE stays as the machine sets it: RTCTL_CA_BUNDLE must win (psf/requests#4726).
    server = pusher_standin.server
    env = write_env(Path(".env"), pusher_standin.env())
    code, report = smoke_json(env)
    assert code == 0, json.dumps([(c["name"], c["evidence"]) for c in report["checks"]], indent=1)
    assert report["provider"] == "pusher"
    assert report["target"]["ws"] == f"wss://127.0.0.1:{server.port}/app/{server.key}"
    health = by_name(report)["health"]
    assert (health["status"], health["evidence"]) == (
        "skip",
        "provider pusher has no health endpoint (Soketi only)",
    )
    assert [c["name"] for c in report["checks"] if c["status"] == "pass"] == [
        "config",
        "connect",
        "subscribe",
        "deliver",
        "client-event",
        "cache",
        "api-read",
        "cleanup",
    ]


# --- through the gateway -----------------------------------------------------------------------

JWT_SECRET = secrets.token_hex(32)
EMIT_TOKEN = "emit-" + secrets.token_hex(16)


def user_token(user: str = "123", secret: str = JWT_SECRET) -> str:
    now = int(time.time())
    return jwt.encode({"sub": user, "iat": now, "exp": now + 300}, secret, algorithm="HS256")


@contextlib.contextmanager
def running_gateway(soketi: SoketiServer, folder: Path, **changes: str):
    """A real `rtctl gateway` process in front of ``soketi``, stopped by PID."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUSHER_", "REALTIME_"))}
    env.update(soketi.env, REALTIME_JWT_SECRET=JWT_SECRET, REALTIME_EMIT_TOKEN=EMIT_TOKEN)
    env.update(changes)
    log = (folder / "gateway.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "rtctl", "gateway", "--host", "127.0.0.1", "--port", str(port)],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            assert process.poll() is None, (folder / "gateway.log").read_text()
            try:
                return httpx.get(f"{url}/realtime/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, 30, "the gateway never answered", interval=0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


@pytest.fixture(scope="module")
def gateway(soketi: SoketiServer, tmp_path_factory: pytest.TempPathFactory):
    with running_gateway(soketi, tmp_path_factory.mktemp("gateway")) as url:
        yield url


def test_gateway_subscribe_and_emit(soketi: SoketiServer, env_file: Path, gateway: str) -> None:
    code, report = smoke_json(
        env_file, "--via-gateway", gateway, "--token", user_token(), "--emit-token", EMIT_TOKEN
    )
    assert code == 0, json.dumps([(c["name"], c["evidence"]) for c in report["checks"]], indent=1)
    check = by_name(report)["gateway"]
    channel = f"private-123_smoke{report['run_id']}"
    assert check["status"] == "pass"
    assert check["details"]["channel"] == channel
    assert check["evidence"].startswith(f"{channel} authorized by {gateway}/realtime/auth in "), (
        check["evidence"]
    )
    assert f"event from {gateway}/realtime/emit arrived byte-identical in " in check["evidence"]
    assert by_name(report)["cleanup"]["evidence"].startswith(
        "5 socket(s) closed; API shows none of 5 channels occupied after "
    )
    with ApiClient(soketi.settings(), timeout=5) as api:
        assert api.channel(channel).get("occupied") is False


def test_gateway_refusing_the_users_token_is_exit_5(env_file: Path, gateway: str) -> None:
    forged = user_token(secret=secrets.token_hex(32))
    code, report = smoke_json(
        env_file, "--via-gateway", gateway, "--token", forged, "--emit-token", EMIT_TOKEN
    )
    assert (code, report["failed_check"]) == (5, "gateway")
    check = by_name(report)["gateway"]
    assert check["evidence"].startswith(
        f"step 1 of 4, POST {gateway}/realtime/auth: "
        f"the auth endpoint refused 'private-123_smoke{report['run_id']}' with HTTP 401: "
    ), check["evidence"]
    assert check["hint"].startswith("the gateway refused --token")
    assert statuses(report)["cleanup"] == "pass"


def test_gateway_signing_with_another_secret_points_at_verify_not_the_token(
    soketi: SoketiServer, env_file: Path, tmp_path: Path
) -> None:
    # The gateway accepts the user's token and signs, but with a secret the server does not have:
    # Soketi refuses the subscription. The token is fine; the hint must say what to check instead.
    with running_gateway(soketi, tmp_path, PUSHER_APP_SECRET="sec" + "1" * 20) as url:
        code, report = smoke_json(
            env_file, "--via-gateway", url, "--token", user_token(), "--emit-token", EMIT_TOKEN
        )
    assert (code, report["failed_check"]) == (5, "gateway")
    check = by_name(report)["gateway"]
    channel = f"private-123_smoke{report['run_id']}"
    assert check["evidence"] == (
        "step 2 of 4, subscribing with the gateway's signature: "
        f"subscription to '{channel}' refused: The connection is unauthorized. (status 401)"
    )
    assert check["hint"].startswith(
        "the gateway answered, but the realtime server refused its signature: the gateway signs "
        "with other PUSHER_APP_KEY/SECRET than this config; see why: "
    )
    assert "--token" not in check["hint"]
    assert "see why: rtctl verify auth --socket-id " in check["hint"]
    assert f" --channel {channel} --auth {soketi.key}:" in check["hint"]


def test_gateway_refusing_the_emit_token_is_exit_5(env_file: Path, gateway: str) -> None:
    code, report = smoke_json(
        env_file, "--via-gateway", gateway, "--token", user_token(), "--emit-token", "emit-wrong"
    )
    assert (code, report["failed_check"]) == (5, "gateway")
    check = by_name(report)["gateway"]
    assert check["evidence"].startswith(
        f"step 3 of 4, POST {gateway}/realtime/emit: refused the service token (401): "
    ), check["evidence"]
    assert (
        check["hint"] == "pass the gateway's service token: --emit-token (or REALTIME_EMIT_TOKEN)"
    )


def test_gateway_token_without_gateway_is_a_usage_error(env_file: Path) -> None:
    result = run_cli(["--env-file", str(env_file), "smoke", "--token", user_token()])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --token is only used with --via-gateway URL\nhint: add --via-gateway\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--via-gateway", "http://127.0.0.1:9"],
            "error: --via-gateway needs --token (a user's bearer token the gateway accepts)\n",
        ),
        (
            ["--via-gateway", "127.0.0.1:8080", "--token", "x"],
            "error: --via-gateway '127.0.0.1:8080' is not an http(s) URL\n",
        ),
    ],
)
def test_gateway_usage_errors(env_file: Path, args: list[str], message: str) -> None:
    result = run_cli(["--env-file", str(env_file), "smoke", *args])
    assert result.exit_code == 2
    assert result.stderr.splitlines(keepends=True)[0] == message


# --- the CI recipe ------------------------------------------------------------------------------


def test_ci_script_passes_against_a_healthy_server(soketi: SoketiServer, tmp_path: Path) -> None:
    env = {**os.environ, **soketi.env, "RTCTL_BIN": f"{REPO}/.venv/bin/python -m rtctl"}
    env["SMOKE_REPORT_DIR"] = str(tmp_path / "out")
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "ci-smoke.sh")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "out" / "smoke.json").read_text())
    assert report["verdict"] == "pass"
    assert ET.parse(tmp_path / "out" / "smoke.xml").getroot().tag == "testsuites"


def test_real_entry_point_exit_code(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "REALTIME_PORT": str(port),
        "PUSHER_APP_ID": "123456",
        "PUSHER_APP_KEY": "keyabc",
        "PUSHER_APP_SECRET": "secabc",
    }
    proc = run_rtctl(["smoke", "--json", "--timeout", "2"], env=env, cwd=tmp_path)
    assert proc.returncode == 4
    assert json.loads(proc.stdout)["failed_check"] == "health"


# --- a gateway written by someone else, to the same contract ------------------------------------


@pytest.fixture
def other_gateway(soketi: SoketiServer, tmp_path: Path):
    """tests/js/other_gateway.mjs: plain Node, opaque session tokens, Laravel-style channels,
    an /emit without a token."""
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "APP_ID": soketi.app_id,
        "KEY": soketi.key,
        "SECRET": soketi.secret,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(soketi.port),
        "SESSIONS": json.dumps({"sess-4f1c": "42"}),
    }
    process = subprocess.Popen(
        ["node", str(JS_DIR / "other_gateway.mjs")],
        cwd=JS_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert json.loads(process.stdout.readline()) == {"listening": port}
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_gateway_of_another_stack_with_opaque_tokens_and_laravel_channels(
    env_file: Path, other_gateway: str
) -> None:
    code, report = smoke_json(
        env_file,
        "--via-gateway",
        other_gateway,
        "--token",
        "sess-4f1c",
        "--token-kind",
        "opaque",
        "--gateway-channel",
        "private-App.Models.User.42",
        "--checks",
        "gateway",
    )
    assert code == 0, json.dumps([(c["name"], c["evidence"]) for c in report["checks"]], indent=1)
    check = by_name(report)["gateway"]
    assert check["evidence"].startswith(
        f"private-App.Models.User.42 authorized by {other_gateway}/realtime/auth in "
    )
    assert check["details"]["emit_token"] is False  # this gateway's /emit needs none


def test_another_gateway_refusing_the_channel_names_the_step(
    env_file: Path, other_gateway: str
) -> None:
    code, report = smoke_json(
        env_file,
        "--via-gateway",
        other_gateway,
        "--token",
        "sess-4f1c",
        "--token-kind",
        "opaque",
        "--gateway-channel",
        "private-App.Models.User.43",
        "--checks",
        "gateway",
    )
    assert (code, report["failed_check"]) == (5, "gateway")
    check = by_name(report)["gateway"]
    assert check["evidence"] == (
        f"step 1 of 4, POST {other_gateway}/realtime/auth: the auth endpoint refused "
        "'private-App.Models.User.43' with HTTP 403: "
        '{"message":"user 42 may not join private-App.Models.User.43"}'
    )


def test_opaque_token_needs_the_channel_named(env_file: Path) -> None:
    result = run_cli(
        [
            "--env-file",
            str(env_file),
            "smoke",
            "--via-gateway",
            "http://127.0.0.1:9",
            "--token",
            "sess-4f1c",
            "--token-kind",
            "opaque",
        ]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "error: an opaque --token names no user, so no channel can be derived from it\n"
        "hint: name the channel the token's user may join: --gateway-channel "
        "private-App.Models.User.42\n"
    )
