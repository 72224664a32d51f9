"""Load and latency benchmark: N subscribers over C channels, a paced publisher, one report.

Why asyncio ``websockets`` and not websocket-client: one thread per socket does not carry
thousands of subscribers on two cores (see BENCHMARKS.md for the measurement); one event loop
with a task per socket does. Publisher and subscribers live in this one process, so every latency
is measured on one clock (``time.monotonic_ns``): the publisher stamps each event just before it
leaves, the subscriber subtracts on arrival.

Every event carries its channel's sequence number, so each subscriber can tell losses, duplicates
and reordering apart. A subscriber that drops mid-run is not reconnected: its missing events count
as lost deliveries, which is what a user of the measured server would have seen.

No typer, no rich here: the CLI renders the ``progress`` snapshots and the final report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import resource
import secrets
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rtctl.config import Settings
from rtctl.errors import (
    AuthRejected,
    EnvironmentProblem,
    InvalidInput,
    ServerRejected,
    Unreachable,
)
from rtctl.protocol.signing import authorize_channel, compact_json, presence_channel_data
from rtctl.protocol.validation import MAX_EVENTS_PER_BATCH, Event

EVENT_NAME = "rtctl-bench"
CLIENT_EVENT_NAME = "client-rtctl-bench"
CHANNEL_TYPES = ("public", "private", "presence")
PUBLISH_MODES = ("http", "client")
KEEPALIVE_SECONDS = 20.0  # Soketi advertises activity_timeout 30: ping well inside it
PUSHER_CLIENT_EVENT_LIMIT = 10.0  # Pusher's client events per second per connection
PROGRESS_SECONDS = 0.5
FD_HEADROOM = 64  # files besides the sockets: stdio, the publisher's pipes, the HTTP client
SATURATED_CPU_PERCENT = 90.0  # one core: the event loop is single-threaded

Progress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class BenchOptions:
    connections: int = 100
    channels: int = 10
    channel_type: str = "public"
    rate: float = 100.0  # events per second, all channels together
    duration: float = 10.0  # seconds of publishing
    payload_size: int = 100  # bytes of the event's data string
    publish: str = "http"
    ramp: float = 500.0  # new connections per second
    drain: float = 5.0  # seconds to wait for stragglers after the last publish
    connect_timeout: float = 10.0  # per connection: handshake + connection_established + subscribe


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


# --- results ------------------------------------------------------------------------------------


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


@dataclass
class Subscriber:
    index: int
    channel: int
    connected: bool = False
    subscribed: bool = False
    open: bool = False
    received: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    highest: int = -1
    seen: bytearray = field(default_factory=bytearray)  # seen[seq] == 1 once seq arrived
    ws: Any = None


@dataclass
class Run:
    """Mutable counters shared by the tasks and the publisher thread (ints: GIL-safe enough)."""

    options: BenchOptions
    run_id: str
    channel_names: list[str]
    subscribers: list[Subscriber] = field(default_factory=list)
    phase: str = "connecting"
    connect_ms: array[float] = field(default_factory=lambda: array("d"))
    subscribe_ms: array[float] = field(default_factory=lambda: array("d"))
    latency_ms: array[float] = field(default_factory=lambda: array("d"))
    connect_failures: Counter[str] = field(default_factory=Counter)
    closes: Counter[str] = field(default_factory=Counter)
    pusher_errors: Counter[str] = field(default_factory=Counter)
    publish_failures: Counter[str] = field(default_factory=Counter)
    attempted: Sequence[int] = field(default_factory=list)  # per channel: events tried
    published: int = 0  # events the server accepted
    shared_published: Any = None  # the HTTP publisher process's live counter while it runs
    publisher_cpu: float = 0.0  # CPU seconds of the HTTP publisher process
    received: int = 0
    dropped: int = 0  # subscribers whose socket closed after they were subscribed
    ready_per_channel: list[int] = field(default_factory=list)
    publish_started: float = 0.0
    publish_ended: float = 0.0
    drain_ended: float = 0.0
    cpu_at_publish: float = 0.0
    cpu_after_drain: float = 0.0

    @property
    def expected(self) -> int:
        if not self.ready_per_channel:  # still ramping: nothing is expected yet
            return 0
        return sum(a * n for a, n in zip(self.attempted, self.ready_per_channel, strict=True))

    def snapshot(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "connections": self.options.connections,
            "connected": sum(1 for s in self.subscribers if s.connected),
            "subscribed": sum(1 for s in self.subscribers if s.subscribed),
            "open": sum(1 for s in self.subscribers if s.open),
            "failed": sum(self.connect_failures.values()),
            "sent": sum(self.attempted),
            "published": (
                self.shared_published.value if self.shared_published is not None else self.published
            ),
            "expected": self.expected,
            "received": self.received,
            "errors": sum(self.pusher_errors.values()) + sum(self.publish_failures.values()),
        }


# --- subscribers --------------------------------------------------------------------------------


def channel_name(kind: str, run_id: str, index: int) -> str:
    prefix = {"public": "", "private": "private-", "presence": "presence-"}[kind]
    return f"{prefix}rtctl-bench-{run_id}-{index}"


def subscribe_frame(settings: Settings, channel: str, socket_id: str, user_id: str) -> str:
    data: dict[str, Any] = {"channel": channel}
    kind = channel.split("-", 1)[0]
    if kind == "presence":
        channel_data = presence_channel_data(user_id)
        data.update(
            authorize_channel(settings.key, settings.secret, socket_id, channel, channel_data)
        )
    elif kind == "private":
        data.update(authorize_channel(settings.key, settings.secret, socket_id, channel))
    return compact_json({"event": "pusher:subscribe", "data": data})


def _failure_cause(error: BaseException) -> str:
    """A short stable name for why a connection could not be opened."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    if isinstance(error, InvalidStatus):
        return f"http_{error.response.status_code}"
    if isinstance(error, ConnectionClosed):
        code = error.rcvd.code if error.rcvd else 1006
        return f"closed_{code}"
    if isinstance(error, (TimeoutError, asyncio.TimeoutError)):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(error, OSError):
        return f"os_error_{error.errno}" if error.errno else "os_error"
    return type(error).__name__


