"""A Pusher protocol v7 client over websocket-client: what ``rtctl listen`` and ``rtctl smoke`` use.

Library API (stable; see docs/listen.md):

    sock = PusherSocket(settings, auth_endpoint=None, auth_headers=None, user_id=None, user_info=None)
    socket_id = sock.connect(timeout)            # Unreachable | AuthRejected (4001) | TimedOut | ...
    sub = sock.subscribe(channel, timeout)       # signs locally or asks auth_endpoint like pusher-js
    sub.members                                  # presence: {user_id: user_info}, kept up to date
    sock.send_client_event(channel, "client-x", {"a": 1})
    msg = sock.recv(timeout)                     # Message | None; raises Disconnected on close
    sock.signin(timeout)                         # pusher:signin as user_id (or via user_auth_endpoint),
                                                 # then #server-to-user-{id} like pusher-js
    sock.reconnect(timeout)                      # new socket, RE-SIGNS (signs in again) and resubscribes
    sock.unsubscribe(channel); sock.close()
    sock.has_buffered()                          # True if recv() can answer without waiting
    (close_policy and backoff_delay, in rtctl.protocol.closecodes, say what a close code means)
    Message: event, channel, data (decoded), raw (wire data text), user_id, received_at
             (time.time()), monotonic (time.monotonic()), frame (whole frame text)

``recv`` hides the protocol's housekeeping: it answers ``pusher:ping``, sends ``pusher:ping`` after
``activity_timeout`` seconds without traffic, decodes the double-encoded ``data``, decrypts
``private-encrypted-`` channels, and keeps presence member lists. What it returns is every channel
event (including ``pusher_internal:member_added``/``member_removed`` and client events) and
``pusher:error`` frames that do not close the socket, ``pusher:cache_miss`` and
``pusher_internal:subscription_count``. A frame that is not a JSON object with an ``event`` string
is the server's fault: it is skipped and reported through ``on_warning`` (default: the
``rtctl.protocol`` logger), never raised as an internal error.

Speed matters (Soketi silently drops frames to a reader more than 1 MiB behind), so the receive path
is lean: websocket-client does the handshake, TLS and all sending, but server frames are split here
from 1 MiB socket reads (the library's reader costs two or three syscalls and several objects per
frame, and its pure-Python UTF-8 validation is off: decoding the text validates it anyway); a
``Message`` is a slotted object whose ``raw`` text is only serialised when asked.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rtctl.errors import (
    AuthRejected,
    InvalidInput,
    RtctlError,
    ServerRejected,
    TimedOut,
    Unreachable,
)
from rtctl.protocol import strictjson
from rtctl.protocol.authclient import request_channel_auth, request_user_auth
from rtctl.protocol.closecodes import Disconnected, refusal
from rtctl.protocol.frames import CLOSE, PING, ByteSource, FrameSplitter
from rtctl.protocol.signing import (
    SERVER_TO_USER_PREFIX,
    authenticate_user,
    authorize_channel,
    channel_kind,
    compact_json,
    presence_channel_data,
)

if TYPE_CHECKING:
    from rtctl.config import Settings

PONG_TIMEOUT = 30.0  # seconds to wait for any frame after our pusher:ping (Pusher's recommendation)
MAX_ACTIVITY_TIMEOUT = 120.0  # pusher-js' default; min(this, the server's activity_timeout)
CLIENT_NAME = "rtctl-python"
log = logging.getLogger("rtctl.protocol")


def parse_frame(text: str) -> dict[str, Any] | None:
    """A server frame as a dict with an ``event`` string, or None when it is not one."""
    try:
        frame = strictjson.loads(text)  # nesting too deep is not a frame either
    except ValueError:
        return None
    if not isinstance(frame, dict) or not isinstance(frame.get("event"), str):
        return None
    if frame.get("channel") is not None and not isinstance(frame["channel"], str):
        return None
    return frame


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


def _decode(text: str) -> Any:
    """An event's data: JSON when it is strict JSON, else the text as sent."""
    try:
        return strictjson.loads(text)
    except ValueError:
        return text


