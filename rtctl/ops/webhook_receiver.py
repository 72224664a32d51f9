"""A verifying webhook receiver: a real HTTP server on a port, usable as a library.

    from rtctl.ops.webhook_receiver import WebhookReceiver

    with WebhookReceiver(key, secret, port=6080, path="/webhooks") as receiver:
        ...                                    # make a server send webhooks to receiver.url
        got = receiver.collect(count=2, timeout=5)        # verified deliveries, in arrival order
        for received in receiver.deliveries(timeout=1):   # or iterate until a quiet second
            print(received.time_ms, received.events)
    # or: receiver = WebhookReceiver(..., on_delivery=callback).start(); ...; receiver.stop()

The stack is the standard library's threading HTTP server: one thread per connection, HTTP/1.1
keep-alive, a listen backlog of 1024 instead of socketserver's 5 (Soketi opens a connection per
webhook and never retries, so a refused connection would be a lost webhook). Verification costs
a few microseconds per delivery next to the server's own request handling, and a delivery is
queued before its 200 is sent: a sender that saw 200 can count on it being collected.

Every request gets one answer: 200 to a verified delivery; 401 unsigned, other key, bad signature
or a ``time_ms`` outside the window; 400 a signed body that is not a webhook or a truncated one;
408 a body that does not arrive in time; 411 no Content-Length; 413 over ``max_body``; 415 not
``application/json``; 404 another path; 405 another method. Each refusal is a ``Rejection`` (one
line for a log) and the server keeps running.

Callbacks (``on_delivery``, ``on_rejection``) run on the server's threads: keep them short.
"""

from __future__ import annotations

