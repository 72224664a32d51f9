"""``rtctl listen``: tail channels over the Pusher protocol, print events, survive reconnects.

The loop reads with ``rtctl.protocol.PusherSocket``, prints each event as a human line or an NDJSON
line on ``out``, and reports everything else (subscriptions, presence members, server errors,
reconnects and the gap they left) through ``status`` (stderr in the CLI). Output is written once
per drained batch: when the socket has nothing more already received, the batch is written and
flushed, so a pipe sees every event at once without a syscall per event in a burst.

Reconnect policy (Pusher's close-code ranges): 4000-4099 stop with the server's reason; 4200-4299
reconnect at once; 4100-4199 back off (>= 1 s); anything else (1006, a dropped TCP connection)
back off exponentially with jitter. Every reconnect re-signs private/presence channels for the new
socket id before resubscribing (a signature is bound to the socket id).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from rtctl.config import Settings
from rtctl.errors import AuthRejected, ServerRejected, TimedOut, Unreachable, UsageError
from rtctl.limits import MAX_WAIT_SECONDS
from rtctl.printable import json_safe, printable
from rtctl.protocol.closecodes import Disconnected, backoff_delay, close_policy, refusal
from rtctl.protocol.explain import add_verify_hint
from rtctl.protocol.payloads import CHAT_EVENT
from rtctl.protocol.signing import SERVER_TO_USER_PREFIX, channel_kind
from rtctl.protocol.socket import Message, PusherSocket, Subscription
from rtctl.protocol.validation import validate_channel, validate_header, validate_http_url

CONNECT_TIMEOUT = 10.0  # per connect+subscribe attempt, within --timeout if that is shorter
# pusher-js' public names for the protocol events app code binds to; each is shown as an event.
PUBLIC_NAMES = {
    "pusher_internal:member_added": "pusher:member_added",
    "pusher_internal:member_removed": "pusher:member_removed",
    # Pusher sends it when the app enables subscription counting (Soketi 1.6.1 never does).
    "pusher_internal:subscription_count": "pusher:subscription_count",
    # A cache channel with nothing cached yet (instead of the last event).
    "pusher:cache_miss": "pusher:cache_miss",
}

Status = Callable[[str], None]


@dataclass(frozen=True)
class ListenOptions:
    channels: tuple[str, ...]
    json: bool = False
    count: int | None = None
    timeout: float | None = None
    events: frozenset[str] = frozenset()
    user_id: str | None = None
    user_info: dict[str, Any] | None = None
    auth_endpoint: str | None = None
    auth_headers: dict[str, str] = field(default_factory=dict)
    signin: bool = False  # sign in (pusher:signin) and receive events sent to the user
    user_auth_endpoint: str | None = None


def check_options(options: ListenOptions) -> None:
    """Refuse bad input before any connection is opened."""
    if not options.channels and not options.signin:
        raise UsageError(
            "name at least one channel (or --signin to receive events sent to a user)",
            hint="rtctl listen private-123_9000000",
        )
    for channel in options.channels:
        validate_channel(channel)
    if options.signin and not options.user_id and not options.user_auth_endpoint:
        raise UsageError(
            "--signin needs the user: --as-user ID, or --user-auth-endpoint URL",
            hint="rtctl listen --signin --as-user 123",
        )
    if options.user_auth_endpoint and not options.signin:
        raise UsageError("--user-auth-endpoint is used with --signin", hint="add --signin")
    if options.signin:
        validate_user_id_option(options.user_id)
    presence = [c for c in options.channels if channel_kind(c) == "presence"]
    if presence and not options.user_id and not options.auth_endpoint:
        raise UsageError(
            f"listening on presence channel {presence[0]!r} needs a user id",
            hint='pass --as-user ID (and optionally --user-info \'{"name": "Ann"}\'), '
            "or --auth-endpoint URL to let your auth endpoint pick the user",
        )
    if options.user_info is not None and not options.user_id:
        raise UsageError("--user-info needs --as-user", hint="e.g. --as-user 123 --user-info '{}'")
    if options.auth_headers and not (options.auth_endpoint or options.user_auth_endpoint):
        raise UsageError(
            "--auth-header is only sent to an --auth-endpoint (or --user-auth-endpoint)",
            hint="add --auth-endpoint URL, or drop --auth-header (local signing needs no header)",
        )
    if options.auth_endpoint is not None:
        validate_http_url(options.auth_endpoint, "--auth-endpoint")
    if options.user_auth_endpoint is not None:
        validate_http_url(options.user_auth_endpoint, "--user-auth-endpoint")
    for name, value in options.auth_headers.items():
        validate_header(name, value, "--auth-header")
    if options.count is not None and options.count < 1:
        raise UsageError("--count must be at least 1", hint="e.g. --count 1")
    timeout = options.timeout
    if timeout is not None and not (0 < timeout <= MAX_WAIT_SECONDS):  # also refuses NaN
        raise UsageError(
            f"--timeout must be a number of seconds above 0 up to {MAX_WAIT_SECONDS:.0f}",
            hint="e.g. --timeout 30",
        )


def validate_user_id_option(user_id: str | None) -> None:
    if user_id is not None:
        from rtctl.protocol.validation import validate_user_id

        validate_user_id(user_id)


# --- formatting -----------------------------------------------------------------------------------


class _Clock:
    """Timestamps for every event, formatted cheaply (strftime once per second)."""

    def __init__(self) -> None:
        self._utc_second = -1
        self._utc_prefix = ""
        self._local_second = -1
        self._local_prefix = ""

    def iso(self, moment: float) -> str:
        second = int(moment)
        if second != self._utc_second:
            self._utc_second = second
            self._utc_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._utc_prefix}.{int((moment - second) * 1000):03d}Z"

    def local(self, moment: float) -> str:
        second = int(moment)
        if second != self._local_second:
            self._local_second = second
            self._local_prefix = time.strftime("%H:%M:%S", time.localtime(second))
        return f"{self._local_prefix}.{int((moment - second) * 1000):03d}"


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_pretty = json.JSONEncoder(ensure_ascii=False).encode


_heads: dict[tuple[str | None, str], str] = {}  # (channel, event) -> their JSON, built once


def ndjson_line(message: Message, event: str, clock: _Clock) -> str:
    """One compact JSON object per event: time (UTC), channel, event, [user_id,] data."""
    text = message.json_text
    if text is None or "\n" in text or "\r" in text:
        text = _dumps(message.data)
    head = _heads.get((message.channel, event))
    if head is None:
        if len(_heads) > 10_000:  # event names are usually few; never grow without bound
            _heads.clear()
        head = f'"channel":{_dumps(message.channel)},"event":{_dumps(event)}'
        _heads[(message.channel, event)] = head
    user = "" if message.user_id is None else f',"user_id":{_dumps(message.user_id)}'
    # exact JSON; a lone surrogate from the server becomes its \uXXXX escape, not a crash
    return json_safe(f'{{"time":"{clock.iso(message.received_at)}",{head}{user},"data":{text}}}\n')


def describe(message: Message, event: str) -> str:
    """The human rendering of an event's data: chat messages as "Coach: text", members as
    joined/left, anything else as one-line JSON (strings as they are)."""
    data = message.data
    if event == CHAT_EVENT and isinstance(data, dict):
        from rtctl.errors import InvalidInput
        from rtctl.protocol.payloads import parse_chat_message

        try:
            chat = parse_chat_message(data)
        except InvalidInput:
            pass
        else:
            audio = f"  [audio {chat.audio_url}]" if chat.audio_url else ""
            return f"{chat.actor.name}: {chat.body}{audio}"
    if event == "pusher:member_added" and isinstance(data, dict):
        info = data.get("user_info")
        return f"{data.get('user_id')} joined" + (f" {_pretty(info)}" if info else "")
    if event == "pusher:member_removed" and isinstance(data, dict):
        return f"{data.get('user_id')} left"
    if event == "pusher:subscription_count" and isinstance(data, dict):
        count = data.get("subscription_count")
        return f"{count} subscription{'' if count == 1 else 's'}"
    if event == "pusher:cache_miss":
        return "nothing cached yet"
    text = data if isinstance(data, str) else _pretty(data)
    return text if message.user_id is None else f"(from {message.user_id}) {text}"


def human_line(message: Message, event: str, clock: _Clock) -> str:
    """One line per event, whatever the event carries: control characters in names and data
    are shown escaped, so a publisher cannot forge lines or recolour the terminal."""
    line = f"{clock.local(message.received_at)}  {message.channel}  {event}  {describe(message, event)}"
    return printable(line) + "\n"


def members_line(sub: Subscription) -> str:
    members = sub.members or {}
    shown = ", ".join(
        f"{user} {_pretty(info)}" if info else str(user) for user, info in members.items()
    )
    noun = "member" if len(members) == 1 else "members"
    return printable(f"{sub.name}: {len(members)} {noun}" + (f": {shown}" if shown else ""))


# --- the loop -------------------------------------------------------------------------------------


class Listener:
    def __init__(
        self,
        settings: Settings,
        options: ListenOptions,
        out: TextIO,
        status: Status,
        socket: PusherSocket | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        self.out = out
        self.status = status
        self.sock = socket or PusherSocket(
            settings,
            auth_endpoint=options.auth_endpoint,
            auth_headers=options.auth_headers,
            user_id=options.user_id,
            user_info=options.user_info,
            user_auth_endpoint=options.user_auth_endpoint,
            on_warning=status,
        )
        self.printed = 0
        self._clock = _Clock()
        self._deadline = None if options.timeout is None else time.monotonic() + options.timeout
        self._batch: list[str] = []

    def _remaining(self, cap: float) -> float:
        if self._deadline is None:
            return cap
        return min(cap, self._deadline - time.monotonic())

    def _timed_out(self) -> TimedOut:
        wanted = self.options.count
        if wanted is not None:
            got = f"{self.printed} of {wanted} event{'s' if wanted != 1 else ''} arrived"
        else:
            got = "no event arrived"
        return TimedOut(
            f"timed out after {self.options.timeout:g}s: {got}",
            hint="check that something publishes on the channel (rtctl emit) or raise --timeout",
        )

    def _open(self) -> None:
        """Connect and subscribe to every channel; the first attempt's errors are final."""
        self.sock.connect(self._remaining(CONNECT_TIMEOUT))
        names = list(self.options.channels)
        if self.options.signin:
            user = self.sock.signin(max(0.1, self._remaining(CONNECT_TIMEOUT)))
            self.status(f"signed in as user {user}: events sent to this user arrive too")
            names.append(f"{SERVER_TO_USER_PREFIX}{user}")
        for channel in self.options.channels:
            try:
                sub = self.sock.subscribe(channel, max(0.1, self._remaining(CONNECT_TIMEOUT)))
            except (AuthRejected, ServerRejected) as refused:
                raise add_verify_hint(refused, self.sock.signed.get(channel)) from None
            if sub.members is not None:
                self.status(members_line(sub))
        self.status(f"listening on {', '.join(names)} (socket {self.sock.socket_id})")

    def run(self) -> int:
        """Listen until --count events were printed or --timeout passed; return the count."""
        try:
            try:
                self._open()
            except TimedOut:
                signing_in = self.options.signin and self.sock.signed_in_as is None
                if (
                    not signing_in
                    and self._deadline is not None
                    and time.monotonic() >= self._deadline
                ):
                    raise self._timed_out() from None
                raise  # the step that timed out says what to fix (e.g. a sign-in never answered)
            self._loop()
        finally:
            self._flush()
            self.sock.close()
        return self.printed

    def _loop(self) -> None:
        sock, wanted, names = self.sock, self.options.count, self.options.events
        as_json = self.options.json
        while True:
            remaining = self._remaining(3600.0)
            if remaining <= 0:
                self._flush()
                if wanted is not None or self.printed == 0:
                    raise self._timed_out()
                return
            try:
                message = sock.recv(remaining)
            except Disconnected as lost:
                self._flush()
                self._reconnect(lost)
                continue
            if message is None:
                continue
            event = message.event
            if event.startswith("pusher"):
                public = PUBLIC_NAMES.get(event)
                if public is None:
                    self._server_notice(message)
                    continue
                event = public
            if names and event not in names:
                continue
            if message.error is not None:
                self.status(
                    printable(f"could not decrypt {event} on {message.channel}: {message.error}")
                )
                continue
            if as_json:
                self._batch.append(ndjson_line(message, event, self._clock))
            else:
                self._batch.append(human_line(message, event, self._clock))
            self.printed += 1
            if wanted is not None and self.printed >= wanted:
                return
            if not sock.has_buffered():
                self._flush()

    def _flush(self) -> None:
        if self._batch:
            text = "".join(self._batch)
            self._batch.clear()
            self.out.write(text)
            self.out.flush()

    def _server_notice(self, message: Message) -> None:
        """``pusher:error`` frames that do not close the socket (e.g. 4301 client event refused).
        Those announcing a close (4000-4299) are reported when the close arrives."""
        if message.event != "pusher:error":
            return
        data = message.data if isinstance(message.data, dict) else {}
        code = data.get("code")
        if isinstance(code, int) and 4000 <= code <= 4299:
            return
        self.status(printable(f"server error {code}: {data.get('message', message.raw)}"))

    def _reconnect(self, lost: Disconnected) -> None:
        code = lost.close_code
        if close_policy(code) == "stop":
            raise refusal(code, lost.close_reason, self.settings.key) from lost
        lost_at = time.monotonic()
        reason = lost.message
        attempt = 0
        while True:
            attempt += 1
            delay = backoff_delay(attempt, code)
            when = "now" if delay == 0 else f"in {delay:.1f}s"
            if attempt == 1:
                self.status(printable(f"connection lost: {reason}; reconnecting {when}"))
            else:
                self.status(
                    printable(f"reconnect attempt {attempt - 1} failed: {reason}; retrying {when}")
                )
            if self._deadline is not None and time.monotonic() + delay >= self._deadline:
                raise self._timed_out() from lost
            time.sleep(delay)
            try:
                socket_id = self.sock.reconnect(max(0.1, self._remaining(CONNECT_TIMEOUT)))
            except Disconnected as again:
                code, reason = again.close_code, again.message
                if close_policy(code) == "stop":
                    raise refusal(code, again.close_reason, self.settings.key) from again
                continue
            except (Unreachable, TimedOut) as again:
                code, reason = None, again.message
                continue
            break
        gap = time.monotonic() - lost_at
        channels = len(self.sock.subscriptions)
        self.status(
            f"reconnected as socket {socket_id} after a {gap:.1f}s gap; re-signed and "
            f"resubscribed {channels} channel{'s' if channels != 1 else ''} "
            "(events published during the gap were not received)"
        )
        for sub in self.sock.subscriptions.values():
            if sub.members is not None:
                self.status(members_line(sub))


def listen(
    settings: Settings,
    options: ListenOptions,
    out: TextIO,
    status: Status,
) -> int:
    """Check the options, then listen; returns the number of events printed."""
    check_options(options)
    return Listener(settings, options, out, status).run()


def parse_headers(values: Sequence[str]) -> dict[str, str]:
    """``--auth-header 'Name: value'`` (repeatable) into a dict."""
    headers: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise UsageError(
                f"--auth-header {value!r} is not 'Name: value'",
                hint="e.g. --auth-header 'Authorization: Bearer eyJ...'",
            )
        headers[name.strip()] = content.strip()
    return headers
