"""`rtctl webhooks listen`: receive, verify and show webhooks; record and forward them.

One consumer thread (the caller's) takes each decision from the receiver in order, so lines never
interleave: every verified event becomes a line on ``out`` (human, or NDJSON), every refusal one
line on ``status`` (stderr), and with ``forward_to`` the exact delivery is re-posted to the app
after the sender got its 200, its answer shown under the event. A forward target that is down is
shown as such; the receiver keeps running.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rtctl.errors import TimedOut, Unreachable
from rtctl.ops.webhook_receiver import (
    DEFAULT_MAX_BODY,
    Received,
    Rejection,
    WebhookReceiver,
    iso,
)
from rtctl.protocol.webhooks import describe_event

if TYPE_CHECKING:
    from rtctl.config import Settings

Status = Callable[[str], None]


@dataclass(frozen=True)
class ListenOptions:
    host: str = "127.0.0.1"
    port: int | None = None  # None: from REALTIME_WEBHOOK_URL, else 6080
    path: str | None = None  # None: from REALTIME_WEBHOOK_URL, else /webhooks
    json: bool = False
    count: int | None = None  # stop after this many events
    timeout: float | None = None  # give up after this many seconds
    record: Path | None = None
    forward_to: str | None = None
    forward_timeout: float = 10.0
    max_age: float | None = None  # None: REALTIME_WEBHOOK_MAX_AGE
    max_body: int = DEFAULT_MAX_BODY
    events: frozenset[str] = frozenset()  # show only these event types (empty: all)


def event_record(
    received: Received, index: int, event: dict[str, Any], stamp: str | None = None
) -> dict[str, Any]:
    """The NDJSON line of one event."""
    return {
        "event": event,
        "time_ms": received.time_ms,
        "received_at": stamp or iso(received.received_at),
        "latency_ms": round(received.latency_ms, 3),
        "delivery": received.seq,
        "index": index,
        "batch": len(received.events),
    }


def human_line(received: Received, index: int, event: dict[str, Any]) -> str:
    clock = datetime.fromtimestamp(received.received_at).strftime("%H:%M:%S.%f")[:-3]
    batch = f"  [{index + 1}/{len(received.events)}]" if len(received.events) > 1 else ""
    return f"{clock}  {describe_event(event)}  ({received.latency_ms:.0f} ms){batch}"


def _forward_line(received: Received, result: dict[str, Any]) -> str:
    if "error" in result:
        return f"  -> forward to {result['url']} failed: {result['error']}"
    return f"  -> {result['url']} answered {result['status']} {result['reason']} in {result['ms']:.1f} ms"


def announce(settings: Settings, receiver: WebhookReceiver, status: Status) -> None:
    """Say where we listen and whether anything is configured to send here."""
    status(f"listening on {receiver.url} (verifying for app key {settings.key}); Ctrl-C stops")
    webhooks = settings.webhooks
    if settings.provider == "pusher":
        status(
            "Pusher posts webhooks to the URL set in its dashboard (your app > Webhooks); "
            "it must reach this receiver (a tunnel to this port)"
        )
        return
    targets = [str(entry.get("url")) for entry in webhooks.entries() if entry.get("url")]
    if not targets:
        status(
            f"note: .env sends no webhooks: set REALTIME_WEBHOOK_URL={receiver.url} and restart "
            "Soketi (`rtctl down && rtctl up`)"
        )
    elif receiver.url not in targets and not any(_same_place(t, receiver) for t in targets):
        status(f"note: Soketi posts webhooks to {', '.join(targets)}, not to {receiver.url}")


def _same_place(url: str, receiver: WebhookReceiver) -> bool:
    from urllib.parse import urlsplit

    from rtctl.hosts import is_loopback

    parts = urlsplit(url)
    return (
        parts.port == receiver.port
        and (parts.path or "/") == receiver.path
        and (is_loopback(parts.hostname or "") or parts.hostname == receiver.host)
    )


def listen(settings: Settings, options: ListenOptions, out: TextIO, status: Status) -> int:
    """Run until ``count`` events, ``timeout`` or Ctrl-C; returns the number of events shown.

    Raises TimedOut (exit 6) when ``timeout`` passes before ``count`` events (or, without a
    count, before any event); Conflict (exit 9) when the port is taken.
    """
    from rtctl.ops.webhook_records import RecordWriter
    from rtctl.ops.webhook_sender import forward

    webhooks = settings.webhooks
    default_port, default_path = webhooks.listen_address()
    receiver = WebhookReceiver(
        settings.key,
        settings.secret,
        host=options.host,
        port=default_port if options.port is None else options.port,
        path=options.path or default_path,
        max_age=webhooks.max_age if options.max_age is None else options.max_age,
        max_body=options.max_body,
        keep=False,
    )
    writer = RecordWriter(options.record) if options.record is not None else None
    shown = 0
    try:
        receiver.start()
        announce(settings, receiver, status)
        deadline = None if options.timeout is None else time.monotonic() + options.timeout
        while options.count is None or shown < options.count:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            item = receiver.get(timeout=0.5 if remaining is None else min(remaining, 0.5))
            # Everything already queued is written before one flush: under a burst, one
            # write per batch instead of one per event; a lone event is still flushed at once.
            while item is not None and (options.count is None or shown < options.count):
                shown += _show(item, options, out, status, writer, forward)
                more = receiver.pending() and (deadline is None or time.monotonic() < deadline)
                item = receiver.get(timeout=0) if more else None
            out.flush()
    finally:
        receiver.stop()
        if writer is not None:
            writer.close()
    if options.count is not None and shown < options.count:
        raise TimedOut(
            f"{shown} of {options.count} webhook events arrived within {options.timeout:g} s",
            hint="is Soketi configured to post here (REALTIME_WEBHOOK_URL) and restarted since?",
        )
    if options.count is None and options.timeout is not None and shown == 0:
        raise TimedOut(
            f"no webhook arrived within {options.timeout:g} s",
            hint="is Soketi configured to post here (REALTIME_WEBHOOK_URL) and restarted since?",
        )
    return shown


def _show(
    item: Received | Rejection,
    options: ListenOptions,
    out: TextIO,
    status: Status,
    writer: Any,
    forward: Any,
) -> int:
    """Write one decision; returns how many events it showed."""
    if writer is not None:
        writer.write(item.to_record())
    if isinstance(item, Rejection):
        status(item.line())
        return 0
    shown = 0
    stamp = iso(item.received_at) if options.json else ""
    for index, event in enumerate(item.events):
        if options.count is not None and shown >= options.count:
            break
        if options.events and event.get("name") not in options.events:
            continue
        if options.json:
            out.write(
                json.dumps(event_record(item, index, event, stamp), ensure_ascii=False) + "\n"
            )
        else:
            out.write(human_line(item, index, event) + "\n")
        shown += 1
    if options.forward_to:
        out.flush()  # the event is on screen while the app is asked
        result = _forward(item, options, forward)
        if options.json:
            out.write(json.dumps({"forward": result}, ensure_ascii=False) + "\n")
        else:
            out.write(_forward_line(item, result) + "\n")
    return shown


def _forward(received: Received, options: ListenOptions, forward: Any) -> dict[str, Any]:
    assert options.forward_to is not None
    result: dict[str, Any] = {"delivery": received.seq, "url": options.forward_to}
    try:
        answer = forward(
            received.delivery.body, received.headers, options.forward_to, options.forward_timeout
        )
    except Unreachable as error:
        result["error"] = error.message.removeprefix(f"{options.forward_to}: ")
        return result
    result.update(status=answer.status, reason=answer.reason, ms=round(answer.ms, 3))
    if not answer.ok:
        result["body"] = answer.body[:300]
    return result