def _decode(frame: str | bytes) -> dict[str, Any]:
    message = json.loads(frame)
    return message if isinstance(message, dict) else {}


def _data(message: dict[str, Any]) -> Any:
    data = message.get("data")
    if isinstance(data, str):
        with contextlib.suppress(ValueError):
            return json.loads(data)
    return data


def _note_pusher_error(run: Run, message: dict[str, Any]) -> None:
    data = _data(message)
    code = data.get("code") if isinstance(data, dict) else None
    run.pusher_errors[str(code)] += 1


class SubscriptionRefused(Exception):
    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


async def _handshake(
    run: Run, settings: Settings, ws: Any, user_id: str, channel: str, started: float
) -> tuple[float, float]:
    """Wait for connection_established, subscribe, wait for subscription_succeeded.

    Returns (connect ms, subscribe ms); raises SubscriptionRefused with the server's code.
    """
    connect_ms = 0.0
    subscribe_started = started
    while True:
        message = _decode(await ws.recv())
        event = message.get("event")
        if event == "pusher:connection_established":
            socket_id = str(_data(message)["socket_id"])
            subscribe_started = time.monotonic()
            connect_ms = (subscribe_started - started) * 1000
            await ws.send(subscribe_frame(settings, channel, socket_id, user_id))
        elif event == "pusher_internal:subscription_succeeded":
            return connect_ms, (time.monotonic() - subscribe_started) * 1000
        elif event == "pusher:subscription_error":
            data = _data(message)
            status = data.get("status") if isinstance(data, dict) else None
            raise SubscriptionRefused(f"subscription_error_{status}")
        elif event == "pusher:error":
            _note_pusher_error(run, message)
            data = _data(message)
            raise SubscriptionRefused(
                f"pusher_error_{data.get('code') if isinstance(data, dict) else None}"
            )


async def _open(
    run: Run, settings: Settings, user_id: str, channel: str
) -> tuple[Any, float, float]:
    """Connect and subscribe within connect_timeout; the socket and its two latencies."""
    from websockets.asyncio.client import connect

    timeout = run.options.connect_timeout
    started = time.monotonic()
    ws = await asyncio.wait_for(
        connect(
            settings.ws_url,
            ping_interval=None,  # keep-alive is pusher:ping (_keepalive)
            compression=None,
            max_size=2**22,
            open_timeout=timeout,
            close_timeout=1,
        ),
        timeout,
    )
    try:
        remaining = max(0.1, timeout - (time.monotonic() - started))
        connect_ms, subscribe_ms = await asyncio.wait_for(
            _handshake(run, settings, ws, user_id, channel, started), remaining
        )
    except BaseException:
        await ws.close()
        raise
    return ws, connect_ms, subscribe_ms


