"""`rtctl up / down / status / logs` against a real native Soketi started by the CLI itself.

Every test that can start a server stops it by PID in the `project` fixture's teardown.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket

from rtctl.cli.cmd_runtime import status_table
from rtctl.runtime import native
from tests.helpers import REPO, TEST_CACHE, free_port, make_server, run_cli, run_rtctl, write_env
from tests.waiting import wait_until


@pytest.fixture
def project(tmp_path: Path, native_soketi: Path) -> Iterator[dict[str, str]]:
    """A .env with fresh credentials and free ports in the test folder; teardown stops by PID."""
    env = make_server(tmp_path / ".rtctl").env
    write_env(tmp_path / ".env", env)
    try:
        yield env
    finally:
        native.stop(tmp_path / ".rtctl")


def endpoint_lines(env: dict[str, str], log: Path) -> str:
    port, metrics = env["REALTIME_PORT"], env["SOKETI_METRICS_SERVER_PORT"]
    return (
        f"websocket   ws://127.0.0.1:{port}/app/{env['PUSHER_APP_KEY']}\n"
        f"http_api    http://127.0.0.1:{port}/apps/{env['PUSHER_APP_ID']}\n"
        f"health_url  http://127.0.0.1:{port}/\n"
        f"ready_url   http://127.0.0.1:{port}/ready\n"
        f"metrics_url http://127.0.0.1:{metrics}/metrics\n"
        f"log         {log}\n"
    )


def pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and native.start_ticks(pid) is not None


def test_up_status_down_full_cycle(project: dict[str, str], tmp_path: Path) -> None:
    state = tmp_path / ".rtctl"
    port, metrics_port = int(project["REALTIME_PORT"]), int(project["SOKETI_METRICS_SERVER_PORT"])

    up = run_cli(["up"])
    running = native.read_running(state)
    assert running is not None
    assert (up.exit_code, up.stderr) == (0, f"Soketi is ready (native, pid {running.pid})\n")
    assert up.stdout == endpoint_lines(project, state / "soketi.log")

    # A real WebSocket client connects and talks; status reports it from /metrics.
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{port}/app/{project['PUSHER_APP_KEY']}?protocol=7", timeout=5
    )
    try:
        assert json.loads(ws.recv())["event"] == "pusher:connection_established"
        ws.send(json.dumps({"event": "pusher:ping", "data": {}}))
        assert json.loads(ws.recv())["event"] == "pusher:pong"
        report = run_cli(["status", "--json"])
        assert report.exit_code == 0
        data = json.loads(report.stdout)
        assert data["running"] is True
        assert data["healthy"] is True
        assert data["managed"] is True
        assert (data["runtime"], data["pid"]) == ("native", running.pid)
        assert data["health"]["/"] == 200
        assert data["health"]["/ready"] == 200
        assert data["health"]["/accept-traffic"] == 200
        assert data["metrics"]["connections"] == 1
        assert data["metrics"]["messages_in"] == 1  # our ping
        assert data["metrics"]["messages_out"] == 2  # connection_established + pong
        assert data["endpoints"]["metrics_url"] == f"http://127.0.0.1:{metrics_port}/metrics"
    finally:
        ws.close()

    human = run_cli(["status"])
    assert human.exit_code == 0
    first = human.stdout.splitlines()[0].rstrip()
    assert first == f"soketi       running, healthy (native, pid {running.pid})"
    assert "health       / 200  /ready 200  /accept-traffic 200" in human.stdout

    again = run_cli(["up"])
    assert again.exit_code == 0
    assert again.stderr == f"already running (native, pid {running.pid}): nothing started\n"
    assert native.read_running(state) == running

    down = run_cli(["down"])
    assert (down.exit_code, down.stderr) == (0, f"stopped Soketi (native, pid {running.pid})\n")
    assert not pid_alive(running.pid)
    assert native.port_is_free("127.0.0.1", port)
    assert native.port_is_free("127.0.0.1", metrics_port)
    assert not native.pid_file(state).exists()

    twice = run_cli(["down"])
    assert (twice.exit_code, twice.stderr) == (
        0,
        "nothing to stop: no Soketi started by rtctl runs here\n",
    )

    gone = run_cli(["status"])
    assert gone.exit_code == 4
    assert gone.stdout.splitlines()[0].rstrip() == "soketi       not running"
    assert gone.stderr == (
        f"error: no Soketi answers at http://127.0.0.1:{port}\nhint: start one with `rtctl up`\n"
    )


def test_up_json_prints_the_endpoints(project: dict[str, str], tmp_path: Path) -> None:
    result = run_cli(["up", "--json"])
    assert result.exit_code == 0
    running = native.read_running(tmp_path / ".rtctl")
    assert running is not None
    port = project["REALTIME_PORT"]
    assert json.loads(result.stdout) == {
        "runtime": "native",
        "started": True,
        "already_running": False,
        "pid": running.pid,
        "endpoints": {
            "websocket": f"ws://127.0.0.1:{port}/app/{project['PUSHER_APP_KEY']}",
            "http_api": f"http://127.0.0.1:{port}/apps/{project['PUSHER_APP_ID']}",
            "health_url": f"http://127.0.0.1:{port}/",
            "ready_url": f"http://127.0.0.1:{port}/ready",
            "metrics_url": f"http://127.0.0.1:{project['SOKETI_METRICS_SERVER_PORT']}/metrics",
        },
        "log_file": str(tmp_path / ".rtctl" / "soketi.log"),
        "project_dir": None,
    }
    down = run_cli(["down", "--json"])
    assert (down.exit_code, json.loads(down.stdout)) == (
        0,
        {"stopped": True, "runtime": "native", "pid": running.pid},
    )
    assert json.loads(run_cli(["down", "--json"]).stdout) == {
        "stopped": False,
        "runtime": None,
        "pid": None,
    }


def test_up_no_wait_returns_before_readiness(project: dict[str, str], tmp_path: Path) -> None:
    result = run_cli(["up", "--no-wait"])
    running = native.read_running(tmp_path / ".rtctl")
    assert running is not None
    assert result.stderr == (
        f"Soketi is starting (native, pid {running.pid}); not waiting for it (--no-wait)\n"
    )
    # it does come up: the next `up` waits for nothing and finds it
    wait_until(
        lambda: run_cli(["status"]).exit_code == 0, 20, "it never became healthy", interval=0.2
    )


def test_busy_port_is_refused_not_shared(project: dict[str, str], tmp_path: Path) -> None:
    port = int(project["REALTIME_PORT"])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = run_cli(["up"])
    assert result.exit_code == 9
    assert result.stderr == (
        f"error: port {port} on 127.0.0.1 is already in use (REALTIME_PORT)\n"
        "hint: stop what listens there, or set REALTIME_PORT to a free port in .env\n"
    )
    assert not native.pid_file(tmp_path / ".rtctl").exists()


def test_busy_metrics_port_is_refused(project: dict[str, str]) -> None:
    port = int(project["SOKETI_METRICS_SERVER_PORT"])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = run_cli(["up", "--json"])
    assert result.exit_code == 9
    assert json.loads(result.stdout)["error"]["message"] == (
        f"port {port} on 127.0.0.1 is already in use (SOKETI_METRICS_SERVER_PORT)"
    )


def fake_node(tmp_path: Path, version: str) -> Path:
    script = tmp_path / "fake-node"
    script.write_text(f"#!/bin/sh\necho {version}\n")
    script.chmod(0o755)
    return script


def test_node_missing_is_an_environment_problem(
    project: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTCTL_NODE", "/nonexistent/node")
    result = run_cli(["up", "--runtime", "native"])
    assert result.exit_code == 8
    assert result.stderr == (
        "error: Node.js (/nonexistent/node) was not found on PATH\n"
        "hint: install Node 16, 18 or 20 (e.g. apt-get install nodejs) or set RTCTL_NODE, "
        "or use Docker with `rtctl up --runtime docker`\n"
    )


@pytest.mark.skipif(
    shutil.which("docker") is not None
    and subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0,
    reason="a Docker engine answers here, so auto picks Docker",
)
def test_auto_without_docker_or_node_names_both_ways(
    project: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTCTL_NODE", "/nonexistent/node")
    result = run_cli(["up"])
    assert result.exit_code == 8
    assert result.stderr == (
        "error: cannot run Soketi here: no Docker engine answers, and Node.js (/nonexistent/node) "
        "was not found on PATH\n"
        "hint: either install Node 20 (e.g. `apt-get install nodejs npm`) for the native runtime, "
        "or start a Docker engine; then run `rtctl up` again\n"
    )


def test_unsupported_node_version(
    project: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTCTL_NODE", str(fake_node(tmp_path, "v22.0.0")))
    result = run_cli(["up", "--runtime", "native"])
    assert result.exit_code == 8
    assert result.stderr == (
        "error: Node v22.0.0 is not supported by the native Soketi (needs 16, 18 or 20)\n"
        "hint: install Node 20 and point RTCTL_NODE at it, or use `rtctl up --runtime docker`\n"
    )
    assert not native.pid_file(tmp_path / ".rtctl").exists()


def test_unreadable_node_version(
    project: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTCTL_NODE", str(fake_node(tmp_path, "garbage")))
    result = run_cli(["up", "--runtime", "native"])
    assert result.exit_code == 8
    assert result.stderr.splitlines()[0] == (
        "error: Node garbage is not supported by the native Soketi (needs 16, 18 or 20)"
    )


def shim_dir(tmp_path: Path, npm_script: str) -> Path:
    bin_dir = tmp_path / "shims"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text("#!/bin/sh\n" + npm_script)
    npm.chmod(0o755)
    return bin_dir


def test_npm_failing(
    project: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "fresh-cache"
    monkeypatch.setenv("RTCTL_CACHE_DIR", str(cache))
    shims = shim_dir(
        tmp_path,
        "mkdir -p node_modules/partial\n"
        "echo 'npm error code E503' >&2\n"
        "echo 'npm error 503 Service Unavailable - GET https://registry.npmjs.org/@soketi%2fsoketi' >&2\n"
        "exit 1\n",
    )
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    result = run_cli(["up", "--runtime", "native"])
    assert result.exit_code == 8
    assert result.stderr == (
        "installing Soketi 1.6.1 from the npm registry into "
        f"{cache / 'soketi-1.6.1'}\n"
        "error: npm ci failed (exit 1): npm error code E503 | npm error 503 Service Unavailable - "
        "GET https://registry.npmjs.org/@soketi%2fsoketi\n"
        "hint: check that the npm registry is reachable (npm ping) and retry `rtctl up`\n"
    )
    # nothing half-installed, nothing running
    assert not (cache / "soketi-1.6.1" / "node_modules").exists()
    assert not (cache / "soketi-1.6.1" / ".rtctl-installed").exists()
    assert not native.pid_file(tmp_path / ".rtctl").exists()


def test_native_addon_not_loading(
    project: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An install whose uWS fork has no binary for this Node ABI (what Node 22 gets): the fork
    falls back to its JavaScript shim, and the real addon check must refuse it."""
    real = TEST_CACHE / "soketi-1.6.1" / "node_modules" / "uWebSockets.js"
    stripped = tmp_path / "uws-without-binaries"
    shutil.copytree(
        real, stripped, ignore=shutil.ignore_patterns("binaries", "*.node", "docs", "README.md")
    )
    cache = tmp_path / "fresh-cache"
    monkeypatch.setenv("RTCTL_CACHE_DIR", str(cache))
    shims = shim_dir(
        tmp_path, f"mkdir -p node_modules && cp -r {stripped} node_modules/uWebSockets.js\n"
    )
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    result = run_cli(["up", "--runtime", "native"])
    assert result.exit_code == 8
    assert result.stderr.splitlines()[1:] == [
        "error: the native uWebSockets.js addon did not load (no .node binary for this Node ABI)",
        "hint: use Node 16, 18 or 20 (RTCTL_NODE=/path/to/node) or `rtctl up --runtime docker`",
    ]
    assert not (cache / "soketi-1.6.1" / "node_modules").exists()
    assert not (cache / "soketi-1.6.1" / ".rtctl-installed").exists()


