"""`rtctl up --nodes N` / status / down / logs with real redis-server, nats-server, HAProxy and
Soketi processes on free loopback ports; bad input, missing programs, busy ports and processes
dying at start, each with its exit code and nothing left running."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtctl.envfile import EnvDocument
from rtctl.runtime import cluster, native
from tests.cluster_support import alive, cluster_env
from tests.helpers import REPO, run_cli, self_signed_certificate, write_env

pytestmark = pytest.mark.soketi


@pytest.fixture
def project(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A .env for a 2-node Redis cluster on free ports; teardown stops whatever `up` started."""
    env = cluster_env(2, "redis")
    env.pop("RTCTL_SOKETI_NODES")
    env.pop("SOKETI_ADAPTER_DRIVER")  # `up --nodes --adapter` writes them
    write_env(tmp_path / ".env", env)
    try:
        yield env
    finally:
        cluster.stop(tmp_path / ".rtctl", grace=5.0)


def live_pids(state: Path) -> dict[str, int]:
    recorded = cluster.read_state(state)
    if recorded is None:
        return {}
    pids = {name: r.pid for name, r in recorded.nodes.items() if r is not None}
    pids.update({p.name: p.pid for p in recorded.front_doors if p is not None})
    if recorded.bus is not None:
        pids["bus"] = recorded.bus.pid
    return pids


def test_up_status_down_cycle(project: dict[str, str], tmp_path: Path) -> None:
    state = tmp_path / ".rtctl"
    # two HAProxy processes share the front port (SO_REUSEPORT)
    write_env(tmp_path / ".env", {**project, "RTCTL_FRONT_DOOR_PROCESSES": "2"})
    port = int(project["REALTIME_PORT"])
    # Two `up` at once: one starts the cluster, the other waits for it and finds it running.
    command = [sys.executable, "-m", "rtctl", "up", "--nodes", "2", "--adapter", "redis", "--json"]
    both = [
        subprocess.Popen(
            command,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ},
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in both]
    assert [process.returncode for process in both] == [0, 0], outputs
    reports = [json.loads(out) for out, _ in outputs]
    assert sorted(r["started"] for r in reports) == [False, True]
    report = next(r for r in reports if r["started"])
    components = {c["name"]: c for c in report["cluster"]["components"]}
    assert list(components) == ["front-door-1", "front-door-2", "node-1", "node-2", "bus"]
    assert report["cluster"]["nodes"] == 2 and report["cluster"]["adapter"] == "redis"
    assert components["front-door-1"]["address"] == components["front-door-2"]["address"]
    assert components["front-door-1"]["address"] == f"127.0.0.1:{port}"
    assert components["node-2"]["address"] == f"127.0.0.1:{port + 2}"
    pids = live_pids(state)
    assert {name: c["pid"] for name, c in components.items()} == pids
    assert all(alive(pid) for pid in pids.values())
    # --nodes and --adapter went into .env: one source of truth from now on
    values = EnvDocument((tmp_path / ".env").read_text()).values()
    assert (values["RTCTL_SOKETI_NODES"], values["SOKETI_ADAPTER_DRIVER"]) == ("2", "redis")
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600
    # every process has its PID file and log under the state folder
    folder = state / "cluster"
    for name in ("bus", "front-door-1", "front-door-2"):
        assert (folder / f"{name}.pid.json").is_file() and (folder / f"{name}.log").is_file()
    for name in ("node-1", "node-2"):
        assert (folder / name / "soketi.pid.json").is_file()
        assert (folder / name / "soketi.log").is_file()

    again = run_cli(["up"])
    assert again.exit_code == 0
    assert (
        again.stderr
        == "already running (native, 2 nodes on redis behind the front door): nothing started\n"
    )

    status = run_cli(["status", "--json"])
    assert status.exit_code == 0, status.stdout
    data = json.loads(status.stdout)
    assert (data["healthy"], data["managed"], data["runtime"]) == (True, True, "native")
    assert data["cluster"] == {"nodes": 2, "adapter": "redis", "connections": 0}
    rows = {c["name"]: c for c in data["components"]}
    assert [rows[n]["kind"] for n in rows] == ["front-door", "front-door", "node", "node", "bus"]
    assert (
        rows["front-door-1"]["evidence"]
        == rows["front-door-2"]["evidence"]
        == "routes to 2/2 nodes"
    )
    assert rows["node-1"]["routed"] == "UP" and rows["node-1"]["evidence"] == "/ready 200"
    assert rows["bus"]["evidence"] == "PING -> PONG"
    table = run_cli(["status"])
    assert table.stdout.startswith("cluster running, healthy: 2 nodes on redis, 0 connections")
    watched = run_cli(["status", "--watch", "--count", "2", "--interval", "0.2", "--json"])
    assert watched.exit_code == 0
    reports = [json.loads(line) for line in watched.stdout.splitlines()]
    assert [len(r["components"]) for r in reports] == [5, 5]

    logs = run_cli(["logs", "-n", "1"])
    assert logs.exit_code == 0
    prefixes = {line.split(" ", 1)[0] for line in logs.stdout.splitlines()}
    assert {"[node-1]", "[node-2]", "[bus]"} <= prefixes
    one = run_cli(["logs", "--component", "bus", "-n", "3"])
    assert "Ready to accept connections" in one.stdout

    down = run_cli(["down", "--json"])
    assert down.exit_code == 0
    stopped = json.loads(down.stdout)
    assert stopped["stopped"] is True
    assert {c["name"]: c["pid"] for c in stopped["components"]} == pids
    assert not any(alive(pid) for pid in pids.values())
    assert run_cli(["down"]).stderr == "nothing to stop: no Soketi started by rtctl runs here\n"
    gone = run_cli(["status", "--json"])
    assert gone.exit_code == 4
    assert json.loads(gone.stdout)["running"] is False


