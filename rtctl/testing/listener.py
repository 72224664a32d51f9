"""A listener for tests: subscribe first, run the code under test, then wait for what arrived.

One ``Listener`` is one Pusher connection (rtctl's ``PusherSocket``: private and presence
channels signed locally with the app secret, private-encrypted ones decrypted with the master key,
or signed by an app's auth endpoint like pusher-js does). A reader thread keeps receiving while
the test runs, so nothing waits in the server's buffers and pings are answered.

    listener = Listener(settings).connect().subscribe("private-orders-1")
    ...                                         # the code under test triggers
    message = listener.wait_for(event="created", channel="private-orders-1", data={"id": 1})
    listener.assert_nothing(event="deleted", within=0.5)
    listener.close()
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from rtctl.errors import InvalidInput
from rtctl.limits import MAX_WAIT_SECONDS

if TYPE_CHECKING:
    from rtctl.config import Settings
    from rtctl.protocol import Message, PusherSocket

DEFAULT_TIMEOUT = 5.0
DEFAULT_QUIET_PERIOD = 0.5
READ_SLICE = 0.05  # the reader gives the socket up this often for subscribe and send
SHOWN = 20  # received events listed in a failure message
T = TypeVar("T")


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()  # ``data=ANY``: any data matches (the default)


def check_timeout(value: float, name: str = "timeout") -> float:
    """A bound of zero or less would check nothing, and one beyond MAX_WAIT_SECONDS (``inf`` too)
    would overflow the timers mid-test: refuse both."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidInput(
            f"{name} must be a number of seconds above 0, not {value!r}",
            hint=f"pass e.g. {name}=2 (a bound of 0 would check nothing)",
        )
    if not value <= MAX_WAIT_SECONDS:
        raise InvalidInput(
            f"{name} must be at most {MAX_WAIT_SECONDS:.0f} seconds (30 days), not {value!r}",
            hint=f"pass e.g. {name}=2",
        )
    return float(value)


def arrived_lines(items: Sequence[T], describe: Callable[[T], str]) -> list[str]:
    """The last SHOWN items for a failure message, one indented line each, after a note of how
    many earlier ones are left out."""
    lines = [f"  … {len(items) - SHOWN} earlier not shown"] if len(items) > SHOWN else []
    return lines + [f"  {describe(item)}" for item in items[-SHOWN:]]


def nothing_expected(
    noun: str, wanted: str, quiet: float, found: Sequence[T], describe: Callable[[T], str]
) -> AssertionError:
    """The failure of ``assert_nothing``: what arrived although nothing matching ``wanted`` (the
    criteria, or "(anything)") should have within ``quiet`` seconds."""
    what = "" if wanted == "(anything)" else f"matching {wanted} "
    lines = "\n".join(f"  {describe(item)}" for item in found[:SHOWN])
    return AssertionError(
        f"expected no {noun} {what}within {quiet:g}s, but {len(found)} arrived:\n{lines}"
    )


