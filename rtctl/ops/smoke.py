"""`rtctl smoke`: named end-to-end checks that prove a deployment delivers, and name what broke.

The checks run in a fixed order. Each ends pass, fail or skip, with its time and evidence (what was
seen), and a hint on failure. A check whose prerequisite failed or was skipped is skipped with
"depends on <check>", so one broken thing is reported once, by the check that can see it.

The verdict's exit code is the failing class of the *first* failed check (config 3, unreachable 4,
auth 5, timeout 6, anything else 1): later failures are usually consequences of the first.

No typer, no rich: the CLI renders the report; tests and other programs call ``run_smoke``.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from rtctl.errors import (
    AuthRejected,
    CheckFailed,
    ConfigError,
    ExitCode,
    RtctlError,
    ServerRejected,
    TimedOut,
    Unreachable,
    UsageError,
    internal_error,
)
from rtctl.protocol.explain import add_verify_hint

if TYPE_CHECKING:
    from rtctl.config import ConfigLayers, Settings
    from rtctl.protocol.httpapi import ApiClient
    from rtctl.protocol.socket import Message, PusherSocket, Subscription

Status = Literal["pass", "fail", "skip"]

SMOKE_EVENT = "rtctl-smoke"
CLIENT_EVENT = "client-rtctl-smoke"
DEFAULT_TIMEOUT = 10.0
GATEWAY_NOT_REQUESTED = "not requested (--via-gateway URL --token TOKEN)"
TOKEN_KINDS = ("jwt", "opaque")
# Exit codes a failed check may carry; every other failure class exits 1.
DISTINCT_EXIT_CODES = {ExitCode.CONFIG, ExitCode.UNREACHABLE, ExitCode.AUTH, ExitCode.TIMEOUT}


@dataclass(frozen=True)
class CheckSpec:
    name: str
    title: str
    requires: tuple[str, ...] = ()


# The order is the run order. `requires` lists what must have passed for a check to run.
CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("config", "config resolves and is consistent"),
    CheckSpec("health", "server health (/ready)", ("config",)),
    CheckSpec("connect", "WebSocket connect", ("config",)),
    CheckSpec("subscribe", "subscribe public, private, presence", ("connect",)),
    CheckSpec("deliver", "HTTP trigger reaches every channel", ("subscribe",)),
    CheckSpec("client-event", "client event between two sockets", ("subscribe",)),
    CheckSpec(
        "cache", "cache channel: a miss, then the last event for late subscribers", ("connect",)
    ),
    CheckSpec("api-read", "HTTP API lists channels and members", ("subscribe",)),
    CheckSpec("gateway", "subscribe and emit through the gateway", ("connect",)),
    CheckSpec("webhooks", "webhooks arrive signed, verifiable and in time", ("connect",)),
    CheckSpec("cleanup", "unsubscribe, close, nothing left occupied", ("connect",)),
)
CHECK_NAMES = tuple(spec.name for spec in CHECKS)
_SPECS = {spec.name: spec for spec in CHECKS}
# Checks that open connections: whenever one runs, cleanup runs too (a smoke never leaves
# occupied channels behind, even when only a subset was asked for).
_OPENS_SOCKETS = {
    "connect",
    "subscribe",
    "deliver",
    "client-event",
    "cache",
    "api-read",
    "gateway",
    "webhooks",
}


@dataclass
class CheckResult:
    """One check's outcome. ``evidence`` is what was observed (the skip reason for a skip)."""

    name: str
    title: str
    status: Status
    duration_ms: float
    evidence: str
    hint: str | None = None
    failure: str | None = None  # the error code ("auth_rejected", "timeout", ...) on failure
    exit_code: ExitCode = ExitCode.OK  # what this failure alone would exit with
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "duration_ms": round(self.duration_ms, 3),
            "evidence": self.evidence,
            "hint": self.hint,
            "failure": self.failure,
            "exit_code": self.exit_code,
            "details": self.details,
        }


@dataclass
class SmokeReport:
    run_id: str
    started_at: str
    provider: str | None
    target: dict[str, str]
    checks: list[CheckResult]
    duration_ms: float

    @property
    def first_failure(self) -> CheckResult | None:
        return next((check for check in self.checks if check.status == "fail"), None)

    @property
    def verdict(self) -> Literal["pass", "fail"]:
        return "fail" if self.first_failure else "pass"

    @property
    def exit_code(self) -> ExitCode:
        failed = self.first_failure
        return ExitCode.OK if failed is None else failed.exit_code

    def counts(self) -> dict[str, int]:
        counts = {"pass": 0, "fail": 0, "skip": 0}
        for check in self.checks:
            counts[check.status] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        failed = self.first_failure
        return {
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "failed_check": failed.name if failed else None,
            "run_id": self.run_id,
            "started_at": self.started_at,
            "duration_ms": round(self.duration_ms, 3),
            "provider": self.provider,
            "target": self.target,
            "counts": self.counts(),
            "checks": [check.to_dict() for check in self.checks],
        }