async def _subscriber(
    run: Run, settings: Settings, sub: Subscriber, gate: asyncio.Semaphore
) -> None:
    try:
        async with gate:
            ws, connect_ms, subscribe_ms = await _open(
                run, settings, f"bench-user-{sub.index}", run.channel_names[sub.channel]
            )
    except SubscriptionRefused as refused:
        run.connect_failures[refused.cause] += 1
        return
    except Exception as error:
        run.connect_failures[_failure_cause(error)] += 1
        return
    run.connect_ms.append(connect_ms)
    run.subscribe_ms.append(subscribe_ms)
    sub.connected = sub.subscribed = sub.open = True
    sub.ws = ws
    try:
        await _read(run, sub, ws)
    finally:
        sub.open = False
        sub.ws = None
        await ws.close()


async def _read(run: Run, sub: Subscriber, ws: Any) -> None:
    """Count every bench event this subscriber gets; note the close if the server drops it."""
    from websockets.exceptions import ConnectionClosed

    loads = json.loads
    clock = time.monotonic_ns
    latency = run.latency_ms
    with contextlib.suppress(ConnectionClosed):
        async for frame in ws:
            now = clock()
            message = loads(frame)
            event = message.get("event")
            if event in (EVENT_NAME, CLIENT_EVENT_NAME):
                data = message["data"]
                body = loads(data) if isinstance(data, str) else data
                seq = body["s"]
                latency.append((now - body["t"]) / 1e6)
                seen = sub.seen
                if seq >= len(seen):
                    seen.extend(bytes(seq + 256 - len(seen)))
                if seen[seq]:
                    sub.duplicates += 1
                    continue
                seen[seq] = 1
                sub.received += 1
                run.received += 1
                if seq < sub.highest:
                    sub.out_of_order += 1
                else:
                    sub.highest = seq
            elif event == "pusher:error":
                _note_pusher_error(run, message)
            elif event == "pusher:ping":
                await ws.send('{"event":"pusher:pong","data":{}}')
    # Reached only when the server (or the network) closed the socket, not when we stop it.
    run.closes[str(ws.close_code or 1006)] += 1
    run.dropped += 1


async def _keepalive(run: Run) -> None:
    """pusher:ping each open subscriber every KEEPALIVE_SECONDS, spread over the interval."""
    slices = 20
    tick = 0
    while True:
        await asyncio.sleep(KEEPALIVE_SECONDS / slices)
        for sub in run.subscribers[tick % slices :: slices]:
            if sub.ws is not None:
                with contextlib.suppress(Exception):
                    await sub.ws.send('{"event":"pusher:ping","data":{}}')
        tick += 1


# --- publishers ---------------------------------------------------------------------------------


def event_data(seq: int, size: int) -> str:
    """The event's data string: sequence number, send stamp (ns, monotonic), padding to ``size``."""
    head = f'{{"s":{seq},"t":{time.monotonic_ns()},"p":"'
    return head + "x" * max(0, size - len(head) - 2) + '"}'


def _publish_cause(error: BaseException) -> str:
    code = getattr(error, "code", None)
    status = getattr(error, "status", None)
    if isinstance(code, str):
        return f"{code}_{status}" if status else code
    return type(error).__name__


