"""What a close code or a connection-level ``pusher:error`` means, and what a client does next.

Pusher's ranges (protocol reference §1.8): 4000-4099 do not reconnect with the same parameters,
4100-4199 back off, 4200-4299 reconnect now; anything else is a normal reconnect with back-off.
"""

from __future__ import annotations

import random
from typing import Literal

from rtctl.errors import AuthRejected, ConfigError, RtctlError, ServerRejected, Unreachable

Policy = Literal["stop", "backoff", "now"]


def close_policy(code: int | None) -> Policy:
    """What Pusher's close-code ranges ask a client to do."""
    if code is not None and 4000 <= code <= 4099:
        return "stop"
    if code is not None and 4200 <= code <= 4299:
        return "now"
    return "backoff"  # 4100-4199 (back off), 1xxx, 43xx, a dropped TCP connection


def backoff_delay(attempt: int, code: int | None) -> float:
    """Seconds to wait before reconnect ``attempt`` (1-based). 4100-4199: >= 1 s, exponential;
    anything else that is not "reconnect now": exponential with full jitter, capped at 10 s."""
    if close_policy(code) == "now" and attempt == 1:
        return 0.0
    ceiling = min(10.0, 0.5 * (2 ** (attempt - 1)))
    if code is not None and 4100 <= code <= 4199:
        return max(1.0, ceiling)
    return random.uniform(0.1, max(0.2, ceiling))


class Disconnected(Unreachable):
    """The socket closed (``close_code`` is None when the TCP connection just dropped)."""

    code = "disconnected"

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        close_code: int | None = None,
        close_reason: str = "",
    ) -> None:
        super().__init__(message, hint)
        self.close_code = close_code
        self.close_reason = close_reason or message


def refusal(code: int | None, text: str, key: str) -> RtctlError:
    """The typed error for a connection-level refusal (``pusher:error`` or a close code)."""
    if code == 4001:
        return AuthRejected(
            f"app key {key!r} is unknown to the server ({text})",
            hint="check PUSHER_APP_KEY matches the server's app key",
        )
    if code in (4003, 4009):
        return AuthRejected(f"the server refused the connection: {text} ({code})")
    if code == 4000:
        return ConfigError(f"the app requires TLS: {text} (4000)", hint="set REALTIME_SCHEME=https")
    if code is not None and 4100 <= code <= 4199:
        return ServerRejected(
            f"the server is over capacity: {text} ({code})", hint="retry later", status=code
        )
    if code is not None and 4200 <= code <= 4299:
        return Disconnected(
            f"the server asked to reconnect: {text} ({code})", close_code=code, close_reason=text
        )
    return ServerRejected(f"the server refused the connection: {text} ({code})", status=code)