def test_soketi_dying_during_start_shows_its_log(project: dict[str, str], tmp_path: Path) -> None:
    """A certificate path that does not exist: Soketi starts, fails to build its TLS app, exits."""
    env = dict(project)
    env.update(
        REALTIME_SCHEME="https",
        SOKETI_SSL_CERT=str(tmp_path / "missing-cert.pem"),
        SOKETI_SSL_KEY=str(tmp_path / "missing-key.pem"),
    )
    write_env(tmp_path / ".env", env)
    result = run_cli(["up"])
    assert result.exit_code == 10
    lines = result.stderr.splitlines()
    assert lines[0] == "error: Soketi exited with code 0 during start; last log lines:"
    assert "err: Error: App construction failed" in result.stderr
    assert lines[-1] == (
        f"hint: read the whole log with `rtctl logs` ({tmp_path / '.rtctl' / 'soketi.log'})"
    )
    # nothing left half-running
    assert not native.pid_file(tmp_path / ".rtctl").exists()
    assert native.port_is_free("127.0.0.1", int(project["REALTIME_PORT"]))


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("kind", ["dead", "reused"])
def test_stale_pid_file_is_cleaned_and_up_proceeds(
    kind: str, project: dict[str, str], tmp_path: Path
) -> None:
    state = tmp_path / ".rtctl"
    state.mkdir()
    # "reused": a live PID (this test process) whose start time is not the recorded one
    pid = dead_pid() if kind == "dead" else os.getpid()
    record = {
        "pid": pid,
        "start_ticks": 1,
        "host": "127.0.0.1",
        "port": int(project["REALTIME_PORT"]),
        "metrics_port": int(project["SOKETI_METRICS_SERVER_PORT"]),
        "scheme": "http",
        "started_at": 0.0,
        "log_file": str(state / "soketi.log"),
    }
    native.pid_file(state).write_text(json.dumps(record))
    assert run_cli(["down"]).stderr == "nothing to stop: no Soketi started by rtctl runs here\n"
    assert not native.pid_file(state).exists()
    native.pid_file(state).write_text(json.dumps(record))
    result = run_cli(["up"])
    running = native.read_running(state)
    assert running is not None and running.pid != pid
    assert result.exit_code == 0
    assert result.stderr == (
        f"removed a stale PID file ({native.pid_file(state)}): the process it named no longer "
        f"runs\nSoketi is ready (native, pid {running.pid})\n"
    )
    assert pid_alive(os.getpid())  # the reused PID's owner was left alone


