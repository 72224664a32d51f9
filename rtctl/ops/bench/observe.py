"""What the processes of a run did while it published: CPU from ``/proc``, per-node figures from
each node's ``/metrics``, and the machine's busy share from ``/proc/stat``.

The processes: bench's own workers and publisher always; a cluster's nodes, front door and bus
when rtctl started it here (their PIDs are in the state folder); a cluster started elsewhere gives
its nodes' ``/metrics`` (connections, messages out) without CPU. A process that cannot be read
(gone, or not ours to see) is reported without CPU rather than guessed.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from rtctl.config import Settings
from rtctl.ops.bench.report import Observation

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), or None when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies over all cores since boot, from /proc/stat's first line."""
    try:
        values = [float(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)
    return sum(values) - idle, sum(values)


@dataclass
class _Watched:
    name: str
    kind: str
    pid: int | None
    metrics: Settings | None = None  # a node: where its /metrics is
    cpu0: float | None = None
    messages0: int | None = None
    connections: int | None = None  # at the start of publishing: every subscriber is on


def _messages_out(settings: Settings) -> tuple[int | None, int | None]:
    """(connections, messages sent) from a node's /metrics."""
    from rtctl.runtime import health

    metrics = health.scrape(settings, timeout=2.0)
    if metrics is None or metrics.figures is None:
        return None, None
    return metrics.figures.connections, metrics.figures.messages_out


class Sampler:
    """Read everything at the start of publishing and at the end of the drain."""

    def __init__(self, settings: Settings, processes: list[tuple[str, str, int | None]]) -> None:
        self.watched = [_Watched(name, kind, pid) for name, kind, pid in processes]
        self.watched += _cluster_processes(settings)
        self.started = 0.0
        self.machine0 = (0.0, 0.0)
        self.extra: list[Observation] = []

    def add(self, observation: Observation) -> None:
        """A process measured by its owner (the HTTP publisher exits before the end)."""
        self.extra.append(observation)

    def start(self) -> None:
        self.started = time.monotonic()
        self.machine0 = machine_busy()
        for item in self.watched:
            item.cpu0 = cpu_seconds(item.pid) if item.pid else None
            if item.metrics is not None:
                item.connections, item.messages0 = _messages_out(item.metrics)

    def stop(self) -> tuple[list[Observation], float | None]:
        """Each process's share of one core over the window, and the machine's (all cores)."""
        wall = max(time.monotonic() - self.started, 1e-9)
        busy1, total1 = machine_busy()
        busy0, total0 = self.machine0
        machine = 100 * (busy1 - busy0) / (total1 - total0) if total1 > total0 else None
        observed = []
        for item in self.watched:
            cpu1 = cpu_seconds(item.pid) if item.pid else None
            percent = None
            if cpu1 is not None and item.cpu0 is not None:
                percent = round(100 * (cpu1 - item.cpu0) / wall, 1)
            messages = None
            if item.metrics is not None:
                _, after = _messages_out(item.metrics)
                if after is not None and item.messages0 is not None:
                    messages = after - item.messages0
            observed.append(
                Observation(
                    item.name,
                    item.kind,
                    item.pid,
                    percent,
                    rss_mb(item.pid) if item.pid else None,
                    item.connections,
                    messages,
                )
            )
        return observed + self.extra, machine


def _cluster_processes(settings: Settings) -> list[_Watched]:
    """A cluster's nodes (with /metrics), front doors and bus; PIDs when rtctl started it here."""
    if not settings.is_cluster:
        return []
    from rtctl.runtime import cluster, native

    recorded = cluster.read_state(native.state_dir(settings))
    plan = recorded.plan if recorded is not None else cluster.plan(settings)
    watched = []
    for node in plan.nodes:
        running = recorded.nodes.get(node.name) if recorded is not None else None
        watched.append(
            _Watched(
                node.name,
                "node",
                running.pid if running else None,
                cluster.node_settings(settings, node) if settings.metrics_enabled else None,
            )
        )
    if recorded is not None:
        for k, proc in enumerate(recorded.front_doors, start=1):
            watched.append(_Watched(f"front-door-{k}", "front-door", proc.pid if proc else None))
        if recorded.bus is not None:
            watched.append(_Watched("bus", "bus", recorded.bus.pid))
    return watched
