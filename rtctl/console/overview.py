"""The console's Overview: what the server is, whether it is healthy, and its recent activity.

A thread samples Soketi's health routes and Prometheus metrics every ``interval`` seconds and keeps
the last ``window`` seconds, so the page's chart has history the moment it opens. Messages per
second are the change of Soketi's message counters between two samples; a counter that went down
(the server restarted) starts a new line instead of a negative rate. Pusher has no health routes
or metrics endpoint: there the Overview shows the configuration and the console's own connection.

On a cluster of Soketis (``settings.is_cluster``) every sample also takes the cluster's status
(the front door, each node with its own metrics, the bus), and the chart sums the nodes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rtctl.config import Settings
    from rtctl.runtime.health import Health

INTERVAL = 2.0
WINDOW = 300.0  # seconds of history kept for the chart


def node_row(
    name: str,
    kind: str,
    address: str,
    healthy: bool | None = None,
    evidence: str | None = None,
    connections: int | None = None,
    messages_in: int | None = None,
    messages_out: int | None = None,
) -> dict[str, Any]:
    """One row of the Overview's Nodes table (``healthy`` None: not known from here)."""
    return {
        "name": name,
        "kind": kind,  # node | front-door | bus | pusher
        "address": address,
        "healthy": healthy,
        "evidence": evidence,
        "connections": connections,
        "messages_in": messages_in,
        "messages_out": messages_out,
    }


def nodes(settings: Settings, timeout: float = 1.5) -> list[dict[str, Any]]:
    """The servers behind the configured endpoint.

    Pusher's cluster does not expose its nodes: one row, without health. One Soketi: one row,
    its health and figures filled in by the sampler. A cluster (``settings.is_cluster``): the
    front door, every node and the bus as `rtctl status` sees them (rtctl.runtime.cluster_status:
    each node's health and its own metrics, the front door's view of it), probed now."""
    if settings.provider == "pusher":
        return [node_row(f"Pusher cluster {settings.cluster}", "pusher", settings.api_base)]
    if not settings.is_cluster:
        return [node_row("soketi", "node", f"{settings.host}:{settings.port}")]
    from rtctl.runtime.cluster_status import status

    return [
        node_row(
            c.name,
            c.kind,
            c.address,
            c.healthy,
            c.evidence,
            c.connections,
            c.messages_in,
            c.messages_out,
        )
        for c in status(settings, timeout).components
    ]


class Sampler:
    def __init__(self, settings: Settings, interval: float = INTERVAL, window: float = WINDOW):
        self.settings = settings
        self.interval = interval
        self.points: deque[dict[str, Any]] = deque(maxlen=max(2, int(window / interval)))
        self.health: dict[str, Any] | None = None
        self.nodes: list[dict[str, Any]] | None = None  # the last sample's Nodes rows
        self.sampled_at: float | None = None
        # (time, messages counter, the nodes it sums): a rate only between like samples
        self._previous: tuple[float, int, tuple[str, ...]] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtctl-console-sample", daemon=True)

    def start(self) -> None:
        if self.settings.health_base is not None:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.sample()
            except Exception as error:  # a sampler that dies would freeze the Overview silently
                self.health = {
                    "healthy": False,
                    "answering": False,
                    "routes": {"sampler": f"failed: {error!r}"},
                    "memory_percent": None,
                    "metrics": None,
                }
            self._stop.wait(max(0.1, self.interval - (time.monotonic() - started)))

    def sample(self) -> None:
        """One sample: health through the configured address, the Nodes rows, and a chart
        point (on a cluster, connections and messages summed over the nodes that answered)."""
        from rtctl.runtime.health import check

        settings = self.settings
        timeout = min(1.5, self.interval)
        result = check(settings, timeout=timeout)
        now = time.time()
        self.health = _health_dict(result)
        self.sampled_at = now
        if settings.is_cluster:
            rows = nodes(settings, timeout)
        else:
            rows = nodes(settings)
            figures = result.metrics.figures if result.metrics is not None else None
            rows[0].update(
                healthy=result.healthy,
                evidence=f"/ready {result.ready.summary()}",
                connections=figures.connections if figures else None,
                messages_in=figures.messages_in if figures else None,
                messages_out=figures.messages_out if figures else None,
            )
        self.nodes = rows
        point: dict[str, Any] = {
            "time": round(now, 3),
            "up": result.healthy,
            "connections": None,
            "messages_per_second": None,
        }
        measured = [r for r in rows if r["kind"] == "node" and r["connections"] is not None]
        if measured:
            counter = sum((r["messages_in"] or 0) + (r["messages_out"] or 0) for r in measured)
            which = tuple(r["name"] for r in measured)
            point["connections"] = sum(r["connections"] for r in measured)
            previous = self._previous
            if (
                previous is not None
                and previous[2] == which
                and counter >= previous[1]
                and now > previous[0]
            ):
                point["messages_per_second"] = round(
                    (counter - previous[1]) / (now - previous[0]), 2
                )
            self._previous = (now, counter, which)
        else:
            self._previous = None
        self.points.append(point)


def _health_dict(health: Health) -> dict[str, Any]:
    metrics = health.metrics
    return {
        "healthy": health.healthy,
        "answering": health.answering,
        "routes": {
            "/": health.root.summary(),
            "/ready": health.ready.summary(),
            "/accept-traffic": "200 accepting traffic"
            if health.accept_traffic.ok
            else health.accept_traffic.summary(),
        },
        "memory_percent": health.memory_percent,
        "metrics": None
        if metrics is None
        else {
            "url": metrics.url,
            "error": metrics.error,
            "connections": metrics.figures.connections if metrics.figures else None,
            "messages_in": metrics.figures.messages_in if metrics.figures else None,
            "messages_out": metrics.figures.messages_out if metrics.figures else None,
        },
    }
