"""Channel authorization and user authentication signatures (protocol §3).

The string to sign is built from exact strings: presence ``channel_data`` and sign-in ``user_data``
are signed, returned and sent byte for byte, so they are serialised once, here, compactly (as
pusher-js' Node SDK does). HMAC-SHA256 comes from the standard library.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any

from rtctl.errors import InvalidInput

SOCKET_ID_RE = re.compile(r"[0-9]+\.[0-9]+")  # ASCII digits; used with fullmatch


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def sign(secret: str, string_to_sign: str) -> str:
    """Lowercase hex HMAC-SHA256, as Pusher and Soketi compare it."""
    return hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


class InvalidSocketId(InvalidInput):
    """A socket id that is not two numbers joined by a dot."""


def check_socket_id(socket_id: str) -> str:
    if not SOCKET_ID_RE.fullmatch(socket_id):
        raise InvalidSocketId(
            f"socket id {socket_id!r} is malformed",
            hint="a socket id is two numbers joined by a dot, e.g. 1234.5678",
        )
    return socket_id


# Cache channels keep the last event for late subscribers; each is also one of the kinds below
# (``presence-cache-x`` is a presence channel, ``private-encrypted-cache-x`` an encrypted one).
CACHE_PREFIXES = ("cache-", "private-cache-", "private-encrypted-cache-", "presence-cache-")
SERVER_TO_USER_PREFIX = "#server-to-user-"


def channel_kind(channel: str) -> str:
    """public | private | private-encrypted | presence | server-to-user, by anchored prefixes as
    Pusher defines them (Soketi's unanchored tests would also call ``my-private-x`` private)."""
    if channel.startswith(SERVER_TO_USER_PREFIX):
        return "server-to-user"
    if channel.startswith("private-encrypted-"):
        return "private-encrypted"
    if channel.startswith("private-"):
        return "private"
    if channel.startswith("presence-"):
        return "presence"
    return "public"


def is_cache_channel(channel: str) -> bool:
    """``cache-``, ``private-cache-``, ``private-encrypted-cache-`` or ``presence-cache-``
    (anchored: ``x-cache-y`` is an ordinary public channel)."""
    return channel.startswith(CACHE_PREFIXES)


def presence_channel_data(user_id: str, user_info: dict[str, Any] | None = None) -> str:
    data: dict[str, Any] = {"user_id": user_id}
    if user_info is not None:
        data["user_info"] = user_info
    return compact_json(data)


def shared_secret(channel: str, master_key: bytes) -> str:
    """The per-channel key of an encrypted channel: base64(SHA256(channel || master key))."""
    return base64.b64encode(hashlib.sha256(channel.encode() + master_key).digest()).decode()


def authorize_channel(
    key: str,
    secret: str,
    socket_id: str,
    channel: str,
    channel_data: str | None = None,
    master_key: bytes | None = None,
) -> dict[str, str]:
    """The exact JSON body an auth endpoint returns for a private, presence or encrypted channel."""
    check_socket_id(socket_id)
    kind = channel_kind(channel)
    if kind == "public":
        raise InvalidInput(
            f"{channel!r} is a public channel: it needs no authorization",
            hint="authorize private-*, private-encrypted-* or presence-* channels",
        )
    if kind == "server-to-user":
        raise InvalidInput(
            f"{channel!r} is not authorized: a signed-in connection receives it",
            hint="sign the user in instead (rtctl auth --user --socket-id ID --user-id U)",
        )
    if kind == "presence":
        if channel_data is None:
            raise InvalidInput(
                f"presence channel {channel!r} needs a user",
                hint="pass --user-id (and optionally --user-info JSON)",
            )
        signature = sign(secret, f"{socket_id}:{channel}:{channel_data}")
        return {"auth": f"{key}:{signature}", "channel_data": channel_data}
    response = {"auth": f"{key}:{sign(secret, f'{socket_id}:{channel}')}"}
    if kind == "private-encrypted":
        if master_key is None:
            raise InvalidInput(
                f"{channel!r} is an encrypted channel and no master key is configured",
                hint="set PUSHER_ENCRYPTION_MASTER_KEY_BASE64 (openssl rand -base64 32)",
            )
        response["shared_secret"] = shared_secret(channel, master_key)
    return response


def authenticate_user(
    key: str, secret: str, socket_id: str, user_data: dict[str, Any]
) -> dict[str, str]:
    """The sign-in (``pusher:signin``) response: ``auth`` and the exact ``user_data`` string."""
    check_socket_id(socket_id)
    if not str(user_data.get("id", "")):
        raise InvalidInput("user data needs a non-empty id", hint="pass --user-id")
    text = compact_json(user_data)
    return {"auth": f"{key}:{sign(secret, f'{socket_id}::user::{text}')}", "user_data": text}
