"""Server WebSocket frames: where the bytes come from, and how they are split into messages.

websocket-client does the handshake, TLS and everything rtctl sends, but server frames are split
here: the library's reader makes two or three recv() calls and several objects per frame and
measured ~3x slower, enough for Soketi to drop frames in a burst (it drops frames for a socket once
1 MiB is queued for it). ``FrameSplitter`` is pure (bytes in, messages out) so it is tested at the
byte level; ``ByteSource`` is the I/O.
"""

from __future__ import annotations

import contextlib
from typing import Any

from rtctl.protocol.closecodes import Disconnected

# Read up to 1 MiB per recv(). The socket's receive buffer is left to the kernel's autotuning:
# a fixed SO_RCVBUF (8 MiB) measured far worse (lost most of a 200k burst) than autotuning (none).
RECV_CHUNK = 1 << 20
SEND_TIMEOUT = 10.0  # a send that cannot complete in this long means the connection is gone

# Opcodes handed to the caller (RFC 6455 §5.2); pongs and unknown opcodes are skipped.
TEXT = 1
CLOSE = 8
PING = 9


class FrameSplitter:
    """Splits a server byte stream into messages. ``next()`` returns ``(TEXT, payload)`` for a
    whole message (fragments reassembled; binary frames count as text, as Soketi parses them as
    JSON), ``(CLOSE, payload)`` and ``(PING, payload)`` for control frames (which may arrive
    between the fragments of a message), or None when more bytes are needed."""

    __slots__ = ("_buf", "_fragments", "_pos")

    def __init__(self, initial: bytes = b"") -> None:
        self._buf = initial  # received bytes not yet split, from _pos on
        self._pos = 0
        self._fragments: list[bytes] = []

    def feed(self, chunk: bytes) -> None:
        if self._pos >= len(self._buf):
            self._buf = chunk
        else:
            self._buf = self._buf[self._pos :] + chunk
        self._pos = 0

    def has_frame(self) -> bool:
        """True when a whole frame is buffered (``next()`` may still need more for a message)."""
        return self._bounds() is not None

    def _bounds(self) -> tuple[int, int] | None:
        """(payload start, end) of the frame at ``_pos``; None if it is not all here."""
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

    def next(self) -> tuple[int, bytes] | None:
        while True:
            bounds = self._bounds()
            if bounds is None:
                return None
            start, end = bounds
            buf, pos = self._buf, self._pos
            first, second = buf[pos], buf[pos + 1]
            payload = buf[start:end]
            if second & 0x80:
                from websocket import ABNF

                payload = ABNF.mask(buf[start - 4 : start], payload)
            self._pos = end
            opcode = first & 0x0F
            if opcode in (1, 2):
                if first & 0x80:
                    return TEXT, payload
                self._fragments = [payload]
            elif opcode == 0:  # continuation of a fragmented message
                self._fragments.append(payload)
                if first & 0x80:
                    whole = b"".join(self._fragments)
                    self._fragments = []
                    return TEXT, whole
            elif opcode in (CLOSE, PING):
                return opcode, payload


class _Drain:
    """A thread that moves received bytes from the kernel into memory as soon as they arrive,
    so a backlog waits in this process instead of in Soketi (which drops frames past 1 MiB).
    It only calls recv() (which releases the GIL); parsing stays in the caller's thread."""

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

    def stop(self, sock: Any) -> None:
        """Wake the blocked recv() (shutdown, not just close) and let the thread end."""
        import socket

        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=1.0)


class ByteSource:
    """The server's bytes for one connection: through a drain thread on plain TCP, read in the
    caller's thread on TLS (an SSL object must not be shared between threads)."""

    def __init__(self, sock: Any, tls: bool) -> None:
        self._sock = sock
        self._drain = None if tls else _Drain(sock)

    def pending(self) -> bool:
        return self._drain is not None and self._drain.pending()

    def before_send(self) -> None:
        """TLS reads set short timeouts on the same socket: give a send its own bound."""
        if self._drain is None:
            self._sock.settimeout(SEND_TIMEOUT)

    def read(self, timeout: float) -> bytes | None:
        """The next bytes, None on timeout; ``Disconnected`` once the stream has ended."""
        drain = self._drain
        if drain is None:
            self._sock.settimeout(timeout)
            try:
                chunk: Any = self._sock.recv(RECV_CHUNK)
            except TimeoutError:
                return None
            except OSError as exc:
                chunk = exc
            items = [chunk]
        elif drain.end is not None:
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
            if isinstance(item, OSError):
                raise Disconnected(f"the connection dropped: {item}") from item
            raise Disconnected("the server dropped the connection without a close frame")
        return data[0] if len(data) == 1 else b"".join(data)

    def stop(self) -> None:
        if self._drain is not None:
            self._drain.stop(self._sock)
            self._drain = None
