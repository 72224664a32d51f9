"""The arithmetic of `rtctl bench`: options, what each worker measured, and the one report.

Pure: no sockets, no processes, no clock reads; unit-tested on its own. The runner
(``runner.py``) fills ``WorkerResult``s and ``Observation``s; ``build_report`` merges them into
the JSON-ready report the CLI prints, and names the process that limited the run.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rtctl.errors import InvalidInput

CHANNEL_TYPES = ("public", "private", "presence")
PUBLISH_MODES = ("http", "client")
PUSHER_CLIENT_EVENT_LIMIT = 10.0  # Pusher's client events per second per connection
SATURATED_CPU_PERCENT = 90.0  # of one core: Soketi, HAProxy (one thread) and each worker
MAX_WORKERS = 32


@dataclass(frozen=True)
class BenchOptions:
    connections: int = 100
    channels: int = 10
    channel_type: str = "public"
    rate: float = 100.0  # events per second, all channels together
    duration: float = 10.0  # seconds of publishing
    payload_size: int = 100  # bytes of the event's data string
    publish: str = "http"
    ramp: float = 500.0  # new connections per second (all workers together)
    drain: float = 5.0  # seconds to wait for stragglers after the last publish
    connect_timeout: float = 10.0  # per connection: handshake + connection_established + subscribe
    workers: int = 1  # processes holding the subscribers (one report)
    direct: bool = False  # subscribers straight to a cluster's nodes instead of the front door


def check_options(options: BenchOptions) -> None:
    """Refuse combinations that cannot produce a meaningful run, before opening anything."""
    if options.channel_type not in CHANNEL_TYPES:
        raise InvalidInput(
            f"--channel-type must be one of {', '.join(CHANNEL_TYPES)}, not {options.channel_type!r}",
            hint="public needs no auth; private and presence are signed locally with the secret",
        )
    if options.publish not in PUBLISH_MODES:
        raise InvalidInput(
            f"--publish must be http or client, not {options.publish!r}",
            hint="http publishes through the REST API; client sends client-* events over a socket",
        )
    if options.publish == "client" and options.channel_type == "public":
        raise InvalidInput(
            "client events need private or presence channels",
            hint="add --channel-type private (Pusher refuses client events on public channels)",
        )
    if options.channels > options.connections:
        raise InvalidInput(
            f"--channels {options.channels} is more than --connections {options.connections}",
            hint="every channel needs at least one subscriber",
        )
    if options.connections < 1 or options.channels < 1:
        raise InvalidInput("--connections and --channels must be at least 1", hint=None)
    if options.rate <= 0 or options.duration <= 0:
        raise InvalidInput("--rate and --duration must be positive", hint=None)
    for flag, value in (
        ("--rate", options.rate),
        ("--duration", options.duration),
        ("--ramp", options.ramp),
        ("--drain", options.drain),
        ("--timeout", options.connect_timeout),
    ):
        if not math.isfinite(value) or value < 0:  # inf would crash the publisher's pacing
            raise InvalidInput(f"{flag} must be a finite number, not {value}", hint=None)
    if not 1 <= options.workers <= MAX_WORKERS:
        raise InvalidInput(f"--workers must be 1 to {MAX_WORKERS}", hint=None)
    if options.workers > options.connections:
        raise InvalidInput(
            f"--workers {options.workers} is more than --connections {options.connections}",
            hint="every worker needs at least one subscriber",
        )


def percentiles(samples: Sequence[float]) -> dict[str, float | None]:
    """p50/p90/p95/p99/max in the samples' unit (nearest-rank), None when there are none."""
    keys = ("p50", "p90", "p95", "p99")
    if not samples:
        return {**dict.fromkeys(keys), "max": None, "mean": None}
    ordered = sorted(samples)
    count = len(ordered)
    result: dict[str, float | None] = {}
    for key in keys:
        rank = max(1, math.ceil(int(key[1:]) / 100 * count))
        result[key] = round(ordered[rank - 1], 3)
    result["max"] = round(ordered[-1], 3)
    result["mean"] = round(sum(ordered) / count, 3)
    return result


def expected_deliveries(attempted: Sequence[int], ready: Sequence[int]) -> int:
    """Each event published on a channel is owed to every subscriber ready on it."""
    return sum(a * n for a, n in zip(attempted, ready, strict=True))