def _shorten(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(message: Message, since: float | None = None) -> str:
    when = f"+{message.monotonic - since:.3f}s " if since is not None else ""
    where = message.channel or "(no channel)"
    line = f"{when}{where} {message.event} {_shorten(message.data)}"
    if message.user_id:
        line += f" (user {message.user_id})"
    if message.error:
        line += f" [{message.error}]"
    return line


class Listener:
    """A Pusher connection that records every event it receives (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        *,
        user_id: str | None = None,
        user_info: dict[str, Any] | None = None,
        auth_endpoint: str | None = None,
        auth_headers: dict[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        from rtctl.protocol import PusherSocket

        self.timeout = check_timeout(timeout)
        self._sock: PusherSocket = PusherSocket(
            settings,
            auth_endpoint=auth_endpoint,
            auth_headers=auth_headers,
            user_id=user_id,
            user_info=user_info,
            client_name="rtctl-pytest",
        )
        self._received: list[Message] = []
        self._taken: set[int] = set()  # indexes wait_for already returned
        self._changed = threading.Condition()
        self._io = threading.Lock()  # the socket: the reader, subscribe and send take turns
        self._wanted = threading.Event()  # someone other than the reader waits for the socket
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._ended: Exception | None = None  # why the reader stopped (the connection closed)
        self._started = time.monotonic()

    # --- connection ------------------------------------------------------------------------------

    @property
    def socket_id(self) -> str | None:
        return self._sock.socket_id

    def connect(self) -> Listener:
        self._sock.connect(self.timeout)
        self._started = time.monotonic()
        self._reader = threading.Thread(target=self._read, name="rtctl-listener", daemon=True)
        self._reader.start()
        return self

    def subscribe(self, *channels: str) -> Listener:
        """Subscribe and wait for each subscription to succeed (refusals raise rtctl's errors)."""
        from rtctl.protocol.validation import validate_channel

        for channel in channels:
            validate_channel(channel)  # names Pusher refuses, even where Soketi would not
        with self._socket():
            for channel in channels:
                self._sock.subscribe(channel, self.timeout)
        return self

    def unsubscribe(self, channel: str) -> None:
        with self._socket():
            self._sock.unsubscribe(channel)

    def send(self, channel: str, event: str, data: Any) -> None:
        """Send a client event (``client-…``) on a subscribed private or presence channel."""
        with self._socket():
            self._sock.send_client_event(channel, event, data)

    def members(self, channel: str) -> dict[str, Any]:
        """A presence channel's members as this connection sees them ({user_id: user_info})."""
        sub = self._sock.subscriptions.get(channel)
        if sub is None or sub.members is None:
            raise InvalidInput(
                f"{channel!r} is not a presence channel this listener subscribed to",
                hint="subscribe to a presence-… channel first",
            )
        with self._socket():  # the reader updates the list while it receives
            return dict(sub.members)

    def close(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout=2)
        with contextlib.suppress(Exception):
            self._sock.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _socket(self) -> Any:
        self._wanted.set()
        with self._io:
            self._wanted.clear()
            yield

    def _read(self) -> None:
        from rtctl.errors import RtctlError

        while not self._stop.is_set():
            if self._wanted.is_set():
                time.sleep(0.001)  # let subscribe/send take the socket
                continue
            with self._io:
                try:
                    message = self._sock.recv(READ_SLICE)
                except RtctlError as error:
                    with self._changed:
                        self._ended = error
                        self._changed.notify_all()
                    return
            if message is not None:
                with self._changed:
                    self._received.append(message)
                    self._changed.notify_all()

    # --- what arrived ----------------------------------------------------------------------------

    @property
    def received(self) -> list[Message]:
        """Everything received so far, oldest first (subscription housekeeping left out)."""
        with self._changed:
            return list(self._received)

    def events(
        self, event: str | None = None, *, channel: str | None = None, data: Any = ANY
    ) -> list[Message]:
        """What arrived so far that matches."""
        return [m for m in self.received if _matches(m, event, channel, data)]

    def wait_for(
        self,
        event: str | None = None,
        *,
        channel: str | None = None,
        data: Any = ANY,
        timeout: float | None = None,
    ) -> Message:
        """The first matching event not returned before, waiting up to ``timeout`` seconds for it.

        ``data`` is either the expected (decoded) data or a predicate on it. Raises
        ``AssertionError`` listing what did arrive when nothing matches in time."""
        __tracebackhide__ = True  # pytest shows the test's line, not this method's
        limit = self.timeout if timeout is None else check_timeout(timeout)
        deadline = time.monotonic() + limit
        checked = 0
        with self._changed:
            while True:
                for index in range(checked, len(self._received)):
                    if index not in self._taken and _matches(
                        self._received[index], event, channel, data
                    ):
                        self._taken.add(index)
                        return self._received[index]
                checked = len(self._received)
                remaining = deadline - time.monotonic()
                if self._ended is not None or remaining <= 0:
                    break
                self._changed.wait(remaining)
        wanted = _criteria(event, channel, data)
        raise AssertionError(self._report(f"no event matching {wanted} arrived within {limit:g}s"))

    def assert_nothing(
        self,
        event: str | None = None,
        *,
        channel: str | None = None,
        data: Any = ANY,
        within: float = DEFAULT_QUIET_PERIOD,
    ) -> None:
        """Wait ``within`` seconds, then fail if anything matching arrived that ``wait_for`` has
        not returned (with no criteria: any such event at all)."""
        __tracebackhide__ = True
        quiet = check_timeout(within, "within")
        time.sleep(quiet)
        with self._changed:
            found = [
                m
                for index, m in enumerate(self._received)
                if index not in self._taken and _matches(m, event, channel, data)
            ]
        if found:
            raise nothing_expected(
                "event", _criteria(event, channel, data), quiet, found, self._describe
            )

    def _describe(self, message: Message) -> str:
        return describe(message, self._started)

    def _report(self, headline: str) -> str:
        received = self.received
        lines = [headline]
        if self._ended is not None:
            lines.append(f"the listener's connection ended: {self._ended}")
        channels = ", ".join(sorted(self._sock.subscriptions)) or "no channel"
        if not received:
            lines.append(f"nothing arrived on this listener (subscribed to {channels})")
        else:
            lines.append(f"{len(received)} event(s) arrived on this listener ({channels}):")
            lines += arrived_lines(received, self._describe)
        return "\n".join(lines)


def _criteria(event: str | None, channel: str | None, data: Any) -> str:
    parts = []
    if event is not None:
        parts.append(f"event={event!r}")
    if channel is not None:
        parts.append(f"channel={channel!r}")
    if data is not ANY:
        shown = getattr(data, "__name__", None) if callable(data) else None
        parts.append(f"data={shown or _shorten(data)}")
    return ", ".join(parts) or "(anything)"


def _matches(message: Message, event: str | None, channel: str | None, data: Any) -> bool:
    if event is not None and message.event != event:
        return False
    if channel is not None and message.channel != channel:
        return False
    if data is ANY:
        return True
    if callable(data):
        predicate: Callable[[Any], Any] = data
        try:
            return bool(predicate(message.data))
        except (KeyError, IndexError, TypeError, AttributeError):
            return False  # e.g. data["id"] on an event without "id": not this one
    return bool(message.data == data)