def _http_publisher(
    settings: Settings,
    options: BenchOptions,
    names: list[str],
    attempted: Any,
    published: Any,
    go: Any,
    stop: Any,
    results: Any,
) -> None:
    """Paced REST publishing in its own process: each tick sends what is due, batched by 10.

    A process, not a thread: the requests are synchronous, and a thread would wait for the GIL
    behind the event loop that reads thousands of sockets (it managed ~240 events/s that way).
    CLOCK_MONOTONIC is system-wide, so its send stamps compare with the subscribers' clock.
    One publisher keeps each channel's events in order. ``attempted``/``published`` are shared
    counters only this process writes; the failures and the timing come back through ``results``.
    """
    from rtctl.protocol.httpapi import ApiClient

    failures: Counter[str] = Counter()
    seqs = [0] * len(names)
    channel = 0
    sent = 0
    with ApiClient(settings, timeout=5.0) as client:
        go.wait()
        started = time.monotonic()
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if elapsed >= options.duration:
                break
            due = min(int(elapsed * options.rate) + 1 - sent, MAX_EVENTS_PER_BATCH)
            if due <= 0:
                time.sleep(min(0.05, (sent - elapsed * options.rate) / options.rate))
                continue
            batch = []
            for _ in range(due):
                data = event_data(seqs[channel], options.payload_size)
                batch.append(Event((names[channel],), EVENT_NAME, data))
                seqs[channel] += 1
                attempted[channel] += 1
                channel = (channel + 1) % len(names)
            sent += due
            try:
                if len(batch) == 1:
                    client.trigger(batch[0])
                else:
                    client.trigger_batch(batch)
                published.value += len(batch)
            except Exception as error:
                failures[_publish_cause(error)] += len(batch)
    results.put({"failures": dict(failures), "started": started, "ended": time.monotonic()})


class _PublisherProcess:
    """The HTTP publisher's child process, started early (during the ramp) so it is warm."""

    def __init__(self, run: Run, settings: Settings) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self.attempted = context.Array("q", len(run.channel_names), lock=False)
        self.published = context.Value("q", 0, lock=False)
        self.go, self.stop, self.results = context.Event(), context.Event(), context.Queue()
        self.process = context.Process(
            target=_http_publisher,
            args=(
                settings,
                run.options,
                run.channel_names,
                self.attempted,
                self.published,
                self.go,
                self.stop,
                self.results,
            ),
            daemon=True,
            name="rtctl-bench-publisher",
        )
        self.children_cpu = _children_cpu()
        self.process.start()

    async def publish(self, run: Run) -> None:
        import queue

        run.attempted = self.attempted  # live counters for the progress view
        run.shared_published = self.published
        self.go.set()
        run.publish_started = time.monotonic()
        deadline = run.publish_started + run.options.duration + 30
        while self.process.is_alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        try:
            result = self.results.get(timeout=5)
        except queue.Empty:
            run.publish_failures["publisher_died"] += 1
            result = {"failures": {}, "started": run.publish_started, "ended": time.monotonic()}
        self.close()
        run.attempted = list(self.attempted)
        run.published = self.published.value
        run.shared_published = None
        run.publish_failures.update(result["failures"])
        run.publish_started, run.publish_ended = result["started"], result["ended"]
        run.publisher_cpu = _children_cpu() - self.children_cpu

    def close(self) -> None:
        self.stop.set()
        self.go.set()
        self.process.join(timeout=10)
        if self.process.is_alive():  # our own child, by its PID
            self.process.kill()
            self.process.join(timeout=5)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _client_publisher(
    run: Run, settings: Settings, channel: int, rate: float, start: asyncio.Event
) -> None:
    """One socket per channel sending client events at ``rate``; not a subscriber (no echo)."""
    name = run.channel_names[channel]
    options = run.options
    ws = None
    try:
        ws, _, _ = await _open(run, settings, f"bench-publisher-{channel}", name)
    except SubscriptionRefused as refused:
        run.connect_failures[f"publisher_{refused.cause}"] += 1
    except Exception as error:
        run.connect_failures[f"publisher_{_failure_cause(error)}"] += 1
    await start.wait()
    attempted = run.attempted
    assert isinstance(attempted, list)
    started = time.monotonic()
    sent = 0
    try:
        while True:
            elapsed = time.monotonic() - started
            if elapsed >= options.duration:
                break
            due = int(elapsed * rate) + 1 - sent
            if due <= 0:
                await asyncio.sleep((sent - elapsed * rate) / rate)
                continue
            for _ in range(due):
                seq = sent
                sent += 1
                attempted[channel] += 1
                if ws is None:
                    run.publish_failures["publisher_not_connected"] += 1
                    continue
                frame = compact_json(
                    {
                        "event": CLIENT_EVENT_NAME,
                        "channel": name,
                        "data": event_data(seq, options.payload_size),
                    }
                )
                try:
                    await ws.send(frame)
                    run.published += 1
                except Exception as error:
                    run.publish_failures[f"send_{_failure_cause(error)}"] += 1
            await asyncio.sleep(0)  # let the readers run between bursts
        run.publish_ended = max(run.publish_ended, time.monotonic())
    finally:
        if ws is not None:
            await ws.close()


