"""A per-client limit on failed authentication (ASGI middleware).

A client address whose requests fail authentication ``limit`` times within ``window_s`` seconds
gets 429 ``too_many_failures`` (with ``Retry-After``) for every request that presents credentials
until that window ends, right or wrong: a guesser learns nothing more. Health and readiness probes
carry no credentials and are never refused.

Counted: 401 ``invalid_token``, i.e. a wrong service token or a JWT that does not verify. Not
counted: ``missing_token`` (nothing was guessed) and ``token_expired`` (a genuine token, only old:
a browser back after a night would otherwise lock its address out during a reconnect storm).

The address is the peer the server reports. Behind a reverse proxy that is the proxy for everyone,
unless the server is told to trust the proxy's ``X-Forwarded-For`` (``rtctl gateway
--forwarded-allow-ips``); docs/gateway.md says what the proxy itself should limit.
"""

from __future__ import annotations

import logging
import math

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rtctl.gateway.errors import GatewayError
from rtctl.gateway.shared import SharedStore

log = logging.getLogger("rtctl.gateway")

DEFAULT_LIMIT = 30  # failed authentications per client address ...
DEFAULT_WINDOW_S = 60  # ... within this many seconds
COUNTED = frozenset({"invalid_token"})


def presents_credentials(scope: Scope) -> bool:
    return any(name == b"authorization" for name, _ in scope.get("headers", ()))


class FailureLimit:
    def __init__(self, app: ASGIApp, store: SharedStore, limit: int, window_s: float) -> None:
        self.app = app
        self.store = store
        self.limit = limit
        self.window_s = window_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.limit <= 0:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        key = f"auth-failures:{address}"
        if presents_credentials(scope):
            failures, seconds_left = self.store.count(key)
            if failures >= self.limit:
                retry = max(1, math.ceil(seconds_left))
                error = GatewayError(
                    429,
                    "too_many_failures",
                    f"too many failed authentications from this address; retry in {retry} s",
                    {"Retry-After": str(retry)},
                )
                scope.setdefault("rtctl.access", {})["code"] = error.code
                response = JSONResponse(error.body(), error.status, headers=error.headers)
                await response(scope, receive, send)
                return

        async def counting_send(message: Message) -> None:
            # Counted before the answer leaves: a client must not get its next guess in between.
            access = scope.get("rtctl.access", {})
            if message["type"] == "http.response.start" and access.get("code") in COUNTED:
                self.count_failure(key, address)
            await send(message)

        await self.app(scope, receive, counting_send)

    def count_failure(self, key: str, address: str) -> None:
        failures, seconds_left = self.store.hit(key, self.window_s)
        if failures == self.limit:
            log.warning(
                "%s failed authentication %d times within %g s: refused with 429 for %d s",
                address,
                failures,
                self.window_s,
                math.ceil(seconds_left),
            )
