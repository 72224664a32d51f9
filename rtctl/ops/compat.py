"""`rtctl compat`: where the configured deployment behaves differently from Pusher, probed live.

Each probe is one function that does something to the real server (nothing is assumed from a
version string) and returns a ``ProbeResult``: ``same`` (behaves as Pusher), ``deviates`` (what an
app relying on it sees after switching is in ``impact``), or ``unknown`` (could not be decided, and
why). ``evidence`` is what was observed. Probes use throwaway channels named after the run, send
nothing to channels an app uses, and close every socket they open.

No Typer, no rich: the CLI renders the report; tests and other programs call ``run_compat``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from rtctl.errors import Conflict, RtctlError, ServerRejected, UsageError

if TYPE_CHECKING:
    from rtctl.config import Settings
    from rtctl.ops.webhook_receiver import WebhookReceiver
    from rtctl.protocol.socket import PusherSocket
    from rtctl.protocol.webhooks import Delivery

Status = Literal["same", "deviates", "unknown"]

PUSHER_ACTIVITY_TIMEOUT = 120
PUSHER_MAX_DATA = 10 * 1024
PUSHER_MAX_CHANNEL_NAME = 164
PUSHER_MAX_PRESENCE_MEMBERS = 100
PUSHER_TIMESTAMP_WINDOW = 600
WAIT = 2.0  # seconds to wait for something that should arrive at once (an event, a frame)


@dataclass
class ProbeResult:
    name: str
    title: str
    status: Status
    evidence: str  # what was observed
    pusher: str  # what Pusher does
    impact: str = ""  # for a deviation: what an app relying on it sees after switching
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "evidence": self.evidence,
            "pusher": self.pusher,
            "impact": self.impact,
            "details": self.details,
        }


@dataclass
class CompatReport:
    provider: str
    target: dict[str, str]
    run_id: str
    probes: list[ProbeResult]
    required: tuple[str, ...]

    @property
    def failed_requirements(self) -> list[ProbeResult]:
        """Required points that deviate, or that could not be decided (no proof is no pass)."""
        return [p for p in self.probes if p.name in self.required and p.status != "same"]

    def to_dict(self) -> dict[str, Any]:
        failed = self.failed_requirements
        return {
            "verdict": "fail" if failed else "pass",
            "provider": self.provider,
            "target": self.target,
            "run_id": self.run_id,
            "required": list(self.required),
            "failed_requirements": [p.name for p in failed],
            "counts": {
                status: sum(1 for p in self.probes if p.status == status)
                for status in ("same", "deviates", "unknown")
            },
            "probes": [p.to_dict() for p in self.probes],
        }


class _Run:
    """What the probes of one run share: settings, a run id for channel names, open sockets."""

    def __init__(
        self,
        settings: Settings,
        timeout: float,
        webhook_listen: str | None = None,
        webhook_wait: float = 10.0,
    ) -> None:
        self.settings = settings
        self.timeout = timeout
        self.webhook_listen = webhook_listen
        self.webhook_wait = webhook_wait
        self.run_id = secrets.token_hex(4)
        self.sockets: list[PusherSocket] = []

    def channel(self, purpose: str) -> str:
        return f"rtctl-compat-{purpose}-{self.run_id}"

    def socket(self, **kwargs: Any) -> PusherSocket:
        from rtctl.protocol.socket import PusherSocket

        sock = PusherSocket(self.settings, on_warning=lambda _text: None, **kwargs)
        self.sockets.append(sock)
        return sock

    def close(self, sockets: Sequence[PusherSocket] | None = None) -> None:
        for sock in list(sockets if sockets is not None else self.sockets):
            with contextlib.suppress(Exception):
                sock.close()
            if sock in self.sockets:
                self.sockets.remove(sock)

    def raw_request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        secret: str | None = None,
        timestamp: int | None = None,
    ) -> tuple[int, Any]:
        """A signed request built by hand (so the secret or timestamp can be wrong on purpose);
        returns the real HTTP status and the parsed body."""
        import requests

        from rtctl.protocol.signing import sign

        settings = self.settings
        full_path = f"/apps/{settings.app_id}{path}"
        payload = b"" if body is None else json.dumps(body).encode()
        params = {
            "auth_key": settings.key,
            "auth_timestamp": str(int(time.time()) if timestamp is None else timestamp),
            "auth_version": "1.0",
        }
        if payload:
            params["body_md5"] = hashlib.md5(payload).hexdigest()
        query = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        signature = sign(secret or settings.secret, f"{method}\n{full_path}\n{query}")
        url = f"{settings.api_base}{full_path}?{query}&auth_signature={signature}"
        try:
            response = requests.request(
                method,
                url,
                data=payload or None,
                headers={"Content-Type": "application/json"} if payload else {},
                timeout=self.timeout,
                verify=settings.ca_bundle or True,
            )
        except requests.RequestException as exc:
            from rtctl.errors import Unreachable

            raise Unreachable(f"cannot reach the HTTP API at {settings.api_base}: {exc}") from exc
        try:
            data: Any = response.json() if response.content else None
        except ValueError:
            data = response.text
        return response.status_code, data


def _refused(status: int, data: Any) -> int | None:
    """The refusal status of an answer: Soketi's body code, else the HTTP status if >= 300."""
    from rtctl.protocol.httpapi import error_status

    return error_status(data) or (status if status >= 300 else None)


