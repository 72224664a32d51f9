"""Several Soketi nodes on one bus behind one front door, natively, every process tracked by PID.

What a cluster is here (see docs/cluster.md and shared facts in soketi-cluster.md):
- the bus: ``redis-server`` or ``nats-server`` on 127.0.0.1:RTCTL_BUS_PORT, no persistence;
  a bus that already answers there is shared (used, never stopped), so two clusters can share
  one bus under different prefixes;
- N nodes, each the single-node recipe of ``native.py`` (discovery pinned to loopback) on
  127.0.0.1:REALTIME_PORT+i, metrics on SOKETI_METRICS_SERVER_PORT+i-1, its own discovery port,
  plus the adapter, the bus, the cluster's prefix and the shared drivers;
- the front door: HAProxy on REALTIME_HOST:REALTIME_PORT (one or several processes sharing the
  port), health-checking every node's ``/ready``.

Files under ``<state>/cluster/``: ``cluster.json`` (what was started), ``bus.pid.json`` and
``bus.log``, ``node-<i>/`` (native's PID file, log and working folder), ``front-door.cfg``,
``front-door-<k>.pid.json`` / ``.log`` / ``.sock`` (its stats socket). One up or down at a time:
the state folder's lock, as for one server. ``up`` either starts everything or stops what it
started and raises.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rtctl.config import Settings
from rtctl.envfile import atomic_write
from rtctl.errors import ConfigError, Conflict, EnvironmentProblem, ServerDied, TimedOut
from rtctl.runtime import haproxy, native

Progress = Callable[[str], None]
BUS_BINARIES = {"redis": "redis-server", "nats": "nats-server"}
BUS_PACKAGES = {"redis": "redis-server", "nats": "nats-server"}
STATE_FILE = "cluster.json"
SBIN_FOLDERS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def _silent(_: str) -> None:
    pass


# --- the plan: every address, derived from the settings -----------------------------------------


@dataclass(frozen=True)
class NodePlan:
    name: str  # node-1 ...
    port: int  # WebSocket + HTTP API, on 127.0.0.1
    metrics_port: int
    discovery_port: int = 0  # Soketi's UDP discovery; chosen free at start


@dataclass(frozen=True)
class ClusterPlan:
    adapter: str
    host: str  # the front door
    port: int
    scheme: str
    bus_port: int
    prefix: str
    front_doors: int
    maxconn: int
    nodes: tuple[NodePlan, ...]
    bus_host: str = "127.0.0.1"

    def node(self, name: str) -> NodePlan:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["nodes"] = [asdict(node) for node in self.nodes]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClusterPlan:
        nodes = tuple(NodePlan(**node) for node in data["nodes"])
        return cls(**{**data, "nodes": nodes})


def plan(settings: Settings) -> ClusterPlan:
    """The cluster `.env` describes: ports follow REALTIME_PORT and SOKETI_METRICS_SERVER_PORT."""
    last = max(settings.port + settings.nodes, settings.metrics_port + settings.nodes - 1)
    if last > 65535:
        raise ConfigError(
            f"{settings.nodes} nodes need ports up to {last}, beyond 65535",
            hint="lower REALTIME_PORT / SOKETI_METRICS_SERVER_PORT, or run fewer nodes",
        )
    nodes = tuple(
        NodePlan(f"node-{i}", settings.port + i, settings.metrics_port + i - 1)
        for i in range(1, settings.nodes + 1)
    )
    return ClusterPlan(
        adapter=settings.adapter,
        host=settings.host,
        port=settings.port,
        scheme=settings.scheme,
        bus_port=settings.bus_port,
        prefix=settings.cluster_prefix,
        front_doors=settings.front_door_processes,
        maxconn=settings.front_door_maxconn or haproxy.default_maxconn(),
        nodes=nodes,
    )


def node_settings(settings: Settings, node: NodePlan) -> Settings:
    """How to talk to one node directly: plain http on loopback (the front door holds TLS)."""
    return replace(
        settings,
        host="127.0.0.1",
        port=node.port,
        metrics_port=node.metrics_port,
        scheme="http",
        ssl_cert=None,
        ssl_key=None,
        nodes=1,
    )


def node_environment(settings: Settings, cluster: ClusterPlan, node: NodePlan) -> dict[str, str]:
    """What joins a node to the others: adapter, bus, prefix, the shared drivers, its own ports."""
    env = {
        "SOKETI_ADAPTER_DRIVER": cluster.adapter,
        "SOKETI_CACHE_DRIVER": settings.cache_driver,
        "SOKETI_RATE_LIMITER_DRIVER": settings.rate_limiter_driver,
        "SOKETI_QUEUE_DRIVER": settings.queue_driver,
        "SOKETI_MODE": settings.soketi_mode,
        "SOKETI_CLUSTER_PORT": str(node.discovery_port),
    }
    if settings.tls:
        # The front door holds TLS; the nodes behind it speak plain http on loopback, also when
        # SOKETI_SSL_CERT/KEY come from the process environment (which every node inherits).
        env.update(SOKETI_SSL_CERT="", SOKETI_SSL_KEY="")
    if cluster.adapter == "redis" or "redis" in (
        settings.cache_driver,
        settings.rate_limiter_driver,
        settings.queue_driver,
    ):
        # There is no SOKETI_ADAPTER_REDIS_HOST: every Redis feature connects through DB_REDIS_*.
        env.update(
            SOKETI_DB_REDIS_HOST=cluster.bus_host,
            SOKETI_DB_REDIS_PORT=str(cluster.bus_port),
            SOKETI_DB_REDIS_KEY_PREFIX=f"{cluster.prefix}:",
            SOKETI_ADAPTER_REDIS_PREFIX=cluster.prefix,
        )
    if cluster.adapter == "nats":
        env.update(
            SOKETI_ADAPTER_NATS_SERVERS=json.dumps([f"{cluster.bus_host}:{cluster.bus_port}"]),
            SOKETI_ADAPTER_NATS_PREFIX=cluster.prefix,
            # Without it every API call first asks the NATS server how many nodes listen.
            SOKETI_ADAPTER_NATS_NODES_NUMBER=str(len(cluster.nodes)),
        )
    return env


def webhook_environment(settings: Settings) -> dict[str, str]:
    """The webhooks every node sends, recorded with the cluster: a node started again later
    (failover, `rtctl up` repairing the cluster) sends what its siblings send, even when `.env`
    changed since (an empty list when there were none)."""
    return {
        "SOKETI_DEFAULT_APP_WEBHOOKS": "[]",
        "SOKETI_WEBHOOKS_BATCHING": "false",
        **settings.webhooks.soketi_environment(),
    }


# --- processes other than Soketi (the bus, the front door) ---------------------------------------


@dataclass(frozen=True)
class Proc:
    name: str
    pid: int
    start_ticks: int
    started_at: float
    log_file: str


def spawn(name: str, argv: list[str], folder: Path, env: dict[str, str] | None = None) -> Proc:
    """Start a detached process (own session, no stdin), log to ``<name>.log``, PID file first."""
    log = folder / f"{name}.log"
    process = native.spawn_detached(argv, folder, env, log)
    proc = Proc(name, process.pid, native.start_ticks(process.pid) or 0, time.time(), str(log))
    atomic_write(folder / f"{name}.pid.json", json.dumps(asdict(proc), indent=2))
    return proc


def read_proc(folder: Path, name: str) -> Proc | None:
    """The recorded process if it still runs (same PID and start time); stale files go."""
    return native.read_pid_record(folder / f"{name}.pid.json", Proc)


def stop_proc(folder: Path, name: str, grace: float = 10.0) -> Proc | None:
    proc = read_proc(folder, name)
    if proc is not None:
        native.stop_pid(proc.pid, proc.start_ticks, grace)
    (folder / f"{name}.pid.json").unlink(missing_ok=True)
    return proc


# --- the bus ---------------------------------------------------------------------------------------


def find_program(name: str) -> str | None:
    """A program on PATH, or in the sbin folders Debian installs servers into (nats-server and
    haproxy live in /usr/sbin, which is not on every user's PATH)."""
    path = os.environ.get("PATH", "")
    return shutil.which(name, path=f"{path}{os.pathsep}{os.pathsep.join(SBIN_FOLDERS)}")


def bus_binary(adapter: str) -> str:
    name = BUS_BINARIES[adapter]
    found = find_program(name)
    if found is None:
        raise EnvironmentProblem(
            f"{name} (the {adapter} bus between the nodes) was not found",
            hint=f"install it: apt-get install -y {BUS_PACKAGES[adapter]}",
        )
    return found


def bus_command(adapter: str, binary: str, port: int, folder: Path) -> list[str]:
    if adapter == "redis":
        # A pub/sub bus and a scratch store, not a database: nothing written to disk.
        return [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(folder),
        ]
    return [binary, "-a", "127.0.0.1", "-p", str(port)]


def bus_answers(adapter: str, host: str, port: int, timeout: float = 2.0) -> str | None:
    """Evidence that the bus answers (``PONG``, the NATS version), or None."""
    if adapter not in BUS_BINARIES:
        return None
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            if adapter == "redis":
                sock.sendall(b"PING\r\n")
                answer = sock.recv(64)
                return "PING -> PONG" if answer.startswith(b"+PONG") else None
            greeting = sock.recv(4096)  # a NATS server speaks first: INFO {...}
            if not greeting.startswith(b"INFO "):
                return None
            info = json.loads(greeting[5:].split(b"\r\n", 1)[0])
            return f"NATS {info.get('version', '?')}"
    except (OSError, ValueError):
        return None


def redis_command(host: str, port: int, *words: str, timeout: float = 2.0) -> Any:
    """One Redis command over RESP; the reply decoded (strings, ints, lists), None on failure."""
    payload = f"*{len(words)}\r\n" + "".join(f"${len(w.encode())}\r\n{w}\r\n" for w in words)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(payload.encode())
            reader = sock.makefile("rb")
            return _resp(reader)
    except (OSError, ValueError):
        return None


def _resp(reader: Any) -> Any:
    line = reader.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise ValueError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else reader.read(size + 2)[:-2].decode()
    if kind == b"*":
        return [_resp(reader) for _ in range(max(0, int(rest)))]
    raise ValueError(f"unexpected RESP reply {line[:40]!r}")


def adapter_listeners(cluster: ClusterPlan, timeout: float = 2.0) -> int | None:
    """How many Soketi nodes listen on this cluster's prefix on the bus (Redis only: NUMSUB of
    the adapter's request channel); None when the bus cannot tell."""
    if cluster.adapter != "redis":
        return None
    channel = f"{cluster.prefix}#redis-adapter#comms#req"
    reply = redis_command(
        cluster.bus_host, cluster.bus_port, "PUBSUB", "NUMSUB", channel, timeout=timeout
    )
    if isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], int):
        return reply[1]
    return None


