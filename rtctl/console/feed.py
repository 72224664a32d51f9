"""The console's live log: one bounded, thread-safe feed of entries, read by any number of pages.

Producers are threads (the channel watcher, the event creator, a webhook receiver) that call
``publish``. Each entry gets a sequence number and is serialised to JSON once. Readers (one
Server-Sent Events stream per open page) keep the last sequence number they sent and ask for what
came after it; the feed keeps only the newest ``size`` entries, so a reader that fell behind is
told how many it lost instead of the process holding an unbounded backlog.

Entry kinds: ``event`` (a channel event, decrypted on encrypted channels), ``member`` (presence
joins and leaves), ``sent`` (what the console itself triggered), ``webhook`` (a webhook delivery,
see ``publish_webhook``), ``error`` (connection and subscription errors) and ``status``
(connected, subscribed, reconnecting).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, Literal

Kind = Literal["event", "member", "sent", "webhook", "error", "status"]
KINDS: tuple[str, ...] = ("event", "member", "sent", "webhook", "error", "status")
DEFAULT_SIZE = 2000

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


class Feed:
    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._entries: deque[tuple[int, str]] = deque(maxlen=size)
        self._seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: set[asyncio.Event] = set()
        self._wake_pending = False
        self.closed = False

    # --- producers (any thread) ------------------------------------------------------------------

    def publish(self, kind: Kind, **fields: Any) -> int:
        """Add one entry; returns its sequence number."""
        with self._lock:
            self._seq += 1
            seq = self._seq
            entry = {"seq": seq, "time": round(time.time(), 3), "kind": kind, **fields}
            self._entries.append((seq, _dumps(entry)))
            wake = not self._wake_pending and self._loop is not None
            if wake:
                self._wake_pending = True
        if wake:
            self._call(self._notify)
        return seq

    def publish_webhook(
        self,
        events: Iterable[Mapping[str, Any]],
        *,
        valid: bool,
        time_ms: int | None = None,
        error: str | None = None,
    ) -> int:
        """The seam for webhook deliveries: one entry per delivery (``valid`` = the
        X-Pusher-Key/X-Pusher-Signature check passed), its events as Pusher sends them
        (``{"name": "channel_occupied", "channel": ...}``, ...)."""
        items = [dict(event) for event in events]
        names = sorted({str(item.get("name")) for item in items})
        channels = sorted({str(item["channel"]) for item in items if "channel" in item})
        return self.publish(
            "webhook",
            channel=channels[0] if len(channels) == 1 else ",".join(channels) or None,
            event=",".join(names),
            data={"time_ms": time_ms, "events": items},
            valid=valid,
            error=error,
        )

    # --- readers (the event loop) ----------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return self._seq

    def since(self, seq: int, limit: int | None = None) -> tuple[list[str], int, int]:
        """(entries after ``seq`` as JSON texts, how many of those were dropped, the last sequence
        number). ``limit`` keeps only the newest ones (the rest count as dropped). A ``seq`` from
        the future (a page that outlived an earlier console process) reads from the start."""
        with self._lock:
            last = self._seq
            if seq > last:
                seq = 0
            if seq == last:
                return [], 0, last
            oldest = self._entries[0][0] if self._entries else last + 1
            dropped = max(0, oldest - seq - 1)
            texts = [text for number, text in self._entries if number > seq]
        if limit is not None and len(texts) > limit:
            dropped += len(texts) - limit
            texts = texts[-limit:]
        return texts, dropped, last

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def waiter(self) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters.add(event)
        return event

    def forget(self, event: asyncio.Event) -> None:
        self._waiters.discard(event)

    def close(self) -> None:
        """Wake every reader for good (the server is stopping)."""
        self.closed = True
        if self._loop is not None:
            self._call(self._notify)

    def _call(self, callback: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody reads any more
            self._loop.call_soon_threadsafe(callback)

    def _notify(self) -> None:
        with self._lock:
            self._wake_pending = False
        for event in self._waiters:
            event.set()
