"""Pusher's publishing limits, checked before anything is sent (protocol §2, §5.4).

rtctl applies Pusher's limits even on Soketi, so whatever works through rtctl today still works
after `rtctl switch pusher`. One implementation, shared by `rtctl emit`, `rtctl bot say` and the
gateway's `/realtime/emit`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rtctl.errors import InvalidInput
from rtctl.protocol.signing import SERVER_TO_USER_PREFIX, channel_kind

CHANNEL_NAME_RE = re.compile(r"[-a-zA-Z0-9_=@,.;]+")  # used with fullmatch: no trailing newline
MAX_CHANNEL_NAME = 164  # Pusher's documented limit (SDKs and Soketi allow 200)
MAX_SDK_CHANNEL_NAME = 200  # the server SDKs' limit, which also bounds #server-to-user-{id}
MAX_USER_ID = 200  # the Python SDK's limit; Pusher documents only the character set
MAX_EVENT_NAME = 200
MAX_DATA_BYTES = 10 * 1024  # Pusher: 10 KB per event
SOKETI_MAX_DATA_BYTES = 100 * 1024  # Soketi's default, the ceiling with --allow-large
MAX_CHANNELS_PER_TRIGGER = 100
MAX_EVENTS_PER_BATCH = 10
RESERVED_EVENT_PREFIXES = ("pusher:", "pusher_internal:")
# Control characters forge lines and escape sequences on whoever prints the name; a lone
# surrogate cannot even be encoded as UTF-8 (it arrives from a command line holding bad bytes).
UNSENDABLE_RE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class Event:
    """One event to publish: its data is already the string that goes on the wire."""

    channels: tuple[str, ...]
    name: str
    data: str
    socket_id: str | None = None


def validate_user_id(user_id: str) -> str:
    """A user id as Pusher's user authentication defines it: the channel-name characters."""
    if not user_id:
        raise InvalidInput("user id is empty", hint="name the user, e.g. 123")
    if len(user_id) > MAX_USER_ID:
        raise InvalidInput(
            f"user id is {len(user_id)} characters; the limit is {MAX_USER_ID}",
            hint="shorten the user id",
        )
    _require_name_characters("user id", user_id, "user ids use only")
    return user_id


def _require_name_characters(what: str, name: str, hint_start: str) -> None:
    """Channel names and user ids take the same characters; name the ones that are not."""
    if not CHANNEL_NAME_RE.fullmatch(name):
        bad = sorted({c for c in name if not CHANNEL_NAME_RE.fullmatch(c)})
        raise InvalidInput(
            f"{what} {name!r} contains characters Pusher refuses: {''.join(bad)!r}",
            hint=f"{hint_start} letters, digits and - _ = @ , . ;",
        )


def server_to_user_channel(user_id: str) -> str:
    """``#server-to-user-{id}``: publishing on it reaches that user's signed-in connections."""
    return SERVER_TO_USER_PREFIX + validate_user_id(user_id)


def validate_publish_channel(name: str) -> str:
    """A channel an event may be published on: any app channel, plus Pusher's
    ``#server-to-user-{id}`` (what the server SDKs' sendToUser triggers on)."""
    if name.startswith(SERVER_TO_USER_PREFIX):
        try:
            validate_user_id(name[len(SERVER_TO_USER_PREFIX) :])
        except InvalidInput as error:
            raise InvalidInput(f"{name!r}: {error.message}", hint=error.hint) from None
        if len(name) > MAX_SDK_CHANNEL_NAME:
            raise InvalidInput(
                f"channel name is {len(name)} characters; the limit is {MAX_SDK_CHANNEL_NAME}",
                hint="shorten the user id",
            )
        return name
    return validate_channel(name)


def validate_channel(name: str) -> str:
    if not name:
        raise InvalidInput("channel name is empty", hint="name a channel, e.g. private-123_9000000")
    if len(name) > MAX_CHANNEL_NAME:
        raise InvalidInput(
            f"channel name is {len(name)} characters; Pusher allows {MAX_CHANNEL_NAME}",
            hint="shorten the channel name",
        )
    if name.startswith(SERVER_TO_USER_PREFIX):
        raise InvalidInput(
            f"{name!r} is Pusher's channel for events sent to one user: apps neither create "
            "nor authorize it",
            hint="send to a user with `rtctl send-to-user ID EVENT`; receive as that user with "
            "`rtctl listen --signin --as-user ID`",
        )
    _require_name_characters("channel name", name, "use only")
    return name


