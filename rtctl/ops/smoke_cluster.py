"""`rtctl smoke` on a cluster: named checks that prove several nodes behave as one server.

They run when `.env` says more than one node (node addresses from the same formula `rtctl up`
uses) or when smoke is pointed at node addresses (``--node HOST:PORT`` twice or more), after the
single-server checks and before ``cleanup`` (which then proves, through the front door, that the
cluster checks left nothing occupied):

- ``cluster-bus``: the bus answers (only where rtctl knows it: a cluster `.env` describes);
  it runs before ``connect``, so a dead bus is the first failure named;
- ``cross-node``: a socket on every node, directly; one event published through every node and
  one through the front door; each reaches every socket exactly once, byte-identical;
- ``cross-node-client-event``: a client event sent on one node arrives on every other;
- ``cross-node-presence``: members that joined on different nodes are all listed by ``users``
  asked on each node;
- ``cross-node-api``: ``subscription_count`` of each channel is the same on every node;
- ``cross-node-terminate``: a signed-in user on one node is disconnected when asked through
  another (needs SOKETI_DEFAULT_APP_USER_AUTHENTICATION=true, else skipped);
- ``failover`` (``--failover``, a cluster rtctl started here): one node is stopped by PID, the
  front door stops routing to it within a bound, its clients reconnect through the front door and
  receive again, and the node is started again.

When a node misses events, the evidence names the node and the direction (it receives only its
own events: not on the cluster's bus), and whether the bus answers.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from rtctl.errors import (
    CheckFailed,
    ConfigError,
    RtctlError,
    TimedOut,
    Unreachable,
    UsageError,
)
from rtctl.ops.smoke import CheckResult, CheckSpec, Skip, smoke_payload, wire_data

if TYPE_CHECKING:
    from rtctl.config import Settings
    from rtctl.ops.smoke import SmokeOptions, SmokeRun
    from rtctl.protocol import PusherSocket
    from rtctl.protocol.httpapi import ApiClient

CLUSTER_CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("cluster-bus", "the bus between the nodes answers", ("config",)),
    CheckSpec("cross-node", "events reach every node exactly once", ("config",)),
    CheckSpec("cross-node-client-event", "a client event crosses nodes", ("cross-node",)),
    CheckSpec("cross-node-presence", "members on every node are listed by each", ("cross-node",)),
    CheckSpec("cross-node-api", "every node's HTTP API agrees", ("cross-node",)),
    CheckSpec("cross-node-terminate", "terminate reaches a user on another node", ("config",)),
    CheckSpec("failover", "a stopped node's clients reconnect and receive", ("config",)),
)
CLUSTER_CHECK_NAMES = tuple(spec.name for spec in CLUSTER_CHECKS)
CROSS_EVENT = "rtctl-smoke-cross"
CROSS_CLIENT_EVENT = "client-rtctl-smoke-cross"
DUPLICATE_WINDOW = 0.1  # seconds to keep reading after the last expected event, for duplicates
FAILOVER_BOUND = 10.0  # seconds the front door may take to stop routing to a stopped node


@dataclass
class Node:
    name: str  # node-1 ... or HOST:PORT when given as --node
    settings: Settings


def parse_node_addresses(addresses: Sequence[str]) -> list[tuple[str, int]]:
    """``--node HOST:PORT`` values; at least two (one node is not a cluster)."""
    parsed = []
    for address in addresses:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(
                f"--node {address!r} is not HOST:PORT",
                hint="name each node's own address, e.g. --node 127.0.0.1:6002",
            )
        parsed.append((host.strip("[]"), int(port)))
    if len(parsed) == 1:
        raise UsageError(
            "--node was given once: cluster checks need at least two nodes",
            hint="pass --node HOST:PORT for every node of the cluster",
        )
    return parsed


def wanted(requested: Sequence[str] | None, failover: bool) -> list[str]:
    """Which cluster checks run: all but failover by default (failover only with --failover)."""
    names = [n for n in CLUSTER_CHECK_NAMES if n != "failover" or failover]
    if requested is None:
        return names
    chosen = set(requested)
    if failover:
        chosen.add("failover")
    for spec in CLUSTER_CHECKS:  # what a chosen check needs comes along
        if spec.name in chosen:
            chosen.update(r for r in spec.requires if r != "config")
    return [n for n in names if n in chosen]


def applies(settings: Settings | None, options: SmokeOptions) -> bool:
    return settings is not None and (settings.is_cluster or bool(options.node_addresses))


# --- the run ------------------------------------------------------------------------------------


@dataclass
class _ClusterRun:
    run: SmokeRun
    options: SmokeOptions
    nodes: list[Node]
    sockets: dict[str, PusherSocket] = field(default_factory=dict)  # node name -> its socket
    apis: dict[str, ApiClient] = field(default_factory=dict)
    raw: list[Any] = field(default_factory=list)  # plain websocket-client sockets to close

    @property
    def settings(self) -> Settings:
        return self.run.require_settings()

    @property
    def timeout(self) -> float:
        return self.run.timeout

    def channel(self, kind: str) -> str:
        prefix = {"public": "", "private": "private-", "presence": "presence-"}[kind]
        return f"{prefix}smoke-{self.run.run_id}-cross"

    def api(self, node: Node | None) -> ApiClient:
        """The HTTP API of one node, or of the front door (None)."""
        from rtctl.protocol.httpapi import ApiClient

        key = node.name if node is not None else "front door"
        if key not in self.apis:
            self.apis[key] = ApiClient(node.settings if node else self.settings, self.timeout)
        return self.apis[key]

    def close(self) -> None:
        for client in self.apis.values():
            client.close()
        self.apis.clear()
        for ws in self.raw:
            with contextlib.suppress(Exception):
                ws.close()
        self.raw.clear()

    # --- running -------------------------------------------------------------------------------

    def bus_note(self) -> str:
        """' (the bus at … does not answer)' when that explains a failure; else ''."""
        from rtctl.runtime import cluster

        settings = self.settings
        if not settings.is_cluster or settings.adapter not in cluster.BUS_BINARIES:
            return ""
        if cluster.bus_answers(settings.adapter, "127.0.0.1", settings.bus_port, 1.0) is None:
            return f"; the {settings.adapter} bus at 127.0.0.1:{settings.bus_port} does not answer"
        return ""

    def open(self, node: Node) -> PusherSocket:
        from rtctl.protocol import PusherSocket

        socket = PusherSocket(
            node.settings,
            user_id=f"rtctl-smoke-{self.run.run_id}-{node.name.replace(':', '_')}",
            user_info={"name": f"rtctl smoke on {node.name}"},
        )
        self.run.sockets.append(socket)  # closed by the run whatever happens
        try:
            socket.connect(self.timeout)
        except RtctlError as error:
            raise type(error)(
                f"{node.name} ({node.settings.host}:{node.settings.port}): {error.message}"
                + self.bus_note(),
                hint="is every node running? `rtctl status` lists them; `rtctl up` starts a "
                "stopped one again",
            ) from error
        return socket

    # --- checks --------------------------------------------------------------------------------

    def check_cluster_bus(self, result: CheckResult) -> str:
        from rtctl.runtime import cluster

        settings = self.settings
        if not settings.is_cluster:
            raise Skip("the bus is not known from --node addresses (rtctl doctor checks it)")
        if settings.adapter not in cluster.BUS_BINARIES:
            raise ConfigError(
                f"{settings.nodes} nodes on the {settings.adapter} adapter: there is no bus, so "
                "no node sees another's clients",
                hint="set SOKETI_ADAPTER_DRIVER=redis or nats in .env",
            )
        answer = cluster.bus_answers(settings.adapter, "127.0.0.1", settings.bus_port, self.timeout)
        where = f"{settings.adapter} at 127.0.0.1:{settings.bus_port}"
        if answer is None:
            raise Unreachable(
                f"the bus ({where}) does not answer: nodes cannot pass events to each other",
                hint="`rtctl up` starts it again; `rtctl logs --component bus` says why it stopped",
            )
        return f"{where}: {answer}"

    def check_cross_node(self, result: CheckResult) -> str:
        channel = self.channel("public")
        self.run.attempted.append(channel)
        for node in self.nodes:
            socket = self.sockets[node.name] = self.open(node)
            socket.subscribe(channel, self.timeout)
        publishers: list[Node | None] = [*self.nodes, None]
        payloads: dict[str, tuple[str, float]] = {}  # payload -> (publisher name, sent at)
        for publisher in publishers:
            from rtctl.protocol.validation import Event

            name = publisher.name if publisher else "front door"
            payload = smoke_payload(self.run.run_id, f"cross-node via {name}")
            sent = time.monotonic()
            self.api(publisher).trigger(Event((channel,), CROSS_EVENT, payload))
            payloads[payload] = (name, sent)
        seen, latency = self.collect(CROSS_EVENT, channel, payloads, set())
        figures = self.verdict(result, "published", payloads, seen, latency)
        return (
            f"one event through each of {', '.join(n.name for n in self.nodes)} and the front "
            f"door reached the socket on every node: {figures}"
        )

    def collect(
        self,
        event: str,
        channel: str,
        payloads: dict[str, tuple[str, float]],
        skip: set[tuple[str, str]],
    ) -> tuple[dict[tuple[str, str], int], list[float]]:
        """Read every node's socket until each has every payload (or the timeout), then a short
        while more to catch duplicates. Returns {(publisher, receiver): copies} and latencies."""
        seen: dict[tuple[str, str], int] = {}
        latency: list[float] = []
        wanted = {
            (sender, node.name)
            for sender, _ in payloads.values()
            for node in self.nodes
            if (sender, node.name) not in skip
        }
        deadline = time.monotonic() + self.timeout
        extra_until: float | None = None
        while True:
            now = time.monotonic()
            if extra_until is None and (wanted <= set(seen) or now >= deadline):
                extra_until = now + DUPLICATE_WINDOW
            if extra_until is not None and now >= extra_until:
                break
            for node in self.nodes:
                socket = self.sockets[node.name]
                message = socket.recv(0.002)
                if message is None or (message.event, message.channel) != (event, channel):
                    continue
                wire = wire_data(message)
                if wire not in payloads:
                    raise CheckFailed(
                        f"{node.name}: {event} arrived altered: {str(wire)[:120]!r}",
                        hint="something between the nodes rewrites payloads",
                    )
                sender, sent = payloads[wire]
                key = (sender, node.name)
                seen[key] = seen.get(key, 0) + 1
                latency.append(message.monotonic - sent)
        return seen, latency

    def verdict(
        self,
        result: CheckResult,
        verb: str,
        payloads: dict[str, tuple[str, float]],
        seen: dict[tuple[str, str], int],
        latency: list[float],
        skip: set[tuple[str, str]] | None = None,
    ) -> str:
        skip = skip or set()
        senders = [sender for sender, _ in payloads.values()]
        missing = [
            (s, n.name) for s in senders for n in self.nodes if (s, n.name) not in skip | set(seen)
        ]
        duplicated = {key: count for key, count in seen.items() if count > 1}
        result.details.update(
            deliveries={f"{s} -> {r}": c for (s, r), c in sorted(seen.items())},
            latency_ms_max=round(max(latency) * 1000, 3) if latency else None,
        )
        if missing:
            by_sender: dict[str, list[str]] = {}
            for sender, receiver in missing:
                by_sender.setdefault(sender, []).append(receiver)
            parts = [f"{verb} via {s}: missed on {', '.join(r)}" for s, r in by_sender.items()]
            raise TimedOut(
                f"{'; '.join(parts)} (within {self.timeout:g} s){self.bus_note()}",
                hint=self.diagnosis(missing, senders),
            )
        if duplicated:
            parts = [f"{r} got {s}'s event {c} times" for (s, r), c in duplicated.items()]
            raise CheckFailed(
                "duplicates: " + "; ".join(parts),
                hint="a node receives the bus twice: two nodes share one name or port, or two "
                "clusters share the bus and the prefix (`rtctl doctor`: bus-prefix)",
            )
        worst = max(latency) * 1000 if latency else 0.0
        return f"{len(seen)} deliveries, each once, byte-identical; latency max {worst:.1f} ms"

    def diagnosis(self, missing: list[tuple[str, str]], senders: list[str]) -> str:
        """Name the nodes that are not part of the cluster, when the pattern shows them."""
        isolated = []
        for node in self.nodes:
            # the front door's event may land on any node: only the nodes' own events tell
            others = [s for s in senders if s not in (node.name, "front door")]
            own = node.name not in senders or (node.name, node.name) not in missing
            if own and others and all((s, node.name) in missing for s in others):
                isolated.append(node.name)
        fix = "`rtctl doctor` shows bus-prefix; `rtctl down && rtctl up` restarts every node alike"
        if isolated and len(isolated) < len(self.nodes):
            names = ", ".join(isolated)
            verb = "receives" if len(isolated) == 1 else "receive"
            return (
                f"{names} {verb} only what is published through itself: not on the cluster's bus "
                f"(adapter, bus address or prefix differ); {fix}"
            )
        if isolated:
            return (
                "no node receives what is published through another: the nodes are not joined "
                f"(adapter, bus address or prefix differ){self.listeners_note()}; {fix}"
            )
        return (
            "nodes do not pass events to each other reliably: `rtctl status` and `rtctl doctor` "
            "show the bus and every node"
        )

    def listeners_note(self) -> str:
        """' (2 of 3 nodes listen on the bus)' where the bus can tell (Redis)."""
        from rtctl.runtime import cluster

        settings = self.settings
        if not settings.is_cluster:
            return ""
        listeners = cluster.adapter_listeners(cluster.plan(settings), timeout=1.0)
        if listeners is None:
            return ""
        return f"; {listeners} of {len(self.nodes)} nodes listen on the bus"

    def check_cross_node_client_event(self, result: CheckResult) -> str:
        channel = self.channel("private")
        self.run.attempted.append(channel)
        for node in self.nodes:
            self.sockets[node.name].subscribe(channel, self.timeout)
        sender = self.nodes[0]
        payload = smoke_payload(self.run.run_id, f"client event from {sender.name}")
        sent = time.monotonic()
        self.sockets[sender.name].send_client_event(channel, CROSS_CLIENT_EVENT, payload)
        skip = {(sender.name, sender.name)}  # the sender never receives its own client event
        payloads = {payload: (sender.name, sent)}
        seen, latency = self.collect(CROSS_CLIENT_EVENT, channel, payloads, skip)
        if (sender.name, sender.name) in seen:
            raise CheckFailed(
                f"{sender.name}'s own client event came back to it",
                hint="Pusher never echoes a client event to its sender",
            )
        figures = self.verdict(result, "sent", payloads, seen, latency, skip)
        return f"sent on {sender.name}, arrived on the {len(self.nodes) - 1} other nodes: {figures}"

    def check_cross_node_presence(self, result: CheckResult) -> str:
        channel = self.channel("presence")
        self.run.attempted.append(channel)
        users = set()
        for node in self.nodes:
            socket = self.sockets[node.name]
            socket.subscribe(channel, self.timeout)
            assert socket.user_id is not None
            users.add(socket.user_id)
        deadline = time.monotonic() + self.timeout
        while True:
            listed = {node.name: set(self.api(node).users(channel)) for node in self.nodes}
            wrong = {name: found for name, found in listed.items() if found != users}
            if not wrong or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        result.details["users"] = {name: sorted(found) for name, found in listed.items()}
        if wrong:
            parts = [
                f"{name} lists {len(found)} ({', '.join(sorted(users - found)) or 'none'} missing)"
                for name, found in wrong.items()
            ]
            raise CheckFailed(
                f"{channel}: {len(users)} members joined on {len(self.nodes)} nodes, but "
                + "; ".join(parts)
                + self.bus_note(),
                hint="a node that lists only its own members is not on the cluster's bus",
            )
        return f"{len(users)} members, one per node, listed by users asked on each of {len(self.nodes)} nodes"

    def check_cross_node_api(self, result: CheckResult) -> str:
        channels = [self.channel(kind) for kind in ("public", "private", "presence")]
        expected = len(self.nodes)
        counts: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + self.timeout
        while True:
            counts = {
                name: {
                    node.name: self.api(node)
                    .channel(name, info="subscription_count")
                    .get("subscription_count")
                    for node in self.nodes
                }
                for name in channels
            }
            wrong = {
                name: per_node
                for name, per_node in counts.items()
                if set(per_node.values()) != {expected}
            }
            if not wrong or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        result.details["subscription_count"] = counts
        if wrong:
            parts = [
                f"{name}: " + ", ".join(f"{node} says {count}" for node, count in per.items())
                for name, per in wrong.items()
            ]
            raise CheckFailed(
                f"nodes disagree (expected {expected} everywhere): "
                + "; ".join(parts)
                + self.bus_note(),
                hint="a node whose count is its own share only is not on the cluster's bus; a "
                "larger count means another cluster shares the bus and the prefix",
            )
        return (
            f"subscription_count {expected} for {len(channels)} channels on every node "
            f"({', '.join(n.name for n in self.nodes)})"
        )

    def check_cross_node_terminate(self, result: CheckResult) -> str:
        import websocket

        from rtctl.protocol.signing import authenticate_user

        settings = self.settings
        if not settings.user_authentication:
            raise Skip(
                "SOKETI_DEFAULT_APP_USER_AUTHENTICATION=false: Soketi ignores sign-ins, so there "
                "is no signed-in user to terminate"
            )
        first, other = self.nodes[0], self.nodes[1]
        user = f"rtctl-smoke-{self.run.run_id}-terminate"
        ws = websocket.create_connection(first.settings.ws_url, timeout=self.timeout)
        self.raw.append(ws)
        established = json.loads(ws.recv())
        socket_id = json.loads(established["data"])["socket_id"]
        auth = authenticate_user(settings.key, settings.secret, socket_id, {"id": user})
        ws.send(json.dumps({"event": "pusher:signin", "data": auth}))
        reply = json.loads(ws.recv())
        if reply.get("event") != "pusher:signin_success":
            raise CheckFailed(f"sign-in on {first.name} answered {reply}", hint="see `rtctl logs`")
        sent = time.monotonic()
        self.api(other).terminate(user)
        deadline = sent + self.timeout
        closed_by: Any = None
        while time.monotonic() < deadline:
            ws.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                frame = ws.recv()
            except websocket.WebSocketConnectionClosedException:
                closed_by = "close"
                break
            except (TimeoutError, websocket.WebSocketTimeoutException):
                break
            if not frame:  # websocket-client returns '' once the close frame arrived
                closed_by = ws.status or "close"
                break
            message = json.loads(frame)
            if message.get("event") == "pusher:error":
                closed_by = (
                    json.loads(message["data"])
                    if isinstance(message["data"], str)
                    else message["data"]
                )
        elapsed = (time.monotonic() - sent) * 1000
        if closed_by is None:
            raise TimedOut(
                f"user {user} signed in on {first.name} was still connected {self.timeout:g} s "
                f"after POST /users/{user}/terminate_connections through {other.name}{self.bus_note()}",
                hint="terminate travels over the bus: a node not on it keeps its users",
            )
        result.details.update(latency_ms=round(elapsed, 3))
        return (
            f"user signed in on {first.name}, terminated through {other.name}: disconnected after "
            f"{elapsed:.1f} ms"
        )

    def check_failover(self, result: CheckResult) -> str:
        from rtctl.runtime import cluster, native

        settings = self.settings
        state_dir = native.state_dir(settings)
        recorded = cluster.read_state(state_dir) if settings.is_cluster else None
        if recorded is None or not recorded.alive:
            raise ConfigError(
                "--failover stops a node by its PID: it needs a cluster rtctl started here",
                hint="start it with `rtctl up --nodes N`, or leave out --failover",
            )
        channel = f"smoke-{self.run.run_id}-failover"
        self.run.attempted.append(channel)
        clients = [self.front_door_client(channel) for _ in range(2 * len(recorded.plan.nodes))]
        placed = {
            node.name: [c for c in clients if c.node == node.name] for node in recorded.plan.nodes
        }
        victim = next((name for name, on in placed.items() if on), None)
        if victim is None:
            raise CheckFailed(
                "the front door did not say which node served each client (no X-Rtctl-Node)",
                hint="--failover works with the front door rtctl starts",
            )
        stopped = cluster.stop_node(state_dir, victim)
        assert stopped is not None
        stop_at = time.monotonic()
        try:
            marked = self.wait_routing(state_dir, victim, up=False, since=stop_at)
            moved = []
            for client in placed[victim]:
                client.wait_closed(self.timeout)
                replacement = self.front_door_client(channel)
                if replacement.node == victim:
                    raise CheckFailed(
                        f"a client reconnecting after {victim} stopped was sent to {victim} again",
                        hint="the front door must stop routing to a node that is down",
                    )
                moved.append(replacement)
            survivors = [c for c in clients if c.node != victim] + moved
            payload = smoke_payload(self.run.run_id, "failover")
            from rtctl.protocol.validation import Event

            sent = time.monotonic()
            self.api(None).trigger(Event((channel,), CROSS_EVENT, payload))
            for client in survivors:
                client.expect(CROSS_EVENT, payload, sent + self.timeout)
        finally:
            restarted = cluster.start_node(settings, state_dir, victim, timeout=30.0)
            back = self.wait_routing(state_dir, victim, up=True, since=time.monotonic())
        result.details.update(
            victim=victim, marked_down_s=round(marked, 3), routed_again_s=round(back, 3)
        )
        destinations = sorted({c.node or "?" for c in moved})
        return (
            f"stopped {victim} (pid {stopped.pid}): the front door stopped routing to it after "
            f"{marked:.1f} s; its {len(moved)} clients reconnected through the front door to "
            f"{', '.join(destinations)} and all {len(survivors)} clients received again; "
            f"{victim} started again (pid {restarted.pid}), routed to after {back:.1f} s"
        )

    def front_door_client(self, channel: str) -> _RawClient:
        client = _RawClient(self.settings, self.timeout)
        self.raw.append(client)
        client.subscribe(channel, self.timeout)
        return client

    def wait_routing(self, state_dir: Any, name: str, up: bool, since: float) -> float:
        """Seconds until every front-door process has ``name`` UP (or not UP)."""
        from rtctl.runtime import cluster, haproxy

        folder = cluster.cluster_dir(state_dir)
        recorded = cluster.read_state(state_dir)
        sockets = [
            folder / f"front-door-{k}.sock"
            for k, proc in enumerate(recorded.front_doors if recorded else [], start=1)
            if proc is not None
        ]
        bound = since + FAILOVER_BOUND
        while True:
            views = [haproxy.server_states(sock, 1.0) or [] for sock in sockets]
            states = [s.status for view in views for s in view if s.name == name]
            if states and all(s == "UP" if up else not s.startswith("UP") for s in states):
                return time.monotonic() - since
            if time.monotonic() >= bound:
                raise TimedOut(
                    f"the front door still had {name} {', '.join(states) or '?'} "
                    f"{FAILOVER_BOUND:g} s after it was {'started' if up else 'stopped'}",
                    hint="its health check (/ready every second, two failures) should take ~2 s",
                )
            time.sleep(0.05)


class _RawClient:
    """A minimal Pusher client over websocket-client that also reads the front door's answer:
    which node served the upgrade (``X-Rtctl-Node``)."""

    def __init__(self, settings: Settings, timeout: float) -> None:
        import websocket

        self.ws = websocket.create_connection(settings.ws_url, timeout=timeout)
        self.node = (self.ws.getheaders() or {}).get("x-rtctl-node")
        established = json.loads(self.ws.recv())
        if established.get("event") != "pusher:connection_established":
            raise CheckFailed(f"expected pusher:connection_established, got {established}")

    def subscribe(self, channel: str, timeout: float) -> None:
        self.ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": channel}}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.next(deadline)
            if message.get("event") == "pusher_internal:subscription_succeeded":
                return
        raise TimedOut(f"no subscription_succeeded for {channel} through the front door")

    def next(self, deadline: float) -> dict[str, Any]:
        import websocket

        self.ws.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            frame = self.ws.recv()
        except (TimeoutError, websocket.WebSocketTimeoutException):
            return {}
        except (OSError, websocket.WebSocketException) as exc:
            raise Unreachable(
                f"a client through the front door lost its connection: {exc}"
            ) from exc
        return json.loads(frame) if frame else {"event": "closed"}

    def wait_closed(self, timeout: float) -> None:
        """The stopped node's client sees its connection end (close frame or reset)."""
        import websocket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                frame = self.ws.recv()
            except (TimeoutError, websocket.WebSocketTimeoutException):
                break
            except (OSError, websocket.WebSocketException):
                return
            if not frame:
                return
        raise TimedOut(
            f"a client of the stopped node was still connected {timeout:g} s later",
            hint="the front door should close tunnels to a node that is gone",
        )

    def expect(self, event: str, payload: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            message = self.next(deadline)
            if message.get("event") == event and message.get("data") == payload:
                return
            if message.get("event") == "closed":
                break
        raise TimedOut(
            f"a client on {self.node} did not receive the event published after the failover",
            hint="clients that reconnected through the front door must receive again",
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()


def node_list(settings: Settings, addresses: Sequence[str]) -> list[Node]:
    if addresses:
        return [
            Node(f"{host}:{port}", replace(settings, host=host, port=port, nodes=1))
            for host, port in parse_node_addresses(addresses)
        ]
    from rtctl.runtime import cluster

    plan = cluster.plan(settings)
    return [Node(n.name, cluster.node_settings(settings, n)) for n in plan.nodes]


def run_cluster_checks(
    run: SmokeRun,
    options: SmokeOptions,
    on_start: Callable[[CheckSpec], None] | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
    before: str = "cleanup",
) -> None:
    """The hook `run_smoke` calls before ``connect`` (the bus: a dead bus is the first failure,
    not the deliveries it breaks) and before ``cleanup`` (the rest, so cleanup covers their
    channels). Appends each cluster check's result to the run."""
    settings = run.settings
    if not applies(settings, options):
        return
    assert settings is not None
    names = [
        name
        for name in wanted(options.checks, options.failover)
        if (name == "cluster-bus") == (before == "connect")
    ]
    if not names:
        return
    state = _ClusterRun(run, options, node_list(settings, options.node_addresses))
    specs = {spec.name: spec for spec in CLUSTER_CHECKS}
    try:
        for name in names:
            spec = specs[name]
            if on_start:
                on_start(spec)
            result = run.run_check(spec, checks=state)
            if on_result:
                on_result(result)
    finally:
        state.close()  # its PusherSockets are the run's: cleanup unsubscribes and closes them
