"""The console's Overview: what the server is, whether it is healthy, and its recent activity.

A thread samples Soketi's health routes and Prometheus metrics every ``interval`` seconds and keeps
the last ``window`` seconds, so the page's chart has history the moment it opens. Messages per
second are the change of Soketi's message counters between two samples; a counter that went down
(the server restarted) starts a new line instead of a negative rate. Pusher has no health routes
or metrics endpoint: there the Overview shows the configuration and the console's own connection.
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


def nodes(settings: Settings) -> list[dict[str, Any]]:
    """The servers behind the configured endpoint. One node: rtctl's settings describe a single
    Soketi (or Pusher's cluster, which it does not expose)."""
    if settings.provider == "pusher":
        return [{"name": f"Pusher cluster {settings.cluster}", "url": settings.api_base}]
    return [{"name": f"{settings.host}:{settings.port}", "url": settings.api_base}]


class Sampler:
    def __init__(self, settings: Settings, interval: float = INTERVAL, window: float = WINDOW):
        self.settings = settings
        self.interval = interval
        self.points: deque[dict[str, Any]] = deque(maxlen=max(2, int(window / interval)))
        self.health: dict[str, Any] | None = None
        self.sampled_at: float | None = None
        self._previous: tuple[float, int] | None = None  # (time, messages counter)
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
        from rtctl.runtime.health import check

        result = check(self.settings, timeout=min(1.5, self.interval))
        now = time.time()
        self.health = _health_dict(result)
        self.sampled_at = now
        point: dict[str, Any] = {
            "time": round(now, 3),
            "up": result.healthy,
            "connections": None,
            "messages_per_second": None,
        }
        figures = result.metrics.figures if result.metrics is not None else None
        if figures is not None:
            counter = figures.messages_in + figures.messages_out
            point["connections"] = figures.connections
            previous = self._previous
            if previous is not None and counter >= previous[1] and now > previous[0]:
                point["messages_per_second"] = round(
                    (counter - previous[1]) / (now - previous[0]), 2
                )
            self._previous = (now, counter)
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
