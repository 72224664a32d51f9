"""A Pusher protocol v7 client over websocket-client: what ``rtctl listen`` and ``rtctl smoke`` use.

Library API (stable; see docs/listen.md):

    sock = PusherSocket(settings, auth_endpoint=None, auth_headers=None, user_id=None, user_info=None)
    socket_id = sock.connect(timeout)            # Unreachable | AuthRejected (4001) | TimedOut | ...
    sub = sock.subscribe(channel, timeout)       # signs locally or asks auth_endpoint like pusher-js
    sub.members                                  # presence: {user_id: user_info}, kept up to date
    sock.send_client_event(channel, "client-x", {"a": 1})
    msg = sock.recv(timeout)                     # Message | None; raises Disconnected on close
    sock.reconnect(timeout)                      # new socket, RE-SIGNS and resubscribes every channel
    sock.unsubscribe(channel); sock.close()
    sock.has_buffered()                          # True if recv() can answer without waiting
    close_policy(code) -> "stop" | "backoff" | "now";  backoff_delay(attempt, code) -> seconds
    Message: event, channel, data (decoded), raw (wire data text), user_id, received_at
             (time.time()), monotonic (time.monotonic()), frame (whole frame text)

``recv`` hides the protocol's housekeeping: it answers ``pusher:ping``, sends ``pusher:ping`` after
``activity_timeout`` seconds without traffic, decodes the double-encoded ``data``, decrypts
``private-encrypted-`` channels, and keeps presence member lists. What it returns is every channel
event (including ``pusher_internal:member_added``/``member_removed`` and client events) and
``pusher:error`` frames that do not close the socket.

Speed matters (Soketi silently drops frames to a reader more than 1 MiB behind), so the receive path
is lean: websocket-client does the handshake, TLS and all sending, but server frames are split here
from 1 MiB socket reads (the library's reader costs two or three syscalls and several objects per
frame, and its pure-Python UTF-8 validation is off: decoding the text validates it anyway); a
``Message`` is a slotted object whose ``raw`` text is only serialised when asked.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Literal

from rtctl.errors import (
    AuthRejected,
    ConfigError,
    InvalidInput,
    RtctlError,
    ServerRejected,
    TimedOut,
    Unreachable,
)
from rtctl.signing import authorize_channel, channel_kind, compact_json, presence_channel_data

if TYPE_CHECKING:
    from rtctl.config import Settings

PONG_TIMEOUT = 30.0  # seconds to wait for any frame after our pusher:ping (Pusher's recommendation)
MAX_ACTIVITY_TIMEOUT = 120.0  # pusher-js' default; min(this, the server's activity_timeout)
CLIENT_NAME = "rtctl-python"
# Read up to 1 MiB per recv(). The socket's receive buffer is left to the kernel's autotuning:
# a fixed SO_RCVBUF (8 MiB) measured far worse (lost most of a 200k burst) than autotuning (none).
RECV_CHUNK = 1 << 20
SEND_TIMEOUT = 10.0  # a send that cannot complete in this long means the connection is gone

Policy = Literal["stop", "backoff", "now"]

# Until this module moves into the rtctl/protocol/ package, it lends its name to the modules
# already in that folder (rtctl.protocol.webhooks).
__path__ = [__file__[: -len(".py")]]


def close_policy(code: int | None) -> Policy:
    """What Pusher's close-code ranges ask a client to do (protocol §1.8)."""
    if code is not None and 4000 <= code <= 4099:
        return "stop"
    if code is not None and 4200 <= code <= 4299:
        return "now"
    return "backoff"  # 4100-4199 (back off), 1xxx, 43xx, a dropped TCP connection


def backoff_delay(attempt: int, code: int | None) -> float:
    """Seconds to wait before reconnect ``attempt`` (1-based). 4100-4199: >= 1 s, exponential;
    anything else that is not "reconnect now": exponential with full jitter, capped at 10 s."""
    if close_policy(code) == "now" and attempt == 1:
        return 0.0
    ceiling = min(10.0, 0.5 * (2 ** (attempt - 1)))
    if code is not None and 4100 <= code <= 4199:
        return max(1.0, ceiling)
    return random.uniform(0.1, max(0.2, ceiling))


