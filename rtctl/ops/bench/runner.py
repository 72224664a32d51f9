"""Running `rtctl bench`: worker processes hold the subscribers, one publisher sends, one report.

Why processes and asyncio ``websockets``: one thread per socket does not carry thousands of
subscribers on two cores, one event loop with a task per socket does (BENCHMARKS.md); and one
process is capped by its open-files limit (about 19,000 sockets) and by one core (about 30,000
deliveries per second), so ``--workers N`` spreads the subscribers over N processes. Every
latency is measured on one clock: CLOCK_MONOTONIC is system-wide, so the publisher's stamp (taken
just before an event leaves) and a worker's arrival time compare across processes.

Every event carries its channel's sequence number, so each subscriber can tell losses,
duplicates and reordering apart. A subscriber that drops mid-run is not reconnected: its missing
events count as lost deliveries, which is what a user of the measured server would have seen.

The coordinator (the calling process) talks to each worker over a pipe: the worker ramps and
reports ``ready`` (who is subscribed on which channel), publishes on ``go`` when it owns client
publishers, drains on ``drain`` (it then knows how many events each channel got) and sends its
``result``. Several workers on a loopback target each connect from their own source address
(127.0.0.1, 127.0.0.2, ...), so no worker runs out of ephemeral ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import multiprocessing
import os
import resource
import secrets
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from rtctl.config import Settings
from rtctl.errors import (
    AuthRejected,
    EnvironmentProblem,
    ServerRejected,
    Unreachable,
    UsageError,
)
from rtctl.ops.bench.report import (
    BenchOptions,
    Observation,
    PublishResult,
    Target,
    WorkerResult,
    build_report,
    check_options,
    expected_deliveries,
)
from rtctl.protocol.signing import authorize_channel, compact_json, presence_channel_data
from rtctl.protocol.validation import MAX_EVENTS_PER_BATCH, Event

EVENT_NAME = "rtctl-bench"
CLIENT_EVENT_NAME = "client-rtctl-bench"
KEEPALIVE_SECONDS = 20.0  # Soketi advertises activity_timeout 30: ping well inside it
PROGRESS_SECONDS = 0.5
FD_HEADROOM = 64  # files besides the sockets: stdio, pipes, the HTTP client
HANDSHAKES_IN_FLIGHT = 200  # per worker

Progress = Callable[[dict[str, Any]], None]


def channel_name(kind: str, run_id: str, index: int) -> str:
    prefix = {"public": "", "private": "private-", "presence": "presence-"}[kind]
    return f"{prefix}rtctl-bench-{run_id}-{index}"


def event_data(seq: int, size: int) -> str:
    """The event's data string: sequence number, send stamp (ns, monotonic), padding to ``size``."""
    head = f'{{"s":{seq},"t":{time.monotonic_ns()},"p":"'
    return head + "x" * max(0, size - len(head) - 2) + '"}'


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


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft open-files limit to the hard one: each socket is a file descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def source_address(url: str, worker: int, workers: int) -> str | None:
    """127.0.0.<1+worker> for a loopback IPv4 target when several workers share it, else None."""
    if workers == 1:
        return None
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.version != 4 or not address.is_loopback or worker > 250:
        return None
    return f"127.0.0.{1 + worker}"


# === inside a worker process ====================================================================


@dataclass
class _Sub:
    index: int
    channel: int
    target: int
    connected: bool = False
    subscribed: bool = False
    open: bool = False
    highest: int = -1
    seen: bytearray = field(default_factory=bytearray)  # seen[seq] == 1 once seq arrived
    ws: Any = None


class SubscriptionRefused(Exception):
    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


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


