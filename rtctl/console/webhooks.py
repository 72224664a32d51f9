"""The console's webhook receiver: when `.env` sends webhooks to this machine
(``REALTIME_WEBHOOK_URL=http://127.0.0.1:6080/webhooks``), the console receives them itself and
puts each one in the live log.

It runs rtctl's verifying receiver (``rtctl.ops.webhook_receiver``) inside the console's process,
at the configured URL: a verified delivery becomes a ``webhook`` entry (``Feed.publish_webhook``,
``valid=True``), a refused request one with ``valid=False`` and the receiver's reason. It keeps
nothing itself (``keep=False, buffer=False``), so a busy app grows neither memory nor a queue.

A receiver that cannot start (the port is taken, e.g. by `rtctl webhooks listen`) does not stop
the console: the log and the Overview say why, and everything else works.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from rtctl.errors import RtctlError

if TYPE_CHECKING:
    from rtctl.config import Settings
    from rtctl.console.feed import Feed
    from rtctl.ops.webhook_receiver import Received, Rejection, WebhookReceiver


class WebhookTap:
    def __init__(self, settings: Settings, feed: Feed) -> None:
        self.settings = settings
        self.feed = feed
        webhooks = settings.webhooks
        self.configured = webhooks.configured
        self.url = webhooks.local_url()  # None: nothing to receive on this machine
        self.targets = [str(e.get("url") or e.get("lambda_function")) for e in webhooks.entries()]
        self.receiving = False
        self.error: str | None = None
        self.hint: str | None = None
        self.deliveries = 0
        self.rejections = 0
        self._receiver: WebhookReceiver | None = None
        self._tried = False
        self._lock = threading.Lock()  # start and stop
        self._counting = threading.Lock()  # the receiver's threads

    def start(self) -> None:
        """Start receiving (once; a second call does nothing). Never raises for a receiver
        that cannot start: that is recorded, logged and shown."""
        from rtctl.ops.webhook_receiver import WebhookReceiver

        with self._lock:
            if self._tried or self.url is None:
                return
            self._tried = True
            parts = urlsplit(self.url)
            receiver = WebhookReceiver(
                self.settings.key,
                self.settings.secret,
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 80,
                path=parts.path or "/",
                max_age=self.settings.webhooks.max_age,
                on_delivery=self._delivered,
                on_rejection=self._rejected,
                keep=False,
                buffer=False,
            )
            try:
                receiver.start()
            except RtctlError as error:
                self.error = error.message
                self.hint = (
                    "stop what listens there (`rtctl webhooks listen`?) and restart the console, "
                    "or point REALTIME_WEBHOOK_URL elsewhere"
                )
                self.feed.publish(
                    "error",
                    text=f"webhooks are not shown: cannot receive at {self.url}: {error.message}",
                    hint=self.hint,
                )
                return
            self._receiver = receiver
            self.receiving = True
        self.feed.publish(
            "status",
            text=f"receiving webhooks at {self.url} (verified with the app's key and secret)",
        )

    def stop(self) -> None:
        with self._lock:
            receiver, self._receiver = self._receiver, None
            self.receiving = False
        if receiver is not None:
            receiver.stop()

    def state(self) -> dict[str, Any]:
        """What the Overview shows."""
        return {
            "configured": self.configured,
            "url": self.url,
            "targets": self.targets,
            "receiving": self.receiving,
            "error": self.error,
            "hint": self.hint,
            "deliveries": self.deliveries,
            "rejections": self.rejections,
        }

    # the receiver's threads

    def _delivered(self, received: Received) -> None:
        with self._counting:
            self.deliveries += 1
        self.feed.publish_webhook(received.events, valid=True, time_ms=received.time_ms)

    def _rejected(self, rejection: Rejection) -> None:
        with self._counting:
            self.rejections += 1
        events, time_ms = _readable(rejection.body)
        self.feed.publish_webhook(events, valid=False, time_ms=time_ms, error=rejection.line())


def _readable(body: bytes | None) -> tuple[list[dict[str, Any]], int | None]:
    """The events and time_ms of a refused body, when it is a webhook at all (a forged one
    usually is: showing what it claimed helps)."""
    try:
        data = json.loads(body or b"")
    except (ValueError, RecursionError):
        return [], None
    if not isinstance(data, dict):
        return [], None
    events = data.get("events")
    items = [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []
    time_ms = data.get("time_ms")
    return items, time_ms if isinstance(time_ms, int) else None