# --- the probes -----------------------------------------------------------------------------------


def probe_payload_size(run: _Run) -> ProbeResult:
    """An event of 20 KB through the HTTP API: Pusher refuses anything over 10 KB (413)."""
    size = 20 * 1024
    data = json.dumps({"pad": "x" * (size - 11)})
    status, body = run.raw_request(
        "POST", "/events", {"name": "rtctl-compat", "channels": [run.channel("size")], "data": data}
    )
    refused = _refused(status, body)
    result = ProbeResult(
        "payload-size",
        "event data between 10 KB and 100 KB",
        "same" if refused == 413 else "deviates",
        "",
        "refuses event data over 10 KB with 413",
        details={"bytes": len(data), "http_status": status, "body": body},
    )
    if refused is None:
        result.evidence = f"a {len(data)}-byte event was accepted (HTTP {status})"
        result.impact = (
            "events between 10 KB and 100 KB that work here are refused with 413 after the "
            "switch; `rtctl emit` checks Pusher's 10 KB unless --allow-large"
        )
    elif refused == 413:
        result.evidence = f"a {len(data)}-byte event was refused with 413"
    else:
        result.status = "unknown"
        result.evidence = f"a {len(data)}-byte event was refused with {refused}: {body}"
    return result


def probe_client_events_public(run: _Run) -> ProbeResult:
    """A client event on a public channel: Pusher allows them only on private/presence."""
    channel = run.channel("public-client")
    sender, receiver = run.socket(), run.socket()
    pair = [sender, receiver]
    try:
        for sock in pair:
            sock.connect(run.timeout)
            sock.subscribe(channel, run.timeout)
        sender.send_client_event(channel, "client-rtctl-compat", {"probe": run.run_id})
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            got = receiver.recv(0.05)
            if got is not None and got.event == "client-rtctl-compat":
                return ProbeResult(
                    "client-events-public",
                    "client events on public channels",
                    "deviates",
                    f"a client event on public channel {channel} reached the other subscriber",
                    "accepts client events only on private-* and presence-* channels",
                    "client events an app sends on public channels stop arriving after the "
                    "switch (the sender gets a pusher:error); use a private channel",
                )
            error = sender.recv(0.01)
            if error is not None and error.event == "pusher:error":
                text = json.dumps(error.data)
                status: Status = "unknown" if "client messaging enabled" in text.lower() else "same"
                evidence = f"the server answered pusher:error {text}"
                if status == "unknown":
                    evidence += " (client events are off for the whole app)"
                return ProbeResult(
                    "client-events-public",
                    "client events on public channels",
                    status,
                    evidence,
                    "accepts client events only on private-* and presence-* channels",
                )
        return ProbeResult(
            "client-events-public",
            "client events on public channels",
            "same",
            f"the client event was not delivered within {WAIT:g} s and no error came back",
            "accepts client events only on private-* and presence-* channels",
        )
    finally:
        run.close(pair)


