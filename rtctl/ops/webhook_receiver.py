"""A verifying webhook receiver: a real HTTP server on a port, usable as a library.

    from rtctl.ops.webhook_receiver import WebhookReceiver

    with WebhookReceiver(key, secret, port=6080, path="/webhooks") as receiver:
        ...                                    # make a server send webhooks to receiver.url
        got = receiver.collect(count=2, timeout=5)        # verified deliveries, in arrival order
        for received in receiver.deliveries(timeout=1):   # or iterate until a quiet second
            print(received.time_ms, received.events)
    # or: receiver = WebhookReceiver(..., on_delivery=callback).start(); ...; receiver.stop()

The stack: the standard library's threading TCP server (one thread per connection, HTTP/1.1
keep-alive, a listen backlog of 1024 instead of socketserver's 5: Soketi opens connections per
webhook and never retries, so a refused connection would be a lost webhook) and httptools (llhttp)
to parse requests. http.server's own email-based header parsing cost about half the CPU of a
delivery; with httptools, verifying costs less than a bare http.server that verifies nothing
(scripts/bench_webhooks.py). A delivery is queued before its 200 is sent: a sender that saw 200
can count on it being collected.

Every request gets one answer: 200 to a verified delivery (or the status ``status_of`` chooses
for it); 401 unsigned, other key, bad signature
or a ``time_ms`` outside the window; 400 a signed body that is not a webhook or a truncated one;
408 a body that stops arriving; 411 no Content-Length (or chunked); 413 over ``max_body``; 415 not
``application/json``; 404 another path (unless ``path=None``: any path); 405 another method; 400 not HTTP at all. Each refusal is a
``Rejection`` (one line for a log) and the server keeps running.

Callbacks (``on_delivery``, ``on_rejection``, ``status_of``) run on the server's threads: keep them short.
"""

from __future__ import annotations

import contextlib
import http
import json
import queue
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from rtctl.errors import Conflict
from rtctl.protocol.webhooks import DEFAULT_MAX_AGE, Delivery, WebhookRejected, verify

DEFAULT_MAX_BODY = 1024 * 1024  # bytes; a Soketi batch of 10 client events of 100 KB still fits
BODY_TIMEOUT = 10.0  # seconds for a declared body to arrive (and for an idle keep-alive)
BACKLOG = 1024
DRAIN_LIMIT = 8 * 1024 * 1024  # read and drop this much of a refused body so its 413 is seen


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Received:
    """A verified delivery as it arrived."""

    delivery: Delivery
    headers: dict[str, str]
    path: str
    client: str
    received_at: float  # time.time()
    monotonic: float  # time.monotonic(), for latencies measured in this process
    seq: int  # 1, 2, ... per receiver, in the order the server verified them
    status: int = 200  # what the sender was answered (see ``status_of``)

    @property
    def events(self) -> tuple[dict[str, Any], ...]:
        return self.delivery.events

    @property
    def time_ms(self) -> int:
        return self.delivery.time_ms

    @property
    def latency_ms(self) -> float:
        """From the sender creating the delivery (its time_ms) to its arrival here."""
        return self.received_at * 1000 - self.delivery.time_ms

    def to_record(self) -> dict[str, Any]:
        """The line `--record` writes: what `rtctl webhooks verify` and `replay` read back."""
        return record_of(
            self.received_at,
            self.client,
            "POST",
            self.path,
            self.status,
            None,
            self.headers,
            self.delivery.body,
        )


@dataclass(frozen=True)
class Rejection:
    """A request the receiver refused, with the status it answered."""

    status: int
    code: str
    message: str
    client: str
    method: str
    path: str
    received_at: float
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def line(self) -> str:
        return f"{self.status} {self.code}: {self.method} {self.path} from {self.client}: {self.message}"

    def to_record(self) -> dict[str, Any]:
        return record_of(
            self.received_at,
            self.client,
            self.method,
            self.path,
            self.status,
            self.code,
            self.headers,
            self.body,
        )


