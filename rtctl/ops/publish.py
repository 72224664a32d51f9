"""Publishing orchestration for `rtctl emit` and `rtctl bot say`: read the data, build and validate
the events, send them through the HTTP API in groups of 10, pace them, and summarise.

Everything is validated before the first request, so a bad line 500 of a batch file sends nothing.
No Typer, no rich: the CLI renders what this module returns.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtctl.errors import InvalidInput, RtctlError
from rtctl.protocol import strictjson
from rtctl.protocol.crypto import require_master_key
from rtctl.protocol.payloads import CHAT_EVENT, parse_chat_message
from rtctl.protocol.signing import channel_kind, compact_json
from rtctl.protocol.validation import MAX_EVENTS_PER_BATCH, Event, validate_batch, validate_event

if TYPE_CHECKING:
    from rtctl.protocol.httpapi import ApiClient

DEFAULT_DATA = "{}"  # Pusher needs some data; an empty object is the neutral event
EVENT_KEYS = {"channel", "event", "data", "socket_id"}
# A paced run sends groups small enough that one request goes out at least every 10 ms.
PACED_REQUESTS_PER_SECOND = 100

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EmitResult:
    """What a publish run did: events accepted by the server, HTTP requests, wall time."""

    sent: int
    batches: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "batches": self.batches,
            "elapsed": round(self.elapsed, 3),
            "rate": round(self.rate, 1),
        }


# --- reading data ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextSource:
    """An option that takes text inline, ``@file`` or ``-`` (stdin), as its errors name it."""

    option: str  # "--data"
    noun: str  # "data": "cannot read data file 'x'"
    example: str  # the file a hint suggests
    content: str  # what the text is (the hint when it is not UTF-8)


EVENT_DATA = TextSource("--data", "data", "payload.json", "event data is JSON text")
BATCH_FILE = TextSource("--batch", "data", "events.ndjson", "a batch file is NDJSON text")


def read_text(spec: str, source: TextSource = EVENT_DATA) -> str:
    """``-`` reads stdin, ``@path`` reads a file, anything else is the text itself; all of it
    UTF-8 (a command line holding other bytes arrives with lone surrogates, unsendable)."""
    if spec == "-":
        return read_stdin(source)
    if spec.startswith("@"):
        if not spec[1:]:
            raise InvalidInput(
                f"{source.option} @ names no file", hint=f"write {source.option} @{source.example}"
            )
        return read_file(spec[1:], source)
    try:
        spec.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{source.option} is not UTF-8 text", hint=source.content) from None
    return spec


def read_file(
    name: str,
    source: TextSource,
    hint: str = "check the path after @ (relative to the current folder)",
) -> str:
    path = Path(name)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(
            f"{source.noun} file {name!r} is not UTF-8 text", hint=source.content
        ) from None
    except OSError as exc:
        raise InvalidInput(
            f"cannot read {source.noun} file {name!r}: {exc.strerror or exc}", hint=hint
        ) from None


def read_stdin(source: TextSource) -> str:
    # the bytes, decoded strictly: the text layer would let bad bytes in as lone surrogates
    if sys.stdin is None:
        raise InvalidInput(
            f"{source.option} - reads stdin, and there is none",
            hint=f"pass the text inline or as {source.option} @{source.example}",
        )
    try:
        return sys.stdin.buffer.read().decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(
            f"stdin ({source.option} -) is not UTF-8 text", hint=source.content
        ) from None


def read_data(spec: str | None, raw: bool = False) -> str:
    """The event's wire data: the JSON text as given (verbatim, so numbers and key order survive),
    or any text with ``raw``."""
    if spec is None:
        return DEFAULT_DATA
    text = read_text(spec)
    if raw:
        return text
    source = "stdin" if spec == "-" else (spec[1:] if spec.startswith("@") else "--data")
    return check_json_data(text, source)


def check_json_data(
    text: str,
    source: str = "--data",
    hint: str = 'quote it as JSON, e.g. --data \'{"text":"hi"}\', or pass --raw to send text as is',
) -> str:
    """Event data that must be JSON text, already read: returned stripped, verbatim otherwise.
    Text from elsewhere than the command line (the console's Event Creator) comes here directly,
    never through read_data, whose ``@file`` and ``-`` would read the server's files and stdin."""
    text = text.strip()
    try:
        strictjson.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"event data from {source} is not JSON: {exc}", hint=hint) from None
    return text