class Disconnected(Unreachable):
    """The socket closed (``code`` is the close code, None when the TCP connection just dropped)."""

    code = "disconnected"

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        close_code: int | None = None,
        close_reason: str = "",
    ) -> None:
        super().__init__(message, hint)
        self.close_code = close_code
        self.close_reason = close_reason or message


class Message:
    """One event as received. ``data`` is decoded (double decoding, decryption); ``raw`` is the
    ``data`` as it came on the wire, as a string; ``frame`` is the whole frame text."""

    __slots__ = (
        "_raw",
        "_wire",
        "channel",
        "data",
        "error",
        "event",
        "frame",
        "json_text",
        "monotonic",
        "received_at",
        "user_id",
    )

    def __init__(
        self,
        event: str,
        channel: str | None,
        data: Any,
        wire: Any,
        user_id: str | None,
        received_at: float,
        monotonic: float,
        frame: str,
    ) -> None:
        self.event = event
        self.channel = channel
        self.data = data
        self._wire = wire  # the frame's "data" as parsed: a string, or an object (client events)
        self._raw: str | None = wire if isinstance(wire, str) else None
        self.user_id = user_id
        self.received_at = received_at  # time.time()
        self.monotonic = monotonic  # time.monotonic()
        self.frame = frame
        # ``data`` as JSON text when the wire string is exactly that (lets NDJSON output splice it
        # instead of serialising again); None when data is a plain string, an object or decrypted.
        self.json_text: str | None = None
        self.error: str | None = None  # e.g. an encrypted event that could not be decrypted

    @property
    def raw(self) -> str:
        """The wire ``data`` as text; serialised only when asked (object data of client events)."""
        if self._raw is None:
            self._raw = "" if self._wire is None else compact_json(self._wire)
        return self._raw

    def __repr__(self) -> str:
        return f"Message(event={self.event!r}, channel={self.channel!r}, data={self.data!r})"


class Subscription:
    """A channel this socket wants; ``members`` is the presence member list ({id: info})."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.kind = channel_kind(name)
        self.members: dict[str, Any] | None = {} if self.kind == "presence" else None
        self.me: str | None = None  # our presence user id
        self.key: bytes | None = None  # private-encrypted: the channel's shared secret
        self.subscribed = False


class _Drain:
    """A thread that moves received bytes from the kernel into memory as soon as they arrive.

    Soketi drops frames for a socket once 1 MiB is queued for it, so a listener that is briefly
    slower than a burst (printing, a loaded machine) would lose events. This thread only calls
    recv() (which releases the GIL) and queues the bytes, so the backlog waits in this process
    instead of in Soketi. The parsing and everything else stays in the caller's thread."""

    def __init__(self, sock: Any) -> None:
        import queue
        import threading

        self._empty = queue.Empty
        self._chunks: queue.SimpleQueue[bytes | OSError] = queue.SimpleQueue()
        self.end: bytes | OSError | None = None  # b"" (EOF) or the error, once seen
        self._sock = sock
        sock.settimeout(SEND_TIMEOUT)  # bounds sends from the caller; recv() here just retries
        self._thread = threading.Thread(target=self._run, name="rtctl-ws-drain", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        recv, put = self._sock.recv, self._chunks.put
        while True:
            try:
                chunk = recv(RECV_CHUNK)
            except TimeoutError:  # only a quiet connection
                continue
            except OSError as exc:
                put(exc)
                return
            put(chunk)
            if not chunk:
                return

    def pending(self) -> bool:
        return not self._chunks.empty()

    def take(self, timeout: float) -> list[bytes | OSError]:
        """Everything queued, waiting up to ``timeout`` for the first item; [] on timeout."""
        try:
            items = [self._chunks.get(timeout=timeout)]
        except self._empty:
            return []
        get = self._chunks.get_nowait
        while True:
            try:
                items.append(get())
            except self._empty:
                return items

    def stop(self, ws: Any) -> None:
        """Wake the blocked recv() (shutdown, not just close) and let the thread end."""
        import socket

        with contextlib.suppress(OSError):
            ws.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=1.0)


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