@dataclass(frozen=True)
class SmokeOptions:
    timeout: float = DEFAULT_TIMEOUT  # per wait: each handshake, subscription, delivery, poll
    checks: tuple[str, ...] | None = None  # None = all
    gateway_url: str | None = None
    gateway_token: str | None = None  # a user's bearer token for /realtime/auth
    emit_token: str | None = None  # the service token for /realtime/emit (else settings, else none)
    gateway_channel: str | None = None  # the channel to join through the gateway (else derived)
    token_kind: str = "jwt"  # jwt (a private-{sub}_… channel can be derived) | opaque
    node_addresses: tuple[str, ...] = ()  # a cluster's nodes (HOST:PORT), else from .env
    failover: bool = False  # also stop a node and prove its clients come back


class Skip(Exception):
    """A check decided not to run; the message is the reason shown to people."""


def exit_code_for(error: RtctlError) -> ExitCode:
    code = ExitCode(error.exit_code)
    return code if code in DISTINCT_EXIT_CODES else ExitCode.FAILED


def select_checks(requested: Sequence[str] | None, gateway: bool) -> list[str]:
    """The checks to run, in order: the requested ones plus what they require (and cleanup)."""
    if requested is None:
        return list(CHECK_NAMES)
    from rtctl.ops.smoke_cluster import CLUSTER_CHECK_NAMES  # run by the cluster hook

    cluster = [name for name in requested if name in CLUSTER_CHECK_NAMES]
    requested = [name for name in requested if name not in CLUSTER_CHECK_NAMES]
    if cluster:
        requested.append("cleanup")
    unknown = [name for name in requested if name not in _SPECS]
    if unknown:
        raise UsageError(
            f"unknown check {unknown[0]!r} in --checks",
            hint="choose from: " + ", ".join((*CHECK_NAMES, *CLUSTER_CHECK_NAMES)),
        )
    if not requested:
        raise UsageError("--checks is empty", hint="choose from: " + ", ".join(CHECK_NAMES))
    if "gateway" in requested and not gateway:
        raise UsageError(
            "--checks gateway needs --via-gateway URL and --token JWT",
            hint="pass the gateway's base URL and a user's bearer token",
        )
    wanted: set[str] = set()

    def add(name: str) -> None:
        if name not in wanted:
            wanted.add(name)
            for required in _SPECS[name].requires:
                add(required)

    for name in requested:
        add(name)
    if wanted & _OPENS_SOCKETS:
        wanted.add("cleanup")
    return [name for name in CHECK_NAMES if name in wanted]


def run_smoke(
    load_layers: Callable[[], ConfigLayers],
    options: SmokeOptions,
    on_result: Callable[[CheckResult], None] | None = None,
    on_start: Callable[[CheckSpec], None] | None = None,
) -> SmokeReport:
    """Run the selected checks against the deployment the configuration names.

    ``load_layers`` reads the configuration (it may raise ConfigError: that is the config
    check's failure). ``on_start``/``on_result`` are called around each check (progress, tests).
    Raises only UsageError (bad options); every other problem is a failed check in the report.
    """
    names = select_checks(options.checks, gateway=options.gateway_url is not None)
    if options.gateway_url is not None and not options.gateway_token:
        raise UsageError(
            "--via-gateway needs --token (a user's bearer token the gateway accepts)",
            hint="a JWT, or with --token-kind opaque any session token your gateway issues",
        )
    if options.token_kind not in TOKEN_KINDS:
        raise UsageError(
            f"--token-kind {options.token_kind!r} is not one of {', '.join(TOKEN_KINDS)}",
            hint="jwt (the default) or opaque",
        )
    if options.gateway_url is not None:
        gateway_routes(options.gateway_url)  # a malformed URL is a usage error, before any check
        if options.gateway_channel is not None:
            from rtctl.protocol.validation import validate_channel

            validate_channel(options.gateway_channel)
            if options.gateway_channel.startswith(("private-encrypted-", "presence-")):
                raise UsageError(
                    f"--gateway-channel {options.gateway_channel!r}: name a private-* channel",
                    hint="the gateway check joins a private channel, e.g. "
                    "private-App.Models.User.42",
                )
            if not options.gateway_channel.startswith("private-"):
                raise UsageError(
                    f"--gateway-channel {options.gateway_channel!r} is not a private channel",
                    hint="the gateway authorizes private-* channels, e.g. "
                    "private-App.Models.User.42",
                )
        elif options.token_kind == "opaque":
            raise UsageError(
                "an opaque --token names no user, so no channel can be derived from it",
                hint="name the channel the token's user may join: --gateway-channel "
                "private-App.Models.User.42",
            )
    run = SmokeRun(load_layers, options)
    started = time.monotonic()
    try:
        for name in names:
            spec = _SPECS[name]
            if name in ("connect", "cleanup"):  # several nodes: the bus first, the rest last
                from rtctl.ops.smoke_cluster import run_cluster_checks

                run_cluster_checks(run, options, on_start, on_result, before=name)
            if on_start:
                on_start(spec)
            result = run.run_check(spec)
            if on_result:
                on_result(result)
    finally:
        run.close_all()
    settings = run.settings
    return SmokeReport(
        run_id=run.run_id,
        started_at=run.started_at,
        provider=settings.provider if settings else None,
        target=_target(settings),
        checks=run.results,
        duration_ms=(time.monotonic() - started) * 1000,
    )