# --- the run ------------------------------------------------------------------------------------


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft open-files limit to the hard one: each socket is a file descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


async def _progress_loop(run: Run, progress: Progress) -> None:
    while True:
        progress(run.snapshot())
        await asyncio.sleep(PROGRESS_SECONDS)


async def _settle(run: Run) -> None:
    """Wait until every subscriber is subscribed or has failed (each is bounded by its timeout)."""
    deadline = time.monotonic() + run.options.connect_timeout + 2
    while time.monotonic() < deadline:
        failed = sum(run.connect_failures.values())
        subscribed = sum(1 for s in run.subscribers if s.subscribed)
        if subscribed + failed >= len(run.subscribers):
            return
        await asyncio.sleep(0.05)


async def _run(run: Run, settings: Settings, progress: Progress | None) -> None:
    options = run.options
    background = [asyncio.create_task(_keepalive(run))]
    if progress is not None:
        background.append(asyncio.create_task(_progress_loop(run, progress)))
    gate = asyncio.Semaphore(200)  # handshakes in flight
    tasks: list[asyncio.Task[None]] = []
    publishers: list[asyncio.Task[None]] = []
    http_publisher: _PublisherProcess | None = None
    try:
        # 1. Ramp: open subscribers at `ramp` per second, at most 200 handshakes in flight.
        start_publishing = asyncio.Event()
        if options.publish == "http":
            http_publisher = _PublisherProcess(run, settings)
        if options.publish == "client":
            per_channel = options.rate / len(run.channel_names)
            publishers = [
                asyncio.create_task(
                    _client_publisher(run, settings, i, per_channel, start_publishing)
                )
                for i in range(len(run.channel_names))
            ]
        started = time.monotonic()
        for sub in run.subscribers:
            delay = started + sub.index / options.ramp - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_subscriber(run, settings, sub, gate)))
        await _settle(run)
        run.ready_per_channel = [0] * len(run.channel_names)
        for sub in run.subscribers:
            if sub.subscribed and sub.open:
                run.ready_per_channel[sub.channel] += 1
        if not any(run.ready_per_channel):
            raise _nothing_connected(run, settings)

        # 2. Publish for `duration` seconds.
        run.phase = "publishing"
        run.cpu_at_publish = time.process_time()
        if http_publisher is not None:
            await http_publisher.publish(run)
        else:
            run.publish_started = time.monotonic()
            start_publishing.set()
            await asyncio.gather(*publishers, return_exceptions=True)

        # 3. Drain: wait for stragglers, unless every subscriber is gone.
        run.phase = "draining"
        drain_until = time.monotonic() + options.drain
        while time.monotonic() < drain_until and run.received < run.expected:
            if not any(s.open for s in run.subscribers):
                break
            await asyncio.sleep(0.02)
        run.cpu_after_drain = time.process_time()
        run.drain_ended = time.monotonic()
        run.phase = "done"
        if progress is not None:
            progress(run.snapshot())
    finally:
        if http_publisher is not None:
            http_publisher.close()
        for task in (*background, *tasks, *publishers):
            task.cancel()
        await asyncio.gather(*background, *tasks, *publishers, return_exceptions=True)


def _nothing_connected(run: Run, settings: Settings) -> Exception:
    causes = ", ".join(f"{cause} ×{n}" for cause, n in run.connect_failures.most_common())
    target = settings.ws_url.split("?")[0]
    if any(cause.startswith("subscription_error_401") for cause in run.connect_failures):
        return AuthRejected(
            f"every subscription was refused ({causes})",
            hint="PUSHER_APP_KEY/PUSHER_APP_SECRET must match the server's app (`rtctl doctor`)",
        )
    if any(
        cause.startswith(("pusher_error_4001", "closed_4001")) for cause in run.connect_failures
    ):
        return AuthRejected(
            f"the server does not know app key {settings.key!r} ({causes})",
            hint="PUSHER_APP_KEY must match the server's app (`rtctl doctor`)",
        )
    if any(
        cause.startswith(("subscription_error", "pusher_error")) for cause in run.connect_failures
    ):
        return ServerRejected(
            f"no subscriber could subscribe ({causes})",
            hint="the causes above are the server's own codes (protocol §1.5)",
        )
    return Unreachable(
        f"no subscriber could connect to {target} ({causes})",
        hint="is the server running? `rtctl status` shows it, `rtctl up` starts one",
    )


