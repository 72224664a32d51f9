"""Webhooks for tests: what the session's server sent, verified, and one test's view of it.

The plugin's own Soketi is started with its webhooks going to a ``WebhookReceiver`` in the test
process (``rtctl.ops.webhook_receiver``: each delivery's key, signature and ``time_ms`` checked
with the app's credentials). A ``WebhookInbox`` keeps the events of the session's verified
deliveries (the newest ``size``) and the last refused requests. A ``Webhooks`` collector is one
test's view of it: only the events of that test's own channels (the names ``unique_channel``
made), so tests never see each other's webhooks, also when a webhook of an earlier test arrives
late.

    hook = webhooks.wait_for(name="member_added", channel=room)   # returns it (each once)
    assert hook.user_id == "ann"
    webhooks.assert_nothing(name="channel_vacated", within=0.5)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rtctl.testing.listener import arrived_lines, check_timeout, nothing_expected

if TYPE_CHECKING:
    from rtctl.ops.webhook_receiver import Received, Rejection

DEFAULT_SIZE = 10_000  # events kept for the session (a test reads only its own channels)
REFUSED_KEPT = 50


@dataclass(frozen=True)
class Webhook:
    """One event of a verified delivery, as the server sent it (``fields``)."""

    seq: int  # 1, 2, ... in arrival order, for the session
    name: str  # channel_occupied, member_added, client_event, ...
    channel: str | None
    fields: dict[str, Any] = field(repr=False)
    time_ms: int  # the delivery's time_ms (when the server made it)
    monotonic: float  # time.monotonic() when it arrived here

    @property
    def user_id(self) -> str | None:
        value = self.fields.get("user_id")
        return None if value is None else str(value)

    @property
    def event(self) -> str | None:
        """A client event's name (``client_event`` webhooks)."""
        return self.fields.get("event")

    @property
    def data(self) -> Any:
        """A client event's data (an object from Soketi, a string from Pusher)."""
        return self.fields.get("data")

    def describe(self, since: float | None = None) -> str:
        when = f"+{self.monotonic - since:.3f}s " if since is not None else ""
        line = f"{when}{self.name} {self.channel or '(no channel)'}"
        if self.user_id is not None:
            line += f" (user {self.user_id})"
        if self.event is not None:
            line += f" {self.event} {self.data!r}"[:200]
        return line


class WebhookInbox:
    """The session's webhooks (filled by the receiver's threads through ``delivered`` and
    ``refused``)."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._events: deque[Webhook] = deque(maxlen=size)
        self._refused: deque[tuple[float, Rejection]] = deque(maxlen=REFUSED_KEPT)
        self._seq = 0
        self._changed = threading.Condition()

    def delivered(self, received: Received) -> None:
        with self._changed:
            for event in received.events:
                self._seq += 1
                channel = event.get("channel")
                self._events.append(
                    Webhook(
                        self._seq,
                        str(event.get("name")),
                        None if channel is None else str(channel),
                        dict(event),
                        received.time_ms,
                        received.monotonic,
                    )
                )
            self._changed.notify_all()

    def refused(self, rejection: Rejection) -> None:
        with self._changed:
            self._refused.append((time.monotonic(), rejection))
            self._changed.notify_all()

    def events(self) -> list[Webhook]:
        with self._changed:
            return list(self._events)

    def refusals(self, since: float) -> list[Rejection]:
        with self._changed:
            return [rejection for at, rejection in self._refused if at >= since]

    def wait(self, timeout: float) -> None:
        """Until something new arrives, or ``timeout`` seconds."""
        with self._changed:
            self._changed.wait(timeout)


class Webhooks:
    """One test's webhooks: the inbox's events on ``channels()`` (read at each call)."""

    def __init__(
        self,
        inbox: WebhookInbox,
        channels: Callable[[], Collection[str]],
        timeout: float = 5.0,
    ) -> None:
        self.inbox = inbox
        self.channels = channels
        self.timeout = check_timeout(timeout)
        self._taken: set[int] = set()  # seq of what wait_for returned
        self._started = time.monotonic()

    @property
    def received(self) -> list[Webhook]:
        """This test's webhooks so far, oldest first."""
        mine = set(self.channels())
        return [w for w in self.inbox.events() if w.channel in mine]

    def events(
        self, name: str | None = None, *, channel: str | None = None, user_id: str | None = None
    ) -> list[Webhook]:
        return [w for w in self.received if _matches(w, name, channel, user_id)]

    def wait_for(
        self,
        name: str | None = None,
        *,
        channel: str | None = None,
        user_id: str | None = None,
        timeout: float | None = None,
    ) -> Webhook:
        """The first matching webhook not returned before, waiting up to ``timeout`` seconds.
        Raises ``AssertionError`` listing what did arrive for this test's channels."""
        __tracebackhide__ = True
        limit = self.timeout if timeout is None else check_timeout(timeout)
        deadline = time.monotonic() + limit
        while True:
            for hook in self.received:
                if hook.seq not in self._taken and _matches(hook, name, channel, user_id):
                    self._taken.add(hook.seq)
                    return hook
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.inbox.wait(min(remaining, 0.25))
        wanted = _criteria(name, channel, user_id)
        raise AssertionError(
            self._report(f"no webhook matching {wanted} arrived within {limit:g}s")
        )

    def assert_nothing(
        self,
        name: str | None = None,
        *,
        channel: str | None = None,
        user_id: str | None = None,
        within: float = 0.5,
    ) -> None:
        """Wait ``within`` seconds, then fail if a matching webhook arrived that ``wait_for``
        has not returned (with no criteria: any such webhook)."""
        __tracebackhide__ = True
        quiet = check_timeout(within, "within")
        time.sleep(quiet)
        found = [
            w
            for w in self.received
            if w.seq not in self._taken and _matches(w, name, channel, user_id)
        ]
        if found:
            raise nothing_expected(
                "webhook", _criteria(name, channel, user_id), quiet, found, self._describe
            )

    def _describe(self, hook: Webhook) -> str:
        return hook.describe(self._started)

    def _report(self, headline: str) -> str:
        lines = [headline]
        channels = sorted(self.channels())
        received = self.received
        if not channels:
            lines.append(
                "this test made no channel with unique_channel: only webhooks of the channels "
                "it makes are collected"
            )
        elif not received:
            lines.append(f"no webhook arrived for this test's channels ({', '.join(channels)})")
        else:
            lines.append(
                f"{len(received)} webhook(s) arrived for this test's channels "
                f"({', '.join(channels)}):"
            )
            lines += arrived_lines(received, self._describe)
        refused = self.inbox.refusals(self._started)
        if refused:
            lines.append(
                f"the receiver refused {len(refused)} request(s) during this test, the last: "
                f"{refused[-1].line()}"
            )
        return "\n".join(lines)


def _criteria(name: str | None, channel: str | None, user_id: str | None) -> str:
    parts = [
        f"{label}={value!r}"
        for label, value in (("name", name), ("channel", channel), ("user_id", user_id))
        if value is not None
    ]
    return ", ".join(parts) or "(anything)"


def _matches(hook: Webhook, name: str | None, channel: str | None, user_id: str | None) -> bool:
    return (
        (name is None or hook.name == name)
        and (channel is None or hook.channel == channel)
        and (user_id is None or hook.user_id == str(user_id))
    )