def probe_activity_timeout(run: _Run) -> ProbeResult:
    """``activity_timeout`` in ``pusher:connection_established``: Pusher says 120 s."""
    sock = run.socket(activity_timeout=10_000.0)  # read the server's value uncapped
    try:
        sock.connect(run.timeout)
        value = sock.activity_timeout
    finally:
        run.close([sock])
    same = value == PUSHER_ACTIVITY_TIMEOUT
    return ProbeResult(
        "activity-timeout",
        "activity_timeout announced to clients",
        "same" if same else "deviates",
        f"activity_timeout {value:g} s",
        f"announces {PUSHER_ACTIVITY_TIMEOUT} s",
        ""
        if same
        else f"clients ping every {PUSHER_ACTIVITY_TIMEOUT} s instead of every {value:g} s: fewer "
        "pings, and a dead connection is noticed later",
        {"activity_timeout": value},
    )


def probe_error_status(run: _Run) -> ProbeResult:
    """A request signed with a wrong secret: Pusher answers HTTP 401."""
    status, body = run.raw_request("GET", "/channels", secret="rtctl-compat-wrong-secret")
    in_body = _refused(200, body) if status == 200 else None
    if status == 200 and in_body is not None:
        return ProbeResult(
            "error-status",
            "errors answered with their HTTP status",
            "deviates",
            f"a wrongly signed request got HTTP 200 with the error in the body: {body}",
            "answers 401 (and 400/403/413) as the HTTP status",
            "code that checks only the HTTP status (the Python SDK does) treats this server's "
            "refusals as success; after the switch they raise",
            {"http_status": status, "body": body},
        )
    return ProbeResult(
        "error-status",
        "errors answered with their HTTP status",
        "same" if status == 401 else "unknown",
        f"a wrongly signed request got HTTP {status}: {str(body)[:160]}",
        "answers 401 (and 400/403/413) as the HTTP status",
        details={"http_status": status, "body": body},
    )


def probe_long_channel_names(run: _Run) -> ProbeResult:
    """Subscribing to a 180-character channel: Pusher allows 164."""
    name = run.channel("long")
    name = name + "x" * (180 - len(name))
    sock = run.socket()
    try:
        sock.connect(run.timeout)
        try:
            sock.subscribe(name, run.timeout)
        except ServerRejected as refused:
            return ProbeResult(
                "long-channel-names",
                "channel names longer than 164 characters",
                "same",
                f"subscribing to a {len(name)}-character name was refused: {refused.message}",
                f"refuses names over {PUSHER_MAX_CHANNEL_NAME} characters",
            )
    finally:
        run.close([sock])
    return ProbeResult(
        "long-channel-names",
        "channel names longer than 164 characters",
        "deviates",
        f"a {len(name)}-character channel name was accepted",
        f"refuses names over {PUSHER_MAX_CHANNEL_NAME} characters",
        "channels named with 165-200 characters are refused after the switch; `rtctl emit` "
        "and `rtctl listen` check 164",
    )


def probe_presence_members(run: _Run) -> ProbeResult:
    """101 distinct users on one presence channel: Pusher refuses the 101st."""
    channel = "presence-" + run.channel("members")
    opened: list[PusherSocket] = []
    accepted = 0
    refusal = ""
    try:
        for index in range(PUSHER_MAX_PRESENCE_MEMBERS + 1):
            sock = run.socket(user_id=f"compat-{index}")
            opened.append(sock)
            sock.connect(run.timeout)
            try:
                sock.subscribe(channel, run.timeout)
            except ServerRejected as refused:
                refusal = refused.message
                break
            accepted += 1
    finally:
        run.close(opened)
    if accepted > PUSHER_MAX_PRESENCE_MEMBERS:
        return ProbeResult(
            "presence-members",
            "more than 100 presence members",
            "deviates",
            f"{accepted} distinct users joined one presence channel",
            f"refuses the {PUSHER_MAX_PRESENCE_MEMBERS + 1}st member of a presence channel",
            "presence channels with more than 100 members refuse the newcomers after the "
            "switch; use a public or private channel for large audiences",
            {"accepted": accepted},
        )
    if accepted == PUSHER_MAX_PRESENCE_MEMBERS:
        return ProbeResult(
            "presence-members",
            "more than 100 presence members",
            "same",
            f"{accepted} users joined; the next was refused: {refusal}",
            f"refuses the {PUSHER_MAX_PRESENCE_MEMBERS + 1}st member of a presence channel",
            details={"accepted": accepted},
        )
    return ProbeResult(
        "presence-members",
        "more than 100 presence members",
        "deviates",
        f"only {accepted} users could join before a refusal: {refusal}",
        f"accepts {PUSHER_MAX_PRESENCE_MEMBERS} members",
        f"presence channels here hold {accepted} users; Pusher allows "
        f"{PUSHER_MAX_PRESENCE_MEMBERS}",
        {"accepted": accepted},
    )


