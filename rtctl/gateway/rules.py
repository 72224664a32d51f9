"""Who may join which channel: deny by default, with rules that fit the bot-user pattern's chat.

- ``private-{a}_{b}`` and ``private-encrypted-{a}_{b}``: only users ``a`` and ``b`` (user 123 and the
  bot 9000000 share ``private-123_9000000``). Exactly one ``_`` separates the two ids, so ids used
  in these channels cannot contain ``_`` (otherwise ``private-1_2_3`` would have two readings).
- ``presence-*``: any authenticated user; the member data comes from the identity, never the client.
- Anything else (``private-cache-*``, other private names, public channels): refused.

A custom hook (REALTIME_AUTH_HOOK=``module:function``) gets the final word:
``hook(identity, channel_name, allowed) -> bool | None`` where ``allowed`` is the built-in decision;
``True`` allows, ``False`` refuses, ``None`` keeps the built-in decision. It may be ``async``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rtctl.errors import ConfigError
from rtctl.gateway.identity import Identity
from rtctl.protocol.signing import channel_kind

# Cache channels keep their last event for new subscribers; the pair rule does not cover them.
REFUSED_PREFIXES = ("private-encrypted-cache-", "private-cache-")

# Returns True / False / None, or an awaitable of one of them.
Hook = Callable[[Identity, str, bool], Any]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    code: str  # stable code for the 403 body when refused
    reason: str


def pair_members(channel: str) -> tuple[str, str] | None:
    """``private-{a}_{b}`` -> (a, b); None when the name is not exactly that shape."""
    kind = channel_kind(channel)
    if kind not in ("private", "private-encrypted"):
        return None
    parts = channel[len(kind) + 1 :].split("_")  # after "private-" / "private-encrypted-"
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    return None


def decide(identity: Identity, channel: str) -> Decision:
    """The built-in rules (the hook, if any, is applied by ``Authorizer``)."""
    kind = channel_kind(channel)
    if kind == "presence":
        return Decision(True, "", "presence channels are open to every signed-in user")
    if kind == "public":
        return Decision(
            False,
            "channel_type_refused",
            f"{channel} is a public channel: it needs no authorization",
        )
    if channel.startswith(REFUSED_PREFIXES):
        return Decision(
            False, "channel_type_refused", f"channels like {channel} are not authorized here"
        )
    members = pair_members(channel)
    if members is None:
        return Decision(
            False,
            "forbidden_channel",
            f"{channel} is not a private-{{a}}_{{b}} channel between two users",
        )
    if identity.user_id in members:
        return Decision(True, "", f"user {identity.user_id} is a member of {channel}")
    return Decision(
        False, "forbidden_channel", f"user {identity.user_id} is not a member of {channel}"
    )


def load_hook(
    spec: str,
    variable: str = "REALTIME_AUTH_HOOK",
    signature: str = "hook(identity, channel_name, allowed) -> bool | None",
    example: str = "myapp.realtime:authorize",
) -> Callable[..., Any]:
    """Import ``module:function`` once, at start; a broken spec is a configuration error naming
    ``variable`` (also used for REALTIME_WEBHOOK_HOOK)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(
            f"{variable}={spec!r} is not module:function",
            hint=f"name a function, e.g. {variable}={example}",
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of user code is a config problem
        raise ConfigError(
            f"{variable} module {module_name!r} cannot be imported: {exc}"[:300],
            hint="check the module is on PYTHONPATH and imports cleanly",
        ) from exc
    hook = getattr(module, attribute, None)
    if not callable(hook):
        raise ConfigError(
            f"{variable} names {spec!r}, which is not a function",
            hint=f"the hook is {signature}",
        )
    return hook


class HookFailed(Exception):
    """The custom rule raised or returned something other than True/False/None (fail closed)."""


class Authorizer:
    """Built-in rules plus the optional hook."""

    def __init__(self, hook: Hook | None = None) -> None:
        self.hook = hook

    async def decide(self, identity: Identity, channel: str) -> Decision:
        from starlette.concurrency import run_in_threadpool

        decision = decide(identity, channel)
        if self.hook is None or channel_kind(channel) == "public":
            return decision
        try:
            if inspect.iscoroutinefunction(self.hook):
                result = await self.hook(identity, channel, decision.allowed)
            else:
                result = await run_in_threadpool(self.hook, identity, channel, decision.allowed)
                if inspect.isawaitable(result):
                    result = await result
        except Exception as exc:
            raise HookFailed(f"{type(exc).__name__}: {exc}") from exc
        if result is None:
            return decision
        if result is True:
            return Decision(True, "", "allowed by the custom rule")
        if result is False:
            return Decision(False, "forbidden_channel", f"refused by the custom rule: {channel}")
        raise HookFailed(f"the hook returned {type(result).__name__}, not True/False/None")
