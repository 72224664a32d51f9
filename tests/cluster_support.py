"""Real clusters for tests: redis-server or nats-server, Soketi nodes and HAProxy on free loopback
ports, started and stopped by PID through rtctl's own cluster runtime."""

from __future__ import annotations

import os
import random
import socket
from dataclasses import dataclass, field
from pathlib import Path

from rtctl import webhook_settings
from rtctl.config import Settings, load_settings
from rtctl.runtime import cluster, native
from tests.helpers import TEST_CACHE, fresh_credentials, write_env

# Nodes use REALTIME_PORT+i and metrics SOKETI_METRICS_SERVER_PORT+i-1: consecutive free ports,
# taken below the kernel's ephemeral range (32768-60999) so no client socket lands on them.
PORT_FLOOR, PORT_CEILING = 20000, 32000


def _free(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            if kind == socket.SOCK_STREAM:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


_taken: set[int] = set()


def free_run(count: int) -> int:
    """The first of ``count`` consecutive free ports (never handed out twice per session)."""
    rng = random.Random()
    for _ in range(500):
        base = rng.randrange(PORT_FLOOR, PORT_CEILING - count)
        span = range(base, base + count)
        if any(port in _taken for port in span):
            continue
        if all(_free(port) for port in span):
            _taken.update(span)
            return base
    raise RuntimeError(f"no {count} consecutive free ports")


def cluster_env(nodes: int, adapter: str, **overrides: str) -> dict[str, str]:
    """.env values for a cluster on free ports (front door, nodes, metrics, bus)."""
    base = free_run(nodes + 1)
    metrics = free_run(nodes)
    env = {
        "REALTIME_PROVIDER": "soketi",
        "REALTIME_HOST": "127.0.0.1",
        "REALTIME_PORT": str(base),
        "SOKETI_METRICS_SERVER_PORT": str(metrics),
        "SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES": "true",
        "RTCTL_SOKETI_NODES": str(nodes),
        "SOKETI_ADAPTER_DRIVER": adapter,
        "RTCTL_BUS_PORT": str(free_run(1)),
        **fresh_credentials(),
    }
    env.update(overrides)
    return env


@dataclass
class Cluster:
    """A real cluster started for tests, and the .env values that describe it."""

    env: dict[str, str]
    state: Path
    node_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    # REALTIME_WEBHOOK_* the nodes were started with. Not in ``env`` (the .env tests write), so
    # smoke and doctor see webhooks only in a test that adds them: see ``webhook_env``.
    webhooks: dict[str, str] = field(default_factory=dict)

    def settings(self) -> Settings:
        return load_settings(environ=self.env)

    @property
    def webhook_env(self) -> dict[str, str]:
        """The .env additions that describe the webhooks the nodes send (empty: none)."""
        return dict(self.webhooks)

    @property
    def webhook_url(self) -> str:
        return self.webhooks[webhook_settings.URL]

    def write_env(self, path: Path, **changes: str) -> Path:
        return write_env(path, {**self.env, **changes})

    @property
    def port(self) -> int:
        return int(self.env["REALTIME_PORT"])

    def node_port(self, index: int) -> int:
        return self.port + index

    def start(self, timeout: float = 60.0) -> cluster.ClusterState:
        os.environ["RTCTL_CACHE_DIR"] = str(TEST_CACHE)
        state, _ = cluster.start(
            load_settings(environ={**self.env, **self.webhooks}),
            self.state,
            timeout=timeout,
            node_overrides=self.node_overrides,
        )
        return state

    def recorded(self) -> cluster.ClusterState:
        found = cluster.read_state(self.state)
        assert found is not None
        return found

    def pids(self) -> list[int]:
        """Every live process of the cluster."""
        found = cluster.read_state(self.state)
        if found is None:
            return []
        pids = [r.pid for r in found.nodes.values() if r is not None]
        pids += [p.pid for p in found.front_doors if p is not None]
        if found.bus is not None:
            pids.append(found.bus.pid)
        return pids

    def stop(self) -> None:
        cluster.stop(self.state, grace=5.0)


def make_cluster(
    state: Path,
    nodes: int = 3,
    adapter: str = "redis",
    node_overrides: dict[str, dict[str, str]] | None = None,
    webhooks: bool = False,
    **overrides: str,
) -> Cluster:
    """``webhooks``: the nodes send every webhook to http://127.0.0.1:<a free port>/webhooks,
    where nothing listens until a test starts a receiver there."""
    hooks = {}
    if webhooks:
        hooks[webhook_settings.URL] = f"http://127.0.0.1:{free_run(1)}/webhooks"
    return Cluster(cluster_env(nodes, adapter, **overrides), state, node_overrides or {}, hooks)


def alive(pid: int) -> bool:
    return native.start_ticks(pid) is not None