def probe_subscription_count(run: _Run) -> ProbeResult:
    """Two subscribers on a channel: Pusher (with the app setting on) sends
    ``pusher_internal:subscription_count`` to them."""
    channel = run.channel("count")
    first, second = run.socket(), run.socket()
    pair = [first, second]
    try:
        first.connect(run.timeout)
        first.subscribe(channel, run.timeout)
        second.connect(run.timeout)
        second.subscribe(channel, run.timeout)
        got = first.wait_for("pusher_internal:subscription_count", channel, WAIT)
    finally:
        run.close(pair)
    if got is not None:
        return ProbeResult(
            "subscription-count",
            "pusher:subscription_count events",
            "same",
            f"pusher_internal:subscription_count arrived: {json.dumps(got.data)}",
            "sends it on every (un)subscribe when the app setting is on",
        )
    return ProbeResult(
        "subscription-count",
        "pusher:subscription_count events",
        "deviates",
        f"no pusher_internal:subscription_count within {WAIT:g} s of a second subscription",
        "sends it on every (un)subscribe when the app setting is on",
        "code bound to pusher:subscription_count never runs here; on Pusher it runs once "
        "subscription counting is enabled in the dashboard",
    )


def probe_auth_timestamp(run: _Run) -> ProbeResult:
    """A correctly signed request whose auth_timestamp is 2 hours old: Pusher refuses it (401,
    outside ±600 s)."""
    stale = int(time.time()) - 7200
    status, body = run.raw_request("GET", "/channels", timestamp=stale)
    refused = _refused(status, body)
    if refused is None:
        return ProbeResult(
            "auth-timestamp",
            "auth_timestamp window of ±600 s",
            "deviates",
            f"a request signed 2 hours ago was accepted (HTTP {status})",
            f"refuses requests whose auth_timestamp is more than {PUSHER_TIMESTAMP_WINDOW} s off",
            "a server clock more than 10 minutes off, or a replayed request, works here and "
            "fails with 401 after the switch (`rtctl doctor` checks the clock skew)",
            {"http_status": status},
        )
    return ProbeResult(
        "auth-timestamp",
        "auth_timestamp window of ±600 s",
        "same" if refused == 401 else "unknown",
        f"a request signed 2 hours ago was refused with {refused}: {str(body)[:160]}",
        f"refuses requests whose auth_timestamp is more than {PUSHER_TIMESTAMP_WINDOW} s off",
        details={"http_status": status, "body": body},
    )


WEBHOOK_PUSHER = (
    "sends client_event data as a JSON string, delays channel_vacated/member_removed up to 3 s "
    "(none if the user comes back in time), retries failed deliveries for 5 minutes"
)