# --- state -----------------------------------------------------------------------------------------


def cluster_dir(state: Path) -> Path:
    return state / "cluster"


def node_dir(folder: Path, name: str) -> Path:
    return folder / name


@dataclass
class ClusterState:
    """What `up` recorded, with what still runs of it."""

    plan: ClusterPlan
    started_at: float
    bus_shared: bool
    node_env: dict[str, dict[str, str]]
    bus: Proc | None = None
    nodes: dict[str, native.Running | None] = field(default_factory=dict)
    front_doors: list[Proc | None] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)  # what `up` had to start again

    @property
    def alive(self) -> list[str]:
        names = [name for name, running in self.nodes.items() if running is not None]
        names += [p.name for p in self.front_doors if p is not None]
        if self.bus is not None:
            names.append(self.bus.name)
        return names


def read_state(state: Path) -> ClusterState | None:
    """The recorded cluster (None when none was started here), with each process's liveness."""
    folder = cluster_dir(state)
    try:
        data = json.loads((folder / STATE_FILE).read_text())
        cluster = ClusterPlan.from_dict(data["plan"])
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError):
        return None
    return ClusterState(
        plan=cluster,
        started_at=float(data.get("started_at", 0.0)),
        bus_shared=bool(data.get("bus_shared")),
        node_env=dict(data.get("node_env") or {}),
        bus=read_proc(folder, "bus"),
        nodes={
            node.name: native.read_running(node_dir(folder, node.name)) for node in cluster.nodes
        },
        front_doors=[
            read_proc(folder, f"front-door-{k}") for k in range(1, cluster.front_doors + 1)
        ],
    )


