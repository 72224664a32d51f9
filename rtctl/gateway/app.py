"""The gateway as an ASGI app: channel auth, user sign-in, emit, channel monitor, health.

``create_app(settings)`` returns a Starlette app that ``rtctl gateway`` serves with uvicorn and that
a user's own Starlette/FastAPI backend can mount. Everything is decided at creation (keys loaded,
hook imported, routes chosen), so a mounted app works without its lifespan running.

Request handling order, for every route: failed-authentication limit (429), body size (413), caller
identity or service token (401), body shape (400), channel rules (403), then the signature or the
provider call.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rtctl.config import Settings
from rtctl.errors import AuthRejected, ConfigError, InvalidInput, RtctlError, ServerRejected
from rtctl.gateway.errors import GatewayError, bad_request, forbidden, unauthorized
from rtctl.gateway.identity import DEV_USER_HEADER, Identity, Verifier, check_service_tokens
from rtctl.gateway.ratelimit import DEFAULT_LIMIT, DEFAULT_WINDOW_S, FailureLimit
from rtctl.gateway.rules import Authorizer, HookFailed, load_hook
from rtctl.gateway.shared import SharedStore, open_store
from rtctl.gateway.webhooks import SeenStore, WebhookEndpoint
from rtctl.protocol import signing, strictjson

log = logging.getLogger("rtctl.gateway")
access_log = logging.getLogger("rtctl.gateway.access")

AUTH_BODY_LIMIT = 4 * 1024  # socket_id + a 164-char channel name + pusher-js params
EMIT_BODY_LIMIT = 128 * 1024  # 10 KB of data, JSON-escaped, plus up to 100 channel names
REQUEST_TIMEOUT = 15.0  # whole request, body read included
PROVIDER_TIMEOUT = 5.0  # each call to the provider's HTTP API (below REQUEST_TIMEOUT)
READY_CACHE_SECONDS = 2.0  # readiness probes must not turn into a flood of signed calls

Handler = Callable[[Request], Awaitable[Response]]


# --- small helpers -------------------------------------------------------------------------------


def error_response(error: GatewayError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def token_matches(given: str, expected: str) -> bool:
    """Constant-time comparison of a presented service token."""
    return hmac.compare_digest(given.encode(), expected.encode())


def check_origins(origins: tuple[str, ...]) -> list[str]:
    """REALTIME_CORS_ORIGINS must be explicit origins: never ``*``, never a path."""
    checked = []
    for origin in origins:
        parts = urlsplit(origin)
        if origin == "*" or "*" in origin:
            raise ConfigError(
                "REALTIME_CORS_ORIGINS contains '*': the gateway needs an explicit allow-list",
                hint="list each web origin, e.g. REALTIME_CORS_ORIGINS=https://app.example.com",
            )
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
            raise ConfigError(
                f"REALTIME_CORS_ORIGINS entry {origin!r} is not an origin (scheme://host[:port])",
                hint="no path and no trailing slash, e.g. https://app.example.com",
            )
        checked.append(origin)
    return checked


# Request headers a browser may send cross-origin without further configuration: the bearer
# token and JSON body, Laravel Echo's X-CSRF-TOKEN (added whenever the page has a csrf-token meta
# tag, as Laravel's default layout does) and axios' X-XSRF-TOKEN / X-Requested-With, and the
# X-Socket-ID that Echo's interceptors and many pusher-js set-ups send.
CORS_HEADERS = (
    "Authorization",
    "Content-Type",
    "X-CSRF-TOKEN",
    "X-XSRF-TOKEN",
    "X-Requested-With",
    "X-Socket-ID",
)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)


def check_cors_headers(extra: tuple[str, ...]) -> list[str]:
    """The default allow-list plus REALTIME_CORS_HEADERS (header names, never ``*``)."""
    for name in extra:
        if name == "*" or not _HEADER_NAME.fullmatch(name):
            raise ConfigError(
                f"REALTIME_CORS_HEADERS entry {name!r} is not a header name",
                hint="list header names separated by commas, e.g. REALTIME_CORS_HEADERS=X-Tenant",
            )
    known = {name.lower() for name in CORS_HEADERS}
    return [*CORS_HEADERS, *(name for name in extra if name.lower() not in known)]


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise bad_request("invalid_body", "Content-Length is not a number")
        if int(declared) > limit:
            raise GatewayError(413, "body_too_large", f"request body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise GatewayError(413, "body_too_large", f"request body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        value = strictjson.loads(body.decode("utf-8"))
    except ValueError:  # not UTF-8, not JSON, NaN/Infinity, nested too deeply
        raise bad_request("invalid_body", "request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise bad_request("invalid_body", "request body must be a JSON object")
    try:
        # "\ud800" escapes parse into lone surrogates, which are not text: refuse them here,
        # before anything is published, not when the answer cannot be encoded afterwards.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        raise bad_request(
            "invalid_body", "request body holds a lone surrogate escape (not valid Unicode)"
        ) from None
    return value


class AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: encoding it cannot fail, so an answer given after a side
    effect (an event already published) never turns into a 500 that invites a retry."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


async def read_fields(request: Request, names: tuple[str, ...]) -> dict[str, str]:
    """pusher-js' form-encoded fields (JSON accepted too); extra fields are ignored."""
    body = await read_body(request, AUTH_BODY_LIMIT)
    kind = media_type(request)
    values: dict[str, list[Any]] = {}
    if kind == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(
                body.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=False,
                max_num_fields=50,
            )
        except (UnicodeDecodeError, ValueError):
            raise bad_request("invalid_body", "form body cannot be parsed") from None
        for key, value in pairs:
            values.setdefault(key, []).append(value)
    elif kind == "application/json":
        for key, value in parse_json_object(body).items():
            values[key] = [value]
    else:
        raise bad_request(
            "unsupported_content_type",
            "send application/x-www-form-urlencoded (as pusher-js does) or application/json",
        )
    fields: dict[str, str] = {}
    for name in names:
        given = values.get(name, [])
        if len(given) != 1 or not isinstance(given[0], str):
            problem = "is missing" if not given else "must be given once, as a string"
            raise bad_request("invalid_body", f"{name} {problem}")
        fields[name] = given[0]
    return fields