def listen_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` for --webhook-listen, or a UsageError."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(
            f"--webhook-listen {address!r} is not HOST:PORT",
            hint="e.g. --webhook-listen 0.0.0.0:6080 (where the deployment posts webhooks)",
        )
    return host.strip("[]"), int(port)


def _webhook_receiver(
    settings: Settings, address: str, fail_once: tuple[str, str]
) -> WebhookReceiver:
    """The verifying receiver of `rtctl webhooks listen`, on --webhook-listen at any path. It
    answers 500 to the first delivery carrying the ``fail_once`` (event name, channel), to see
    whether it comes back."""
    import threading

    from rtctl.ops.webhook_receiver import WebhookReceiver

    host, port = listen_address(address)
    lock = threading.Lock()
    to_fail = [fail_once]  # emptied by the one delivery answered with 500

    def status_of(delivery: Delivery) -> int:
        if any((e.get("name"), e.get("channel")) == fail_once for e in delivery.events):
            with lock:
                if to_fail:
                    to_fail.clear()
                    return 500
        return 200

    receiver = WebhookReceiver(
        settings.key,
        settings.secret,
        host=host,
        port=port,
        path=None,
        max_age=settings.webhooks.max_age,
        status_of=status_of,
        buffer=False,
    )
    try:
        receiver.start()
    except Conflict:
        raise Conflict(
            f"cannot listen for webhooks on {address}: the port is already in use",
            hint="stop what listens there (`rtctl webhooks listen`?), or pick a free port the "
            "deployment's webhook URL points to",
        ) from None
    except UsageError:  # the host does not resolve, or is not this machine's
        raise UsageError(
            f"--webhook-listen {address!r}: {host} is not an address of this machine",
            hint="e.g. --webhook-listen 0.0.0.0:6080 (where the deployment posts webhooks)",
        ) from None
    return receiver


def _events(receiver: WebhookReceiver, name: str, channel: str) -> list[dict[str, Any]]:
    """The verified events of that name on that channel, in arrival order."""
    return [
        event
        for received in list(receiver.received)
        for event in received.events
        if (event.get("name"), event.get("channel")) == (name, channel)
    ]


def _wait_for(
    receiver: WebhookReceiver, name: str, channel: str, count: int, seconds: float
) -> bool:
    deadline = time.monotonic() + seconds
    while len(_events(receiver, name, channel)) < count:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def probe_webhooks(run: _Run) -> ProbeResult:
    """With --webhook-listen (where the deployment posts its webhooks): a client event with object
    data, a channel left and re-joined within a second, and a delivery answered with 500."""
    title = "webhook bodies, vacate delay, retries"
    if run.webhook_listen is None:
        return ProbeResult(
            "webhooks",
            title,
            "unknown",
            "not probed: pass --webhook-listen HOST:PORT where the deployment posts its "
            "webhooks (event types client_event, channel_occupied, channel_vacated)",
            WEBHOOK_PUSHER,
            "Soketi 1.6.1 sends client_event data as an object, no vacate delay and no "
            "retries: check that your webhook handler accepts both",
        )
    retry_channel = "private-" + run.channel("hook-retry")
    channel = "private-" + run.channel("hooks")
    receiver = _webhook_receiver(
        run.settings, run.webhook_listen, fail_once=("channel_occupied", retry_channel)
    )
    holder, sender = run.socket(), run.socket()
    try:
        holder.connect(run.timeout)
        holder.subscribe(retry_channel, run.timeout)  # its occupied webhook is answered 500
        if not _wait_for(receiver, "channel_occupied", retry_channel, 1, run.webhook_wait):
            refused = list(receiver.rejected)
            return ProbeResult(
                "webhooks",
                title,
                "unknown",
                f"no webhook reached {run.webhook_listen} within {run.webhook_wait:g} s"
                + (f" ({len(refused)} refused, the first: {refused[0].line()})" if refused else "")
                + ": is the deployment's webhook URL pointing here, for channel_occupied, "
                "channel_vacated and client_event?",
                WEBHOOK_PUSHER,
            )
        sender.connect(run.timeout)
        sender.subscribe(channel, run.timeout)
        sender.send_client_event(channel, "client-rtctl-compat", {"probe": run.run_id})
        client_event = _wait_for(receiver, "client_event", channel, 1, run.webhook_wait)
        # Leave and come back within a second: Pusher holds channel_vacated back up to 3 s and
        # drops it when the channel is occupied again in time.
        sender.unsubscribe(channel)
        time.sleep(0.3)
        sender.subscribe(channel, run.timeout)
        time.sleep(1.5)
        vacated_early = len(_events(receiver, "channel_vacated", channel))
        retried = _wait_for(receiver, "channel_occupied", retry_channel, 2, run.webhook_wait)
    finally:
        run.close([holder, sender])
        receiver.stop()
    deviations, notes = [], []
    details: dict[str, Any] = {}
    if client_event:
        data = _events(receiver, "client_event", channel)[0].get("data")
        details["client_event_data_type"] = type(data).__name__
        if isinstance(data, str):
            notes.append("client_event data arrived as a JSON string")
        else:
            deviations.append(f"client_event data arrived as a JSON {type(data).__name__}")
    else:
        notes.append("no client_event webhook arrived (client events or that event type off?)")
    details["vacated_within_1_8_s"] = vacated_early
    if vacated_early:
        deviations.append(
            f"channel_vacated was sent at once for a channel re-joined after 0.3 s "
            f"({vacated_early} within 1.8 s)"
        )
    else:
        notes.append("channel_vacated was held back while the channel was re-joined")
    details["retried"] = retried
    if retried:
        notes.append("a delivery answered with 500 was sent again")
    else:
        deviations.append(
            f"a delivery answered with 500 was not sent again within {run.webhook_wait:g} s"
        )
    evidence = "; ".join(deviations + notes)
    if not client_event and not deviations:
        return ProbeResult("webhooks", title, "unknown", evidence, WEBHOOK_PUSHER, details=details)
    return ProbeResult(
        "webhooks",
        title,
        "deviates" if deviations else "same",
        evidence,
        WEBHOOK_PUSHER,
        "a webhook handler written for this server must also accept client_event data as a "
        "string, see vacate events up to 3 s later (or not at all after a quick re-join), and "
        "may receive a failed delivery again"
        if deviations
        else "",
        details,
    )


Probe = Callable[[_Run], ProbeResult]
PROBES: dict[str, Probe] = {
    "payload-size": probe_payload_size,
    "client-events-public": probe_client_events_public,
    "activity-timeout": probe_activity_timeout,
    "error-status": probe_error_status,
    "long-channel-names": probe_long_channel_names,
    "presence-members": probe_presence_members,
    "webhooks": probe_webhooks,
    "subscription-count": probe_subscription_count,
    "auth-timestamp": probe_auth_timestamp,
}
PROBE_NAMES = tuple(PROBES)


def parse_names(text: str | None, option: str) -> tuple[str, ...]:
    """``a,b`` -> known probe names (``all`` = every probe); a UsageError names the unknown."""
    if text is None:
        return ()
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if names == ("all",):
        return PROBE_NAMES
    unknown = [name for name in names if name not in PROBES]
    if unknown:
        raise UsageError(
            f"unknown probe {unknown[0]!r} in {option}",
            hint="choose from: " + ", ".join(PROBE_NAMES) + " (or all)",
        )
    return names


def run_compat(
    settings: Settings,
    probes: Sequence[str] | None = None,
    required: Sequence[str] = (),
    timeout: float = 10.0,
    on_start: Callable[[str], None] | None = None,
    webhook_listen: str | None = None,
    webhook_wait: float = 10.0,
) -> CompatReport:
    """Run the probes (all by default) against the deployment ``settings`` names.

    A probe that fails to run (server unreachable, credentials refused) raises: the deployment
    cannot be compared at all, and the error says why."""
    if webhook_listen is not None:
        listen_address(webhook_listen)  # a usage error before any probe runs
    run = _Run(settings, timeout, webhook_listen, webhook_wait)
    chosen = list(probes) if probes else list(PROBE_NAMES)
    for name in required:
        if name not in chosen:
            chosen.append(name)
    results: list[ProbeResult] = []
    try:
        for name in PROBE_NAMES:
            if name not in chosen:
                continue
            if on_start is not None:
                on_start(name)
            try:
                results.append(PROBES[name](run))
            except ServerRejected as error:
                results.append(_undecided(name, error))
    finally:
        run.close()
    return CompatReport(
        provider=settings.provider,
        target={"ws": settings.ws_url.split("?", 1)[0], "api": settings.api_base},
        run_id=run.run_id,
        probes=results,
        required=tuple(required),
    )


def _undecided(name: str, error: RtctlError) -> ProbeResult:
    titles = {
        "client-events-public": "client events on public channels",
        "subscription-count": "pusher:subscription_count events",
        "presence-members": "more than 100 presence members",
    }
    return ProbeResult(
        name, titles.get(name, name), "unknown", f"the probe was refused: {error.message}", ""
    )