def is_running(state: Path) -> bool:
    recorded = read_state(state)
    return recorded is not None and bool(recorded.alive)


# --- start -----------------------------------------------------------------------------------------


def _check_ports(cluster: ClusterPlan) -> bool:
    """Refuse busy ports before anything starts (exit 9). Returns whether the bus is shared."""
    wanted = [("REALTIME_PORT (the front door)", cluster.host, cluster.port)]
    for node in cluster.nodes:
        wanted.append(
            (f"{node.name}'s port (REALTIME_PORT+{node.name[5:]})", "127.0.0.1", node.port)
        )
        wanted.append((f"{node.name}'s metrics port", "127.0.0.1", node.metrics_port))
    for what, host, port in wanted:
        if not native.port_is_free(host, port):
            raise Conflict(
                f"port {port} on {host} is already in use ({what})",
                hint="stop what listens there, or move REALTIME_PORT / SOKETI_METRICS_SERVER_PORT "
                "in .env (nodes use the ports after them)",
            )
    if native.port_is_free(cluster.bus_host, cluster.bus_port):
        return False
    if bus_answers(cluster.adapter, cluster.bus_host, cluster.bus_port):
        return True  # a bus of the right kind already runs there: share it
    raise Conflict(
        f"port {cluster.bus_port} on {cluster.bus_host} is in use by something that is not a "
        f"{cluster.adapter} server (RTCTL_BUS_PORT)",
        hint="stop what listens there, or set RTCTL_BUS_PORT to a free port in .env",
    )


