"""``POST {prefix}/webhooks``: the gateway receives Pusher/Soketi webhooks for the app behind it.

Each delivery is verified exactly as `rtctl webhooks listen` verifies it
(rtctl.protocol.webhooks.verify: Content-Type, X-Pusher-Key, X-Pusher-Signature over the raw body,
the time_ms window), then each event is logged and handed to the hook named by
REALTIME_WEBHOOK_HOOK (``module:function``, loaded like REALTIME_AUTH_HOOK):

    def on_webhook(event: dict, delivery: rtctl.protocol.webhooks.Delivery) -> None: ...

(``async def`` works too). A refused delivery reaches no hook. A hook that raises gets the sender
a 500 (Pusher retries; Soketi never does), and its events are forgotten by the de-duplication so
a retry is not mistaken for a duplicate.

De-duplication: a cluster can send the same event twice (two nodes both see a channel empty and
each sends channel_vacated, with time_ms a few ms apart), and Pusher re-sends a delivery it did
not see answered. An event is a duplicate when an equal event (same name, channel, user, data,
socket) with a time_ms less than REALTIME_WEBHOOK_DEDUP_WINDOW seconds away already reached the
hook; 0 turns this off. Equal events further apart are new: a channel vacated and occupied again
within the window is the price of this rule (keep the window short). The store is behind a small
interface, ``seen(key, window_s) -> bool`` (record the key, say whether it was already there
within window_s seconds), so several gateway workers can share one (rtctl.gateway.shared); the
in-process ``LocalStore`` is the default. A store may also offer ``forget(key)``.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from rtctl.config import Settings
from rtctl.gateway.errors import GatewayError
from rtctl.gateway.rules import load_hook
from rtctl.gateway.shared import LocalStore
from rtctl.protocol.webhooks import (
    Delivery,
    WebhookRejected,
    describe_event,
    event_key,
    verify,
)
from rtctl.webhook_settings import HOOK

log = logging.getLogger("rtctl.gateway.webhooks")

WEBHOOK_BODY_LIMIT = 1024 * 1024  # as `rtctl webhooks listen`'s default
MIN_MEMORY = 60.0  # seconds a de-duplication key is kept at least


class SeenStore(Protocol):
    def seen(self, key: str, window_s: float) -> bool:
        """Record ``key`` for ``window_s`` seconds; True if it was already recorded and alive."""
        ...


def dedup_keys(event: dict[str, Any], time_ms: int, window: float) -> tuple[str, str]:
    """The event's key in its time_ms bucket and in the bucket before: two events less than one
    window apart always share one of them."""
    width = max(1, int(window * 1000))
    digest = event_key(event)
    bucket = time_ms // width
    return f"webhook:{digest}:{bucket}", f"webhook:{digest}:{bucket - 1}"


class WebhookEndpoint:
    """Verifies, de-duplicates, logs and hands over; ``handle`` is the route endpoint."""

    def __init__(self, settings: Settings, seen: SeenStore | None = None) -> None:
        self.key = settings.key
        self.secret = settings.secret
        self.max_age = settings.webhook_max_age
        self.window = settings.webhook_dedup_window
        self.hook = (
            load_hook(
                settings.webhook_hook,
                variable=HOOK,
                signature="hook(event, delivery) -> None",
                example="myapp.realtime:on_webhook",
            )
            if settings.webhook_hook
            else None
        )
        self.store: SeenStore = seen if seen is not None else LocalStore()
        # Keys live as long as a delivery can still verify, so a re-sent one is recognised too.
        self.memory = max(self.max_age, 2 * self.window, MIN_MEMORY)

    def _duplicate(self, keys: tuple[str, str]) -> bool:
        here, before = (self.store.seen(key, self.memory) for key in keys)
        return here or before

    def _forget(self, keys: tuple[str, str]) -> None:
        forget = getattr(self.store, "forget", None)
        if callable(forget):
            for key in keys:
                forget(key)

    async def _call_hook(self, event: dict[str, Any], delivery: Delivery) -> None:
        assert self.hook is not None
        if inspect.iscoroutinefunction(self.hook):
            await self.hook(event, delivery)
            return
        result = await run_in_threadpool(self.hook, event, delivery)
        if inspect.isawaitable(result):
            await result

    async def handle(self, request: Request) -> Response:
        from rtctl.gateway.app import read_body

        access = request.scope.setdefault("rtctl.access", {})
        client = request.client.host if request.client else "?"
        body = await read_body(request, WEBHOOK_BODY_LIMIT)
        try:
            delivery = verify(body, request.headers, self.key, self.secret, max_age=self.max_age)
        except WebhookRejected as rejected:
            log.warning("webhook refused from %s: %s %s", client, rejected.code, rejected.message)
            raise GatewayError(rejected.status, rejected.code, rejected.message) from None
        handed, duplicates = 0, 0
        for event in delivery.events:
            keys = dedup_keys(event, delivery.time_ms, self.window) if self.window else None
            if keys is not None and self._duplicate(keys):
                duplicates += 1
                log.info("webhook duplicate dropped: %s", describe_event(event))
                continue
            log.info("webhook %s", describe_event(event))
            if self.hook is None:
                handed += 1
                continue
            try:
                await self._call_hook(event, delivery)
            except Exception as exc:
                if keys is not None:
                    self._forget(keys)
                log.error(
                    "%s failed on %s: %s: %s", HOOK, event.get("name"), type(exc).__name__, exc
                )
                access.update(events=handed, duplicates=duplicates)
                raise GatewayError(500, "webhook_hook_failed", "the webhook hook failed") from None
            handed += 1
        access.update(events=handed, duplicates=duplicates)
        return JSONResponse({"ok": True, "events": handed, "duplicates": duplicates})