class _Worker:
    """One process's subscribers (and its client publishers), driven by the coordinator."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.settings: Settings = job["settings"]
        self.options: BenchOptions = job["options"]
        self.targets: list[Settings] = job["targets"]
        self.names: list[str] = job["names"]
        self.publisher_channels: list[int] = job["publisher_channels"]
        self.source: str | None = job["source"]
        first, last = job["subscribers"]
        count = len(self.targets)
        self.subs = [
            _Sub(i, i % self.options.channels, (i // self.options.channels) % count)
            for i in range(first, last)
        ]
        self.result = WorkerResult(
            index=job["index"],
            pid=os.getpid(),
            connections=last - first,
            received_by_target=[0] * count,
            latency_ms=[array("d") for _ in range(count)],
            source_address=self.source,
        )
        self.failures: Counter[str] = Counter()
        self.closes: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.attempted = [0] * self.options.channels  # this worker's client publishers
        self.published = 0
        self.publish_failures: Counter[str] = Counter()
        self.publish_started = 0.0
        self.publish_ended = 0.0
        self.phase = "connecting"

    def snapshot(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "connected": sum(1 for s in self.subs if s.connected),
            "subscribed": sum(1 for s in self.subs if s.subscribed),
            "open": sum(1 for s in self.subs if s.open),
            "failed": sum(self.failures.values()),
            "received": self.result.received,
            "sent": sum(self.attempted),
            "errors": sum(self.errors.values()) + sum(self.publish_failures.values()),
        }

    # --- sockets ---------------------------------------------------------------------------------

    async def open(self, target: int, user_id: str, channel: str) -> tuple[Any, float, float]:
        """Connect and subscribe within connect_timeout; the socket and its two latencies."""
        from websockets.asyncio.client import connect

        settings = self.targets[target]
        timeout = self.options.connect_timeout
        started = time.monotonic()
        extra: dict[str, Any] = {"local_addr": (self.source, 0)} if self.source else {}
        ws = await asyncio.wait_for(
            connect(
                settings.ws_url,
                ping_interval=None,  # keep-alive is pusher:ping (_keepalive)
                compression=None,
                max_size=2**22,
                open_timeout=timeout,
                close_timeout=1,
                **extra,
            ),
            timeout,
        )
        try:
            remaining = max(0.1, timeout - (time.monotonic() - started))
            connect_ms, subscribe_ms = await asyncio.wait_for(
                self.handshake(settings, ws, user_id, channel, started), remaining
            )
        except BaseException:
            await ws.close()
            raise
        return ws, connect_ms, subscribe_ms

    async def handshake(
        self, settings: Settings, ws: Any, user_id: str, channel: str, started: float
    ) -> tuple[float, float]:
        """connection_established, subscribe, subscription_succeeded: (connect ms, subscribe ms)."""
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
                self.note_error(message)
                data = _data(message)
                raise SubscriptionRefused(
                    f"pusher_error_{data.get('code') if isinstance(data, dict) else None}"
                )

    def note_error(self, message: dict[str, Any]) -> None:
        data = _data(message)
        code = data.get("code") if isinstance(data, dict) else None
        self.errors[str(code)] += 1

    async def subscriber(self, sub: _Sub, gate: asyncio.Semaphore) -> None:
        try:
            async with gate:
                ws, connect_ms, subscribe_ms = await self.open(
                    sub.target, f"bench-user-{sub.index}", self.names[sub.channel]
                )
        except SubscriptionRefused as refused:
            self.failures[refused.cause] += 1
            return
        except Exception as error:
            self.failures[_failure_cause(error)] += 1
            return
        self.result.connect_ms.append(connect_ms)
        self.result.subscribe_ms.append(subscribe_ms)
        sub.connected = sub.subscribed = sub.open = True
        sub.ws = ws
        try:
            await self.read(sub, ws)
        finally:
            sub.open = False
            sub.ws = None
            await ws.close()

    async def read(self, sub: _Sub, ws: Any) -> None:
        """Count every bench event this subscriber gets; note the close if the server drops it."""
        from websockets.exceptions import ConnectionClosed

        loads = json.loads
        clock = time.monotonic_ns
        latency = self.result.latency_ms[sub.target]
        result = self.result
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
                        result.duplicates += 1
                        continue
                    seen[seq] = 1
                    result.received += 1
                    result.received_by_target[sub.target] += 1
                    if seq < sub.highest:
                        result.out_of_order += 1
                    else:
                        sub.highest = seq
                elif event == "pusher:error":
                    self.note_error(message)
                elif event == "pusher:ping":
                    await ws.send('{"event":"pusher:pong","data":{}}')
        # Reached only when the server (or the network) closed the socket, not when we stop it.
        self.closes[str(ws.close_code or 1006)] += 1
        result.dropped += 1

    async def keepalive(self) -> None:
        """pusher:ping each open subscriber every KEEPALIVE_SECONDS, spread over the interval."""
        slices = 20
        tick = 0
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS / slices)
            for sub in self.subs[tick % slices :: slices]:
                if sub.ws is not None:
                    with contextlib.suppress(Exception):
                        await sub.ws.send('{"event":"pusher:ping","data":{}}')
            tick += 1

    async def client_publisher(self, channel: int, rate: float, start: asyncio.Event) -> None:
        """One socket per channel sending client events at ``rate``; not a subscriber (no echo)."""
        name = self.names[channel]
        options = self.options
        ws = None
        try:
            ws, _, _ = await self.open(0, f"bench-publisher-{channel}", name)
        except SubscriptionRefused as refused:
            self.failures[f"publisher_{refused.cause}"] += 1
        except Exception as error:
            self.failures[f"publisher_{_failure_cause(error)}"] += 1
        await start.wait()
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
                    self.attempted[channel] += 1
                    if ws is None:
                        self.publish_failures["publisher_not_connected"] += 1
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
                        self.published += 1
                    except Exception as error:
                        self.publish_failures[f"send_{_failure_cause(error)}"] += 1
                await asyncio.sleep(0)  # let the readers run between bursts
            self.publish_ended = max(self.publish_ended, time.monotonic())
        finally:
            if ws is not None:
                await ws.close()

    # --- the conversation with the coordinator --------------------------------------------------

    async def main(self, conn: Any) -> None:
        options = self.options
        background = [asyncio.create_task(self.keepalive())]
        tasks: list[asyncio.Task[None]] = []
        start_publishing = asyncio.Event()
        per_channel = options.rate / options.channels
        publishers = [
            asyncio.create_task(self.client_publisher(c, per_channel, start_publishing))
            for c in self.publisher_channels
        ]

        async def report_progress() -> None:
            while True:
                conn.send(("progress", self.snapshot()))
                await asyncio.sleep(PROGRESS_SECONDS)

        background.append(asyncio.create_task(report_progress()))
        gate = asyncio.Semaphore(HANDSHAKES_IN_FLIGHT)
        ramp = options.ramp / options.workers
        try:
            started = time.monotonic()
            for k, sub in enumerate(self.subs):
                delay = started + k / ramp - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self.subscriber(sub, gate)))
            await self.settle()
            ready = [[0] * options.channels for _ in self.targets]
            for sub in self.subs:
                if sub.subscribed and sub.open:
                    ready[sub.target][sub.channel] += 1
            self.result.ready = ready
            conn.send(("ready", ready, self.snapshot()))
            if (await _receive(conn))[0] != "go":
                return
            self.phase = "publishing"
            cpu0, wall0 = time.process_time(), time.monotonic()
            self.publish_started = wall0
            start_publishing.set()
            if publishers:
                await asyncio.gather(*publishers, return_exceptions=True)
                conn.send(
                    (
                        "published",
                        {
                            "attempted": self.attempted,
                            "accepted": self.published,
                            "failures": dict(self.publish_failures),
                            "started": self.publish_started,
                            "ended": self.publish_ended or time.monotonic(),
                        },
                    )
                )
            message = await _receive(conn)
            if message[0] != "drain":
                return
            _, attempted, drain = message
            self.phase = "draining"
            own = [sum(row[c] for row in ready) for c in range(options.channels)]
            expected = expected_deliveries(attempted, own)
            until = time.monotonic() + drain
            while time.monotonic() < until and self.result.received < expected:
                if not any(s.open for s in self.subs):
                    break
                await asyncio.sleep(0.02)
            self.result.cpu_seconds_publishing = time.process_time() - cpu0
            self.result.publishing_seconds = time.monotonic() - wall0
            self.phase = "done"
        finally:
            for task in (*background, *tasks, *publishers):
                task.cancel()
            await asyncio.gather(*background, *tasks, *publishers, return_exceptions=True)

    async def settle(self) -> None:
        """Wait until every subscriber is subscribed or has failed (each is bounded)."""
        deadline = time.monotonic() + self.options.connect_timeout + 2
        while time.monotonic() < deadline:
            failed = sum(self.failures.values())
            subscribed = sum(1 for s in self.subs if s.subscribed)
            if subscribed + failed >= len(self.subs):
                return
            await asyncio.sleep(0.05)

    def finish(self) -> WorkerResult:
        result = self.result
        result.connected = sum(1 for s in self.subs if s.connected)
        result.subscribed = sum(1 for s in self.subs if s.subscribed)
        result.connect_failures = dict(self.failures)
        result.closes = dict(self.closes)
        result.pusher_errors = dict(self.errors)
        result.cpu_seconds = time.process_time()
        result.max_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        return result


async def _receive(conn: Any) -> tuple[Any, ...]:
    """The coordinator's next message, without blocking the event loop."""
    while not conn.poll():
        await asyncio.sleep(0.02)
    try:
        return tuple(conn.recv())
    except EOFError:
        return ("stop",)