def start(
    settings: Settings,
    state: Path,
    wait: bool = True,
    timeout: float = 30.0,
    progress: Progress = _silent,
    node_overrides: dict[str, dict[str, str]] | None = None,
) -> tuple[ClusterState, bool]:
    """Start the bus, the nodes and the front door; or find the cluster already running.

    Returns (state, started_now). On any failure everything this call started is stopped before
    the error propagates. ``node_overrides`` adds Soketi variables to single nodes (tests use it
    to inject faults such as one node on the wrong adapter).
    """
    if settings.adapter == "local":
        raise ConfigError(
            f"{settings.nodes} nodes on the local adapter would not see each other's clients",
            hint="set SOKETI_ADAPTER_DRIVER=redis or nats (or `rtctl up --adapter redis`)",
        )
    if settings.adapter == "nats" and "redis" in (
        settings.cache_driver,
        settings.rate_limiter_driver,
        settings.queue_driver,
    ):
        raise ConfigError(
            "a Redis cache, rate limiter or queue needs a Redis, but the bus is NATS",
            hint="use SOKETI_ADAPTER_DRIVER=redis, or unset SOKETI_*_DRIVER=redis",
        )
    if settings.tls and not (settings.ssl_cert and settings.ssl_key):
        raise ConfigError(
            "REALTIME_SCHEME=https needs SOKETI_SSL_CERT and SOKETI_SSL_KEY for the front door",
            hint="set both to PEM files, or use http",
        )
    with native.state_lock(state, progress):
        existing = read_state(state)
        if existing is not None and existing.alive:
            _already_running(settings, existing)
            restarted = _repair(settings, state, existing, timeout, progress)
            found = read_state(state)
            assert found is not None
            found.restarted = restarted
            return found, False
        if native.read_running(state) is not None:
            raise Conflict(
                "a single Soketi started by rtctl already runs here",
                hint="stop it with `rtctl down` before starting a cluster",
            )
        bus_path = bus_binary(settings.adapter)
        front_door_path = haproxy.binary()
        cluster = plan(settings)
        shared = _check_ports(cluster)
        native.ensure_installed(progress)  # before any process starts: may take a while
        folder = cluster_dir(state)
        folder.mkdir(parents=True, exist_ok=True)
        _clear(folder)
        nodes = tuple(
            replace(node, discovery_port=native.free_udp_port()) for node in cluster.nodes
        )
        cluster = replace(cluster, nodes=nodes)
        node_env = {
            node.name: {
                **node_environment(settings, cluster, node),
                **webhook_environment(settings),
                **(node_overrides or {}).get(node.name, {}),
            }
            for node in cluster.nodes
        }
        record = {
            "plan": cluster.to_dict(),
            "started_at": time.time(),
            "bus_shared": shared,
            "node_env": node_env,
        }
        atomic_write(folder / STATE_FILE, json.dumps(record, indent=2))
        try:
            _start_all(
                settings,
                cluster,
                folder,
                bus_path,
                front_door_path,
                shared,
                node_env,
                wait,
                timeout,
                progress,
            )
        except BaseException:
            _stop_all(folder, cluster, grace=5.0)
            (folder / STATE_FILE).unlink(missing_ok=True)
            raise
        started = read_state(state)
        assert started is not None
        return started, True