def _target(settings: Settings | None) -> dict[str, str]:
    if settings is None:
        return {}
    ws = settings.ws_url.split("?", 1)[0]
    return {"ws": ws, "api": settings.api_base, "app_id": settings.app_id}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# --- the run ------------------------------------------------------------------------------------


class SmokeRun:
    """State shared by the checks of one run: settings, sockets, channel names, results."""

    def __init__(self, load_layers: Callable[[], ConfigLayers], options: SmokeOptions) -> None:
        self.load_layers = load_layers
        self.options = options
        self.timeout = options.timeout
        # Unique per run, so parallel CI jobs on one app never see each other's channels.
        self.run_id = secrets.token_hex(6)
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        self.settings: Settings | None = None
        self.results: list[CheckResult] = []
        self.blocked_by: dict[str, str] = {}  # skipped check -> the check whose failure skipped it
        self.user_id = f"rtctl-smoke-{self.run_id}"
        self.public = f"smoke-{self.run_id}"
        self.private = f"private-smoke-{self.run_id}"
        self.presence = f"presence-smoke-{self.run_id}"
        self.cache = f"cache-smoke-{self.run_id}"
        self.subscribed: list[str] = []  # subscriptions that succeeded
        self.attempted: list[str] = []  # every channel we asked for: cleanup verifies all of them
        self.gateway_channel: str | None = None
        self._main: PusherSocket | None = None  # the socket of `connect`
        # Every socket opened, closed at the end whatever happens.
        self.sockets: list[PusherSocket] = []
        self._api: ApiClient | None = None

    # --- running ---------------------------------------------------------------------------------

    def status_of(self, name: str) -> Status | None:
        return next((r.status for r in self.results if r.name == name), None)

    def run_check(self, spec: CheckSpec, checks: object = None) -> CheckResult:
        """Run one named check and append its result: skipped when a prerequisite did not pass,
        and every error a failed check with its exit code (a bug in rtctl fails, never passes).

        The check is the method ``check_<name>`` of ``checks`` (this run's own by default; the
        cluster checks pass the object that holds theirs)."""
        if spec.name == "gateway" and self.options.gateway_url is None:
            # Not asked for: say so, whatever happened before (not "depends on connect").
            result = CheckResult(spec.name, spec.title, "skip", 0.0, GATEWAY_NOT_REQUESTED)
            self.results.append(result)
            return result
        for required in spec.requires:
            status = self.status_of(required)
            if status != "pass":
                # Name the root cause: "depends on config (fail)", not a chain of skips.
                root = self.blocked_by.get(required, required)
                root_status = self.status_of(root) or "not run"
                self.blocked_by[spec.name] = root
                result = CheckResult(
                    spec.name, spec.title, "skip", 0.0, f"depends on {root} ({root_status})"
                )
                self.results.append(result)
                return result
        method: Callable[[CheckResult], str] = getattr(
            checks or self, "check_" + spec.name.replace("-", "_")
        )
        result = CheckResult(spec.name, spec.title, "pass", 0.0, "")
        started = time.monotonic()
        try:
            result.evidence = method(result)
        except Skip as skip:
            result.status, result.evidence = "skip", str(skip)
        except RtctlError as error:
            result.status, result.evidence, result.hint = "fail", error.message, error.hint
            if result.hint is None and error.code == "disconnected":
                result.hint = (
                    "the server closed or dropped the connection mid-run: is it restarting or "
                    "crashing? (`rtctl status`, `rtctl logs`)"
                )
            result.failure, result.exit_code = error.code, exit_code_for(error)
        except Exception as error:  # a bug in rtctl must fail the smoke, never pass it
            internal = internal_error(error)
            result.status, result.failure, result.exit_code = "fail", "internal", ExitCode.FAILED
            result.evidence, result.hint = internal.message, internal.hint
        result.duration_ms = (time.monotonic() - started) * 1000
        self.results.append(result)
        return result

    def require_settings(self) -> Settings:
        assert self.settings is not None, "config check did not run"
        return self.settings

    def api(self) -> ApiClient:
        if self._api is None:
            from rtctl.protocol.httpapi import ApiClient

            self._api = ApiClient(self.require_settings(), timeout=self.timeout)
            import pusher.http  # noqa: F401  (imported by the first request: keep it out of latency)
        return self._api

    @property
    def main(self) -> PusherSocket:
        assert self._main is not None, "connect did not run"
        return self._main

    def open_socket(self, on: Settings | None = None, **kwargs: Any) -> PusherSocket:
        """A socket to the configured server, or to ``on`` (one node of a cluster)."""
        from rtctl.protocol.socket import PusherSocket

        socket = PusherSocket(on or self.require_settings(), **kwargs)
        self.sockets.append(socket)
        return socket

    def close_all(self) -> None:
        for socket in self.sockets:
            with contextlib.suppress(Exception):  # best effort; cleanup verifies the outcome
                socket.close()
        self.sockets.clear()
        if self._api is not None:
            self._api.close()
            self._api = None

    # --- 1. config -------------------------------------------------------------------------------

    def check_config(self, result: CheckResult) -> str:
        from rtctl.config import build_settings
        from rtctl.ops.doctor import config_checks

        layers = self.load_layers()
        checks = config_checks(layers)
        bad = [c for c in checks if c.status == "fail"]
        warned = [c for c in checks if c.status == "warn"]
        result.details["doctor"] = [
            {"name": c.name, "status": c.status, "evidence": c.evidence} for c in checks
        ]
        if bad:
            first = bad[0]
            more = f" (+{len(bad) - 1} more: `rtctl doctor`)" if len(bad) > 1 else ""
            raise ConfigError(f"{first.name}: {first.evidence}{more}", hint=first.fix)
        self.settings = build_settings(layers)
        settings = self.settings
        where = settings.env_file if layers.env_file_found else "environment only"
        text = f"provider {settings.provider}, app {settings.app_id}, {settings.api_base} ({where})"
        if warned:
            text += "; warnings: " + "; ".join(f"{c.name}: {c.evidence}" for c in warned)
        return text

    # --- 2. health -------------------------------------------------------------------------------

    def check_health(self, result: CheckResult) -> str:
        from rtctl.runtime.health import fetch

        settings = self.require_settings()
        if settings.health_base is None:
            raise Skip(f"provider {settings.provider} has no health endpoint (Soketi only)")
        url = f"{settings.health_base}/ready"
        answer = fetch(url, settings, timeout=self.timeout)
        status, body = answer.status, answer.body
        if status == 0:
            raise Unreachable(
                f"nothing answers GET {url}",
                hint="is the server running? `rtctl status` shows it, `rtctl up` starts one",
            )
        if status != 200:
            raise CheckFailed(
                f"GET {url} answered {status}: {body.strip()[:120] or '(empty)'}",
                hint="the server is up but not accepting traffic; `rtctl logs` shows why",
            )
        return f"GET /ready -> {status} {body.strip()[:40]}"

    # --- 3. connect ------------------------------------------------------------------------------

    def check_connect(self, result: CheckResult) -> str:
        self._main = self.open_socket(user_id=self.user_id, user_info={"name": "rtctl smoke"})
        started = time.monotonic()
        socket_id = self.main.connect(self.timeout)
        elapsed = time.monotonic() - started
        activity = self.main.activity_timeout
        result.details.update(
            socket_id=socket_id, activity_timeout=activity, handshake_ms=elapsed * 1000
        )
        return (
            f"pusher:connection_established in {_ms(elapsed)}: socket {socket_id}, "
            f"activity_timeout {activity:g} s"
        )

    # --- 4. subscribe ----------------------------------------------------------------------------

    def check_subscribe(self, result: CheckResult) -> str:
        parts = []
        for channel in (self.public, self.private, self.presence):
            started = time.monotonic()
            self.attempted.append(channel)
            try:
                subscription = self.main.subscribe(channel, self.timeout)
            except (AuthRejected, ServerRejected) as refused:
                raise add_verify_hint(refused, self.main.signed.get(channel)) from None
            elapsed = time.monotonic() - started
            self.subscribed.append(channel)
            result.details[channel] = {"ms": elapsed * 1000}
            if channel == self.presence:
                members = _member_ids(subscription)
                result.details[channel]["members"] = members
                if self.user_id not in members:
                    raise CheckFailed(
                        f"{channel}: subscribed, but the member list {members} lacks our user "
                        f"{self.user_id}",
                        hint="the server mishandles presence channel_data; check its version",
                    )
                parts.append(f"{channel} ({_ms(elapsed)}, members include {self.user_id})")
            else:
                parts.append(f"{channel} ({_ms(elapsed)})")
        return "subscribed " + ", ".join(parts)

    # --- 5. deliver ------------------------------------------------------------------------------

    def check_deliver(self, result: CheckResult) -> str:
        from rtctl.protocol.validation import Event

        channels = list(self.subscribed)
        payload = smoke_payload(self.run_id, "deliver")
        api = self.api()
        sent = time.monotonic()
        api.trigger(Event(tuple(channels), SMOKE_EVENT, payload))
        accepted_ms = (time.monotonic() - sent) * 1000
        arrived = self.await_events(self.main, SMOKE_EVENT, channels, payload, sent)
        latencies = {channel: round(arrived[channel] * 1000, 3) for channel in channels}
        result.details.update(latency_ms=latencies, api_ms=accepted_ms, bytes=len(payload.encode()))
        worst = max(arrived.values())
        return (
            f"{SMOKE_EVENT} arrived byte-identical ({len(payload.encode())} bytes) on "
            f"{len(channels)} channels; latency max {_ms(worst)} "
            f"(trigger answered in {accepted_ms:.1f} ms)"
        )

    def await_events(
        self,
        socket: PusherSocket,
        event: str,
        channels: Sequence[str],
        payload: str,
        sent: float,
    ) -> dict[str, float]:
        """Wait for ``event`` on every channel; {channel: seconds after ``sent``}."""
        arrived: dict[str, float] = {}
        deadline = sent + self.timeout
        while len(arrived) < len(channels):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            message = socket.recv(remaining)
            if message is None:
                continue
            channel = message.channel
            if message.event == event and channel is not None and channel in channels:
                wire = wire_data(message)
                if wire != payload:
                    raise CheckFailed(
                        f"{channel}: {event} arrived altered: sent {payload!r}, received {wire!r}",
                        hint="something between the API and the socket rewrites payloads",
                    )
                arrived.setdefault(channel, message.monotonic - sent)  # when the frame was read
        missing = [channel for channel in channels if channel not in arrived]
        if missing:
            raise TimedOut(
                f"{event} did not arrive on {', '.join(missing)} within {self.timeout:g} s "
                f"(arrived on {len(arrived)} of {len(channels)})",
                hint="the HTTP API accepted the event but the socket never got it: are the "
                "API and the WebSocket served by the same app/cluster?",
            )
        return arrived

    # --- 6. client event -------------------------------------------------------------------------

    def check_client_event(self, result: CheckResult) -> str:
        sender = self.open_socket()
        sender.connect(self.timeout)
        sender.subscribe(self.private, self.timeout)
        payload = smoke_payload(self.run_id, "client-event")
        sent = time.monotonic()
        sender.send_client_event(self.private, CLIENT_EVENT, payload)
        arrived = self.await_client_event(sender, payload, sent)
        result.details.update(latency_ms=arrived * 1000)
        return f"{CLIENT_EVENT} arrived byte-identical on {self.private} in {_ms(arrived)}"

    def await_client_event(self, sender: PusherSocket, payload: str, sent: float) -> float:
        """Wait on the main socket; meanwhile watch the sender for the server's refusal."""
        deadline = sent + self.timeout
        while time.monotonic() < deadline:
            message = self.main.recv(0.02)
            if message is not None and (message.event, message.channel) == (
                CLIENT_EVENT,
                self.private,
            ):
                wire = wire_data(message)
                if wire != payload:
                    raise CheckFailed(
                        f"{CLIENT_EVENT} arrived altered: sent {payload!r}, received {wire!r}",
                        hint="something between the sockets rewrites payloads",
                    )
                return message.monotonic - sent
            refusal = sender.recv(0.01)
            if refusal is not None and refusal.event == "pusher:error":
                text, code = _error_text(refusal.data)
                if _client_events_disabled(text):
                    raise Skip(f"client events are disabled on this app: {text}")
                raise ServerRejected(
                    f"the server refused the client event ({code}): {text}",
                    hint="client events need a private/presence channel, a client- name and "
                    "at most 10 per second",
                    status=code,
                )
        raise TimedOut(
            f"{CLIENT_EVENT} did not arrive on {self.private} within {self.timeout:g} s and the "
            "server sent no error",
            hint="the server accepted the client event but did not deliver it to the other socket",
        )

    # --- 7. cache channel ------------------------------------------------------------------------

    def check_cache(self, result: CheckResult) -> str:
        """A cache channel answers a first subscriber with pusher:cache_miss, keeps the last
        event published on it, and hands it to a later subscriber at once."""
        from rtctl.protocol.validation import Event

        first = self.open_socket()
        first.connect(self.timeout)
        self.attempted.append(self.cache)
        started = time.monotonic()
        first.subscribe(self.cache, self.timeout)
        miss = first.wait_for("pusher:cache_miss", self.cache, self.timeout)
        if miss is None:
            raise CheckFailed(
                f"{self.cache}: no pusher:cache_miss within {self.timeout:g} s of subscribing",
                hint="the server does not treat cache-* channels as cache channels",
            )
        miss_ms = (time.monotonic() - started) * 1000
        payload = smoke_payload(self.run_id, "cache")
        self.api().trigger(Event((self.cache,), SMOKE_EVENT, payload))
        # The first subscriber receives it live; once it has, the server has cached it.
        if first.wait_for(SMOKE_EVENT, self.cache, self.timeout) is None:
            raise TimedOut(
                f"{SMOKE_EVENT} did not arrive on {self.cache} within {self.timeout:g} s",
                hint="the HTTP API accepted the event but the socket never got it",
            )
        late = self.open_socket()
        late.connect(self.timeout)
        started = time.monotonic()
        late.subscribe(self.cache, self.timeout)
        cached = late.wait_for(SMOKE_EVENT, self.cache, self.timeout)
        if cached is None:
            raise CheckFailed(
                f"{self.cache}: a late subscriber got no cached {SMOKE_EVENT} within "
                f"{self.timeout:g} s",
                hint="the server does not keep the last event of cache-* channels",
            )
        if wire_data(cached) != payload:
            raise CheckFailed(
                f"{self.cache}: the cached event arrived altered: sent {payload!r}, "
                f"received {wire_data(cached)!r}",
                hint="something between the API and the socket rewrites payloads",
            )
        late_ms = (time.monotonic() - started) * 1000
        result.details.update(miss_ms=miss_ms, cached_ms=late_ms)
        return (
            f"{self.cache}: pusher:cache_miss in {miss_ms:.1f} ms; a late subscriber got the "
            f"cached {SMOKE_EVENT} byte-identical {late_ms:.1f} ms after subscribing"
        )

    # --- 8. HTTP API read ------------------------------------------------------------------------

    def check_api_read(self, result: CheckResult) -> str:
        api = self.api()
        for channel in self.subscribed:
            listed = api.channels(prefix=channel)
            if channel not in listed:
                raise CheckFailed(
                    f"GET /channels?filter_by_prefix={channel} does not list it "
                    f"(listed: {sorted(listed) or 'nothing'}) while our socket is subscribed",
                    hint="the HTTP API and the WebSocket are not the same app or cluster",
                )
        users = api.users(self.presence)
        result.details.update(users=users)
        if self.user_id not in users:
            raise CheckFailed(
                f"GET /channels/{self.presence}/users -> {users}, without our user {self.user_id}",
                hint="the HTTP API and the WebSocket are not the same app or cluster",
            )
        return (
            f"{len(self.subscribed)} channels listed as occupied; {self.presence} users: "
            f"{', '.join(users)}"
        )

    # --- 9. gateway ------------------------------------------------------------------------------

    def check_gateway(self, result: CheckResult) -> str:
        """The gateway contract, step by step; a failure names the step the gateway failed:
        1. POST {routes}/auth signs the channel for our socket (pusher-js' form request);
        2. the realtime server accepts that signature (subscribe);
        3. POST {routes}/emit accepts an event for the channel;
        4. the event arrives on the socket, byte-identical."""
        from rtctl.protocol.authclient import request_channel_auth

        options = self.options
        assert options.gateway_url is not None  # run_check skips it otherwise
        settings = self.require_settings()
        routes = gateway_routes(options.gateway_url)
        emit_token = options.emit_token or settings.emit_token  # None: the gateway needs none
        channel = options.gateway_channel or _gateway_channel(
            options.gateway_token or "", self.run_id
        )
        self.gateway_channel = channel
        headers = {"Authorization": f"Bearer {options.gateway_token}"}
        socket = self.open_socket(auth_endpoint=f"{routes}/auth", auth_headers=headers)
        socket_id = socket.connect(self.timeout)

        step = f"step 1 of 4, POST {routes}/auth"
        try:
            request_channel_auth(
                f"{routes}/auth", socket_id, channel, headers, settings.ca_bundle, self.timeout
            )
        except AuthRejected as error:
            raise AuthRejected(
                f"{step}: {error.message}",
                hint="the gateway refused --token for this channel: is the token valid for it, "
                "and may its user join "
                + ("the channel given" if options.gateway_channel else "private-{sub}_{b}")
                + "? (--gateway-channel names another channel)",
            ) from error
        except RtctlError as error:
            raise type(error)(f"{step}: {error.message}", error.hint) from error

        started = time.monotonic()
        try:
            socket.subscribe(channel, self.timeout)
        except RtctlError as error:
            refused = type(error)(
                f"step 2 of 4, subscribing with the gateway's signature: {error.message}",
                "the gateway answered, but the realtime server refused its signature: the "
                "gateway signs with other PUSHER_APP_KEY/SECRET than this config",
            )
            if isinstance(error, AuthRejected) and channel in socket.signed:
                refused = add_verify_hint(refused, socket.signed[channel])
            raise refused from error
        subscribe_ms = (time.monotonic() - started) * 1000
        payload = smoke_payload(self.run_id, "gateway")
        sent = time.monotonic()
        try:
            _gateway_emit(f"{routes}/emit", emit_token, channel, payload, self.timeout, settings)
        except RtctlError as error:
            raise type(error)(
                f"step 3 of 4, POST {routes}/emit: {error.message}", error.hint
            ) from (error)
        try:
            arrived = self.await_events(socket, SMOKE_EVENT, [channel], payload, sent)[channel]
        except RtctlError as error:
            raise type(error)(
                f"step 4 of 4, delivery: {error.message}",
                "the gateway accepted the event but it never reached the channel: does its "
                "/emit publish to the same app?",
            ) from error
        result.details.update(
            channel=channel,
            subscribe_ms=subscribe_ms,
            latency_ms=arrived * 1000,
            emit_token=emit_token is not None,
        )
        return (
            f"{channel} authorized by {routes}/auth in {subscribe_ms:.1f} ms; event from "
            f"{routes}/emit arrived byte-identical in {_ms(arrived)}"
        )

    # --- 9. webhooks (rtctl.ops.smoke_webhooks) -----------------------------------------------

    def check_webhooks(self, result: CheckResult) -> str:
        from rtctl.ops import smoke_webhooks

        try:
            return smoke_webhooks.check_webhooks(self, result)
        except smoke_webhooks.Skipped as skipped:
            raise Skip(str(skipped)) from None

    # --- 10. cleanup ------------------------------------------------------------------------------

    def check_cleanup(self, result: CheckResult) -> str:
        channels = list(self.attempted)
        if self.gateway_channel and self.status_of("gateway") != "skip":
            channels.append(self.gateway_channel)
        sockets = len(self.sockets)
        for socket in self.sockets:
            # Best effort (the socket may be dead already): the API below is the verdict.
            with contextlib.suppress(RtctlError):
                for channel in list(socket.subscriptions):
                    socket.unsubscribe(channel)
        self.close_all()
        if not channels:
            return f"{sockets} socket(s) closed; no channels were subscribed"
        api = self.api()
        started = time.monotonic()
        deadline = started + self.timeout
        pause = 0.05  # doubled up to 1 s: Pusher's occupancy may lag, and API calls are metered
        while True:
            occupied = [c for c in channels if _occupied(api, c)]
            if not occupied:
                break
            if time.monotonic() >= deadline:
                raise CheckFailed(
                    f"still occupied {self.timeout:g} s after closing: {', '.join(occupied)}",
                    hint="another client holds these channels, or the server keeps dead sockets",
                )
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 1.0)
        return (
            f"{sockets} socket(s) closed; API shows none of {len(channels)} channels occupied "
            f"after {_ms(time.monotonic() - started)}"
        )