def invalid_socket_id() -> GatewayError:
    return bad_request(
        "invalid_socket_id", "socket_id must be two numbers joined by a dot, e.g. 1234.5678"
    )


def checked_socket_id(socket_id: str) -> str:
    if len(socket_id) > 64 or not signing.SOCKET_ID_RE.fullmatch(socket_id):
        raise invalid_socket_id()
    return socket_id


def checked_channel(channel: str) -> str:
    from rtctl.protocol.validation import validate_channel

    try:
        return validate_channel(channel)
    except InvalidInput as error:
        raise bad_request("invalid_channel_name", error.message) from None


def provider_error(error: RtctlError) -> GatewayError:
    """A refusal from Pusher/Soketi as an HTTP error the caller can act on."""
    if isinstance(error, AuthRejected):
        return GatewayError(
            502,
            "provider_auth_rejected",
            "the realtime provider refused the gateway's credentials (check PUSHER_APP_*)",
        )
    if isinstance(error, ServerRejected):
        status = error.status or 502
        if 400 <= status < 500:
            return GatewayError(status, "provider_rejected", error.message)
        return GatewayError(502, "provider_error", error.message)
    if isinstance(error, InvalidInput):
        return bad_request("invalid_event", error.message)
    return GatewayError(503, "provider_unreachable", error.message)


# --- middleware ----------------------------------------------------------------------------------