def _already_running(settings: Settings, existing: ClusterState) -> None:
    wanted = (settings.nodes, settings.adapter, settings.host, settings.port)
    have = (len(existing.plan.nodes), existing.plan.adapter, existing.plan.host, existing.plan.port)
    if wanted != have:
        raise Conflict(
            f"a {have[0]}-node {have[1]} cluster started by rtctl already runs here on "
            f"{have[2]}:{have[3]}",
            hint="stop it with `rtctl down` before starting another",
        )


def _repair(
    settings: Settings,
    state: Path,
    existing: ClusterState,
    timeout: float,
    progress: Progress,
) -> list[str]:
    """Start again what died of a recorded cluster, with the environment it had. A NATS bus
    that had to be restarted takes every node with it: Soketi's NATS client never reconnects."""
    folder = cluster_dir(state)
    cluster = existing.plan
    deadline = time.monotonic() + timeout
    restarted: list[str] = []
    dead_nodes = [name for name, running in existing.nodes.items() if running is None]
    if not existing.bus_shared and existing.bus is None:
        progress(f"starting the {cluster.adapter} bus again")
        spawn(
            "bus",
            bus_command(cluster.adapter, bus_binary(cluster.adapter), cluster.bus_port, folder),
            folder,
        )
        _wait_bus(cluster, folder, deadline, timeout)
        restarted.append("bus")
        if cluster.adapter == "nats":
            for name, running in existing.nodes.items():
                if running is not None:
                    native.stop(node_dir(folder, name))
                    dead_nodes.append(name)
    for name in sorted(set(dead_nodes)):
        progress(f"starting {name} again")
        start_node(settings, state, name, max(1.0, deadline - time.monotonic()))
        restarted.append(name)
    dead_doors = [k for k, proc in enumerate(existing.front_doors, start=1) if proc is None]
    if dead_doors:
        config = folder / "front-door.cfg"
        for k in dead_doors:
            progress(f"starting front-door-{k} again")
            env = {**os.environ, haproxy.SOCKET_ENV: str(folder / f"front-door-{k}.sock")}
            (folder / f"front-door-{k}.sock").unlink(missing_ok=True)
            spawn(f"front-door-{k}", [haproxy.binary(), "-db", "-f", str(config)], folder, env)
            restarted.append(f"front-door-{k}")
    if restarted:
        _wait_front_doors(cluster, folder, deadline, timeout)
    return restarted


def _clear(folder: Path) -> None:
    """Forget the files of a previous cluster (its processes are gone: checked by the caller)."""
    for path in folder.glob("*.pid.json"):
        path.unlink(missing_ok=True)
    for path in folder.glob("front-door-*.sock"):
        path.unlink(missing_ok=True)