# --- helpers -------------------------------------------------------------------------------------


def smoke_payload(run_id: str, purpose: str) -> str:
    """JSON text with non-ASCII, escapes and a nonce: any re-encoding on the way shows."""
    from rtctl.protocol.signing import compact_json

    return compact_json(
        {
            "smoke": run_id,
            "check": purpose,
            "nonce": secrets.token_hex(8),
            "text": 'Grüße ✓ "quoted" \\ slash/ 日本',
            "sent_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        }
    )


def wire_data(message: Message) -> Any:
    """``data`` exactly as the frame carried it: Pusher sends a string; an object (re-encoded by
    whatever forwarded it) is not byte-identical even if it serialises to the same text."""
    return json.loads(message.frame).get("data")


def _occupied(api: ApiClient, channel: str) -> bool:
    """``GET /channels/{name}``'s ``occupied``; an answer without it proves nothing, so it fails."""
    answer = api.channel(channel)
    occupied = answer.get("occupied")
    if not isinstance(occupied, bool):
        raise CheckFailed(
            f"GET /channels/{channel} answered without `occupied`: {json.dumps(answer)[:200]}",
            hint="this is not a Pusher-compatible HTTP API",
        )
    return occupied


def _member_ids(subscription: Subscription) -> list[str]:
    return [str(member) for member in subscription.members or {}]


def _error_text(data: Any) -> tuple[str, int | None]:
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return data, None
    if isinstance(data, dict):
        code = data.get("code")
        return str(data.get("message") or data), code if isinstance(code, int) else None
    return str(data), None


def _client_events_disabled(text: str) -> bool:
    # Soketi: 4301 "The app does not have client messaging enabled."; Pusher: code null,
    # "To send client events, you must enable this feature in the Settings page of your dashboard."
    lowered = text.lower()
    return "client messaging enabled" in lowered or (
        "client events" in lowered and "enable" in lowered
    )


def gateway_routes(url: str) -> str:
    """The gateway's route prefix: ``http://h:8080`` -> ``http://h:8080/realtime``; a URL that
    already has a path (``https://api.example.com/rt``) is taken as the prefix itself."""
    from urllib.parse import urlsplit

    from rtctl.protocol.validation import validate_http_url

    validate_http_url(url, "--via-gateway")
    parts = urlsplit(url)
    base = url.rstrip("/")
    return base if parts.path.strip("/") else f"{base}/realtime"


def _gateway_channel(token: str, run_id: str) -> str:
    """A fresh private channel the token's user may join under rtctl's gateway rule
    ``private-{a}_{b}`` (only users a and b): a = the JWT's subject, b = this run. Gateways with
    other rules or opaque tokens: --gateway-channel names the channel instead."""
    import jwt

    other = "for other tokens or channel rules pass --token-kind opaque --gateway-channel NAME"
    try:
        # Not verified here (the gateway does that); read only to name the user's channel.
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise UsageError(f"--token is not a JWT ({exc})", hint=other) from exc
    subject = str(claims.get("sub") or "")
    if not subject or "_" in subject:
        raise UsageError(
            f"--token's `sub` claim {subject!r} is not a user id usable in private-{{a}}_{{b}}",
            hint=f"mint the token with the user id in `sub` (no underscore), or {other}",
        )
    return f"private-{subject}_smoke{run_id}"


def _gateway_emit(
    url: str, token: str | None, channel: str, payload: str, timeout: float, settings: Settings
) -> None:
    import requests  # already there for the pusher SDK

    try:
        response = requests.post(
            url,
            json={"channel": channel, "event": SMOKE_EVENT, "data": payload},
            headers={"Authorization": f"Bearer {token}"} if token else {},
            timeout=timeout,
            verify=settings.ca_bundle or True,
        )
    except requests.RequestException as exc:
        raise Unreachable(
            f"cannot reach {url}: {exc or type(exc).__name__}", hint="is the gateway running?"
        ) from exc
    detail = response.text.strip()[:200]
    if response.status_code in (401, 403):
        raise AuthRejected(
            "refused "
            + ("the service token" if token else "an emit without a service token")
            + f" ({response.status_code}): {detail}",
            hint="pass the gateway's service token: --emit-token (or REALTIME_EMIT_TOKEN)",
        )
    if response.status_code == 404:
        raise ServerRejected(
            f"no such route (404): {detail}",
            hint="the gateway serves /emit only when its REALTIME_EMIT_TOKEN is set",
            status=404,
        )
    if response.status_code >= 300:
        raise ServerRejected(
            f"answered {response.status_code}: {detail}",
            hint="the gateway's own message above names the problem",
            status=response.status_code,
        )