def _worker_process(conn: Any, job: dict[str, Any]) -> None:
    """A worker's whole life (the target of each spawned process)."""
    raise_fd_limit()
    worker = _Worker(job)
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        asyncio.run(worker.main(conn))
        conn.send(("result", worker.finish().to_wire()))


# === the HTTP publisher process =================================================================


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
    behind an event loop that reads thousands of sockets (it managed ~240 events/s that way).
    One publisher keeps each channel's events in order.
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

    def __init__(self, settings: Settings, options: BenchOptions, names: list[str]) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self.attempted = context.Array("q", len(names), lock=False)
        self.published = context.Value("q", 0, lock=False)
        self.go, self.stop, self.results = context.Event(), context.Event(), context.Queue()
        self.duration = options.duration
        self.process = context.Process(
            target=_http_publisher,
            args=(
                settings,
                options,
                names,
                self.attempted,
                self.published,
                self.go,
                self.stop,
                self.results,
            ),
            daemon=True,
            name="rtctl-bench-publisher",
        )
        self.process.start()

    def publish(self, tick: Callable[[], None]) -> PublishResult:
        import queue

        cpu0 = _proc_cpu(self.process.pid) or 0.0
        self.go.set()
        started = time.monotonic()
        deadline = started + self.duration + 30
        cpu = None
        while self.process.is_alive() and time.monotonic() < deadline:
            tick()
            cpu = _proc_cpu(self.process.pid) or cpu  # the last reading before it exits
            time.sleep(0.05)
        try:
            result = self.results.get(timeout=5)
        except queue.Empty:
            result = {
                "failures": {"publisher_died": 1},
                "started": started,
                "ended": time.monotonic(),
            }
        self.close()
        seconds = result["ended"] - result["started"]
        cpu = None if cpu is None else cpu - cpu0
        return PublishResult(
            mode="http",
            attempted=list(self.attempted),
            accepted=self.published.value,
            failures=result["failures"],
            seconds=seconds,
            cpu_percent=None if cpu is None else round(100 * cpu / max(seconds, 1e-9), 1),
        )

    def close(self) -> None:
        self.stop.set()
        self.go.set()
        self.process.join(timeout=10)
        if self.process.is_alive():  # our own child, by its PID
            self.process.kill()
            self.process.join(timeout=5)