def _start_all(
    settings: Settings,
    cluster: ClusterPlan,
    folder: Path,
    bus_path: str,
    front_door_path: str,
    shared: bool,
    node_env: dict[str, dict[str, str]],
    wait: bool,
    timeout: float,
    progress: Progress,
) -> None:
    deadline = time.monotonic() + timeout
    if not shared:
        progress(f"starting the {cluster.adapter} bus on 127.0.0.1:{cluster.bus_port}")
        spawn("bus", bus_command(cluster.adapter, bus_path, cluster.bus_port, folder), folder)
        _wait_bus(cluster, folder, deadline, timeout)
    else:
        progress(f"sharing the {cluster.adapter} bus already on 127.0.0.1:{cluster.bus_port}")
    progress(f"starting {len(cluster.nodes)} Soketi nodes")
    for node in cluster.nodes:
        native.start(
            node_settings(settings, node),
            node_dir(folder, node.name),
            wait=False,
            extra_env=node_env[node.name],
        )
    for node in cluster.nodes:
        _wait_node(settings, node, folder, deadline, timeout)
    progress(f"starting the front door on {cluster.host}:{cluster.port}")
    config = folder / "front-door.cfg"
    tls_pem = _tls_bundle(settings, folder) if settings.tls else None
    config.write_text(
        haproxy.render(
            bind_host=cluster.host,
            bind_port=cluster.port,
            servers=[haproxy.Server(n.name, "127.0.0.1", n.port) for n in cluster.nodes],
            maxconn=cluster.maxconn,
            tls_pem=str(tls_pem) if tls_pem else None,
        )
    )
    for k in range(1, cluster.front_doors + 1):
        env = {**os.environ, haproxy.SOCKET_ENV: str(folder / f"front-door-{k}.sock")}
        spawn(f"front-door-{k}", [front_door_path, "-db", "-f", str(config)], folder, env)
    if wait:
        _wait_front_doors(cluster, folder, deadline, timeout)
    else:  # --no-wait: the nodes answer already; only make sure HAProxy did not refuse to start
        time.sleep(0.3)
        for k in range(1, cluster.front_doors + 1):
            if read_proc(folder, f"front-door-{k}") is None:
                name = f"front-door-{k}"
                raise _died(
                    f"the front door (haproxy, process {k})",
                    folder / f"{name}.log",
                    str(folder / f"{name}.log"),
                )


def _tls_bundle(settings: Settings, folder: Path) -> Path:
    """HAProxy takes the certificate and its key as one PEM file (mode 0600)."""
    assert settings.ssl_cert and settings.ssl_key
    bundle = folder / "front-door.pem"
    text = Path(settings.ssl_cert).read_text() + "\n" + Path(settings.ssl_key).read_text()
    atomic_write(bundle, text)
    return bundle


def _died(what: str, log: Path, hint_log: str) -> ServerDied:
    return ServerDied(
        f"{what} exited during start; last log lines:\n{native.file_tail(log) or '(empty log)'}",
        hint=f"everything started was stopped again; the whole log is {hint_log}",
    )


def _wait_bus(cluster: ClusterPlan, folder: Path, deadline: float, timeout: float) -> None:
    while time.monotonic() < deadline:
        if read_proc(folder, "bus") is None:
            raise _died(
                f"the {cluster.adapter} bus ({BUS_BINARIES[cluster.adapter]})",
                folder / "bus.log",
                str(folder / "bus.log"),
            )
        if bus_answers(cluster.adapter, cluster.bus_host, cluster.bus_port, 0.5):
            return
        time.sleep(0.05)
    raise TimedOut(
        f"the {cluster.adapter} bus did not answer on 127.0.0.1:{cluster.bus_port} within "
        f"{timeout:g}s",
        hint=f"see {folder / 'bus.log'}; raise --timeout on a slow machine",
    )


def _wait_node(
    settings: Settings, node: NodePlan, folder: Path, deadline: float, timeout: float
) -> None:
    from rtctl.runtime.health import fetch

    where = node_dir(folder, node.name)
    direct = node_settings(settings, node)
    while time.monotonic() < deadline:
        if native.read_running(where) is None:
            raise _died(
                f"Soketi {node.name} (port {node.port})",
                native.log_file(where),
                f"`rtctl logs --component {node.name}`",
            )
        answer = fetch(f"{direct.api_base}/", direct, timeout=1.0)
        if answer.status == 200 and answer.body.strip() == "OK":
            return
        time.sleep(0.1)
    raise TimedOut(
        f"Soketi {node.name} did not answer 127.0.0.1:{node.port} within {timeout:g}s",
        hint=f"see `rtctl logs --component {node.name}`; raise --timeout on a slow machine",
    )