def wire_data(value: Any) -> str:
    """As the server SDKs do: a string is sent as is, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return compact_json(value)


# --- building and validating events ---------------------------------------------------------------


def split_channels(spec: str) -> tuple[str, ...]:
    """``a,b,c`` -> the channels; commas are also legal inside a Pusher channel name, but a
    comma-separated list is what the command line offers (documented)."""
    channels = tuple(part.strip() for part in spec.split(","))
    if not any(channels):
        raise InvalidInput("no channel given", hint="name a channel, e.g. private-123_9000000")
    if not all(channels):
        raise InvalidInput(
            f"channel list {spec!r} has an empty name", hint="separate channels with single commas"
        )
    return channels


def check_chat_message(event: Event) -> None:
    """A ``chat_message`` must have the bot-user pattern's payload shape (and name its own
    channel): the helpful default. Another app may use the same event name with its own payload,
    so callers can skip this check (``check_payload=False``, `emit --no-payload-check`)."""
    if event.name != CHAT_EVENT:
        return
    try:
        value = strictjson.loads(event.data)
    except ValueError:
        value = event.data
    try:
        parse_chat_message(value, event.channels[0] if len(event.channels) == 1 else None)
    except InvalidInput as error:  # keep its kind (InvalidChatMessage): the gateway answers by it
        error.hint = (
            f'{error.hint}; `rtctl bot say --to USER "text"` sends a well-formed one, and '
            "--no-payload-check sends your own payload under this name"
        )
        raise


def check_event(
    event: Event,
    allow_large: bool = False,
    master_key: bytes | None = None,
    check_payload: bool = True,
) -> Event:
    validate_event(event, allow_large)
    if check_payload:
        check_chat_message(event)
    for channel in event.channels:
        if channel_kind(channel) == "private-encrypted":
            require_master_key(master_key, channel)
    return event


def parse_batch(
    lines: Iterable[str],
    allow_large: bool = False,
    master_key: bytes | None = None,
    check_payload: bool = True,
) -> list[Event]:
    """NDJSON lines of ``{channel, event, data[, socket_id]}``; blank lines are skipped.
    Errors name the line number."""
    events: list[Event] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            events.append(_batch_item(line, allow_large, master_key, check_payload))
        except InvalidInput as error:
            raise InvalidInput(f"batch line {number}: {error.message}", error.hint) from None
    if not events:
        raise InvalidInput(
            "the batch file holds no events",
            hint='one JSON object per line: {"channel": "c", "event": "e", "data": {}}',
        )
    validate_batch(events, allow_large)
    return events


class MalformedEvent(InvalidInput):
    """A JSON object that is not shaped like an event (a batch line, a gateway /emit body)."""


EVENT_SHAPE = 'an event is {"channel": "c", "event": "e", "data": {}} (optional "socket_id")'


def event_from_object(
    item: Mapping[str, Any],
    *,
    many_channels: bool = False,
    allow_large: bool = False,
    master_key: bytes | None = None,
    check_payload: bool = True,
) -> Event:
    """``{channel, event, data?, socket_id?}`` -> an Event checked as every publish path checks it
    (``check_event``). With ``many_channels``, ``channels: [...]`` may stand instead of
    ``channel``. ``data`` is sent as the server SDKs send it (``wire_data``); default ``{}``.

    Shape problems raise ``MalformedEvent``; the checks raise their own kinds of InvalidInput
    (``InvalidSocketId``, ``InvalidChatMessage``), so callers can tell them apart."""
    allowed = EVENT_KEYS | ({"channels"} if many_channels else set())
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise MalformedEvent(f"unknown field(s): {', '.join(unknown)[:200]}", hint=EVENT_SHAPE)
    if many_channels and ("channel" in item) == ("channels" in item):
        raise MalformedEvent("give exactly one of 'channel' or 'channels'", hint=EVENT_SHAPE)
    if "channels" in item:
        listed = item["channels"]
        if not isinstance(listed, list) or not all(isinstance(c, str) for c in listed):
            raise MalformedEvent("'channels' must be a list of strings", hint=EVENT_SHAPE)
        channels: tuple[str, ...] = tuple(listed)
    else:
        channels = (_string_field(item, "channel"),)
    name = _string_field(item, "event")
    socket_id = item.get("socket_id")
    if socket_id is not None and not isinstance(socket_id, str):
        raise MalformedEvent(
            "'socket_id' must be a string", hint="a socket id looks like 1234.5678"
        )
    event = Event(channels, name, wire_data(item.get("data", {})), socket_id)
    return check_event(event, allow_large, master_key, check_payload)


def _string_field(item: Mapping[str, Any], name: str) -> str:
    if name not in item:
        raise MalformedEvent(f"'{name}' is missing", hint=EVENT_SHAPE)
    value = item[name]
    if not isinstance(value, str):
        raise MalformedEvent(f"'{name}' must be a string", hint=EVENT_SHAPE)
    return value


def _batch_item(
    line: str, allow_large: bool, master_key: bytes | None, check_payload: bool = True
) -> Event:
    shape = 'one JSON object per line: {"channel": "c", "event": "e", "data": {}}'
    try:
        item = strictjson.loads(line)
    except ValueError as exc:
        raise InvalidInput(f"not JSON: {exc}", hint=shape) from None
    if not isinstance(item, dict):
        raise InvalidInput("not a JSON object", hint=shape)
    return event_from_object(
        item, allow_large=allow_large, master_key=master_key, check_payload=check_payload
    )


def read_batch_file(
    spec: str,
    allow_large: bool = False,
    master_key: bytes | None = None,
    check_payload: bool = True,
) -> list[Event]:
    if spec == "-":
        text = read_stdin(BATCH_FILE)
    else:
        text = read_file(spec, BATCH_FILE, hint="check the path (relative to the current folder)")
    return parse_batch(text.splitlines(), allow_large, master_key, check_payload)


# --- sending -------------------------------------------------------------------------------------


def groups(events: Iterable[Event], size: int = MAX_EVENTS_PER_BATCH) -> Iterator[list[Event]]:
    """Single-channel events go out through batch_events ``size`` at a time; a multi-channel
    event cannot be a batch item, so it goes alone through /events."""
    group: list[Event] = []
    for event in events:
        if len(event.channels) > 1:
            if group:
                yield group
                group = []
            yield [event]
            continue
        group.append(event)
        if len(group) >= size:
            yield group
            group = []
    if group:
        yield group


def group_size(rate: float | None) -> int:
    """Unpaced: full batches. Paced: small enough that the rate is met smoothly, not in bursts."""
    if rate is None:
        return MAX_EVENTS_PER_BATCH
    return max(1, min(MAX_EVENTS_PER_BATCH, int(rate // PACED_REQUESTS_PER_SECOND)))


def send(
    client: ApiClient,
    events: Iterable[Event],
    total: int,
    rate: float | None = None,
    progress: Progress | None = None,
) -> EmitResult:
    """Send every event, in order, one request at a time; stop at the first refusal.

    A refusal after some events went out is reported with how many the server had accepted, so a
    partial run is never mistaken for success (or for nothing sent)."""
    sent = batches = 0
    started = time.perf_counter()
    for group in groups(events, group_size(rate)):
        if rate is not None:
            due = started + sent / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        try:
            if len(group) == 1:
                client.trigger(group[0])
            else:
                client.trigger_batch(group)
        except RtctlError as error:
            if sent:
                error.message = f"{error.message} (after {sent} of {total} events were accepted)"
                error.args = (error.message,)
            raise
        sent += len(group)
        batches += 1
        if progress is not None:
            progress(sent, total)
    return EmitResult(sent=sent, batches=batches, elapsed=time.perf_counter() - started)


def repeat(event: Event, count: int) -> Iterator[Event]:
    for _ in range(count):
        yield event


def emit(
    client: ApiClient,
    events: Sequence[Event] | Iterable[Event],
    total: int,
    rate: float | None = None,
    progress: Progress | None = None,
) -> EmitResult:
    """Public entry point (also for the bench): validated events in, a summary out."""
    if rate is not None and not (0 < rate < float("inf")):  # NaN fails both comparisons
        raise InvalidInput(f"--rate must be a number above 0, got {rate:g}", hint="e.g. --rate 500")
    return send(client, events, total, rate, progress)