def record_of(
    received_at: float,
    client: str,
    method: str,
    path: str,
    status: int,
    code: str | None,
    headers: Mapping[str, str],
    body: bytes | None,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "received_at": iso(received_at),
        "client": client,
        "method": method,
        "path": path,
        "status": status,
        "code": code,
        "headers": dict(headers),
    }
    if body is not None:
        try:
            record["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            import base64

            record["body_base64"] = base64.b64encode(body).decode("ascii")
    return record


Item = Received | Rejection


class WebhookReceiver:
    """Verifies deliveries for one app (``key``/``secret``) at ``http://host:port/path``."""

    def __init__(
        self,
        key: str,
        secret: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str | None = "/webhooks",
        max_age: float = DEFAULT_MAX_AGE,
        max_body: int = DEFAULT_MAX_BODY,
        body_timeout: float = BODY_TIMEOUT,
        on_delivery: Callable[[Received], None] | None = None,
        on_rejection: Callable[[Rejection], None] | None = None,
        status_of: Callable[[Delivery], int] | None = None,
        keep: bool = True,
        buffer: bool = True,
    ) -> None:
        """``keep``: remember everything in ``.received``/``.rejected`` (tests, plugins);
        ``buffer``: queue items for ``get``/``deliveries``/``collect``. A long-running consumer
        that uses callbacks only can turn both off, so memory stays flat. ``path=None`` receives
        at any path. ``status_of``: the status to answer a verified delivery with (200 without
        it), e.g. a 500 to see whether the sender retries; the delivery is published all the same."""
        self.key = key
        self.secret = secret
        self.host = host
        self.port = port
        self.path = None if path is None else "/" + path.lstrip("/")
        self.max_age = max_age
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.on_delivery = on_delivery
        self.on_rejection = on_rejection
        self.status_of = status_of
        self.keep = keep
        self.buffer = buffer
        self.received: list[Received] = []
        self.rejected: list[Rejection] = []
        self._queue: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._seq = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path or '/'}"

    def start(self) -> WebhookReceiver:
        if self._server is not None:
            return self
        try:
            server = _Server((self.host, self.port), self)
        except OSError as exc:
            from rtctl.runtime.native import listen_error

            busy = Conflict(
                f"port {self.port} on {self.host} is already in use",
                hint="is `rtctl webhooks listen` already running? stop it, or pass --port",
            )
            raise listen_error(exc, self.host, self.port, busy, "--host") from None
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"webhook-receiver-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, and end the open connections: a sender that keeps connections alive
        (Soketi's HTTP client does) would otherwise go on delivering to this stopped receiver
        over them, even to a new receiver's port, and the new one would never see those."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- consuming -------------------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> Item | None:
        """The next delivery or rejection, in the order they were decided; None on timeout."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def pending(self) -> bool:
        """Whether ``get`` would answer at once."""
        return not self._queue.empty()

    def deliveries(
        self, timeout: float | None = None, idle: float | None = None
    ) -> Iterator[Received]:
        """Verified deliveries as they arrive, until ``timeout`` seconds in all, or ``idle``
        seconds without one (None: wait for ever). Rejections are skipped (see ``.rejected``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = idle
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                wait = remaining if wait is None else min(wait, remaining)
            item = self.get(wait)
            if item is None:
                return  # quiet for ``idle`` seconds, or out of time
            if isinstance(item, Received):
                yield item

    def collect(self, count: int, timeout: float) -> list[Received]:
        """Up to ``count`` verified deliveries, waiting at most ``timeout`` seconds in all."""
        got: list[Received] = []
        for received in self.deliveries(timeout=timeout):
            got.append(received)
            if len(got) >= count:
                break
        return got

    # --- deciding (server threads) ---------------------------------------------------------------

    def _publish(self, item: Item) -> None:
        if isinstance(item, Received):
            if self.keep:
                self.received.append(item)
            callback: Callable[[Any], None] | None = self.on_delivery
        else:
            if self.keep:
                self.rejected.append(item)
            callback = self.on_rejection
        if self.buffer:
            self._queue.put(item)
        if callback is not None:
            callback(item)

    def _next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def reject(self, request: _Request, status: int, code: str, message: str) -> bytes:
        """Publish a refusal and return the answer to send (it closes the connection)."""
        self._publish(
            Rejection(
                status,
                code,
                message,
                request.client,
                request.method,
                request.target,
                time.time(),
                dict(request.headers),
                request.body_bytes(),
            )
        )
        return _answer(status, {"error": {"code": code, "message": message}}, close=True)

    def decide(self, request: _Request) -> tuple[bytes, bool]:
        """A complete request -> (the answer to send, close the connection after it).

        A delivery is published before its answer is sent."""
        if request.method != "POST":
            message = "only POST is accepted" + (f" at {self.path}" if self.path else "")
            return self.reject(request, 405, "method_not_allowed", message), True
        path = urlsplit(request.target).path
        if self.path is not None and path != self.path:
            message = f"webhooks are received at {self.path}"
            return self.reject(request, 404, "not_found", message), True
        if request.chunked:
            message = "chunked bodies are refused: send Content-Length"
            return self.reject(request, 411, "length_required", message), True
        if request.length is None:
            return self.reject(request, 411, "length_required", "no Content-Length header"), True
        body = request.body_bytes() or b""
        try:
            delivery = verify(body, request.lowered, self.key, self.secret, max_age=self.max_age)
        except WebhookRejected as rejected:
            self._publish(
                Rejection(
                    rejected.status,
                    rejected.code,
                    rejected.message,
                    request.client,
                    request.method,
                    request.target,
                    time.time(),
                    dict(request.headers),
                    body,
                )
            )
            return _answer(rejected.status, rejected.body(), close=False), False
        status = 200 if self.status_of is None else self.status_of(delivery)
        self._publish(
            Received(
                delivery,
                dict(request.headers),
                path,
                request.client,
                time.time(),
                time.monotonic(),
                self._next_seq(),
                status,
            )
        )
        if status == 200:
            return _OK_ANSWER, False
        return _answer(status, {"ok": status < 300}, close=False), False


_REASONS = {status.value: status.phrase for status in http.HTTPStatus}


def _answer(status: int, payload: dict[str, Any], close: bool) -> bytes:
    data = json.dumps(payload, separators=(",", ":")).encode()
    head = [
        f"HTTP/1.1 {status} {_REASONS.get(status, '')}",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
    ]
    if status == 405:
        head.append("Allow: POST")
    if close:
        head.append("Connection: close")
    # One write per answer: headers and body in two small segments would wait for the sender's
    # delayed ACK (40 ms) under Nagle's algorithm.
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data


_OK_ANSWER = _answer(200, {"ok": True}, close=False)


class _Request:
    """One request as httptools parses it (its callbacks fill this)."""

    __slots__ = (
        "body",
        "chunked",
        "client",
        "headers",
        "length",
        "lowered",
        "method",
        "size",
        "target",
    )

    def __init__(self, client: str) -> None:
        self.client = client
        self.method = "?"
        self.target = ""
        self.headers: list[tuple[str, str]] = []
        self.lowered: dict[str, str] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.length: int | None = None
        self.chunked = False

    def body_bytes(self) -> bytes | None:
        return b"".join(self.body) if self.body or self.length is not None else None


class _Connection:
    """One client connection: bytes in, httptools parses, each complete request decided in order.

    Requests are bounded: a declared body over ``max_body`` is refused before it is read (and
    the rest of it drained, so the refusal is seen), a body that stops arriving hits the
    kernel's receive timeout, a malformed request is a 400; each of those closes the connection.
    """

    def __init__(self, receiver: WebhookReceiver, sock: socket.socket, client: str) -> None:
        import httptools

        self.receiver = receiver
        self.sock = sock
        self.client = client
        self.parser = httptools.HttpRequestParser(self)
        self.request: _Request | None = None  # the one being parsed
        self.out: list[bytes] = []  # answers to send after this feed
        self.close = False
        self.drain = 0  # bytes of a refused body still to read and drop

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.request = _Request(self.client)

    def on_url(self, url: bytes) -> None:
        assert self.request is not None
        self.request.target += url.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.request is not None
        key, text = name.decode("latin-1"), value.decode("latin-1")
        self.request.headers.append((key, text))
        self.request.lowered[key.lower()] = text

    def on_headers_complete(self) -> None:
        request = self.request
        assert request is not None
        request.method = self.parser.get_method().decode("latin-1")
        lowered = request.lowered
        request.chunked = "chunked" in lowered.get("transfer-encoding", "").lower()
        declared = lowered.get("content-length")
        if declared is not None:
            request.length = int(declared)  # httptools refused a malformed one already
            if request.length > self.receiver.max_body:
                self.refuse(
                    413,
                    "body_too_large",
                    f"the body is {request.length} bytes, over the {self.receiver.max_body}-byte limit",
                )
                self.drain = request.length
                return
        if lowered.get("expect", "").lower() == "100-continue":
            self.out.append(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl waits for it

    def on_body(self, chunk: bytes) -> None:
        request = self.request
        if request is None or self.close:
            return
        request.size += len(chunk)
        if request.size > self.receiver.max_body:  # a chunked body growing past the limit
            self.refuse(
                413, "body_too_large", f"the body is over the {self.receiver.max_body}-byte limit"
            )
            return
        request.body.append(chunk)

    def on_message_complete(self) -> None:
        request, self.request = self.request, None
        if request is None or self.close:
            return
        answer, close = self.receiver.decide(request)
        self.out.append(answer)
        if close or not self.parser.should_keep_alive():
            self.close = True

    # life of the connection
    def refuse(self, status: int, code: str, message: str) -> None:
        request = self.request or _Request(self.client)
        self.out.append(self.receiver.reject(request, status, code, message))
        self.request = None
        self.close = True

    def flush(self) -> None:
        if self.out:
            self.sock.sendall(b"".join(self.out))
            self.out.clear()

    def run(self) -> None:
        import httptools

        started = time.monotonic()
        while not self.close:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:  # SO_RCVTIMEO: nothing arrived for body_timeout seconds
                self.ended(timed_out=True, since=started)
                break
            except OSError:
                return
            if not data:
                self.ended(timed_out=False, since=started)
                break
            started = time.monotonic()
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                self.refuse(400, "malformed_request", "protocol upgrades are refused")
            except httptools.HttpParserError as exc:
                if not self.close:
                    self.refuse(400, "malformed_request", f"not an HTTP/1.1 request ({exc})"[:200])
            self.flush()
        if self.drain:
            self.drop_rest()

    def ended(self, timed_out: bool, since: float) -> None:
        """The stream ended or went quiet; a request in the middle of its body is answered."""
        request = self.request
        if request is None or request.length is None:
            return  # between requests, or within a head: the connection simply closes
        got = request.size
        if timed_out:
            message = f"the body stopped arriving after {got} of {request.length} bytes"
            self.refuse(408, "body_timeout", message)
        else:
            message = f"the body ended after {got} of {request.length} bytes"
            self.refuse(400, "truncated_body", message)
        self.flush()

    def drop_rest(self) -> None:
        """Read and drop what the sender still sends, so closing does not reset the connection
        before it has read the refusal."""
        amount = min(self.drain, DRAIN_LIMIT)
        deadline = time.monotonic() + 2.0
        with contextlib.suppress(OSError):
            while amount > 0 and time.monotonic() < deadline:
                chunk = self.sock.recv(min(amount, 65536))
                if not chunk:
                    break
                amount -= len(chunk)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Bound a body that stops arriving, an idle keep-alive connection and a sender that does
        # not read, with the kernel's socket timeouts: the socket stays in Python's blocking mode
        # (settimeout() would add a poll() and a GIL hand-over to every read and write).
        seconds = self.server.receiver.body_timeout
        timeval = struct.pack("ll", int(seconds), int((seconds % 1) * 1_000_000))
        for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
            sock.setsockopt(socket.SOL_SOCKET, option, timeval)
        if not self.server.track(sock):
            return  # the receiver is stopping
        try:
            with contextlib.suppress(OSError):  # the sender went away: nobody is left to answer
                _Connection(self.server.receiver, sock, str(self.client_address[0])).run()
        finally:
            self.server.untrack(sock)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    request_queue_size = BACKLOG
    allow_reuse_address = True  # TIME_WAIT leftovers; Linux still refuses a second listener
    block_on_close = False

    def __init__(self, address: tuple[str, int], receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._closing = False
        super().__init__(address, _Handler)

    def track(self, sock: socket.socket) -> bool:
        with self._open_lock:
            if self._closing:
                return False
            self._open.add(sock)
            return True

    def untrack(self, sock: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(sock)

    def close_connections(self) -> None:
        """Shut every open connection down: its reader wakes up to an ended stream and closes."""
        with self._open_lock:
            self._closing = True
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