import contextlib
import errno
import json
import queue
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from rtctl.errors import Conflict, EnvironmentProblem
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
            200,
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
        path: str = "/webhooks",
        max_age: float = DEFAULT_MAX_AGE,
        max_body: int = DEFAULT_MAX_BODY,
        body_timeout: float = BODY_TIMEOUT,
        on_delivery: Callable[[Received], None] | None = None,
        on_rejection: Callable[[Rejection], None] | None = None,
        keep: bool = True,
        buffer: bool = True,
    ) -> None:
        """``keep``: remember everything in ``.received``/``.rejected`` (tests, plugins);
        ``buffer``: queue items for ``get``/``deliveries``/``collect``. A long-running consumer
        that uses callbacks only can turn both off, so memory stays flat."""
        self.key = key
        self.secret = secret
        self.host = host
        self.port = port
        self.path = "/" + path.lstrip("/")
        self.max_age = max_age
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.on_delivery = on_delivery
        self.on_rejection = on_rejection
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
        return f"http://{host}:{self.port}{self.path}"

    def start(self) -> WebhookReceiver:
        if self._server is not None:
            return self
        try:
            server = _Server((self.host, self.port), _Handler, self)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise Conflict(
                    f"port {self.port} on {self.host} is already in use",
                    hint="is `rtctl webhooks listen` already running? stop it, or pass --port",
                ) from None
            raise EnvironmentProblem(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}",
                hint="use a local address, e.g. --host 127.0.0.1",
            ) from None
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
        """Stop accepting; requests in flight finish on their own (daemon) threads."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
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

    def _reject(
        self,
        handler: _Handler,
        status: int,
        code: str,
        message: str,
        body: bytes | None = None,
        close: bool = False,
        drain: int = 0,
    ) -> None:
        rejection = Rejection(
            status,
            code,
            message,
            handler.client_address[0],
            handler.command or "?",
            handler.path if handler.path is not None else "?",
            time.time(),
            dict(handler.headers.items()) if handler.headers is not None else {},
            body,
        )
        self._publish(rejection)
        _respond(handler, status, {"error": {"code": code, "message": message}}, close, drain)

    def _handle(self, handler: _Handler) -> None:
        path = urlsplit(handler.path).path
        if handler.command != "POST":
            handler.close_connection = True
            self._reject(
                handler,
                405,
                "method_not_allowed",
                f"only POST is accepted at {self.path}",
                close=True,
            )
            return
        if path != self.path:
            self._reject(
                handler, 404, "not_found", f"webhooks are received at {self.path}", close=True
            )
            return
        if handler.headers.get("Transfer-Encoding"):
            self._reject(
                handler,
                411,
                "length_required",
                "chunked bodies are refused: send Content-Length",
                close=True,
            )
            return
        declared = handler.headers.get("Content-Length")
        if declared is None:
            self._reject(handler, 411, "length_required", "no Content-Length header", close=True)
            return
        if not declared.strip().isdigit():
            self._reject(
                handler,
                400,
                "invalid_length",
                f"Content-Length {declared[:20]!r} is not a number",
                close=True,
            )
            return
        length = int(declared)
        if length > self.max_body:
            self._reject(
                handler,
                413,
                "body_too_large",
                f"the body is {length} bytes, over the {self.max_body}-byte limit",
                close=True,
                drain=length,
            )
            return
        try:
            body = handler.rfile.read(length)
        except TimeoutError:
            self._reject(
                handler,
                408,
                "body_timeout",
                f"the {length}-byte body did not arrive within {self.body_timeout:g} s",
                close=True,
            )
            return
        except OSError:
            handler.close_connection = True
            return  # the sender went away mid-body: nobody is left to answer
        if len(body) < length:
            self._reject(
                handler,
                400,
                "truncated_body",
                f"the body ended after {len(body)} of {length} bytes",
                body,
                close=True,
            )
            return
        headers = dict(handler.headers.items())
        try:
            delivery = verify(body, headers, self.key, self.secret, max_age=self.max_age)
        except WebhookRejected as rejected:
            self._reject(handler, rejected.status, rejected.code, rejected.message, body)
            return
        self._publish(
            Received(
                delivery,
                headers,
                path,
                handler.client_address[0],
                time.time(),
                time.monotonic(),
                self._next_seq(),
            )
        )
        _respond(handler, 200, {"ok": True}, close=False)


_OK = json.dumps({"ok": True}, separators=(",", ":")).encode()


def _respond(
    handler: _Handler, status: int, body: dict[str, Any], close: bool, drain: int = 0
) -> None:
    data = _OK if status == 200 else json.dumps(body, separators=(",", ":")).encode()
    try:
        handler.send_response_only(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        if status == 405:
            handler.send_header("Allow", "POST")
        if close:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()
        if drain:
            _drain(handler, min(drain, DRAIN_LIMIT))
    except OSError:
        handler.close_connection = True  # the sender is gone; nothing to tell it


def _drain(handler: _Handler, amount: int) -> None:
    """Read and drop what the sender still sends, so closing does not reset the connection
    before it has read the refusal."""
    deadline = time.monotonic() + 2.0
    handler.connection.settimeout(0.5)
    with contextlib.suppress(OSError):
        while amount > 0 and time.monotonic() < deadline:
            chunk = handler.rfile.read1(min(amount, 65536))
            if not chunk:
                break
            amount -= len(chunk)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = BACKLOG
    allow_reuse_address = True  # TIME_WAIT leftovers; Linux still refuses a second listener
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type, receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look the host name up (getfqdn): not needed here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: senders may reuse connections
    server_version = "rtctl-webhooks"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        # bounds a body that stops arriving, and an idle keep-alive connection
        self.connection.settimeout(self.server.receiver.body_timeout)

    def do_POST(self) -> None:
        self.server.receiver._handle(self)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass  # every decision is published as an item instead

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own refusals (malformed request line, headers too long): one item each.
        receiver = self.server.receiver
        if not hasattr(self, "headers"):
            self.headers = None  # type: ignore[assignment]
        if not getattr(self, "command", None):
            self.command = "?"
        if not getattr(self, "path", None):
            self.path = (getattr(self, "requestline", "") or "?")[:80]
        if getattr(self, "request_version", "") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # answer with a status line: nobody speaks 0.9
        receiver._reject(
            self, code, "malformed_request", message or "malformed request", close=True
        )