class AccessLog:
    """One structured line per request: method, path (never the query), status, time, user.

    Headers and bodies are never logged, so tokens and secrets cannot leak into logs.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        record: dict[str, Any] = {}
        scope["rtctl.access"] = record
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            client = scope.get("client")
            entry = {
                "method": scope.get("method"),
                "path": scope.get("path", ""),  # the full path (ASGI), even when mounted
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 1),
                "client": client[0] if client else None,
                **record,
            }
            access_log.info(json.dumps(entry, separators=(",", ":")))


# --- the gateway ---------------------------------------------------------------------------------


class Gateway:
    """Holds what every request needs; its methods are the route endpoints."""

    def __init__(
        self,
        settings: Settings,
        *,
        dev_user_header: bool = False,
        audience: str | None = None,
        issuer: str | None = None,
        shared: SharedStore | None = None,
    ) -> None:
        self.settings = settings
        self.shared = shared or open_store(None)  # failure counters, de-duplication windows
        self.verifier = Verifier(
            settings, audience=audience, issuer=issuer, dev_user_header=dev_user_header
        )
        self.authorizer = Authorizer(load_hook(settings.auth_hook) if settings.auth_hook else None)
        self.master_key = settings.master_key
        self._local = threading.local()
        self._clients: list[Any] = []
        self._clients_lock = threading.Lock()
        self._ready_at = 0.0
        self._ready_error: GatewayError | None = None
        self._ready_detail: str | None = None

    # --- provider access -------------------------------------------------------------------------

    def client(self) -> Any:
        """One ApiClient per worker thread (requests sessions are not shared across threads)."""
        client = getattr(self._local, "client", None)
        if client is None:
            from rtctl.protocol.httpapi import ApiClient

            client = ApiClient(self.settings, timeout=PROVIDER_TIMEOUT)
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    async def call_provider(self, method: str, *args: Any) -> Any:
        def run() -> Any:
            return getattr(self.client(), method)(*args)

        try:
            return await run_in_threadpool(run)
        except RtctlError as error:
            raise provider_error(error) from None

    def close(self) -> None:
        with self._clients_lock:
            for client in self._clients:
                client.close()
            self._clients.clear()
        self.shared.close()

    # --- identity --------------------------------------------------------------------------------

    def identify(self, request: Request) -> Identity:
        client = request.client.host if request.client else None
        identity = self.verifier.identify(
            request.headers.get("authorization"),
            request.headers.get(DEV_USER_HEADER),
            client,
            request.headers.get("host"),
        )
        request.scope.setdefault("rtctl.access", {})["user"] = identity.user_id
        return identity

    def require_token(self, request: Request, expected: str, what: str) -> None:
        header = request.headers.get("authorization")
        if header is None:
            raise unauthorized("missing_token", f"{what} needs Authorization: Bearer <token>")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token_matches(token.strip(), expected):
            raise unauthorized("invalid_token", f"the {what} token is wrong")

    # --- routes ----------------------------------------------------------------------------------

    async def channel_auth(self, request: Request) -> Response:
        identity = self.identify(request)
        fields = await read_fields(request, ("socket_id", "channel_name"))
        socket_id = checked_socket_id(fields["socket_id"])
        channel = checked_channel(fields["channel_name"])
        try:
            decision = await self.authorizer.decide(identity, channel)
        except HookFailed as exc:
            log.error("REALTIME_AUTH_HOOK failed for %s: %s", channel, exc)
            raise GatewayError(
                500, "auth_hook_failed", "the custom authorization rule failed"
            ) from None
        if not decision.allowed:
            raise forbidden(decision.code, decision.reason)
        kind = signing.channel_kind(channel)
        if kind == "public":
            raise forbidden("channel_type_refused", f"{channel} needs no authorization")
        if kind == "private-encrypted" and self.master_key is None:
            raise forbidden(
                "channel_type_refused",
                "encrypted channels are off: PUSHER_ENCRYPTION_MASTER_KEY_BASE64 is not set",
            )
        channel_data = None
        if kind == "presence":
            # Built from the verified identity only: client-sent channel_data is never read.
            channel_data = signing.presence_channel_data(
                identity.user_id, identity.user_info or None
            )
        body = signing.authorize_channel(
            self.settings.key,
            self.settings.secret,
            socket_id,
            channel,
            channel_data=channel_data,
            master_key=self.master_key,
        )
        return JSONResponse(body)

    async def user_auth(self, request: Request) -> Response:
        identity = self.identify(request)
        fields = await read_fields(request, ("socket_id",))
        socket_id = checked_socket_id(fields["socket_id"])
        user_data: dict[str, Any] = {"id": identity.user_id}
        if identity.user_info:
            user_data["user_info"] = identity.user_info
        body = signing.authenticate_user(
            self.settings.key, self.settings.secret, socket_id, user_data
        )
        return JSONResponse(body)

    async def emit(self, request: Request) -> Response:
        assert self.settings.emit_token is not None  # the route exists only with a token
        self.require_token(request, self.settings.emit_token, "emit")
        body = await read_body(request, EMIT_BODY_LIMIT)
        if media_type(request) != "application/json":
            raise bad_request("unsupported_content_type", "send the event as application/json")
        event = build_event(parse_json_object(body), self.master_key)
        await self.call_provider("trigger", event)
        request.scope.setdefault("rtctl.access", {})["event"] = event.name
        return AsciiJSONResponse(
            {"ok": True, "event": event.name, "channels": list(event.channels)}
        )

    async def channels(self, request: Request) -> Response:
        assert self.settings.monitor_token is not None  # the route exists only with a token
        self.require_token(request, self.settings.monitor_token, "monitor")
        prefix = request.query_params.get("prefix") or None
        if prefix is not None:
            checked_channel(prefix)
        found: dict[str, Any] = await self.call_provider("channels", prefix)
        listed = {
            name: {
                key: value
                for key, value in (attrs or {}).items()
                if key in ("subscription_count", "user_count")
            }
            for name, attrs in sorted(found.items())
        }
        return JSONResponse({"count": len(listed), "channels": listed})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        now = time.monotonic()
        if now - self._ready_at > READY_CACHE_SECONDS:
            try:
                await self.call_provider("request", "GET", "/channels", None)
                if self._ready_detail is not None:
                    log.info("ready again: the provider's API answers")
                self._ready_error = self._ready_detail = None
            except GatewayError as error:
                # The route is unauthenticated: the reason (it names internal addresses) goes to
                # the log, once per change, and the probe only learns "not ready".
                if error.message != self._ready_detail:
                    log.warning("not ready: the provider's API does not answer: %s", error.message)
                self._ready_detail = error.message
                self._ready_error = GatewayError(
                    503, "not_ready", "the realtime provider does not answer (details in the log)"
                )
            self._ready_at = now
        if self._ready_error is not None:
            raise self._ready_error
        return JSONResponse({"status": "ready", "provider": self.settings.provider})


def build_event(body: Mapping[str, Any], master_key: bytes | None) -> Any:
    """``{channel | channels, event, data?, socket_id?}`` -> an Event, parsed and checked by the
    function `rtctl emit --batch` uses (rtctl.ops.publish.event_from_object: Pusher's limits, the
    chat_message shape, the master key for encrypted channels); each kind of problem has its code."""
    from rtctl.ops.publish import MalformedEvent, event_from_object
    from rtctl.protocol.payloads import InvalidChatMessage
    from rtctl.protocol.signing import InvalidSocketId

    try:
        event = event_from_object(body, many_channels=True, master_key=master_key)
    except MalformedEvent as error:
        raise bad_request("invalid_body", error.message) from None
    except InvalidSocketId:
        raise invalid_socket_id() from None
    except InvalidChatMessage as error:
        raise bad_request("invalid_chat_message", error.message) from None
    except InvalidInput as error:
        raise bad_request("invalid_event", error.message) from None
    if event.socket_id is not None:
        checked_socket_id(event.socket_id)
    return event


async def within(seconds: float, work: Awaitable[Response]) -> Response:
    """``asyncio.wait_for`` without its extra task per request where Python has asyncio.timeout."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await work
    return await asyncio.wait_for(work, timeout=seconds)


