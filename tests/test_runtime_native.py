"""The native runtime's pieces, exercised on real processes and a real Soketi."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import websocket

from rtctl.errors import EnvironmentProblem, TimedOut
from rtctl.runtime import health, native
from tests.helpers import SoketiServer, free_port, make_server
from tests.waiting import wait_until


def test_find_node_accepts_this_machines_node() -> None:
    _, version = native.find_node()
    assert int(version.lstrip("v").split(".")[0]) in native.SUPPORTED_NODE_MAJORS


def test_addon_check_refuses_the_javascript_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """UWS_USE_FALLBACK makes the real installed fork load its JS shim (what Node 22 gets). The
    shim still loads a .node file (bufferutil's prebuild, through ws), so the check must look for
    the fork's own uws_*.node, not for any .node."""
    node, _ = native.find_node()
    native.check_addon(node, native.install_dir())  # the real addon loads
    monkeypatch.setenv("UWS_USE_FALLBACK", "1")
    loaded = subprocess.run(
        [
            node,
            "-e",
            'require("uWebSockets.js");'
            'console.log(Object.keys(require.cache).filter(k=>k.endsWith(".node")).length)',
        ],
        cwd=native.install_dir(),
        capture_output=True,
        text=True,
    )
    assert int(loaded.stdout.splitlines()[-1]) >= 1  # a naive "any .node" check would pass
    with pytest.raises(EnvironmentProblem) as caught:
        native.check_addon(node, native.install_dir())
    assert caught.value.message == (
        "the native uWebSockets.js addon did not load (no .node binary for this Node ABI)"
    )
    assert native.is_installed()  # check_addon alone never touches the install


def test_environment_pins_discovery_and_takes_credentials_only_from_pusher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server(tmp_path)
    monkeypatch.setenv("SOKETI_DEFAULT_APP_KEY", "sneaky")
    monkeypatch.setenv("SOKETI_DEBUG", "1")
    env = native.soketi_environment(server.settings())
    assert env["SOKETI_CLUSTER_UNICAST_ADDRESSES"] == "127.0.0.1"
    assert env["SOKETI_CLUSTER_HOST"] == "127.0.0.1"
    assert env["SOKETI_METRICS_HOST"] == "127.0.0.1"
    assert env["SOKETI_HOST"] == "127.0.0.1"
    assert env["SOKETI_DEFAULT_APP_KEY"] == server.key
    assert env["SOKETI_DEFAULT_APP_SECRET"] == server.secret
    assert env["SOKETI_DEBUG"] == "1"  # tuning passes through
    assert not any(key.startswith("PUSHER_") for key in env)


def test_port_is_free_sees_a_listener() -> None:
    port = free_port()
    assert native.port_is_free("127.0.0.1", port)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        assert not native.port_is_free("127.0.0.1", port)


def test_malformed_pid_file_is_removed(tmp_path: Path) -> None:
    native.pid_file(tmp_path).write_text("{not json")
    assert native.read_running(tmp_path) is None
    assert not native.pid_file(tmp_path).exists()


def test_log_tail_strips_colour_codes(tmp_path: Path) -> None:
    native.log_file(tmp_path).write_text(
        "one\n\n  \x1b[33m⚡ The server is closing\x1b[39m  \n\x1b[1mtwo\x1b[0m\n"
    )
    assert native.log_tail(tmp_path, 2) == "  ⚡ The server is closing\ntwo"


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    """A process that ignores SIGTERM is killed after the grace period (by PID, ours only)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        ticks = native.start_ticks(process.pid)
        assert ticks is not None
        native.pid_file(tmp_path).write_text(
            json.dumps(
                {
                    "pid": process.pid,
                    "start_ticks": ticks,
                    "host": "127.0.0.1",
                    "port": 1,
                    "metrics_port": 2,
                    "scheme": "http",
                    "started_at": time.time(),
                    "log_file": "-",
                }
            )
        )
        stopped = native.stop(tmp_path, grace=0.5)
        assert stopped is not None and stopped.pid == process.pid
        # SIGTERM was ignored, so only the SIGKILL after the grace period can have ended it
        assert native.start_ticks(process.pid) is None
        assert not native.pid_file(tmp_path).exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_readiness_timeout_stops_what_it_started(tmp_path: Path, native_soketi: Path) -> None:
    server = make_server(tmp_path / "state")
    with pytest.raises(TimedOut) as caught:
        native.start(server.settings(), server.state, timeout=0.05)
    assert caught.value.message == (
        f"Soketi did not answer http://127.0.0.1:{server.port}/ within 0.05s"
    )
    assert native.read_running(server.state) is None
    assert not native.pid_file(server.state).exists()
    wait_until(lambda: native.port_is_free("127.0.0.1", server.port), 5, "the port was never freed")


def test_missing_npm_after_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node, _ = native.find_node()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "node").symlink_to(node)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("RTCTL_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(EnvironmentProblem) as caught:
        native.ensure_installed()
    assert caught.value.message == "npm was not found on PATH"


def test_parse_prometheus_text() -> None:
    text = (
        "# HELP soketi_connected The number of currently connected sockets.\n"
        "# TYPE soketi_connected gauge\n"
        'soketi_connected{app_id="1",port="6001"} 2\n'
        'soketi_connected{app_id="2",port="6001"} 3\n'
        'soketi_ws_messages_received_total{app_id="1",note="a } b"} 7 1700000000000\n'
        "soketi_process_start_time_seconds 1795627042\n"
        "soketi_nodejs_eventloop_lag_seconds NaN\n"
        "garbage line\n"
    )
    samples = health.parse_prometheus(text)
    assert samples == {
        "soketi_connected": 5.0,
        "soketi_ws_messages_received_total": 7.0,
        "soketi_process_start_time_seconds": 1795627042.0,
    }
    figures = health.figures(samples)
    assert (figures.connections, figures.messages_in, figures.messages_out) == (5, 7, 0)
    assert figures.start_time == 1795627042.0


def test_metrics_figures_from_a_live_server(soketi_factory: Callable[..., SoketiServer]) -> None:
    """The exact soketi_* names read from a fresh real server after known traffic."""
    server = soketi_factory()
    settings = server.settings()
    before = health.scrape(settings)
    assert before is not None and before.figures is not None
    assert (before.figures.connections, before.figures.messages_in) == (0, 0)
    ws = websocket.create_connection(settings.ws_url, timeout=5)
    try:
        ws.recv()
        ws.send(json.dumps({"event": "pusher:ping", "data": {}}))
        ws.recv()
        after = health.scrape(settings)
    finally:
        ws.close()
    assert after is not None and after.figures is not None
    fig = after.figures
    assert (fig.connections, fig.new_connections, fig.messages_in, fig.messages_out) == (1, 1, 1, 2)
    assert fig.bytes_in > 0 and fig.bytes_out > 0
    assert fig.start_time is not None and abs(fig.start_time - time.time()) < 600
    probes = health.check(settings)
    assert probes.healthy
    assert (probes.root.body, probes.ready.body) == ("OK", "OK")
    assert probes.memory_percent is not None and 0 < probes.memory_percent < 100


def test_health_of_nothing(tmp_path: Path) -> None:
    settings = make_server(tmp_path).settings()
    probes = health.check(settings, timeout=1)
    assert (probes.answering, probes.healthy) == (False, False)
    assert probes.root.error == "connection refused"
    assert probes.metrics is not None and probes.metrics.error == "no answer (connection refused)"


def test_soketi_runs_in_its_own_session_so_a_terminal_hangup_spares_it(
    soketi: SoketiServer,
) -> None:
    running = native.read_running(soketi.state)
    assert running is not None and running.pid == os.getpgid(running.pid)  # its own session


def test_soketi_gets_the_hard_open_files_limit_not_a_soft_1024(tmp_path: Path) -> None:
    """Each connection is a file descriptor: a parent with a soft limit of 1024 (common) must
    not cap Soketi near 1,000 connections. Node raises its own soft limit to the hard one at
    start, so rtctl needs no code for it; this test keeps that true for the pinned runtime."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    server = make_server(tmp_path / "state")
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    try:
        server.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        assert server.running is not None
        limits = Path(f"/proc/{server.running.pid}/limits").read_text()
        row = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        expected = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
        assert row.split()[3] == expected
    finally:
        server.stop()