# --- what each worker measured ------------------------------------------------------------------


@dataclass
class WorkerResult:
    """One worker process's subscribers: counters, samples and its own CPU."""

    index: int
    pid: int
    connections: int  # subscribers assigned
    connected: int = 0
    subscribed: int = 0
    received: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    dropped: int = 0
    connect_failures: dict[str, int] = field(default_factory=dict)
    closes: dict[str, int] = field(default_factory=dict)
    pusher_errors: dict[str, int] = field(default_factory=dict)
    ready: list[list[int]] = field(default_factory=list)  # [target][channel] ready subscribers
    received_by_target: list[int] = field(default_factory=list)
    connect_ms: array[float] = field(default_factory=lambda: array("d"))
    subscribe_ms: array[float] = field(default_factory=lambda: array("d"))
    latency_ms: list[array[float]] = field(default_factory=list)  # per target
    cpu_seconds: float = 0.0
    cpu_seconds_publishing: float = 0.0  # from the first publish to the end of the drain
    publishing_seconds: float = 0.0  # that window's wall time
    max_rss_mb: float = 0.0
    source_address: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """A picklable dict with the samples as bytes (arrays of doubles)."""
        data = {k: v for k, v in self.__dict__.items() if not isinstance(v, (array, list))}
        data.update(
            ready=self.ready,
            received_by_target=self.received_by_target,
            connect_ms=self.connect_ms.tobytes(),
            subscribe_ms=self.subscribe_ms.tobytes(),
            latency_ms=[samples.tobytes() for samples in self.latency_ms],
        )
        return data

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> WorkerResult:
        def doubles(raw: bytes) -> array[float]:
            values = array("d")
            values.frombytes(raw)
            return values

        fields = dict(data)
        fields["connect_ms"] = doubles(data["connect_ms"])
        fields["subscribe_ms"] = doubles(data["subscribe_ms"])
        fields["latency_ms"] = [doubles(raw) for raw in data["latency_ms"]]
        return cls(**fields)


@dataclass
class PublishResult:
    mode: str
    attempted: list[int]  # per channel
    accepted: int
    failures: dict[str, int]
    seconds: float
    cpu_percent: float | None = None  # the HTTP publisher process


@dataclass(frozen=True)
class Observation:
    """A process seen from outside during the publishing window (``/proc``, ``/metrics``)."""

    name: str  # node-1, front-door-1, bus, worker-0, publisher
    kind: str  # node | front-door | bus | worker | publisher
    pid: int | None
    cpu_percent: float | None  # of one core, over the publishing window
    rss_mb: float | None = None
    connections: int | None = None  # node: soketi_connected; front door: current sessions
    messages_out: int | None = None  # node: WebSocket messages sent during the window


@dataclass(frozen=True)
class Target:
    name: str  # front-door, or node-i with --direct
    url: str


def limiting_process(
    observed: Iterable[Observation], machine_percent: float | None, cores: int
) -> dict[str, Any]:
    """The process that limited the run: the busiest one at or over 90 % of a core; else the
    whole machine when every core was busy; else nothing reached a limit."""
    busy = sorted(
        (o for o in observed if o.cpu_percent is not None),
        key=lambda o: o.cpu_percent or 0.0,
        reverse=True,
    )
    saturated = [o for o in busy if (o.cpu_percent or 0.0) >= SATURATED_CPU_PERCENT]
    if saturated:
        top = saturated[0]
        others = ", ".join(f"{o.name} {o.cpu_percent:.0f}%" for o in saturated[1:])
        return {
            "process": top.name,
            "kind": top.kind,
            "cpu_percent": top.cpu_percent,
            "reason": f"{top.name} used {top.cpu_percent:.0f}% of one core while publishing"
            + (f" (also saturated: {others})" if others else ""),
        }
    if machine_percent is not None and machine_percent >= SATURATED_CPU_PERCENT:
        return {
            "process": "machine",
            "kind": "machine",
            "cpu_percent": machine_percent,
            "reason": f"every core was busy ({machine_percent:.0f}% of {cores} cores): the "
            "processes share too few cores; a bigger machine, not another process, is the fix",
        }
    top_text = f"; busiest: {busy[0].name} {busy[0].cpu_percent:.0f}%" if busy else ""
    return {
        "process": None,
        "kind": None,
        "cpu_percent": None,
        "reason": "no process was saturated: this load is below every limit" + top_text,
    }