def guarded(handler: Handler) -> Handler:
    """Every endpoint: time-limited, GatewayError -> JSON error, anything else -> logged 500."""

    async def endpoint(request: Request) -> Response:
        try:
            return await within(REQUEST_TIMEOUT, handler(request))
        except GatewayError as error:
            request.scope.setdefault("rtctl.access", {})["code"] = error.code
            return error_response(error)
        except ClientDisconnect:
            # The client went away before its body arrived: nothing to answer, nothing to fix.
            request.scope.setdefault("rtctl.access", {})["code"] = "client_abort"
            return Response(status_code=499)
        except asyncio.TimeoutError:
            request.scope.setdefault("rtctl.access", {})["code"] = "timeout"
            return error_response(GatewayError(504, "timeout", "the request took too long"))
        except Exception:
            log.exception("unexpected error in %s", request.url.path)
            request.scope.setdefault("rtctl.access", {})["code"] = "internal_error"
            return error_response(GatewayError(500, "internal_error", "unexpected gateway error"))

    return endpoint


async def http_error(request: Request, exc: Exception) -> Response:
    """404/405 as JSON bodies with stable codes, like every other refusal."""
    status = getattr(exc, "status_code", 500)
    codes = {404: "not_found", 405: "method_not_allowed"}
    messages = {404: "no such route", 405: "method not allowed on this route"}
    error = GatewayError(
        status,
        codes.get(status, "http_error"),
        messages.get(status, str(getattr(exc, "detail", ""))),
    )
    headers = getattr(exc, "headers", None) or {}
    return JSONResponse(error.body(), status_code=status, headers=dict(headers))


