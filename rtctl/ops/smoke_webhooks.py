"""Smoke's ``webhooks`` check: real sockets make Soketi fire every webhook, and each one arrives
signed, verifiable and in time at a receiver rtctl starts on the configured (local) URL.

Two users (two sockets) join one channel, one sends a client event, both leave:
channel_occupied, member_added ×2, client_event, member_removed ×2, channel_vacated — as far as
the channel's type and the configured event types and filter allow. Nothing here assumes one
server: the sockets may land on different nodes, events are matched by content rather than
order, and an event that arrives twice is reported, not failed. On a cluster (several nodes in
`.env`, or ``--node`` addresses) the two sockets connect to two different nodes directly, so the
webhooks come from more than one node and each expected one must still arrive (once: a second
copy is the ``duplicate-webhooks`` warning).

Soketi's known deviations from Pusher are named warnings (``details["warnings"]``), never
failures: ``client-event-data-object``, ``no-vacate-delay``, ``vacated-before-member-removed``,
``duplicate-webhooks``, ``batching-leak``, ``refused-deliveries``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from rtctl.errors import AuthRejected, ConfigError, Conflict, TimedOut

if TYPE_CHECKING:
    from rtctl.config import Settings
    from rtctl.ops.smoke import CheckResult, SmokeRun
    from rtctl.ops.webhook_receiver import Received, WebhookReceiver

CHECK = "webhooks"
CLIENT_EVENT = "client-rtctl-smoke"
PUSHER_VACATE_DELAY = 1.0  # s: Pusher holds vacated/removed back (up to 3 s); Soketi does not
RESTART_HINT = (
    "Soketi reads its webhook settings at start: after changing REALTIME_WEBHOOK_*, restart it "
    "(`rtctl down && rtctl up`)"
)


class Skipped(Exception):
    """Not configured and not asked for: the smoke's Skip (raised by the caller's adapter)."""


@dataclass(frozen=True)
class Expected:
    name: str
    user_id: str | None
    action: str  # which socket action causes it


@dataclass
class Plan:
    url: str
    channel: str
    users: tuple[str, str]
    expected: list[Expected]
    types: tuple[str, ...]
    prefix: str = ""
    suffix: str = ""
    client_event: bool = False
    notes: list[str] = field(default_factory=list)
    # On a cluster: the two nodes the sockets connect to, (name, settings) each; else None
    # (both through the configured address).
    nodes: tuple[tuple[str, Settings], tuple[str, Settings]] | None = None


def channel_for(prefix: str, suffix: str, core: str) -> str:
    """A channel name the webhook filter lets through, presence if the prefix allows it."""
    for kind in ("presence-", "private-", ""):
        if kind.startswith(prefix):
            return kind + core + suffix
        if prefix.startswith(kind):
            return prefix + core + suffix
    return prefix + core + suffix


def plan(settings: Settings, run_id: str) -> Plan:
    from rtctl.protocol.signing import channel_kind

    webhooks = settings.webhooks
    url = webhooks.local_url()
    assert url is not None
    entry = next(e for e in webhooks.entries() if e.get("url") == url)
    types = tuple(str(t) for t in entry.get("event_types") or ())
    filters = entry.get("filter") or {}
    prefix = str(filters.get("channel_name_starts_with") or "")
    suffix = str(filters.get("channel_name_ends_with") or "")
    channel = channel_for(prefix, suffix, f"smoke-wh-{run_id}")
    kind = channel_kind(channel)
    users = (f"smoke-a-{run_id}", f"smoke-b-{run_id}")
    wanted: list[Expected] = [Expected("channel_occupied", None, "subscribe-a")]
    if kind == "presence":
        wanted += [
            Expected("member_added", users[0], "subscribe-a"),
            Expected("member_added", users[1], "subscribe-b"),
        ]
    client = kind in ("presence", "private") and settings.client_messages
    if client:
        wanted.append(Expected("client_event", users[1] if kind == "presence" else None, "client"))
    if kind == "presence":
        wanted += [
            Expected("member_removed", users[0], "unsubscribe-a"),
            Expected("member_removed", users[1], "unsubscribe-b"),
        ]
    wanted.append(Expected("channel_vacated", None, "unsubscribe-b"))
    result = Plan(
        url, channel, users, [e for e in wanted if e.name in types], types, prefix, suffix
    )
    result.client_event = client and "client_event" in types
    skipped = sorted({e.name for e in wanted} - set(types))
    if skipped:
        result.notes.append(f"not configured: {', '.join(skipped)}")
    if kind != "presence":
        result.notes.append(f"{channel} is not a presence channel (filter): no member events")
    return result


def check_webhooks(run: SmokeRun, result: CheckResult) -> str:
    """The check body: returns the evidence; raises what smoke turns into skip or fail."""
    from rtctl.ops.webhook_receiver import WebhookReceiver

    settings = run.require_settings()
    requested = run.options.checks is not None and CHECK in run.options.checks
    webhooks = settings.webhooks
    if settings.provider == "pusher":
        raise Skipped(
            "Pusher posts webhooks to the URL in its dashboard; `rtctl webhooks listen` behind "
            "that URL verifies them"
        )
    if not webhooks.configured:
        if requested:
            raise ConfigError(
                "webhooks are not configured: the server sends none",
                hint="set REALTIME_WEBHOOK_URL=http://127.0.0.1:6080/webhooks; " + RESTART_HINT,
            )
        raise Skipped("no webhooks configured (REALTIME_WEBHOOK_URL)")
    if webhooks.local_url() is None:
        where = ", ".join(str(e.get("url") or e.get("lambda_function")) for e in webhooks.entries())
        message = f"webhooks go to {where}: none on this machine, where smoke could receive them"
        if requested:
            raise ConfigError(
                message,
                hint="add a local URL, e.g. REALTIME_WEBHOOK_URL=…,http://127.0.0.1:6080/webhooks",
            )
        raise Skipped(message)
    steps = plan(settings, run.run_id)
    steps.nodes = two_nodes(run)
    parts = urlsplit(steps.url)
    receiver = WebhookReceiver(
        settings.key,
        settings.secret,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 80,
        path=parts.path or "/",
        max_age=webhooks.max_age,
    )
    try:
        receiver.start()
    except Conflict as error:
        raise Conflict(
            f"cannot receive at {steps.url}: {error.message}",
            hint="stop `rtctl webhooks listen` (or whatever holds that port) while smoke runs",
        ) from None
    try:
        actions = _drive(run, steps)
        arrived = _await(receiver, steps, actions, run.timeout)
    finally:
        receiver.stop()
    return _judge(receiver, steps, actions, arrived, result, run.timeout)


def two_nodes(run: SmokeRun) -> tuple[tuple[str, Settings], tuple[str, Settings]] | None:
    """On a cluster, the first two nodes (addressed directly); None on one server."""
    from rtctl.ops import smoke_cluster

    settings = run.require_settings()
    if not smoke_cluster.applies(settings, run.options):
        return None
    nodes = smoke_cluster.node_list(settings, run.options.node_addresses)
    return (nodes[0].name, nodes[0].settings), (nodes[1].name, nodes[1].settings)


def _drive(run: SmokeRun, steps: Plan) -> dict[str, float]:
    """Make the socket actions happen; returns when each started (time.monotonic())."""
    timeout = run.timeout
    run.attempted.append(steps.channel)  # cleanup checks it is left unoccupied
    on_a, on_b = (steps.nodes[0][1], steps.nodes[1][1]) if steps.nodes else (None, None)
    first = run.open_socket(on_a, user_id=steps.users[0], user_info={"name": "rtctl smoke A"})
    second = run.open_socket(on_b, user_id=steps.users[1], user_info={"name": "rtctl smoke B"})
    first.connect(timeout)
    second.connect(timeout)
    actions: dict[str, float] = {}
    actions["subscribe-a"] = time.monotonic()
    first.subscribe(steps.channel, timeout)
    actions["subscribe-b"] = time.monotonic()
    second.subscribe(steps.channel, timeout)
    if steps.client_event:
        actions["client"] = time.monotonic()
        second.send_client_event(steps.channel, CLIENT_EVENT, {"smoke": run.run_id})
        # Leave only once the other socket got it: the server has taken the client event.
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = first.recv(left)
            if message is not None and message.event == CLIENT_EVENT:
                break
    actions["unsubscribe-a"] = time.monotonic()
    first.unsubscribe(steps.channel)
    actions["unsubscribe-b"] = time.monotonic()
    second.unsubscribe(steps.channel)
    return actions


def _matches(expected: Expected, event: dict[str, Any], channel: str) -> bool:
    if event.get("channel") != channel or event.get("name") != expected.name:
        return False
    return expected.user_id is None or str(event.get("user_id")) == expected.user_id


def _await(
    receiver: WebhookReceiver, steps: Plan, actions: dict[str, float], timeout: float
) -> list[Received]:
    """Collect deliveries until every expected event arrived (or the wait runs out)."""
    from rtctl.ops.webhook_receiver import Received

    deadline = max(actions.values()) + timeout
    got: list[Received] = []
    while True:
        found = [e for e in steps.expected if any(_in(e, r, steps.channel) for r in got)]
        if len(found) == len(steps.expected):
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        item = receiver.get(timeout=min(remaining, 0.25))
        if isinstance(item, Received):
            got.append(item)
    # a moment more: duplicates from other nodes arrive right after the first copy
    quiet_until = time.monotonic() + 0.3
    while (left := quiet_until - time.monotonic()) > 0:
        item = receiver.get(timeout=left)
        if isinstance(item, Received):
            got.append(item)
    return got


def _in(expected: Expected, received: Received, channel: str) -> bool:
    return any(_matches(expected, event, channel) for event in received.events)


def _judge(
    receiver: WebhookReceiver,
    steps: Plan,
    actions: dict[str, float],
    arrived: Sequence[Received],
    result: CheckResult,
    timeout: float,
) -> str:
    warnings: list[dict[str, str]] = []
    seen: dict[Expected, list[tuple[Received, dict[str, Any]]]] = {e: [] for e in steps.expected}
    leaked: set[str] = set()
    for received in arrived:
        ours = [e for e in received.events if e.get("channel") == steps.channel]
        for event in received.events:
            for expected in steps.expected:
                if _matches(expected, event, steps.channel):
                    seen[expected].append((received, event))
            if ours and (event.get("name") not in steps.types or not _filtered(event, steps)):
                leaked.add(f"{event.get('name')} on {event.get('channel')}")
    missing = [e for e, copies in seen.items() if not copies]
    refused = list(receiver.rejected)
    if missing:
        names = ", ".join(e.name + (f" ({e.user_id})" if e.user_id else "") for e in missing)
        if refused:
            raise AuthRejected(
                f"{names} did not verify: the receiver refused {len(refused)} deliveries, "
                f"first: {refused[0].status} {refused[0].code}: {refused[0].message}",
                hint="Soketi signs with its own app secret: is it the server started with this "
                ".env's PUSHER_APP_SECRET? " + RESTART_HINT,
            )
        raise TimedOut(
            f"{names} did not arrive at {steps.url} within {timeout:g} s "
            f"({len(steps.expected) - len(missing)} of {len(steps.expected)} did)",
            hint=RESTART_HINT,
        )
    latencies: dict[str, float] = {}
    counts: dict[str, int] = {}
    for expected, copies in seen.items():
        label = expected.name + (f" {expected.user_id}" if expected.user_id else "")
        latencies[label] = round((copies[0][0].monotonic - actions[expected.action]) * 1000, 3)
        counts[label] = len(copies)
        if len(copies) > 1:
            why = (
                "nodes that see the channel change at the same moment each send it"
                if steps.nodes
                else "the server sent it more than once"
            )
            warnings.append(
                {
                    "name": "duplicate-webhooks",
                    "detail": f"{label} arrived {len(copies)} times ({why})",
                }
            )
        if expected.name == "client_event":
            data = copies[0][1].get("data")
            if not isinstance(data, str):
                warnings.append(
                    {
                        "name": "client-event-data-object",
                        "detail": f"client_event data arrived as a JSON {type(data).__name__}; "
                        "Pusher sends a string",
                    }
                )
    vacated = next((e for e in steps.expected if e.name == "channel_vacated"), None)
    if vacated is not None:
        after = (seen[vacated][0][0].monotonic - actions[vacated.action]) * 1000
        if after < PUSHER_VACATE_DELAY * 1000:
            warnings.append(
                {
                    "name": "no-vacate-delay",
                    "detail": f"channel_vacated came {after:.0f} ms after the last socket left; "
                    "Pusher waits up to 3 s (a page refresh gives vacated + occupied here)",
                }
            )
        removed = [e for e in steps.expected if e.name == "member_removed"]
        if any(_position(seen[vacated][0]) < _position(seen[e][0]) for e in removed):
            warnings.append(
                {
                    "name": "vacated-before-member-removed",
                    "detail": "channel_vacated arrived before the last member_removed",
                }
            )
    if leaked:
        warnings.append(
            {
                "name": "batching-leak",
                "detail": "deliveries also carried events the webhook's types or filter exclude: "
                + ", ".join(sorted(leaked))[:300],
            }
        )
    if refused:
        warnings.append(
            {
                "name": "refused-deliveries",
                "detail": f"{len(refused)} other requests were refused, first: "
                f"{refused[0].status} {refused[0].code}",
            }
        )
    result.details.update(
        url=steps.url,
        channel=steps.channel,
        latency_ms=latencies,
        copies=counts,
        warnings=warnings,
        notes=steps.notes,
    )
    if steps.nodes:
        result.details["sockets"] = {"a": steps.nodes[0][0], "b": steps.nodes[1][0]}
    worst = max(latencies.values()) if latencies else 0.0
    text = (
        f"{len(steps.expected)} webhooks for {steps.channel} arrived at {steps.url}, each "
        f"verified (key, signature, time_ms); latency max {worst:.1f} ms"
    )
    if steps.nodes:
        text += f"; sockets on {steps.nodes[0][0]} and {steps.nodes[1][0]}"
    if steps.notes:
        text += "; " + "; ".join(steps.notes)
    if warnings:
        text += "; Soketi deviations: " + ", ".join(dict.fromkeys(w["name"] for w in warnings))
    return text


def _filtered(event: dict[str, Any], steps: Plan) -> bool:
    channel = str(event.get("channel") or "")
    return channel.startswith(steps.prefix) and channel.endswith(steps.suffix)


def _position(pair: tuple[Received, dict[str, Any]]) -> tuple[int, int]:
    """Where an event arrived: its delivery's order, then its place in a batch."""
    received, event = pair
    return received.seq, next(i for i, e in enumerate(received.events) if e is event)