def _wait_front_doors(cluster: ClusterPlan, folder: Path, deadline: float, timeout: float) -> None:
    """Each HAProxy process alive, its stats socket answering, and every node UP in it."""
    names = {node.name for node in cluster.nodes}
    for k in range(1, cluster.front_doors + 1):
        name = f"front-door-{k}"
        while True:
            if read_proc(folder, name) is None:
                raise _died(
                    f"the front door (haproxy, process {k})",
                    folder / f"{name}.log",
                    str(folder / f"{name}.log"),
                )
            states = haproxy.server_states(folder / f"{name}.sock", 0.5) or []
            if {s.name for s in states if s.status == "UP" and s.check.startswith("L7")} >= names:
                break
            if time.monotonic() >= deadline:
                seen = ", ".join(f"{s.name} {s.status} {s.check}" for s in states) or "no answer"
                raise TimedOut(
                    f"the front door did not see every node healthy within {timeout:g}s ({seen})",
                    hint=f"see {folder / (name + '.log')}",
                )
            time.sleep(0.1)


# --- stop ------------------------------------------------------------------------------------------


@dataclass
class Stopped:
    names: list[str]
    pids: list[int]


def _stop_all(folder: Path, cluster: ClusterPlan | None, grace: float) -> Stopped:
    """Front doors first (no new clients), then nodes, then the bus; by PID, each verified."""
    names: list[str] = []
    pids: list[int] = []
    front = sorted(p.name.removesuffix(".pid.json") for p in folder.glob("front-door-*.pid.json"))
    for name in front:
        proc = stop_proc(folder, name, grace)
        if proc is not None:
            names.append(name)
            pids.append(proc.pid)
    node_names = [n.name for n in cluster.nodes] if cluster else []
    node_names += [p.name for p in folder.glob("node-*") if p.is_dir() and p.name not in node_names]
    for name in node_names:
        running = native.stop(node_dir(folder, name), grace)
        if running is not None:
            names.append(name)
            pids.append(running.pid)
    proc = stop_proc(folder, "bus", grace)
    if proc is not None:
        names.append("bus")
        pids.append(proc.pid)
    return Stopped(names, pids)


def stop(state: Path, grace: float = 10.0) -> Stopped | None:
    """Stop every process the cluster's files name; None when no cluster was recorded here."""
    folder = cluster_dir(state)
    if not folder.is_dir():
        return None
    with native.state_lock(state):
        recorded = read_state(state)
        if (
            recorded is None
            and not any(folder.glob("*.pid.json"))
            and not any(folder.glob("node-*"))
        ):
            return None
        stopped = _stop_all(folder, recorded.plan if recorded else None, grace)
        (folder / STATE_FILE).unlink(missing_ok=True)
        for path in folder.glob("front-door-*.sock"):  # HAProxy leaves its stats socket behind
            path.unlink(missing_ok=True)
        return stopped


# --- one node at a time (failover checks) ----------------------------------------------------------


def stop_node(state: Path, name: str, grace: float = 10.0) -> native.Running | None:
    """Stop one node by its PID (the others, the bus and the front door keep running)."""
    return native.stop(node_dir(cluster_dir(state), name), grace)


def start_node(settings: Settings, state: Path, name: str, timeout: float = 30.0) -> native.Running:
    """Start one recorded node again with exactly the environment it had."""
    recorded = read_state(state)
    if recorded is None:
        raise ConfigError("no cluster started by rtctl runs here", hint="start one with `rtctl up`")
    folder = cluster_dir(state)
    node = recorded.plan.node(name)
    env = recorded.node_env.get(name) or node_environment(settings, recorded.plan, node)
    running, _ = native.start(
        node_settings(settings, node), node_dir(folder, name), wait=False, extra_env=env
    )
    _wait_node(settings, node, folder, time.monotonic() + timeout, timeout)
    return running