class PusherSocket:
    def __init__(
        self,
        settings: Settings,
        *,
        auth_endpoint: str | None = None,
        auth_headers: dict[str, str] | None = None,
        user_id: str | None = None,
        user_info: dict[str, Any] | None = None,
        client_name: str = CLIENT_NAME,
        activity_timeout: float | None = None,
    ) -> None:
        self.settings = settings
        self.auth_endpoint = auth_endpoint
        self.auth_headers = dict(auth_headers or {})
        self.user_id = user_id
        self.user_info = user_info
        self.client_name = client_name
        self._activity_cap = (
            activity_timeout if activity_timeout is not None else MAX_ACTIVITY_TIMEOUT
        )
        self.socket_id: str | None = None
        self.activity_timeout: float = self._activity_cap
        self.subscriptions: dict[str, Subscription] = {}
        self.pings_sent = 0
        self.pongs_received = 0
        self._ws: Any = None
        self._pending: deque[Message] = deque()  # events read while waiting for something else
        self._last_rx = 0.0
        self._ping_sent_at: float | None = None
        self._buf = b""  # received bytes not yet split into frames, from _pos on
        self._pos = 0
        self._fragments: list[bytes] = []
        self._drain: _Drain | None = None
        self._last_error: tuple[Any, str] = (None, "")  # (code, message) of the last pusher:error

    # --- connection ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        from rtctl import __version__

        base = self.settings.ws_url.split("?", 1)[0]
        return f"{base}?protocol=7&client={self.client_name}&version={__version__}"

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def connect(self, timeout: float) -> str:
        """Open the socket and wait for ``pusher:connection_established``; return the socket id."""
        import ssl

        import websocket

        self.close()
        deadline = time.monotonic() + timeout
        sslopt: dict[str, Any] = {}
        if self.settings.tls and self.settings.ca_bundle:
            sslopt = {"ca_certs": self.settings.ca_bundle}
        where = self.settings.ws_url.split("?", 1)[0]
        try:
            ws = websocket.create_connection(
                self.url,
                timeout=timeout,
                skip_utf8_validation=True,
                enable_multithread=False,
                sslopt=sslopt,
            )
        except websocket.WebSocketBadStatusException as exc:
            raise ServerRejected(
                f"{where} refused the WebSocket upgrade with HTTP {exc.status_code}",
                hint="is this a Pusher-protocol server? check REALTIME_HOST/REALTIME_PORT",
                status=exc.status_code,
            ) from exc
        except ssl.SSLError as exc:
            raise Unreachable(
                f"TLS handshake with {where} failed: {exc.reason or exc}",
                hint="for a self-signed server set RTCTL_CA_BUNDLE to its CA certificate",
            ) from exc
        except (OSError, websocket.WebSocketException) as exc:
            if isinstance(exc, TimeoutError | websocket.WebSocketTimeoutException):
                raise TimedOut(
                    f"no WebSocket handshake from {where} within {timeout:g}s",
                    hint="is the server overloaded? try a longer --timeout",
                ) from exc
            raise Unreachable(
                f"cannot connect to {where}: {exc}",
                hint="is the server running? `rtctl status` shows it, `rtctl up` starts one",
            ) from exc
        self._ws = ws
        self._pending.clear()
        # Bytes the library read past the handshake (normally none) start our frame buffer.
        self._buf = b"".join(getattr(ws.frame_buffer, "recv_buffer", None) or [])
        self._pos = 0
        self._fragments = []
        self._drain = None if self.settings.tls else _Drain(ws.sock)
        self._last_rx = time.monotonic()
        self._ping_sent_at = None
        try:
            frame = self._next_frame(
                deadline, f"no pusher:connection_established within {timeout:g}s"
            )
        except Disconnected as exc:  # closed without a pusher:error frame first
            if exc.close_code is not None and exc.close_code >= 4000:
                raise refusal(exc.close_code, exc.close_reason, self.settings.key) from exc
            raise
        if frame.get("event") != "pusher:connection_established":
            self.close()
            raise ServerRejected(f"expected pusher:connection_established, got {frame!r:.200}")
        data = frame.get("data")
        info: dict[str, Any] = json.loads(data) if isinstance(data, str) else (data or {})
        self.socket_id = str(info["socket_id"])
        server_timeout = float(info.get("activity_timeout") or MAX_ACTIVITY_TIMEOUT)
        self.activity_timeout = min(server_timeout, self._activity_cap)
        for sub in self.subscriptions.values():
            sub.subscribed = False
        return self.socket_id

    def close(self) -> None:
        """Send a close frame (best effort) and release the socket and the drain thread."""
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):  # the peer may already be gone
                ws.send_close()
            self._release(ws)

    def _release(self, ws: Any) -> None:
        drain, self._drain = self._drain, None
        if drain is not None:
            drain.stop(ws)
        ws.shutdown()

    def __enter__(self) -> PusherSocket:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def reconnect(self, timeout: float) -> str:
        """Open a new socket and re-sign + resubscribe every channel for the new socket id."""
        deadline = time.monotonic() + timeout
        socket_id = self.connect(timeout)
        for name in list(self.subscriptions):
            self.subscribe(name, max(0.1, deadline - time.monotonic()))
        return socket_id

    # --- sending ---------------------------------------------------------------------------------

    def _send(self, event: str, data: Any, channel: str | None = None) -> None:
        import websocket

        if self._ws is None:
            raise Disconnected("the socket is not connected", close_code=None)
        frame: dict[str, Any] = {"event": event, "data": data}
        if channel is not None:
            frame["channel"] = channel
        if self._drain is None:  # TLS: reads set short timeouts on this same socket
            self._ws.sock.settimeout(SEND_TIMEOUT)
        try:
            self._ws.send(json.dumps(frame, separators=(",", ":"), ensure_ascii=False))
        except (OSError, websocket.WebSocketException) as exc:
            self._drop()
            raise Disconnected(f"the connection dropped while sending: {exc}") from exc

    def send_client_event(self, channel: str, event: str, data: Any) -> None:
        """Send a client event (the channel must be subscribed; Soketi needs client messages on)."""
        if not event.startswith("client-"):
            raise InvalidInput(
                f"client event {event!r} must start with 'client-'",
                hint="name it e.g. client-typing",
            )
        self._send(event, data, channel)

    # --- subscribing -----------------------------------------------------------------------------

    def _authorize(self, sub: Subscription) -> dict[str, str]:
        assert self.socket_id is not None
        if self.auth_endpoint:
            response = self._auth_endpoint_call(sub.name)
        else:
            channel_data = None
            if sub.kind == "presence":
                if not self.user_id:
                    raise InvalidInput(
                        f"presence channel {sub.name!r} needs a user id",
                        hint='pass --as-user ID (and optionally --user-info \'{"name": "Ann"}\')',
                    )
                channel_data = presence_channel_data(self.user_id, self.user_info)
            response = authorize_channel(
                self.settings.key,
                self.settings.secret,
                self.socket_id,
                sub.name,
                channel_data,
                self.settings.master_key,
            )
        if sub.kind == "private-encrypted":
            import base64
            import binascii

            try:
                sub.key = base64.b64decode(response["shared_secret"], validate=True)
            except (KeyError, binascii.Error, TypeError) as exc:
                raise ServerRejected(
                    f"the auth response for {sub.name!r} has no valid shared_secret",
                    hint="the auth endpoint must return shared_secret for private-encrypted-*",
                ) from exc
            if len(sub.key) != 32:
                raise ServerRejected(f"the shared_secret for {sub.name!r} is not 32 bytes")
        if sub.kind == "presence":
            channel_data = response.get("channel_data")
            if not isinstance(channel_data, str):
                raise ServerRejected(
                    f"the auth response for {sub.name!r} has no channel_data",
                    hint="a presence auth response carries channel_data with the user_id",
                )
            try:
                sub.me = str(json.loads(channel_data)["user_id"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ServerRejected(f"the channel_data for {sub.name!r} has no user_id") from exc
        return {k: v for k, v in response.items() if k in ("auth", "channel_data")}

    def _auth_endpoint_call(self, channel: str) -> dict[str, Any]:
        """POST socket_id and channel_name form-encoded, exactly like pusher-js' default transport."""
        import ssl
        import urllib.error
        import urllib.parse
        import urllib.request

        assert self.auth_endpoint is not None and self.socket_id is not None
        body = urllib.parse.urlencode({"socket_id": self.socket_id, "channel_name": channel})
        headers = {"Content-Type": "application/x-www-form-urlencoded", **self.auth_headers}
        request = urllib.request.Request(
            self.auth_endpoint, data=body.encode(), headers=headers, method="POST"
        )
        context = None
        if self.auth_endpoint.startswith("https:") and self.settings.ca_bundle:
            context = ssl.create_default_context(cafile=self.settings.ca_bundle)
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as response:
                text = response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace").strip()[:200]
            message = f"the auth endpoint refused {channel!r} with HTTP {exc.code}"
            if detail:
                message += f": {detail}"
            if exc.code in (401, 403):
                raise AuthRejected(
                    message, hint="check the --auth-header credentials (e.g. a bearer token)"
                ) from exc
            raise ServerRejected(message, status=exc.code) from exc
        except (OSError, urllib.error.URLError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise Unreachable(
                f"cannot reach the auth endpoint {self.auth_endpoint}: {reason}",
                hint="is the gateway running? check --auth-endpoint",
            ) from exc
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("auth"), str):
            raise ServerRejected(
                f"the auth endpoint answered {channel!r} without an auth JSON: {text[:200]!r}",
                hint='it must return {"auth": "key:signature", ...} with HTTP 200',
            )
        return data

    def subscribe(self, channel: str, timeout: float) -> Subscription:
        """Subscribe (signing for the current socket id) and wait for subscription_succeeded."""
        if self._ws is None:
            raise Disconnected("connect() before subscribe()")
        deadline = time.monotonic() + timeout
        sub = self.subscriptions.get(channel) or Subscription(channel)
        sub.subscribed = False
        payload: dict[str, Any] = {"channel": channel}
        if sub.kind != "public":
            payload.update(self._authorize(sub))
        self.subscriptions[channel] = sub
        self._send("pusher:subscribe", payload)
        held: list[Message] = []
        try:
            while not sub.subscribed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimedOut(
                        f"no subscription_succeeded for {channel!r} within {timeout:g}s",
                        hint="is the server overloaded? try a longer --timeout",
                    )
                message = self._read(remaining, subscribing=sub)
                if message is not None:
                    held.append(message)
        except RtctlError:
            if not sub.subscribed and not isinstance(sys.exc_info()[1], Disconnected):
                self.subscriptions.pop(channel, None)  # refused or timed out: not wanted any more
            raise
        finally:
            self._pending.extend(held)
        return sub

    def unsubscribe(self, channel: str) -> None:
        self.subscriptions.pop(channel, None)
        if self._ws is not None:
            self._send("pusher:unsubscribe", {"channel": channel})

    # --- receiving -------------------------------------------------------------------------------

    def recv(self, timeout: float) -> Message | None:
        """The next event, or None when ``timeout`` seconds pass without one."""
        if self._pending:
            return self._pending.popleft()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            message = self._read(remaining)
            if message is not None:
                return message

    def _drop(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            self._release(ws)

    def _next_frame(self, deadline: float, timeout_message: str) -> dict[str, Any]:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                raise TimedOut(timeout_message, hint="try a longer --timeout")
            text = self._read_text(remaining)
            if text is not None:
                frame = json.loads(text)
                if frame.get("event") == "pusher:error":
                    self._raise_error_frame(frame)
                return dict(frame)

    def has_buffered(self) -> bool:
        """True when the next ``recv`` can return without reading the socket (callers flush
        their output once per drained batch instead of once per event)."""
        if self._pending or self._frame_bounds() is not None:
            return True
        return self._drain is not None and self._drain.pending()

    def _frame_bounds(self) -> tuple[int, int] | None:
        """(payload start, end) of the frame at ``_pos`` in ``_buf``; None if not all here."""
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if avail < 2:
            return None
        second = buf[pos + 1]
        length, header = second & 0x7F, 2
        if length == 126:
            if avail < 4:
                return None
            length, header = (buf[pos + 2] << 8) | buf[pos + 3], 4
        elif length == 127:
            if avail < 10:
                return None
            length, header = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
        if second & 0x80:  # servers must not mask, but tolerate it
            header += 4
        end = pos + header + length
        return (pos + header, end) if end <= len(buf) else None

    def _fill(self, timeout: float) -> bool:
        """Read what the kernel has (up to RECV_CHUNK) into the buffer; False on timeout.
        Sends pusher:ping after activity_timeout of silence; drops the socket if no answer."""
        ws = self._ws
        if ws is None:
            raise Disconnected("the socket is not connected")
        now = time.monotonic()
        if self._ping_sent_at is None:
            wait = self._last_rx + self.activity_timeout - now
            if wait <= 0:
                self._send("pusher:ping", {})
                self.pings_sent += 1
                self._ping_sent_at = now
                wait = PONG_TIMEOUT
        else:
            wait = self._ping_sent_at + PONG_TIMEOUT - now
            if wait <= 0:
                self._drop()
                raise Disconnected(f"no answer to pusher:ping within {PONG_TIMEOUT:g}s")
        chunk = self._receive(ws, max(0.001, min(timeout, wait)))
        if chunk is None:
            return False
        self._last_rx = time.monotonic()
        self._ping_sent_at = None
        if self._pos >= len(self._buf):
            self._buf = chunk
        else:
            self._buf = self._buf[self._pos :] + chunk
        self._pos = 0
        return True

    def _receive(self, ws: Any, timeout: float) -> bytes | None:
        """The next bytes from the server, None on timeout; Disconnected once they end."""
        drain = self._drain
        if drain is None:  # TLS: read in this thread (an SSL object must not be shared)
            ws.sock.settimeout(timeout)
            try:
                chunk: Any = ws.sock.recv(RECV_CHUNK)
            except TimeoutError:
                return None
            except OSError as exc:
                chunk = exc
            items = [chunk]
        else:
            if drain.end is not None:
                items = [drain.end]
            else:
                items = drain.take(timeout)
                if not items:
                    return None
        data = []
        for item in items:
            if isinstance(item, bytes) and item:
                data.append(item)
                continue
            if data:  # hand over what came before the end (often the close frame) first
                if drain is not None:
                    drain.end = item
                break
            self._drop()
            if isinstance(item, OSError):
                raise Disconnected(f"the connection dropped: {item}") from item
            raise Disconnected("the server dropped the connection without a close frame")
        return data[0] if len(data) == 1 else b"".join(data)

    def _read_text(self, timeout: float) -> str | None:
        """The next text message, or None if none is complete within ``timeout``.

        Server frames are split here rather than by websocket-client's frame reader: that reader
        makes two or three recv() calls and several objects per frame, and measured ~3x slower,
        enough for Soketi to start dropping frames in a burst. The library still does the
        handshake, TLS and everything we send."""
        deadline = time.monotonic() + timeout
        while True:
            bounds = self._frame_bounds()
            if bounds is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._fill(remaining):
                    return None
                continue
            start, end = bounds
            buf, pos = self._buf, self._pos
            first, second = buf[pos], buf[pos + 1]
            payload = buf[start:end]
            if second & 0x80:
                from websocket import ABNF

                payload = ABNF.mask(buf[start - 4 : start], payload)
            self._pos = end
            opcode = first & 0x0F
            if opcode in (1, 2):  # text (binary is JSON too, as Soketi parses it)
                if first & 0x80:
                    return payload.decode("utf-8")
                self._fragments = [payload]
            elif opcode == 0:  # continuation of a fragmented message
                self._fragments.append(payload)
                if first & 0x80:
                    text = b"".join(self._fragments).decode("utf-8")
                    self._fragments = []
                    return text
            elif opcode == 8:
                self._closed_by_server(payload)
            elif opcode == 9:  # protocol-level ping: answer it
                self._pong(payload)

    def _pong(self, payload: bytes) -> None:
        import websocket

        if self._drain is None:
            self._ws.sock.settimeout(SEND_TIMEOUT)
        try:
            self._ws.pong(payload)
        except (OSError, websocket.WebSocketException) as exc:
            self._drop()
            raise Disconnected(f"the connection dropped: {exc}") from exc

    def _closed_by_server(self, payload: bytes) -> None:
        code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
        reason = payload[2:].decode("utf-8", "replace")
        if not reason and self._last_error[0] == code:  # Soketi puts it in the pusher:error
            reason = self._last_error[1]
        ws, self._ws = self._ws, None
        with contextlib.suppress(Exception):  # the peer may already be gone
            ws.send_close()
        self._release(ws)
        detail = f"{code}: {reason}" if reason else str(code)
        raise Disconnected(
            f"the server closed the connection ({detail})", close_code=code, close_reason=reason
        )

    def _read(self, timeout: float, subscribing: Subscription | None = None) -> Message | None:
        text = self._read_text(timeout)
        if text is None:
            return None
        frame = json.loads(text)
        event = frame.get("event")
        channel = frame.get("channel")
        raw = frame.get("data")
        if event.startswith("pusher"):
            return self._internal(event, channel, raw, text, subscribing)
        sub = self.subscriptions.get(channel) if channel is not None else None
        data = _decode(raw) if isinstance(raw, str) else raw
        message = Message(
            event, channel, data, raw, frame.get("user_id"), time.time(), self._last_rx, text
        )
        if sub is not None and sub.key is not None and not event.startswith("client-"):
            self._decrypt(sub, message)
        elif data is not raw:
            message.json_text = raw
        return message

    def _decrypt(self, sub: Subscription, message: Message) -> None:
        """Replace the sealed payload by its plaintext; on failure keep it and set ``error``
        (pusher-js drops such events; a listener should say so)."""
        from rtctl.crypto import DecryptionFailed, decrypt

        assert sub.key is not None
        try:
            message.data = _decode(decrypt(sub.key, message.data))
        except DecryptionFailed as exc:
            message.error = str(exc)

    def _internal(
        self, event: str, channel: str | None, raw: Any, text: str, subscribing: Subscription | None
    ) -> Message | None:
        data = json.loads(raw) if isinstance(raw, str) and raw else raw
        if event == "pusher:ping":
            self._send("pusher:pong", {})
            return None
        if event == "pusher:pong":
            self.pongs_received += 1
            return None
        if event == "pusher:error" and isinstance(data, dict):
            self._last_error = (data.get("code"), str(data.get("message") or ""))
        sub = self.subscriptions.get(channel) if channel is not None else None
        if event == "pusher_internal:subscription_succeeded":
            if sub is not None:
                sub.subscribed = True
                if sub.members is not None and isinstance(data, dict):
                    presence = data.get("presence") or {}
                    info = presence.get("hash") or {}
                    # ids is the member list; hash lacks users who sent no user_info (Soketi)
                    ids = presence.get("ids") or list(info)
                    sub.members = {str(user): info.get(user) for user in ids}
            return None
        if event == "pusher:subscription_error":
            self._subscription_failed(channel, data, subscribing)
        if event == "pusher:error" and subscribing is not None:
            code = data.get("code") if isinstance(data, dict) else None
            if code is None:  # Pusher reports a bad subscription this way (no channel)
                self._subscription_failed(subscribing.name, data, subscribing)
        members = sub.members if sub is not None else None
        if members is not None and isinstance(data, dict):
            if event == "pusher_internal:member_added":
                members[str(data.get("user_id"))] = data.get("user_info")
            elif event == "pusher_internal:member_removed":
                members.pop(str(data.get("user_id")), None)
        return Message(event, channel, data, raw, None, time.time(), self._last_rx, text)

    def _subscription_failed(
        self, channel: str | None, data: Any, subscribing: Subscription | None
    ) -> None:
        info = data if isinstance(data, dict) else {}
        status = info.get("status")
        error = info.get("error") or info.get("message") or "refused"
        if channel is not None:
            self.subscriptions.pop(channel, None)
        message = f"subscription to {channel!r} refused: {error} (status {status})"
        if status in (401, 403) or "signature" in str(error).lower():
            raise AuthRejected(
                message,
                hint="the secret in your config does not match the server's "
                "(check PUSHER_APP_SECRET), or the auth endpoint signed for another app",
            )
        raise ServerRejected(message, status=status if isinstance(status, int) else None)

    def _raise_error_frame(self, frame: dict[str, Any]) -> None:
        """A ``pusher:error`` before connection_established: the connection is refused."""
        data = frame.get("data")
        info = json.loads(data) if isinstance(data, str) else (data or {})
        code = info.get("code")
        text = info.get("message") or "connection refused"
        self.close()
        raise refusal(code, text, self.settings.key)


def refusal(code: int | None, text: str, key: str) -> RtctlError:
    """The typed error for a connection-level refusal (pusher:error / close code)."""
    if code == 4001:
        return AuthRejected(
            f"app key {key!r} is unknown to the server ({text})",
            hint="check PUSHER_APP_KEY matches the server's app key",
        )
    if code in (4003, 4009):
        return AuthRejected(f"the server refused the connection: {text} ({code})")
    if code == 4000:
        return ConfigError(f"the app requires TLS: {text} (4000)", hint="set REALTIME_SCHEME=https")
    if code is not None and 4100 <= code <= 4199:
        return ServerRejected(
            f"the server is over capacity: {text} ({code})", hint="retry later", status=code
        )
    if code is not None and 4200 <= code <= 4299:
        return Disconnected(
            f"the server asked to reconnect: {text} ({code})", close_code=code, close_reason=text
        )
    return ServerRejected(f"the server refused the connection: {text} ({code})", status=code)