@pytest.mark.parametrize("tls_files_in", [".env", "the environment"])
def test_https_the_front_door_holds_tls_for_the_nodes(
    tmp_path: Path, native_soketi: Path, monkeypatch: pytest.MonkeyPatch, tls_files_in: str
) -> None:
    """REALTIME_SCHEME=https: HAProxy serves the certificate (certificate and key in one PEM,
    mode 0600), the nodes behind it speak plain http on loopback, also when SOKETI_SSL_* are
    exported rather than in .env (every node inherits the environment); status checks it all."""
    cert, key = self_signed_certificate(tmp_path)
    files = {"SOKETI_SSL_CERT": str(cert), "SOKETI_SSL_KEY": str(key)}
    env = cluster_env(2, "redis", REALTIME_SCHEME="https", RTCTL_CA_BUNDLE=str(cert))
    if tls_files_in == ".env":
        env.update(files)
    else:
        for name, value in files.items():
            monkeypatch.setenv(name, value)
    write_env(tmp_path / ".env", env)
    state = tmp_path / ".rtctl"
    try:
        up = run_cli(["up", "--json"])
        assert up.exit_code == 0, up.stderr
        assert json.loads(up.stdout)["endpoints"]["ready_url"] == (
            f"https://127.0.0.1:{env['REALTIME_PORT']}/ready"
        )
        bundle = state / "cluster" / "front-door.pem"
        assert bundle.read_text() == cert.read_text() + "\n" + key.read_text()
        assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
        status = run_cli(["status", "--json"])
        assert status.exit_code == 0, status.stdout
        rows = {c["name"]: c for c in json.loads(status.stdout)["components"]}
        assert rows["front-door-1"]["evidence"] == "routes to 2/2 nodes"
        assert rows["node-1"]["address"] == f"127.0.0.1:{int(env['REALTIME_PORT']) + 1}"
        assert rows["node-1"]["evidence"] == "/ready 200"  # plain http behind the front door
    finally:
        cluster.stop(state, grace=5.0)