def validate_event_name(name: str) -> str:
    if not name:
        raise InvalidInput("event name is empty", hint="name the event, e.g. chat_message")
    if len(name) > MAX_EVENT_NAME:
        raise InvalidInput(
            f"event name is {len(name)} characters; the limit is {MAX_EVENT_NAME}",
            hint="shorten the event name",
        )
    bad = UNSENDABLE_RE.search(name)
    if bad is not None:
        raise InvalidInput(
            f"event name {name!r} contains a control character or invalid text "
            f"({bad.group()!r} at position {bad.start() + 1})",
            hint="use printable characters only, e.g. chat_message",
        )
    if name.startswith(RESERVED_EVENT_PREFIXES):
        raise InvalidInput(
            f"event name {name!r} uses a reserved prefix (pusher: / pusher_internal:)",
            hint="choose a name of your own",
        )
    return name


_HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE_BAD_RE = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def http_url_problem(url: str, name: str) -> str | None:
    """Why ``url`` (named ``name`` in the message: an option or a variable) is not an http(s) URL
    with a host and a valid port, and nothing that could split a request (spaces, control
    characters); None when it is one. The one rule for every URL rtctl is given."""
    from urllib.parse import urlsplit

    if UNSENDABLE_RE.search(url) or any(char.isspace() for char in url):
        return f"{name} {url!r} is not an http(s) URL"
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"{name} {url!r} is not an http(s) URL"
    if parts.scheme not in ("http", "https"):
        return f"{name} {url!r} is not an http(s) URL"
    if not parts.hostname:
        return f"{name} {url!r} has no host"
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError:
        return f"{name} {url!r} has an invalid port"
    return None


def validate_http_url(url: str, option: str) -> str:
    """``url`` when it is an http(s) URL (see ``http_url_problem``), else InvalidInput."""
    problem = http_url_problem(url, option)
    if problem is not None:
        raise InvalidInput(problem, hint=f"e.g. {option} http://127.0.0.1:8080/realtime/auth")
    return url


def validate_header(name: str, value: str, option: str) -> None:
    """An HTTP header as a server would take it: a token name, a value without line breaks
    (a CR/LF would let the value smuggle extra headers)."""
    example = f"e.g. {option} 'Authorization: Bearer eyJ...'"
    if not _HEADER_NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"{option} header name {name!r} is not a valid header name", hint=example
        )
    if _HEADER_VALUE_BAD_RE.search(value) or UNSENDABLE_RE.search(value.replace("\t", "")):
        raise InvalidInput(
            f"{option} {name!r} value contains a line break or control character", hint=example
        )


def validate_data(data: str, allow_large: bool = False) -> str:
    size = len(data.encode("utf-8"))
    limit = SOKETI_MAX_DATA_BYTES if allow_large else MAX_DATA_BYTES
    if size > limit:
        hint = (
            "Soketi's own default limit is 100 KB"
            if allow_large
            else "Pusher refuses events over 10 KB; send less, or pass --allow-large for Soketi-only setups"
        )
        raise InvalidInput(f"event data is {size} bytes; the limit is {limit}", hint=hint)
    return data


def validate_event(event: Event, allow_large: bool = False) -> Event:
    if not event.channels:
        raise InvalidInput("no channel given", hint="name at least one channel")
    if len(event.channels) > MAX_CHANNELS_PER_TRIGGER:
        raise InvalidInput(
            f"{len(event.channels)} channels in one trigger; the limit is {MAX_CHANNELS_PER_TRIGGER}",
            hint="split the channels over several triggers",
        )
    for channel in event.channels:
        validate_publish_channel(channel)
    encrypted = [c for c in event.channels if channel_kind(c) == "private-encrypted"]
    if encrypted and len(event.channels) > 1:
        raise InvalidInput(
            "an encrypted channel must be triggered on its own",
            hint=f"send to {encrypted[0]} in a separate trigger",
        )
    to_users = [c for c in event.channels if channel_kind(c) == "server-to-user"]
    if to_users and len(to_users) != len(event.channels):
        # Soketi 1.6.1 routes such a mixed trigger to the users only when a #server-to-user
        # channel comes first; the SDKs' sendToUser never mixes them.
        raise InvalidInput(
            "events for users (#server-to-user-*) cannot share a trigger with other channels",
            hint=f"send to {to_users[0]} in a separate trigger (rtctl send-to-user)",
        )
    validate_event_name(event.name)
    validate_data(event.data, allow_large)
    if event.socket_id is not None:
        from rtctl.protocol.signing import check_socket_id

        check_socket_id(event.socket_id)
    return event


def validate_batch(events: Sequence[Event], allow_large: bool = False) -> None:
    """A batch item carries exactly one channel (the server-library spec)."""
    for index, event in enumerate(events, start=1):
        if len(event.channels) != 1:
            raise InvalidInput(
                f"batch item {index} has {len(event.channels)} channels; a batch item takes one",
                hint="give each NDJSON line a single 'channel'",
            )
        try:
            validate_event(event, allow_large)
        except InvalidInput as error:
            raise InvalidInput(f"batch item {index}: {error.message}", error.hint) from None