def run_bench(
    settings: Settings,
    options: BenchOptions,
    progress: Progress | None = None,
    thresholds: dict[str, float | None] | None = None,
) -> dict[str, Any]:
    """Run one benchmark and return its report (a JSON-ready dict). Blocks until done."""
    check_options(options)
    soft, _ = raise_fd_limit()
    needed = options.connections + options.channels + FD_HEADROOM
    if soft != resource.RLIM_INFINITY and needed > soft:
        raise EnvironmentProblem(
            f"--connections {options.connections} needs about {needed} open files; "
            f"this process may open {soft}",
            hint="raise the hard limit (`ulimit -Hn`, systemd LimitNOFILE) or use fewer connections",
        )
    run_id = secrets.token_hex(4)
    names = [channel_name(options.channel_type, run_id, i) for i in range(options.channels)]
    run = Run(options=options, run_id=run_id, channel_names=names)
    run.subscribers = [
        Subscriber(index=i, channel=i % options.channels) for i in range(options.connections)
    ]
    run.attempted = [0] * options.channels
    cpu_start = time.process_time()
    wall_start = time.monotonic()
    asyncio.run(_run(run, settings, progress))
    cpu = time.process_time() - cpu_start
    wall = time.monotonic() - wall_start
    return build_report(run, settings, cpu, wall, thresholds or {})


def build_report(
    run: Run, settings: Settings, cpu: float, wall: float, thresholds: dict[str, float | None]
) -> dict[str, Any]:
    options = run.options
    attempted = sum(run.attempted)
    expected = run.expected
    publish_seconds = max(run.publish_ended - run.publish_started, 1e-9)
    latency = percentiles(run.latency_ms)
    delivery_rate = run.received / expected if expected else 0.0
    cpu_percent = round(100 * cpu / wall, 1) if wall else 0.0
    busy = run.drain_ended - run.publish_started
    publishing_cpu = (
        round(100 * (run.cpu_after_drain - run.cpu_at_publish) / busy, 1) if busy > 0 else 0.0
    )
    report: dict[str, Any] = {
        "target": settings.ws_url.split("?")[0].rsplit("/app/", 1)[0],
        "options": asdict(options),
        "run_id": run.run_id,
        "connections": {
            "requested": options.connections,
            "connected": sum(1 for s in run.subscribers if s.connected),
            "subscribed": sum(1 for s in run.subscribers if s.subscribed),
            "failed": sum(run.connect_failures.values()),
            "failures": dict(run.connect_failures.most_common()),
            "dropped": run.dropped,
            "closes": dict(run.closes.most_common()),
            "connect_ms": percentiles(run.connect_ms),
            "subscribe_ms": percentiles(run.subscribe_ms),
        },
        "publish": {
            "mode": options.publish,
            "sent": attempted,
            "accepted": run.published,
            "failed": sum(run.publish_failures.values()),
            "failures": dict(run.publish_failures.most_common()),
            "target_rate": options.rate,
            "achieved_rate": round(attempted / publish_seconds, 1),
            "seconds": round(publish_seconds, 3),
        },
        "delivery": {
            "expected": expected,
            "received": run.received,
            "lost": max(0, expected - run.received),
            "rate": round(delivery_rate, 6),
            "duplicates": sum(s.duplicates for s in run.subscribers),
            "out_of_order": sum(s.out_of_order for s in run.subscribers),
            "latency_ms": latency,
        },
        "errors": dict(run.pusher_errors.most_common()),
        "rtctl": {
            "cpu_seconds": round(cpu, 3),
            "wall_seconds": round(wall, 3),
            "cpu_percent": cpu_percent,
            "cpu_percent_publishing": publishing_cpu,
            "publisher_cpu_percent": round(100 * run.publisher_cpu / max(publish_seconds, 1e-9), 1),
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "saturated": publishing_cpu >= SATURATED_CPU_PERCENT,
            "pid": os.getpid(),
        },
    }
    report["notes"] = notes(options, report)
    report["verdict"] = verdict(report, thresholds)
    return report


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
        found.append(
            "rtctl's event loop was saturated while publishing: latency and delivery figures "
            "describe this load generator as much as the server; use fewer deliveries per second"
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