class PusherSocket:
    """One client connection to a Pusher-protocol server, as pusher-js would make it.

    ``connect`` opens ``settings.ws_url`` and waits for ``pusher:connection_established``;
    ``subscribe`` joins a channel, signing private and presence channels with the configured
    secret, or through ``auth_endpoint`` (with ``auth_headers``) exactly as pusher-js does;
    ``user_id``/``user_info`` are the presence member to sign for. ``recv`` returns channel events
    and does the housekeeping (pings, decoding, decryption, member lists); ``reconnect`` opens a new
    connection and re-signs every channel for the new socket id. ``client_name`` goes into the
    URL's ``client=`` field; ``activity_timeout`` caps the server's keepalive interval. One socket
    is meant for one thread; it is also a context manager that closes it.
    """

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
        user_auth_endpoint: str | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.auth_endpoint = auth_endpoint
        self.auth_headers = dict(auth_headers or {})
        self.user_id = user_id
        self.user_info = user_info
        self.user_auth_endpoint = user_auth_endpoint
        self.on_warning = on_warning or log.warning
        self.signed_in_as: str | None = None  # the user id of a successful pusher:signin
        self._wants_signin = False  # sign in again after every reconnect (as pusher-js does)
        self.malformed_frames = 0
        self.client_name = client_name
        self._activity_cap = (
            activity_timeout if activity_timeout is not None else MAX_ACTIVITY_TIMEOUT
        )
        self.socket_id: str | None = None
        self.activity_timeout: float = self._activity_cap
        self.subscriptions: dict[str, Subscription] = {}
        # What the last subscribe of each channel sent (socket_id, channel, auth, channel_data),
        # so a refusal can be explained (`rtctl verify auth`).
        self.signed: dict[str, dict[str, str]] = {}
        self.pings_sent = 0
        self.pongs_received = 0
        self._ws: Any = None
        self._pending: deque[Message] = deque()  # events read while waiting for something else
        self._last_rx = 0.0
        self._ping_sent_at: float | None = None
        self._frames = FrameSplitter()
        self._source: ByteSource | None = None
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
        self._frames = FrameSplitter(b"".join(getattr(ws.frame_buffer, "recv_buffer", None) or []))
        self._source = ByteSource(ws.sock, tls=self.settings.tls)
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
        info = _decode(data) if isinstance(data, str) else data
        socket_id = info.get("socket_id") if isinstance(info, dict) else None
        if not isinstance(socket_id, str) or not socket_id:
            self.close()
            raise ServerRejected(
                f"pusher:connection_established without a socket_id: {data!r:.200}",
                hint="this is not a Pusher-protocol server (check REALTIME_HOST/REALTIME_PORT)",
            )
        assert isinstance(info, dict)
        self.socket_id = socket_id
        self.signed_in_as = None
        try:
            server_timeout = float(info.get("activity_timeout") or MAX_ACTIVITY_TIMEOUT)
        except (TypeError, ValueError):
            server_timeout = MAX_ACTIVITY_TIMEOUT
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
        source, self._source = self._source, None
        if source is not None:
            source.stop()
        ws.shutdown()

    def __enter__(self) -> PusherSocket:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def reconnect(self, timeout: float) -> str:
        """Open a new socket and re-sign + resubscribe every channel for the new socket id."""
        deadline = time.monotonic() + timeout
        socket_id = self.connect(timeout)
        if self._wants_signin:
            self.signin(max(0.1, deadline - time.monotonic()))
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
        if self._source is not None:
            self._source.before_send()
        try:
            self._ws.send(compact_json(frame))
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
            response = request_channel_auth(
                self.auth_endpoint,
                self.socket_id,
                sub.name,
                self.auth_headers,
                self.settings.ca_bundle,
            )
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
                sub.me = str(strictjson.loads(channel_data)["user_id"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ServerRejected(f"the channel_data for {sub.name!r} has no user_id") from exc
        return {k: v for k, v in response.items() if k in ("auth", "channel_data")}

    def subscribe(self, channel: str, timeout: float) -> Subscription:
        """Subscribe (signing for the current socket id) and wait for subscription_succeeded."""
        if self._ws is None:
            raise Disconnected("connect() before subscribe()")
        deadline = time.monotonic() + timeout
        sub = self.subscriptions.get(channel) or Subscription(channel)
        sub.subscribed = False
        payload: dict[str, Any] = {"channel": channel}
        self.signed.pop(channel, None)
        if sub.kind == "server-to-user":
            payload["auth"] = ""  # as pusher-js: the server checks the signed-in user instead
        elif sub.kind != "public":
            payload.update(self._authorize(sub))
            self.signed[channel] = {"socket_id": self.socket_id or "", **payload}
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

    def signin(self, timeout: float) -> str:
        """Sign the connection in (``pusher:signin``) as ``user_id`` (signed locally) or as the
        user ``user_auth_endpoint`` names, then subscribe to ``#server-to-user-{id}`` as pusher-js
        does, so events sent to that user arrive. Returns the user id."""
        if self._ws is None or self.socket_id is None:
            raise Disconnected("connect() before signin()")
        deadline = time.monotonic() + timeout
        if self.user_auth_endpoint:
            response = request_user_auth(
                self.user_auth_endpoint,
                self.socket_id,
                self.auth_headers,
                self.settings.ca_bundle,
            )
        else:
            if not self.user_id:
                raise InvalidInput(
                    "signing in needs a user id", hint="pass --as-user ID (or --user-auth-endpoint)"
                )
            user_data: dict[str, Any] = {"id": self.user_id}
            if self.user_info is not None:
                user_data["user_info"] = self.user_info
            response = authenticate_user(
                self.settings.key, self.settings.secret, self.socket_id, user_data
            )
        user_data_text = response.get("user_data")
        decoded = _decode(user_data_text) if isinstance(user_data_text, str) else None
        user = decoded.get("id") if isinstance(decoded, dict) else None
        if not isinstance(user, (str, int)) or isinstance(user, bool) or str(user) == "":
            raise ServerRejected(
                f"the user authentication response has no user_data with an id: {response!r:.200}",
                hint='it must return {"auth": "key:signature", "user_data": "{\\"id\\":\\"…\\"}"}',
            )
        self._wants_signin = True
        self.signed_in_as = None
        self._send("pusher:signin", {"auth": response.get("auth", ""), "user_data": user_data_text})
        held: list[Message] = []
        try:
            while self.signed_in_as is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimedOut(
                        f"no pusher:signin_success within {timeout:.1f}s",
                        hint="Soketi answers pusher:signin only with "
                        "SOKETI_DEFAULT_APP_USER_AUTHENTICATION=true (Pusher always does)",
                    )
                message = self._read(remaining, signing_in=True)
                if message is not None:
                    held.append(message)
        finally:
            self._pending.extend(held)
        channel = SERVER_TO_USER_PREFIX + self.signed_in_as
        self.subscribe(channel, max(0.1, deadline - time.monotonic()))
        return self.signed_in_as

    def unsubscribe(self, channel: str) -> None:
        self.subscriptions.pop(channel, None)
        if self._ws is not None:
            self._send("pusher:unsubscribe", {"channel": channel})

    # --- receiving -------------------------------------------------------------------------------

    def recv(self, timeout: float) -> Message | None:
        """The next event, or None when ``timeout`` seconds pass without one. What has already
        arrived is returned even with a zero timeout (``while sock.has_buffered(): recv(0)``
        drains the buffer instead of spinning)."""
        if self._pending:
            return self._pending.popleft()
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            message = self._read(max(0.0, deadline - time.monotonic()))
            if message is not None:
                return message
            if time.monotonic() >= deadline:
                return None

    def wait_for(self, event: str, channel: str | None, timeout: float) -> Message | None:
        """The first ``event`` (on ``channel``, unless None) within ``timeout`` seconds, or None;
        the events before it are read and dropped."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            message = self.recv(remaining)
            if message is None or message.event != event:
                continue
            if channel is None or message.channel == channel:
                return message
        return None

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
                frame = parse_frame(text)
                if frame is None:
                    self._malformed(text)
                    continue
                if frame.get("event") == "pusher:error":
                    self._raise_error_frame(frame)
                return frame

    def has_buffered(self) -> bool:
        """True when the next ``recv`` can return without reading the socket (callers flush
        their output once per drained batch instead of once per event)."""
        if self._pending or self._frames.has_frame():
            return True
        return self._source is not None and self._source.pending()

    def _fill(self, timeout: float) -> bool:
        """Read what the kernel has (up to RECV_CHUNK) into the buffer; False on timeout.
        Sends pusher:ping after activity_timeout of silence; drops the socket if no answer."""
        if self._ws is None:
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
        assert self._source is not None
        try:
            chunk = self._source.read(max(0.001, min(timeout, wait)))
        except Disconnected:
            self._drop()
            raise
        if chunk is None:
            return False
        self._last_rx = time.monotonic()
        self._ping_sent_at = None
        self._frames.feed(chunk)
        return True

    def _read_text(self, timeout: float) -> str | None:
        """The next text message, or None if none is complete within ``timeout``; answers
        protocol pings and turns a close frame into ``Disconnected``."""
        deadline = time.monotonic() + timeout
        last_look = False
        while True:
            frame = self._frames.next()
            if frame is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    # Out of time: one last look at what has already arrived (a zero timeout
                    # still gets it), and no more.
                    if last_look:
                        return None
                    last_look = True
                if not self._fill(max(0.0, remaining)):
                    return None
                continue
            opcode, payload = frame
            if opcode == CLOSE:
                self._closed_by_server(payload)
            elif opcode == PING:
                self._pong(payload)
            else:
                return payload.decode("utf-8")

    def _pong(self, payload: bytes) -> None:
        import websocket

        if self._source is not None:
            self._source.before_send()
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

    def _malformed(self, text: str) -> None:
        """A frame that is not a JSON object with an ``event`` string: the server's fault, so it
        is skipped with a warning (never an internal error)."""
        self.malformed_frames += 1
        shown = text if len(text) <= 200 else text[:200] + "…"
        self.on_warning(f"skipped a malformed frame from the server (no event name): {shown!r}")

    def _read(
        self, timeout: float, subscribing: Subscription | None = None, signing_in: bool = False
    ) -> Message | None:
        text = self._read_text(timeout)
        if text is None:
            return None
        frame = parse_frame(text)
        if frame is None:
            self._malformed(text)
            return None
        event: str = frame["event"]
        channel = frame.get("channel")
        raw = frame.get("data")
        if event.startswith("pusher"):
            return self._internal(event, channel, raw, text, subscribing, signing_in)
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
        from rtctl.protocol.crypto import DecryptionFailed, decrypt

        assert sub.key is not None
        try:
            message.data = _decode(decrypt(sub.key, message.data))
        except DecryptionFailed as exc:
            message.error = str(exc)

    def _internal(
        self,
        event: str,
        channel: str | None,
        raw: Any,
        text: str,
        subscribing: Subscription | None,
        signing_in: bool = False,
    ) -> Message | None:
        data = _decode(raw) if isinstance(raw, str) and raw else raw
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
        if event == "pusher:signin_success":
            user_data = data.get("user_data") if isinstance(data, dict) else None
            decoded = _decode(user_data) if isinstance(user_data, str) else user_data
            user = decoded.get("id") if isinstance(decoded, dict) else None
            if user is not None and str(user):
                self.signed_in_as = str(user)
            return None
        if event == "pusher:error" and signing_in:
            info = data if isinstance(data, dict) else {}
            raise AuthRejected(
                f"the server refused the sign-in: {info.get('message') or data} "
                f"({info.get('code')})",
                hint="the secret in your config does not match the server's, or the user "
                "authentication endpoint signed for another app",
            )
        if event == "pusher:subscription_error":
            self._subscription_failed(channel, data)
        if event == "pusher:error" and subscribing is not None:
            code = data.get("code") if isinstance(data, dict) else None
            if code is None:  # Pusher reports a bad subscription this way (no channel)
                self._subscription_failed(subscribing.name, data)
        members = sub.members if sub is not None else None
        if members is not None and isinstance(data, dict):
            if event == "pusher_internal:member_added":
                members[str(data.get("user_id"))] = data.get("user_info")
            elif event == "pusher_internal:member_removed":
                members.pop(str(data.get("user_id")), None)
        return Message(event, channel, data, raw, None, time.time(), self._last_rx, text)

    def _subscription_failed(self, channel: str | None, data: Any) -> None:
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
        decoded = _decode(data) if isinstance(data, str) else data
        info = decoded if isinstance(decoded, dict) else {}
        code = info.get("code")
        text = str(info.get("message") or "connection refused")
        self.close()
        raise refusal(code, text, self.settings.key)