# --- the report ----------------------------------------------------------------------------------


def build_report(
    *,
    target: str,
    options: BenchOptions,
    run_id: str,
    targets: Sequence[Target],
    workers: Sequence[WorkerResult],
    publish: PublishResult,
    observed: Sequence[Observation],
    machine_percent: float | None,
    cores: int,
    wall: float,
    thresholds: dict[str, float | None],
) -> dict[str, Any]:
    """Merge the workers' results and the observations into the one report."""
    channels = options.channels
    ready_by_target = [
        [sum(w.ready[t][c] for w in workers if w.ready) for c in range(channels)]
        for t in range(len(targets))
    ]
    ready = [sum(row[c] for row in ready_by_target) for c in range(channels)]
    expected = expected_deliveries(publish.attempted, ready) if any(ready) else 0
    received = sum(w.received for w in workers)
    latency_all: array[float] = array("d")
    for worker in workers:
        for samples in worker.latency_ms:
            latency_all.extend(samples)
    connect_ms: array[float] = array("d")
    subscribe_ms: array[float] = array("d")
    for worker in workers:
        connect_ms.extend(worker.connect_ms)
        subscribe_ms.extend(worker.subscribe_ms)
    failures = Counter[str]()
    closes = Counter[str]()
    errors = Counter[str]()
    for worker in workers:
        failures.update(worker.connect_failures)
        closes.update(worker.closes)
        errors.update(worker.pusher_errors)
    attempted = sum(publish.attempted)
    seconds = max(publish.seconds, 1e-9)
    worker_rows: list[dict[str, Any]] = []
    for worker in workers:
        publishing = 100 * worker.cpu_seconds_publishing / max(worker.publishing_seconds, 1e-9)
        worker_rows.append(
            {
                "index": worker.index,
                "pid": worker.pid,
                "connections": worker.connections,
                "subscribed": worker.subscribed,
                "source_address": worker.source_address,
                "cpu_percent": round(100 * worker.cpu_seconds / max(wall, 1e-9), 1),
                "cpu_percent_publishing": round(publishing, 1),
                "max_rss_mb": worker.max_rss_mb,
                "saturated": publishing >= SATURATED_CPU_PERCENT,
            }
        )
    busiest = max(worker_rows, key=lambda row: float(row["cpu_percent_publishing"]))
    report: dict[str, Any] = {
        "target": target,
        "options": asdict(options),
        "run_id": run_id,
        "connections": {
            "requested": options.connections,
            "connected": sum(w.connected for w in workers),
            "subscribed": sum(w.subscribed for w in workers),
            "failed": sum(failures.values()),
            "failures": dict(failures.most_common()),
            "dropped": sum(w.dropped for w in workers),
            "closes": dict(closes.most_common()),
            "connect_ms": percentiles(connect_ms),
            "subscribe_ms": percentiles(subscribe_ms),
        },
        "publish": {
            "mode": publish.mode,
            "sent": attempted,
            "accepted": publish.accepted,
            "failed": sum(publish.failures.values()),
            "failures": dict(Counter(publish.failures).most_common()),
            "target_rate": options.rate,
            "achieved_rate": round(attempted / seconds, 1),
            "seconds": round(publish.seconds, 3),
        },
        "delivery": {
            "expected": expected,
            "received": received,
            "lost": max(0, expected - received),
            "rate": round(received / expected, 6) if expected else 0.0,
            "duplicates": sum(w.duplicates for w in workers),
            "out_of_order": sum(w.out_of_order for w in workers),
            "latency_ms": percentiles(latency_all),
        },
        "errors": dict(errors.most_common()),
        "rtctl": {
            "workers": options.workers,
            "cpu_seconds": round(sum(w.cpu_seconds for w in workers), 3),
            "wall_seconds": round(wall, 3),
            "cpu_percent": busiest["cpu_percent"],
            "cpu_percent_publishing": busiest["cpu_percent_publishing"],
            "publisher_cpu_percent": publish.cpu_percent,
            "max_rss_mb": max(w.max_rss_mb for w in workers),
            "saturated": any(row["saturated"] for row in worker_rows),
            "per_worker": worker_rows,
        },
        "targets": _target_rows(targets, workers, ready_by_target, publish.attempted),
        "processes": [asdict(o) for o in observed],
        "limit": limiting_process(observed, machine_percent, cores),
        "machine": {
            "cores": cores,
            "cpu_percent": None if machine_percent is None else round(machine_percent, 1),
        },
    }
    report["notes"] = notes(options, report)
    report["verdict"] = verdict(report, thresholds)
    return report