def test_a_plain_up_restarts_what_died(project: dict[str, str], tmp_path: Path) -> None:
    started = run_cli(["up", "--nodes", "2", "--adapter", "nats", "--no-wait"])
    assert started.exit_code == 0, started.stderr
    assert "cluster is starting (native, 2 nodes on nats behind the front door)" in started.stderr
    state = tmp_path / ".rtctl"
    before = live_pids(state)
    cluster.stop_node(state, "node-1")
    status = run_cli(["status", "--json"])
    assert status.exit_code == 1
    rows = {c["name"]: c for c in json.loads(status.stdout)["components"]}
    assert rows["node-1"]["running"] is False and rows["node-1"]["evidence"].startswith(
        "not running"
    )
    up = run_cli(["up"])  # .env now says 2 nodes on nats
    assert up.exit_code == 0, up.stderr
    assert up.stderr.splitlines() == [
        "starting node-1 again",
        "started again: node-1",
        "already running (native, 2 nodes on nats behind the front door): nothing started",
    ]
    after = live_pids(state)
    assert after["node-1"] != before["node-1"] and after["node-2"] == before["node-2"]
    assert run_cli(["status"]).exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nodes", "0"], "Invalid value for '--nodes'"),
        (["--nodes", "-2"], "Invalid value for '--nodes'"),
        (["--nodes", "500"], "Invalid value for '--nodes'"),
        (["--nodes", "3", "--adapter", "kafka"], "Invalid value for '--adapter'"),
    ],
)
def test_bad_counts_and_adapters_are_usage_errors(
    tmp_path: Path, args: list[str], message: str
) -> None:
    write_env(tmp_path / ".env", cluster_env(2, "redis"))
    result = run_cli(["up", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (tmp_path / ".rtctl" / "cluster").exists()


def test_local_adapter_with_several_nodes_is_refused(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", cluster_env(2, "redis"))
    result = run_cli(["up", "--nodes", "3", "--adapter", "local"])
    assert (result.exit_code, result.stderr) == (
        2,
        "error: --adapter local cannot join 3 nodes: each would only see its own clients\n"
        "hint: use --adapter redis (everything shared) or --adapter nats\n",
    )
    # the same in .env is a configuration the cluster runtime refuses (exit 3)
    write_env(tmp_path / ".env", cluster_env(3, "local"))
    result = run_cli(["up"])
    assert result.exit_code == 3
    assert result.stderr.startswith(
        "error: 3 nodes on the local adapter would not see each other's clients\n"
    )


def test_malformed_node_count_in_env_is_a_config_error(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", cluster_env(2, "redis", RTCTL_SOKETI_NODES="many"))
    result = run_cli(["up"])
    assert result.exit_code == 3
    assert result.stderr.splitlines()[0] == (
        "error: RTCTL_SOKETI_NODES='many' is not a count from 1 to 16"
    )


def test_missing_bus_program_is_exit_8_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_env(tmp_path / ".env", cluster_env(2, "redis"))
    bin_dir = tmp_path / "bin"  # node and npm only: no redis-server anywhere on PATH
    bin_dir.mkdir()
    for program in ("node", "npm", "haproxy"):
        found = subprocess.run(["which", program], capture_output=True, text=True).stdout.strip()
        if found:
            (bin_dir / program).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))
    result = run_cli(["up"])
    assert (result.exit_code, result.stderr) == (
        8,
        "error: redis-server (the redis bus between the nodes) was not found\n"
        "hint: install it: apt-get install -y redis-server\n",
    )
    assert not (tmp_path / ".rtctl" / "cluster" / "cluster.json").exists()


def test_busy_ports_are_refused_before_anything_starts(tmp_path: Path) -> None:
    env = cluster_env(2, "redis")
    write_env(tmp_path / ".env", env)
    node2 = int(env["REALTIME_PORT"]) + 2
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", node2))
        holder.listen()
        result = run_cli(["up"])
    assert (result.exit_code, result.stderr) == (
        9,
        f"error: port {node2} on 127.0.0.1 is already in use (node-2's port (REALTIME_PORT+2))\n"
        "hint: stop what listens there, or move REALTIME_PORT / SOKETI_METRICS_SERVER_PORT in "
        ".env (nodes use the ports after them)\n",
    )
    bus = int(env["RTCTL_BUS_PORT"])
    with socket.socket() as holder:  # something that is not Redis holds the bus port
        holder.bind(("127.0.0.1", bus))
        holder.listen()
        result = run_cli(["up"])
    assert result.exit_code == 9
    assert result.stderr.startswith(
        f"error: port {bus} on 127.0.0.1 is in use by something that is not a redis server"
    )
    assert live_pids(tmp_path / ".rtctl") == {}


def test_a_bus_dying_at_start_is_exit_10_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = cluster_env(2, "redis")
    write_env(tmp_path / ".env", env)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "redis-server"  # a broken installation: starts, complains, exits
    fake.write_text("#!/bin/sh\necho 'FATAL CONFIG FILE ERROR (Redis 7.0.15)' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = run_cli(["up"])
    assert result.exit_code == 10
    lines = result.stderr.splitlines()
    assert lines[0] == f"starting the redis bus on 127.0.0.1:{env['RTCTL_BUS_PORT']}"
    assert lines[1:3] == [
        "error: the redis bus (redis-server) exited during start; last log lines:",
        "FATAL CONFIG FILE ERROR (Redis 7.0.15)",
    ]
    assert "everything started was stopped again" in result.stderr
    assert live_pids(tmp_path / ".rtctl") == {}


def test_a_node_dying_at_start_stops_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = cluster_env(2, "redis")
    write_env(tmp_path / ".env", env)
    # Soketi exits at start when its TLS files are missing (inherited by every node)
    monkeypatch.setenv("SOKETI_SSL_CERT", str(tmp_path / "missing.pem"))
    monkeypatch.setenv("SOKETI_SSL_KEY", str(tmp_path / "missing.key"))
    result = run_cli(["up", "--timeout", "60"])
    assert result.exit_code == 10, result.stderr
    lines = result.stderr.splitlines()
    assert lines[:2] == [
        f"starting the redis bus on 127.0.0.1:{env['RTCTL_BUS_PORT']}",
        "starting 2 Soketi nodes",
    ]
    assert lines[2] == (
        f"error: Soketi node-1 (port {int(env['REALTIME_PORT']) + 1}) exited during start; "
        "last log lines:"
    )
    assert lines[-1] == (
        "hint: everything started was stopped again; the whole log is "
        "`rtctl logs --component node-1`"
    )
    # that log is still there to read
    assert run_cli(["logs", "--component", "node-1"]).stdout.strip()
    state = tmp_path / ".rtctl" / "cluster"
    assert not any(state.glob("*.pid.json")) and not any(state.glob("node-*/soketi.pid.json"))
    # the bus it had started is gone: its port is free again
    assert native.port_is_free("127.0.0.1", int(env["RTCTL_BUS_PORT"]))
    # and .env was not changed by the failed `up`
    assert "RTCTL_SOKETI_NODES=2" in (tmp_path / ".env").read_text()


def test_cluster_logs_drop_colours_and_escape_what_clients_made_a_node_log(
    tmp_path: Path,
) -> None:
    """A node's log is Soketi's, as for one node: its colours go, and a control sequence a client
    put in a channel name reaches the terminal escaped, never run."""
    write_env(tmp_path / ".env", cluster_env(2, "redis"))
    node = tmp_path / ".rtctl" / "cluster" / "node-1"
    node.mkdir(parents=True)
    (node / "soketi.log").write_text(
        "\x1b[32m[Sat Nov 28] ready\x1b[39m\nchannel private-\x1b]0;owned\x07x\n"
    )
    expected = ["[Sat Nov 28] ready", "channel private-\\x1b]0;owned\\x07x"]
    one = run_cli(["logs", "--component", "node-1"])
    assert (one.exit_code, one.stdout.splitlines()) == (0, expected)
    every = run_cli(["logs"])
    assert every.exit_code == 0
    assert [line for line in every.stdout.splitlines() if line.startswith("[node-1] ")] == [
        f"[node-1] {line}" for line in expected
    ]


def test_init_writes_a_cluster_env_and_compose(tmp_path: Path) -> None:
    result = run_cli(["init", "--nodes", "3", "--adapter", "nats"])
    assert result.exit_code == 0, result.stderr
    values = EnvDocument((tmp_path / ".env").read_text()).values()
    assert (values["RTCTL_SOKETI_NODES"], values["SOKETI_ADAPTER_DRIVER"]) == ("3", "nats")
    compose = (tmp_path / "compose.yaml").read_text()
    assert "# rtctl-cluster: nodes=3 adapter=nats" in compose
    single = tmp_path / "single"
    assert run_cli(["init", "--dir", str(single)]).exit_code == 0
    assert "RTCTL_SOKETI_NODES" not in EnvDocument((single / ".env").read_text()).values()
    assert "# RTCTL_SOKETI_NODES=1" in (single / ".env").read_text()


def test_quickstart_and_test_scripts_install_the_cluster_programs(tmp_path: Path) -> None:
    for script in ("scripts/test.sh", "scripts/quickstart.sh"):
        text = (REPO / script).read_text()
        assert "source scripts/packages.sh" in text and "install_cluster_programs" in text, script
    # The shared installer with only a fake apt-get on PATH (plus the sbin folders it adds): one
    # apt-get run installs exactly the programs it cannot find.
    fake = tmp_path / "bin"
    fake.mkdir()
    log = tmp_path / "apt.log"
    (fake / "apt-get").write_text(f'#!/bin/sh\necho "apt-get $*" >> {log}\n')
    (fake / "apt-get").chmod(0o755)
    result = subprocess.run(
        ["/bin/bash", "-c", "source scripts/packages.sh; install_cluster_programs"],
        cwd=REPO,
        env={"PATH": str(fake)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    installed = [line for line in log.read_text().splitlines() if "install" in line]
    searched = f"{fake}:/usr/local/sbin:/usr/sbin:/sbin"
    missing = [
        p for p in ("redis-server", "nats-server", "haproxy") if not shutil.which(p, path=searched)
    ]
    # Debian puts redis-server in /usr/bin, off this PATH: in practice at least it is missing.
    assert installed == ([f"apt-get install -y -qq {' '.join(missing)}"] if missing else [])
    assert (f"installing {' '.join(missing)} from" in result.stderr) == bool(missing)


def test_the_cli_node_limit_is_the_configs() -> None:
    from rtctl.cli import cmd_runtime
    from rtctl.config import MAX_NODES

    assert cmd_runtime.MAX_NODES == MAX_NODES  # kept apart so `rtctl --help` does not load config
