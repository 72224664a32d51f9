"""The bot-user pattern: the ``chat_message`` payload the bot sends a user, defined once.

``rtctl bot say`` builds it, ``rtctl emit`` and the gateway's ``/realtime/emit`` validate against it,
``rtctl listen`` recognises it to print "Coach: ...".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from rtctl.errors import InvalidInput

CHAT_EVENT = "chat_message"
CREATED_AT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
PAYLOAD_KEYS = {"channel", "actor", "body", "audio_url", "created_at"}
ACTOR_KEYS = {"id", "name", "avatar"}


def utc_timestamp(moment: datetime | None = None) -> str:
    """ISO-8601 UTC with milliseconds and Z, e.g. 2026-11-25T17:06:31.123Z."""
    moment = (moment or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def user_id_value(user_id: str) -> int | str:
    """Numeric ids travel as numbers (the default bot id 9000000), others as strings."""
    return int(user_id) if user_id.isdigit() else user_id


def dm_channel(user_id: str, bot_id: str) -> str:
    """The private channel a user shares with the bot: private-{user}_{bot}."""
    return f"private-{user_id}_{bot_id}"


@dataclass(frozen=True)
class Actor:
    id: int | str
    name: str
    avatar: str


@dataclass(frozen=True)
class ChatMessage:
    channel: str
    actor: Actor
    body: str
    audio_url: str | None
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "actor": {"id": self.actor.id, "name": self.actor.name, "avatar": self.actor.avatar},
            "body": self.body,
            "audio_url": self.audio_url,
            "created_at": self.created_at,
        }


def bot_message(
    user_id: str,
    text: str,
    bot_id: str,
    bot_name: str,
    bot_avatar: str,
    audio_url: str | None = None,
    moment: datetime | None = None,
) -> ChatMessage:
    if not text.strip():
        raise InvalidInput(
            "the message text is empty", hint='say something: rtctl bot say --to 123 "Hi"'
        )
    return ChatMessage(
        channel=dm_channel(user_id, bot_id),
        actor=Actor(id=user_id_value(bot_id), name=bot_name, avatar=bot_avatar),
        body=text,
        audio_url=audio_url,
        created_at=utc_timestamp(moment),
    )


class InvalidChatMessage(InvalidInput):
    """A ``chat_message`` event whose payload is not the bot-user pattern's shape."""


def parse_chat_message(data: Any, channel: str | None = None) -> ChatMessage:
    """Validate a ``chat_message`` payload against the bot-user pattern's shape."""

    def fail(problem: str) -> InvalidChatMessage:
        return InvalidChatMessage(
            f"chat_message payload {problem}",
            hint="shape: {channel, actor: {id, name, avatar}, body, audio_url, created_at}",
        )

    if not isinstance(data, dict):
        raise fail("is not a JSON object")
    if set(data) != PAYLOAD_KEYS:
        missing, extra = PAYLOAD_KEYS - set(data), set(data) - PAYLOAD_KEYS
        parts = [
            f"missing {sorted(missing)}" if missing else "",
            f"unexpected {sorted(extra)}" if extra else "",
        ]
        raise fail(" and ".join(p for p in parts if p))
    actor = data["actor"]
    if not isinstance(actor, dict) or set(actor) != ACTOR_KEYS:
        raise fail("has an actor that is not {id, name, avatar}")
    if not isinstance(actor["id"], (int, str)) or isinstance(actor["id"], bool):
        raise fail("has an actor.id that is neither a number nor a string")
    if not isinstance(actor["name"], str) or not isinstance(actor["avatar"], str):
        raise fail("has an actor name or avatar that is not a string")
    if not isinstance(data["channel"], str) or not isinstance(data["body"], str):
        raise fail("has a channel or body that is not a string")
    if channel is not None and data["channel"] != channel:
        raise fail(f"names channel {data['channel']!r} but is sent on {channel!r}")
    if data["audio_url"] is not None and not isinstance(data["audio_url"], str):
        raise fail("has an audio_url that is neither a string nor null")
    if not isinstance(data["created_at"], str) or not CREATED_AT_RE.match(data["created_at"]):
        raise fail("has a created_at that is not ISO-8601 UTC with milliseconds and Z")
    return ChatMessage(
        channel=data["channel"],
        actor=Actor(id=actor["id"], name=actor["name"], avatar=actor["avatar"]),
        body=data["body"],
        audio_url=data["audio_url"],
        created_at=data["created_at"],
    )