def _proc_cpu(pid: int | None) -> float | None:
    """CPU seconds of a live process (children of ours included once reaped: not needed)."""
    from rtctl.ops.bench.observe import cpu_seconds

    return None if pid is None else cpu_seconds(pid)


# === the coordinator ============================================================================


@dataclass
class _Handle:
    index: int
    process: Any
    conn: Any
    connections: int
    snapshot: dict[str, Any] = field(default_factory=dict)
    ready: list[list[int]] | None = None
    published: dict[str, Any] | None = None
    result: WorkerResult | None = None
    gone: bool = False

    def pump(self) -> None:
        """Take every message waiting from this worker."""
        if self.gone:
            return
        try:
            while self.conn.poll():
                kind, *rest = self.conn.recv()
                if kind == "progress":
                    self.snapshot = rest[0]
                elif kind == "ready":
                    self.ready, self.snapshot = rest[0], rest[1]
                elif kind == "published":
                    self.published = rest[0]
                elif kind == "result":
                    self.result = WorkerResult.from_wire(rest[0])
        except (EOFError, OSError):
            self.gone = True

    def send(self, *message: Any) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send(message)

    @property
    def dead(self) -> bool:
        return self.gone or (not self.process.is_alive() and not self.conn.poll())


def default_targets(settings: Settings, direct: bool) -> list[tuple[str, Settings]]:
    """The front door (or the one server); with ``direct``, every node of the cluster."""
    if not direct:
        return [("front-door" if settings.is_cluster else "server", settings)]
    if not settings.is_cluster:
        raise UsageError(
            "--direct connects subscribers to a cluster's nodes, but the configuration names "
            "one server",
            hint="set RTCTL_SOKETI_NODES (or `rtctl up --nodes N`), or leave out --direct",
        )
    from rtctl.runtime import cluster

    return [(n.name, cluster.node_settings(settings, n)) for n in cluster.plan(settings).nodes]