def test_up_with_pusher_provider_is_a_config_error(tmp_path: Path) -> None:
    write_env(
        tmp_path / ".env",
        {
            "REALTIME_PROVIDER": "pusher",
            "PUSHER_APP_ID": "123456",
            "PUSHER_APP_KEY": "abckey",
            "PUSHER_APP_SECRET": "abcsecret",
            "PUSHER_APP_CLUSTER": "eu",
        },
    )
    result = run_cli(["up"])
    assert result.exit_code == 3
    assert result.stderr == (
        "error: the provider is pusher: there is no local server to run\n"
        "hint: run `rtctl switch soketi` (or set REALTIME_PROVIDER=soketi) to use a local Soketi\n"
    )


def test_status_unhealthy_exits_1(project: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A real Soketi over its memory threshold: /accept-traffic answers code 500 (in an HTTP-200
    body); status must call that unhealthy."""
    monkeypatch.setenv("SOKETI_HTTP_ACCEPT_TRAFFIC_MEMORY_THRESHOLD", "1")
    assert run_cli(["up"]).exit_code == 0
    result = run_cli(["status", "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert (data["running"], data["healthy"]) == (True, False)
    assert data["health"]["/accept-traffic"] == 500
    human = run_cli(["status"])
    assert human.exit_code == 1
    assert human.stderr == (
        f"error: Soketi at http://127.0.0.1:{project['REALTIME_PORT']} is running but not "
        "healthy\nhint: see `rtctl logs` and `rtctl doctor`\n"
    )


def test_status_watch_is_bounded_by_count(project: dict[str, str]) -> None:
    assert run_cli(["up"]).exit_code == 0
    result = run_cli(["status", "--watch", "--count", "2", "--interval", "0.2"])
    assert result.exit_code == 0
    assert result.stdout == ""  # the live view is on stderr
    assert result.stderr.count("running, healthy") == 2
    streamed = run_cli(["status", "--watch", "--json", "--count", "2", "--interval", "0.2"])
    assert streamed.exit_code == 0
    reports = [json.loads(line) for line in streamed.stdout.splitlines()]
    assert [(r["running"], r["healthy"]) for r in reports] == [(True, True), (True, True)]


def test_status_table_rendering() -> None:
    from rich.console import Console

    data = {
        "running": True,
        "healthy": False,
        "managed": False,
        "runtime": None,
        "pid": None,
        "uptime_seconds": 3725,
        "endpoints": {"websocket": "ws://h:1/app/k", "metrics_url": None},
        "health": {"/": 200, "/ready": 503, "/accept-traffic": 0, "memory_percent": None},
        "metrics": {
            "connections": 3,
            "messages_in": 7,
            "messages_out": 9,
            "http_calls": 2,
        },
        "metrics_error": None,
    }
    console = Console(width=100, record=True, file=io.StringIO())
    console.print(status_table(data))
    text = [line.rstrip() for line in console.export_text().splitlines()]
    assert text == [
        "soketi     running, UNHEALTHY (not started by rtctl here)",
        "uptime     1h 2m 5s",
        "websocket  ws://h:1/app/k",
        "health     / 200  /ready 503  /accept-traffic -",
        "metrics    3 connections  7 messages in  9 messages out  2 API calls",
    ]


def test_logs_tail_and_follow(project: dict[str, str], tmp_path: Path) -> None:
    assert run_cli(["up"]).exit_code == 0
    log = tmp_path / ".rtctl" / "soketi.log"
    expected = log.read_text().splitlines()[-3:]
    result = run_cli(["logs", "-n", "3"])
    assert (result.exit_code, result.stdout.splitlines()) == (0, expected)

    # follow in a real subprocess; it ends by itself once `down` stops the server
    follower = subprocess.Popen(
        [sys.executable, "-m", "rtctl", "logs", "-f", "-n", "1", "--timeout", "60"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().rstrip("\n") == expected[-1]  # the tail, then it follows
        with log.open("a") as appended:  # Soketi appends too (O_APPEND): nothing is overwritten
            appended.write("rtctl-test: the follower is following\n")
        assert follower.stdout.readline() == "rtctl-test: the follower is following\n"
        assert run_cli(["down"]).exit_code == 0
        out, err = follower.communicate(timeout=20)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, err
    # what the server wrote while it shut down arrived through the follower
    assert any("The server is closing" in line for line in out.splitlines())


def test_logs_follow_timeout_bounds_it(project: dict[str, str]) -> None:
    """The server keeps running, so only --timeout can end this follow (it returns, exit 0)."""
    assert run_cli(["up"]).exit_code == 0
    result = run_cli(["logs", "-f", "-n", "0", "--timeout", "0.5"])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert run_cli(["status"]).exit_code == 0  # still running: the timeout ended it


def test_logs_with_nothing_started(tmp_path: Path, project: dict[str, str]) -> None:
    result = run_cli(["logs"])
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == (
        f"no Soketi log here yet ({tmp_path / '.rtctl' / 'soketi.log'}): start one with `rtctl up`\n"
    )


def test_second_up_on_another_port_is_a_conflict(project: dict[str, str]) -> None:
    assert run_cli(["up"]).exit_code == 0
    other = str(free_port())
    result = run_cli(["--port", other, "up"])
    assert result.exit_code == 9
    assert result.stderr.startswith(
        f"error: a Soketi started by rtctl already runs here on 127.0.0.1:{project['REALTIME_PORT']}"
    )


def test_init_up_status_doctor_down_through_the_real_entry_point(
    tmp_path: Path, native_soketi: Path
) -> None:
    """The "done when": `rtctl init && rtctl up` gives a Soketi a WebSocket client can use,
    status and doctor call it healthy, down stops it and frees the ports."""
    port, metrics_port = free_port(), free_port()
    state = tmp_path / ".rtctl"
    try:
        init = run_rtctl(
            ["init", "--port", str(port), "--metrics-port", str(metrics_port)], cwd=tmp_path
        )
        assert init.returncode == 0, init.stderr
        up = run_rtctl(["up"], cwd=tmp_path)
        assert up.returncode == 0, up.stderr
        running = native.read_running(state)
        assert running is not None and running.port == port
        key = next(
            line.split("=", 1)[1]
            for line in (tmp_path / ".env").read_text().splitlines()
            if line.startswith("PUSHER_APP_KEY=")
        )
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/app/{key}?protocol=7", timeout=5)
        try:
            assert json.loads(ws.recv())["event"] == "pusher:connection_established"
        finally:
            ws.close()
        status = run_rtctl(["status"], cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        doctor = run_rtctl(["doctor"], cwd=tmp_path)
        assert doctor.returncode == 0, doctor.stdout
        assert "0 failed" in doctor.stderr
        down = run_rtctl(["down"], cwd=tmp_path)
        assert (down.returncode, down.stderr) == (
            0,
            f"stopped Soketi (native, pid {running.pid})\n",
        )
        assert native.port_is_free("127.0.0.1", port)
        assert native.port_is_free("127.0.0.1", metrics_port)
    finally:
        native.stop(state)


def test_status_watch_on_a_terminal_uses_a_live_view(
    project: dict[str, str], tmp_path: Path
) -> None:
    import pty
    import threading

    assert run_cli(["up"]).exit_code == 0
    primary, secondary = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:  # read while the child writes, so a full pty buffer never blocks it
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rtctl",
                "status",
                "--watch",
                "--count",
                "3",
                "--interval",
                "0.2",
            ],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=secondary,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        stdout, _ = process.communicate(timeout=60)
    finally:
        os.close(secondary)
        reader.join(timeout=10)
        os.close(primary)
    assert process.returncode == 0
    assert stdout == b""
    text = b"".join(chunks).decode("utf-8", "replace")
    assert "running, healthy" in text
    # cursor up + erase line: the view is redrawn in place (3 reports), not appended
    assert text.count("\x1b[1A\x1b[2K") >= 2 * 8


def test_probe_summary_shows_json_without_an_error_field_as_it_came() -> None:
    # /accept-traffic answers healthy with JSON memory figures (no "error" key): summarising it
    # (doctor does when /ready fails, the console always) must not raise.
    from rtctl.runtime.health import Probe

    body = '{"memory":{"free":1,"percentUsage":2.5}}'
    assert Probe("http://127.0.0.1:1/accept-traffic", 200, body).summary() == f"200 {body[:60]}"
    assert Probe("u", 500, '{"error":"Memory limit reached","code":500}').summary() == (
        "500 Memory limit reached"
    )