def _target_rows(
    targets: Sequence[Target],
    workers: Sequence[WorkerResult],
    ready_by_target: list[list[int]],
    attempted: Sequence[int],
) -> list[dict[str, Any]]:
    """Per node when subscribers connect to nodes directly (one row for the front door else)."""
    rows = []
    for t, target in enumerate(targets):
        expected = expected_deliveries(attempted, ready_by_target[t]) if attempted else 0
        received = sum(w.received_by_target[t] for w in workers if w.received_by_target)
        samples: array[float] = array("d")
        for worker in workers:
            if t < len(worker.latency_ms):
                samples.extend(worker.latency_ms[t])
        stats = percentiles(samples)
        rows.append(
            {
                "name": target.name,
                "url": target.url,
                "subscribers": sum(ready_by_target[t]),
                "expected": expected,
                "received": received,
                "rate": round(received / expected, 6) if expected else 0.0,
                "latency_ms": {k: stats[k] for k in ("p50", "p95", "p99", "max")},
            }
        )
    return rows


def notes(options: BenchOptions, report: dict[str, Any]) -> list[str]:
    """Caveats a reader of the figures needs (limits of Pusher, Soketi, and of this process)."""
    found = []
    per_socket = options.rate / options.channels
    if options.publish == "client" and per_socket > PUSHER_CLIENT_EVENT_LIMIT:
        found.append(
            f"client events at {per_socket:g}/s per publisher socket: Pusher allows "
            f"{PUSHER_CLIENT_EVENT_LIMIT:g}/s per connection (error 4301); Soketi's default is "
            "unlimited"
        )
    members = math.ceil(options.connections / options.channels) + (options.publish == "client")
    if options.channel_type == "presence" and members > 100:
        found.append(
            "Soketi admits 100 members per presence channel by default "
            "(SOKETI_PRESENCE_MAX_MEMBERS); use more channels"
        )
    if report["rtctl"]["saturated"]:
        hint = "use fewer deliveries per second" if options.workers > 1 else "add --workers"
        found.append(
            "rtctl's event loop was saturated while publishing: latency and delivery figures "
            f"describe this load generator as much as the server; {hint}"
        )
    return found


def verdict(report: dict[str, Any], thresholds: dict[str, float | None]) -> dict[str, Any]:
    """Pass or fail against --min-delivery and --max-p99, with one reason per failed gate."""
    min_delivery = thresholds.get("min_delivery")
    max_p99 = thresholds.get("max_p99_ms")
    reasons = []
    connections = report["connections"]
    if connections["subscribed"] < connections["requested"]:
        causes = ", ".join(f"{cause} ×{n}" for cause, n in connections["failures"].items())
        reasons.append(
            f"{connections['requested'] - connections['subscribed']} of "
            f"{connections['requested']} subscribers could not connect or subscribe ({causes})"
        )
    delivery = report["delivery"]
    if min_delivery is not None and (delivery["expected"] == 0 or delivery["rate"] < min_delivery):
        reasons.append(
            f"delivery {delivery['rate'] * 100:.2f}% is under --min-delivery "
            f"{min_delivery * 100:g}% ({delivery['lost']} of {delivery['expected']} lost)"
        )
    p99 = delivery["latency_ms"]["p99"]
    if max_p99 is not None and (p99 is None or p99 > max_p99):
        reasons.append(f"p99 latency {p99} ms is over --max-p99 {max_p99:g} ms")
    return {
        "passed": not reasons,
        "reasons": reasons,
        "min_delivery": min_delivery,
        "max_p99_ms": max_p99,
    }
