"""The console's web app (Starlette): the page, its JSON API and its event stream, token-guarded.

Security, because this process holds the app secret:
- every request needs the access token (``?token=`` in the URL the command prints, or the
  ``X-Rtctl-Token`` header the page's script sends); a missing or wrong one gets 401;
- a request from another origin (an ``Origin`` header that is not this page's, or
  ``Sec-Fetch-Site: cross-site``) gets 403, and on a loopback address so does a ``Host`` that is
  not a loopback name (DNS rebinding);
- no secret is ever sent to the browser: the Overview shows the app id, key and endpoints, the
  signature explainer answers with its verdict (and the signature that was expected), never the
  secret or the encryption master key;
- responses carry a strict Content-Security-Policy (scripts and styles from this origin only),
  ``Referrer-Policy: no-referrer`` (the token never leaks in a Referer) and ``Cache-Control:
  no-store``.

``create_app(settings, token)`` builds it; ``rtctl console`` serves it with uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from rtctl.console.feed import Feed
from rtctl.console.overview import Sampler, nodes
from rtctl.console.watcher import PRESENCE_USER, Watcher
from rtctl.console.webhooks import WebhookTap
from rtctl.errors import InvalidInput, RtctlError, ServerRejected, Unreachable
from rtctl.hosts import is_loopback

if TYPE_CHECKING:
    from rtctl.config import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_HEADER = "x-rtctl-token"
STATIC = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
STREAM_BATCH_SECONDS = 0.016  # in a burst, one message per display frame at most
STREAM_KEEPALIVE_SECONDS = 15.0
STREAM_REPLAY = 500  # entries a page that just opened gets from the feed's history
MAX_CHANNELS_LISTED = 200  # channel detail queries per Channels refresh
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        b"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def host_name(host: str) -> str:
    """A Host header without its port: ``127.0.0.1:8090`` -> ``127.0.0.1``, ``[::1]:8090`` ->
    ``[::1]``; a browser leaves the port out for port 80."""
    if host.startswith("["):
        return host[: host.find("]") + 1] or host
    return host.partition(":")[0]


class Guard:
    """The access check in front of every route (pure ASGI, so streams are not buffered)."""

    def __init__(self, app: ASGIApp, token: str, hosts: frozenset[str] | None) -> None:
        self.app = app
        self.token = token.encode()
        self.hosts = hosts  # host names answered (None: any, for an explicit public address)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value for name, value in scope["headers"]}
        host = headers.get("host", b"").decode("latin-1")
        refusal = self._refusal(scope, headers, host)
        if refusal is not None:
            status, text = refusal
            await _plain(send, status, text)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, secured)

    def _refusal(
        self, scope: Scope, headers: dict[str, bytes], host: str
    ) -> tuple[int, str] | None:
        if self.hosts is not None and host_name(host) not in self.hosts:
            return 403, "this console answers only to a loopback host name"
        origin = headers.get("origin")
        if origin is not None and origin.decode("latin-1") != f"http://{host}":
            return 403, "requests from other origins are refused"
        if headers.get("sec-fetch-site") == b"cross-site":
            return 403, "requests from other sites are refused"
        given = headers.get(TOKEN_HEADER)
        if given is None:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = (query.get("token") or [""])[0].encode()
        if not given or not hmac.compare_digest(given, self.token):
            return 401, "a valid access token is required: open the URL `rtctl console` printed"
        return None


async def _plain(send: Send, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def error_response(error: RtctlError) -> JSONResponse:
    """Typed errors as JSON: 400 for input, 502 for a server's refusal (its message kept), 503
    when the server cannot be reached."""
    status = 400 if isinstance(error, InvalidInput) or error.exit_code == 2 else 502
    if isinstance(error, Unreachable):
        status = 503
    body: dict[str, Any] = {"error": {"message": error.message, "hint": error.hint}}
    if isinstance(error, ServerRejected):
        body["error"]["status"] = error.status
    return JSONResponse(body, status_code=status)


async def _json_body(request: Request) -> dict[str, Any]:
    from rtctl.protocol import strictjson

    try:  # strict: NaN and nesting too deep for Python are "not JSON" too, never a 500
        value = strictjson.loads(await request.body() or b"{}")
    except ValueError:
        raise InvalidInput("the request body is not JSON", hint="send a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidInput("the request body must be a JSON object", hint="send a JSON object")
    return value


def _text(body: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{name} is required", hint=f"fill in {name}")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text", hint=f"send {name} as a string")
    return value


class Console:
    """The state behind the routes: settings, the feed, the watcher and the sampler."""

    def __init__(self, settings: Settings, token: str, feed: Feed | None = None) -> None:
        self.settings = settings
        self.token = token
        self.feed = feed or Feed()
        self.watcher = Watcher(settings, self.feed)
        self.sampler = Sampler(settings)
        self.webhooks = WebhookTap(settings, self.feed)
        self.feed.publish(
            "status",
            text=f"console started for {settings.provider} at {settings.api_base}; "
            f"presence channels show the console as user {PRESENCE_USER}",
        )

    # --- pages -----------------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        page = resources.files("rtctl.console").joinpath("static/index.html").read_text("utf-8")
        return Response(page.replace("{{TOKEN}}", self.token), media_type="text/html")

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return Response("not found\n", status_code=404, media_type="text/plain")
        text = resources.files("rtctl.console").joinpath(f"static/{name}").read_text("utf-8")
        return Response(text, media_type=STATIC[name])

    # --- Overview and Channels -------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        s = self.settings
        rows = self.sampler.nodes
        if rows is None:  # not sampled yet (or Pusher, never sampled): a cluster is probed now
            rows = await run_in_threadpool(nodes, s)
        return JSONResponse(
            {
                "provider": s.provider,
                "app_id": s.app_id,
                "key": s.key,
                "cluster": s.cluster if s.provider == "pusher" else None,
                "endpoints": {
                    "websocket": s.ws_url.split("?", 1)[0],
                    "http_api": s.api_base,
                    "metrics": s.metrics_url,
                },
                "nodes": rows,
                "health": self.sampler.health,
                "sampled_at": self.sampler.sampled_at,
                "series": list(self.sampler.points),
                "connection": self.watcher.state(),
                "webhooks": self.webhooks.state(),
                "encryption": s.master_key is not None,
                "feed_size": self.feed.size,
            }
        )

    async def channels(self, request: Request) -> Response:
        try:
            listing = await run_in_threadpool(self._channels)
        except RtctlError as error:
            return error_response(error)
        return JSONResponse(listing)

    def _channels(self) -> dict[str, Any]:
        from rtctl.protocol.httpapi import ApiClient
        from rtctl.protocol.signing import channel_kind

        with ApiClient(self.settings, timeout=5) as api:
            names = sorted(api.channels())
            rows = []
            for name in names[:MAX_CHANNELS_LISTED]:
                kind = channel_kind(name)
                row: dict[str, Any] = {"name": name, "kind": kind}
                try:
                    if kind == "presence":
                        info = api.channel(name)
                        row["user_count"] = info.get("user_count")
                        row["users"] = api.users(name)
                        members = self.watcher.members(name)
                        if members is not None:
                            row["members"] = members
                    else:
                        info = api.channel(name, info="subscription_count")
                    row["subscription_count"] = info.get("subscription_count")
                    row["occupied"] = info.get("occupied")
                except RtctlError as error:
                    row["error"] = error.message
                rows.append(row)
        return {
            "channels": rows,
            "total": len(names),
            "listed": len(rows),
            "watching": self.watcher.state()["channels"],
        }

    # --- the live log ----------------------------------------------------------------------------

    async def watch(self, request: Request) -> Response:
        try:
            body = await _json_body(request)
            channel = _text(body, "channel")
            assert channel is not None
            self.watcher.watch(channel.strip())
        except RtctlError as error:
            return error_response(error)
        return JSONResponse({"watching": self.watcher.state()["channels"]})

    async def unwatch(self, request: Request) -> Response:
        try:
            body = await _json_body(request)
            channel = _text(body, "channel")
            assert channel is not None
        except RtctlError as error:
            return error_response(error)
        self.watcher.unwatch(channel)
        return JSONResponse({"watching": self.watcher.state()["channels"]})

    async def stream(self, request: Request) -> Response:
        """Server-Sent Events: ``entries`` (a JSON array, batched) and ``dropped`` (how many
        entries this page missed because it fell more than the feed's size behind)."""
        last_id = request.headers.get("last-event-id", "")
        start = int(last_id) if last_id.isdigit() else None
        return StreamingResponse(
            self._events(start),
            media_type="text/event-stream",
            headers={"X-Accel-Buffering": "no"},
        )

    async def _events(self, start: int | None) -> AsyncIterator[str]:
        feed = self.feed
        wake = feed.waiter()
        try:
            yield "retry: 1000\n\n"
            if start is None:  # a fresh page: the recent history, not all of it
                texts, _, last = feed.since(max(0, feed.last_seq - STREAM_REPLAY))
            else:
                texts, dropped, last = feed.since(start)
                if dropped:
                    yield f"event: dropped\ndata: {dropped}\n\n"
            if texts:
                yield f"id: {last}\nevent: entries\ndata: [{','.join(texts)}]\n\n"
            loop = asyncio.get_running_loop()
            sent_at = 0.0
            while not feed.closed:
                wake.clear()
                if feed.last_seq == last:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(wake.wait(), STREAM_KEEPALIVE_SECONDS)
                    if feed.closed:
                        return
                    if feed.last_seq == last:
                        yield ": keepalive\n\n"
                        continue
                # A lone entry goes out at once; in a burst, one message per batch interval.
                pause = sent_at + STREAM_BATCH_SECONDS - loop.time()
                if pause > 0:
                    await asyncio.sleep(pause)
                sent_at = loop.time()
                texts, dropped, last = feed.since(last)
                if dropped:
                    yield f"event: dropped\ndata: {dropped}\n\n"
                if texts:
                    yield f"id: {last}\nevent: entries\ndata: [{','.join(texts)}]\n\n"
        finally:
            feed.forget(wake)

    # --- Event Creator ---------------------------------------------------------------------------

    async def emit(self, request: Request) -> Response:
        try:
            body = await _json_body(request)
            result = await run_in_threadpool(self._emit, body)
        except RtctlError as error:
            return error_response(error)
        return JSONResponse(result)

    def _emit(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validated exactly as `rtctl emit` validates (Pusher's limits), then triggered."""
        from rtctl.ops.publish import check_event, check_json_data, split_channels
        from rtctl.protocol.httpapi import ApiClient
        from rtctl.protocol.validation import Event

        channels = split_channels(_text(body, "channels") or "")
        name = _text(body, "event") or ""
        # JSON text only: `@file` and `-` are the command line's, not a browser's
        data = check_json_data(
            _text(body, "data", required=False) or "{}",
            hint='the data field is JSON text, e.g. {"text":"hi"}',
        )
        event = check_event(Event(channels, name, data), master_key=self.settings.master_key)
        with ApiClient(self.settings, timeout=10) as api:
            response = api.trigger(event)
        parsed: Any = json.loads(data)
        self.feed.publish(
            "sent", channel=",".join(channels), event=name, data=parsed, text="triggered"
        )
        return {"ok": True, "status": response.status, "response": response.data}

    # --- Signature explainer ---------------------------------------------------------------------

    async def verify_auth(self, request: Request) -> Response:
        from rtctl.protocol.explain import explain_auth

        try:
            body = await _json_body(request)
            explanation = explain_auth(
                self.settings.key,
                self.settings.secret,
                socket_id=(_text(body, "socket_id") or "").strip(),
                auth=_text(body, "auth") or "",
                channel=_text(body, "channel", required=False),
                channel_data=_text(body, "channel_data", required=False),
                user_data=_text(body, "user_data", required=False),
            )
        except RtctlError as error:
            return error_response(error)
        return JSONResponse(explanation.to_dict())

    async def verify_api(self, request: Request) -> Response:
        import time

        from rtctl.protocol.explain import explain_api

        try:
            body = await _json_body(request)
            at = body.get("at")
            if at not in (None, "") and not isinstance(at, (int, float)):
                raise InvalidInput("at must be Unix seconds", hint="leave it empty for now")
            explanation = explain_api(
                self.settings.key,
                self.settings.secret,
                method=_text(body, "method", required=False) or "POST",
                target=_text(body, "path") or "",
                body=_text(body, "body", required=False) or "",
                now=time.time() if at in (None, "") else float(at),
                provider=self.settings.provider,
            )
        except RtctlError as error:
            return error_response(error)
        return JSONResponse(explanation.to_dict())

    # --- lifecycle -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.feed.attach(asyncio.get_running_loop())
        await run_in_threadpool(self.webhooks.start)  # once: `rtctl console` may have already
        self.watcher.start()
        self.sampler.start()
        try:
            yield
        finally:
            self.feed.close()
            await run_in_threadpool(self.webhooks.stop)
            await run_in_threadpool(self.watcher.stop)
            await run_in_threadpool(self.sampler.stop)


def create_app(
    settings: Settings, token: str, feed: Feed | None = None, host: str = "127.0.0.1"
) -> tuple[ASGIApp, Console]:
    """The guarded ASGI app and the state behind it (its ``feed`` takes other producers through
    ``feed.publish``; its ``webhooks`` receives the app's webhooks when `.env` sends them to this
    machine). Served on a loopback ``host``, it answers only to loopback host names (a
    DNS-rebinding page gets 403)."""
    console = Console(settings, token, feed)
    routes = [
        Route("/", console.index),
        Route("/static/{name}", console.static),
        Route("/api/overview", console.overview),
        Route("/api/channels", console.channels),
        Route("/api/watch", console.watch, methods=["POST"]),
        Route("/api/unwatch", console.unwatch, methods=["POST"]),
        Route("/api/stream", console.stream),
        Route("/api/emit", console.emit, methods=["POST"]),
        Route("/api/verify/auth", console.verify_auth, methods=["POST"]),
        Route("/api/verify/api", console.verify_api, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=console.lifespan)
    hosts = None
    if is_loopback(host):
        hosts = frozenset({*LOOPBACK_NAMES, f"[{host}]" if ":" in host else host})
    return Guard(app, token, hosts), console