def startup_warnings(gateway: Gateway) -> list[str]:
    settings = gateway.settings
    warnings = []
    if gateway.verifier.dev_user_header:
        warnings.append(
            f"DEV MODE: trusting the {DEV_USER_HEADER} header from loopback clients; anyone on "
            "this machine (or a local reverse proxy) can act as any user. Never use in production."
        )
    if settings.emit_token is None:
        warnings.append("REALTIME_EMIT_TOKEN is not set: /emit is disabled (404)")
    if settings.master_key is None:
        warnings.append(
            "PUSHER_ENCRYPTION_MASTER_KEY_BASE64 is not set: private-encrypted-* channels are refused"
        )
    return warnings


def create_app(
    settings: Settings,
    *,
    prefix: str = "/realtime",
    dev_user_header: bool = False,
    audience: str | None = None,
    issuer: str | None = None,
    shared_state: str | Path | None = None,
    auth_failure_limit: int = DEFAULT_LIMIT,
    auth_failure_window: float = DEFAULT_WINDOW_S,
    webhook_seen: SeenStore | None = None,
) -> Starlette:
    """The gateway app. Raises ConfigError when the settings cannot make a safe gateway.

    ``shared_state``: the SQLite file that several worker processes of one gateway share (the
    failed-authentication counters and the /webhooks de-duplication window); None keeps that
    state in this process.
    ``auth_failure_limit`` failed authentications per client address within
    ``auth_failure_window`` seconds, then 429 (0 turns the limit off).
    ``webhook_seen``: another store for /webhooks de-duplication (default: the shared state).
    """
    if not settings.key or not settings.secret or not settings.app_id:
        raise ConfigError(
            "the gateway needs PUSHER_APP_ID, PUSHER_APP_KEY and PUSHER_APP_SECRET",
            hint="run `rtctl init` or set them in the environment",
        )
    check_service_tokens(settings)
    origins = check_origins(settings.cors_origins)
    cors_headers = check_cors_headers(settings.cors_headers)
    gateway = Gateway(
        settings,
        dev_user_header=dev_user_header,
        audience=audience,
        issuer=issuer,
        shared=open_store(shared_state),
    )
    base = prefix.rstrip("/")
    routes = [
        Route(f"{base}/auth", guarded(gateway.channel_auth), methods=["POST"]),
        Route(f"{base}/user-auth", guarded(gateway.user_auth), methods=["POST"]),
        Route(f"{base}/health", guarded(gateway.health), methods=["GET"]),
        Route(f"{base}/ready", guarded(gateway.ready), methods=["GET"]),
        Route(
            f"{base}/webhooks",
            guarded(WebhookEndpoint(settings, webhook_seen or gateway.shared).handle),
            methods=["POST"],
        ),
    ]
    if settings.emit_token:
        routes.append(Route(f"{base}/emit", guarded(gateway.emit), methods=["POST"]))
    if settings.monitor_token:
        routes.append(Route(f"{base}/channels", guarded(gateway.channels), methods=["GET"]))

    middleware = [Middleware(AccessLog)]
    if origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "POST"],
                allow_headers=cors_headers,
                allow_credentials=False,  # bearer tokens, not cookies
                max_age=600,
            )
        )
    # inside CORS, so a browser can read the 429
    middleware.append(
        Middleware(
            FailureLimit,
            store=gateway.shared,
            limit=auth_failure_limit,
            window_s=auth_failure_window,
        )
    )
    warnings = startup_warnings(gateway)
    for warning in warnings:
        log.warning(warning)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield
        gateway.close()

    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    # /realtime/auth/ is 404, never a redirect whose Location comes from the client's Host header
    app.router.redirect_slashes = False
    app.state.gateway = gateway
    app.state.shared = gateway.shared  # seen(key, window_s) for de-duplication
    app.state.warnings = warnings
    return app