def _check_files(options: BenchOptions) -> None:
    soft, _ = raise_fd_limit()
    share = -(-options.connections // options.workers)
    needed = share + options.channels + FD_HEADROOM
    if soft != resource.RLIM_INFINITY and needed > soft:
        if options.workers == 1:
            message = (
                f"--connections {options.connections} needs about {needed} open files; "
                f"this process may open {soft}"
            )
        else:
            message = (
                f"--connections {options.connections} over {options.workers} workers needs about "
                f"{needed} open files per worker; a process may open {soft}"
            )
        raise EnvironmentProblem(
            message,
            hint="add --workers, raise the hard limit (`ulimit -Hn`, systemd LimitNOFILE) or use "
            "fewer connections"
            if options.workers == 1
            else "add --workers, or raise the hard limit (`ulimit -Hn`)",
        )


def run_bench(
    settings: Settings,
    options: BenchOptions,
    progress: Progress | None = None,
    thresholds: dict[str, float | None] | None = None,
    targets: Sequence[tuple[str, Settings]] | None = None,
    publisher: Settings | None = None,
) -> dict[str, Any]:
    """Run one benchmark and return its report (a JSON-ready dict). Blocks until done.

    ``targets`` (name, settings) are where subscribers connect, spread evenly (default: the
    configured server or front door; every node with ``options.direct``); ``publisher`` is where
    the HTTP publisher and client publishers send (default: ``settings``).
    """
    from rtctl.ops.bench.observe import Sampler

    check_options(options)
    _check_files(options)
    chosen = list(targets) if targets is not None else default_targets(settings, options.direct)
    publish_to = publisher or settings
    run_id = secrets.token_hex(4)
    names = [channel_name(options.channel_type, run_id, i) for i in range(options.channels)]
    target_settings = [s for _, s in chosen]  # client publishers connect to the first one
    context = multiprocessing.get_context("spawn")
    share, extra = divmod(options.connections, options.workers)
    handles: list[_Handle] = []
    http: _PublisherProcess | None = None
    wall0 = time.monotonic()
    first = 0
    try:
        for w in range(options.workers):
            count = share + (w < extra)
            parent, child = context.Pipe()
            job = {
                "index": w,
                "settings": settings,
                "options": options,
                "targets": target_settings,
                "names": names,
                "subscribers": (first, first + count),
                "publisher_channels": [
                    c for c in range(options.channels) if c % options.workers == w
                ]
                if options.publish == "client"
                else [],
                "source": source_address(target_settings[0].ws_url, w, options.workers),
            }
            first += count
            process = context.Process(
                target=_worker_process, args=(child, job), daemon=True, name=f"rtctl-bench-{w}"
            )
            process.start()
            child.close()
            handles.append(_Handle(w, process, parent, count))
        if options.publish == "http":
            http = _PublisherProcess(publish_to, options, names)
        snapshot = _Snapshots(options, handles, progress)
        ramp_bound = options.connections / options.ramp + options.connect_timeout + 60
        _wait_all(handles, lambda h: h.ready is not None, ramp_bound, snapshot.tick)
        ready = _ready_sum(handles, options.channels)
        if not any(ready):
            raise _nothing_connected(handles, chosen)
        snapshot.ready = ready
        sampler = Sampler(
            settings, [(f"worker-{h.index}", "worker", h.process.pid) for h in handles]
        )
        snapshot.phase = "publishing"
        snapshot.tick(force=True)
        sampler.start()
        for handle in handles:
            handle.send("go")
        if http is not None:
            snapshot.http = http
            publish = http.publish(snapshot.tick)
            sampler.add(
                Observation("publisher", "publisher", http.process.pid, publish.cpu_percent)
            )
        else:
            _wait_all(
                handles, lambda h: h.published is not None, options.duration + 60, snapshot.tick
            )
            publish = _client_publish(handles, options)
        snapshot.http = None
        snapshot.attempted = publish.attempted
        snapshot.phase = "draining"
        for handle in handles:
            handle.send("drain", publish.attempted, options.drain)
        _wait_all(handles, lambda h: h.result is not None, options.drain + 60, snapshot.tick)
        observed, machine = sampler.stop()
        workers = [h.result or _lost_worker(h, options, len(chosen)) for h in handles]
        snapshot.phase = "done"
        snapshot.tick(force=True)
    finally:
        if http is not None:
            http.close()
        for handle in handles:
            handle.send("stop")
        for handle in handles:
            handle.process.join(timeout=5)
            if handle.process.is_alive():  # our own child, by its PID
                handle.process.kill()
                handle.process.join(timeout=5)
    return build_report(
        target=settings.ws_url.split("?")[0].rsplit("/app/", 1)[0],
        options=options,
        run_id=run_id,
        targets=[Target(name, s.ws_url.split("?")[0].rsplit("/app/", 1)[0]) for name, s in chosen],
        workers=workers,
        publish=publish,
        observed=observed,
        machine_percent=machine,
        cores=os.cpu_count() or 1,
        wall=time.monotonic() - wall0,
        thresholds=thresholds or {},
    )


class _Snapshots:
    """The live progress view: every worker's last snapshot, summed, every PROGRESS_SECONDS."""

    def __init__(self, options: BenchOptions, handles: list[_Handle], progress: Progress | None):
        self.options = options
        self.handles = handles
        self.progress = progress
        self.phase = "connecting"
        self.ready: list[int] | None = None
        self.attempted: list[int] | None = None
        self.http: _PublisherProcess | None = None
        self.last = 0.0

    def tick(self, force: bool = False) -> None:
        for handle in self.handles:
            handle.pump()
        if self.progress is None or (not force and time.monotonic() - self.last < PROGRESS_SECONDS):
            return
        self.last = time.monotonic()
        snaps = [h.snapshot for h in self.handles]

        def total(key: str) -> int:
            return sum(int(s.get(key, 0)) for s in snaps)

        attempted = self.attempted
        published = total("sent")
        if self.http is not None:
            attempted = list(self.http.attempted)
            published = self.http.published.value
        sent = sum(attempted) if attempted else total("sent")
        expected = expected_deliveries(attempted, self.ready) if attempted and self.ready else 0
        self.progress(
            {
                "phase": self.phase,
                "connections": self.options.connections,
                "connected": total("connected"),
                "subscribed": total("subscribed"),
                "open": total("open"),
                "failed": total("failed"),
                "sent": sent,
                "published": published,
                "expected": expected,
                "received": total("received"),
                "errors": total("errors"),
            }
        )


def _wait_all(
    handles: list[_Handle], done: Callable[[_Handle], bool], bound: float, tick: Callable[[], None]
) -> None:
    """Until every live worker reached a step (a dead one counts as there: its share is lost)."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        tick()
        if all(done(h) or h.dead for h in handles):
            return
        time.sleep(0.02)


def _ready_sum(handles: list[_Handle], channels: int) -> list[int]:
    ready = [0] * channels
    for handle in handles:
        for row in handle.ready or []:
            for c, n in enumerate(row):
                ready[c] += n
    return ready


def _client_publish(handles: list[_Handle], options: BenchOptions) -> PublishResult:
    attempted = [0] * options.channels
    accepted = 0
    failures: Counter[str] = Counter()
    starts, ends = [], []
    for handle in handles:
        published = handle.published
        if published is None:
            continue
        for c, n in enumerate(published["attempted"]):
            attempted[c] += n
        accepted += published["accepted"]
        failures.update(published["failures"])
        starts.append(published["started"])
        ends.append(published["ended"])
    seconds = (max(ends) - min(starts)) if starts else 0.0
    return PublishResult("client", attempted, accepted, dict(failures), seconds)


def _lost_worker(handle: _Handle, options: BenchOptions, targets: int) -> WorkerResult:
    """A worker that died: its subscribers count as failed (and its deliveries as lost)."""
    result = WorkerResult(
        index=handle.index,
        pid=handle.process.pid or 0,
        connections=handle.connections,
        connect_failures={"worker_died": handle.connections},
        received_by_target=[0] * targets,
    )
    result.ready = handle.ready or []
    return result


def _nothing_connected(
    handles: list[_Handle], targets: Sequence[tuple[str, Settings]]
) -> Exception:
    failures: Counter[str] = Counter()
    for handle in handles:
        handle.pump()
        failures.update(
            {"worker_died": handle.connections} if handle.dead and handle.ready is None else {}
        )
    # the workers' failure counts arrive with their results; ask them to finish now
    for handle in handles:
        handle.send("stop")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(h.result is not None or h.dead for h in handles):
        for handle in handles:
            handle.pump()
        time.sleep(0.02)
    for handle in handles:
        if handle.result is not None:
            failures.update(handle.result.connect_failures)
    causes = ", ".join(f"{cause} ×{n}" for cause, n in failures.most_common())
    settings = targets[0][1]
    where = (
        settings.ws_url.split("?")[0]
        if len(targets) == 1
        else f"any of {len(targets)} nodes ({', '.join(name for name, _ in targets)})"
    )
    if any(cause.startswith("subscription_error_401") for cause in failures):
        return AuthRejected(
            f"every subscription was refused ({causes})",
            hint="PUSHER_APP_KEY/PUSHER_APP_SECRET must match the server's app (`rtctl doctor`)",
        )
    if any(cause.startswith(("pusher_error_4001", "closed_4001")) for cause in failures):
        return AuthRejected(
            f"the server does not know app key {settings.key!r} ({causes})",
            hint="PUSHER_APP_KEY must match the server's app (`rtctl doctor`)",
        )
    if any(cause.startswith(("subscription_error", "pusher_error")) for cause in failures):
        return ServerRejected(
            f"no subscriber could subscribe ({causes})",
            hint="the causes above are the server's own codes (protocol §1.5)",
        )
    return Unreachable(
        f"no subscriber could connect to {where} ({causes})",
        hint="is the server running? `rtctl status` shows it, `rtctl up` starts one",
    )
