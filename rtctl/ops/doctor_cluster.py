"""`rtctl doctor`'s rules for several nodes: each with its evidence and its fix.

What breaks across nodes, and the rule that catches it:
- ``cluster-adapter``: more than one node on the ``local`` adapter (each node delivers only to
  its own clients); a NATS bus asked to carry Redis drivers;
- ``cluster-drivers``: a memory cache, a local rate limiter or the ``sync`` queue with more than
  one node (last events of cache channels, rate limits and webhook sending stay per node);
- ``queue-mode``: ``SOKETI_MODE=server`` with the ``sync`` queue drops every webhook silently
  (one node or many);
- ``cluster-programs``: redis-server / nats-server and haproxy are installed;
- ``front-door-limit``: the front door's connection limit fits the open-files limit;
- ``bus``: the bus answers;
- ``bus-prefix``: no other cluster listens on this cluster's prefix (Redis), and every node of
  this one does;
- ``node-credentials``: every node accepts our app id, key and secret;
- ``nodes``: every node answers ``/ready``, and the front door routes to it.

``cluster_checks`` is the hook ``doctor.run_doctor`` calls: with one node it adds only a failing
``queue-mode``; with several it adds every rule above and corrects the ``ports`` check (ports held
by the cluster's own processes are ours).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rtctl.config import Settings
from rtctl.errors import AuthRejected, RtctlError
from rtctl.ops.doctor import CheckResult
from rtctl.runtime import cluster, haproxy, health, native

CLUSTER_CHECKS = (
    "cluster-adapter",
    "cluster-drivers",
    "queue-mode",
    "cluster-programs",
    "front-door-limit",
    "bus",
    "bus-prefix",
    "node-credentials",
    "nodes",
)

# What breaks when a driver is not shared between nodes.
PER_NODE = {
    "cache_driver": (
        "memory",
        "SOKETI_CACHE_DRIVER=memory: a cache-* channel's last event is kept by the node that "
        "sent it; a client subscribing on another node gets no cache event",
    ),
    "rate_limiter_driver": (
        "local",
        "SOKETI_RATE_LIMITER_DRIVER=local: every node counts limits on its own, so an app may "
        "send {n}x its limits through the front door",
    ),
    "queue_driver": (
        "sync",
        "SOKETI_QUEUE_DRIVER=sync: each node sends its own clients' webhooks in-process, so no "
        "other node can take them over (worker-mode nodes cannot send them), and those a node "
        "had not sent when it stopped are lost",
    ),
}


def queue_mode(settings: Settings) -> CheckResult:
    if settings.soketi_mode == "server" and settings.queue_driver == "sync":
        return CheckResult(
            "queue-mode",
            "fail",
            "SOKETI_MODE=server with SOKETI_QUEUE_DRIVER=sync: a server-mode node hands webhooks "
            "to a queue that no worker reads, so every webhook is dropped silently",
            "use SOKETI_MODE=full, or SOKETI_QUEUE_DRIVER=redis with worker-mode nodes",
        )
    return CheckResult(
        "queue-mode", "pass", f"SOKETI_MODE={settings.soketi_mode}, queue {settings.queue_driver}"
    )


def adapter_check(settings: Settings) -> CheckResult:
    if settings.adapter == "local":
        return CheckResult(
            "cluster-adapter",
            "fail",
            f"{settings.nodes} nodes on the local adapter: each node delivers events only to its "
            "own clients, and the HTTP API of each sees only its own channels",
            "set SOKETI_ADAPTER_DRIVER=redis (or nats) in .env",
        )
    redis_drivers = [
        name
        for name, value in (
            ("SOKETI_CACHE_DRIVER", settings.cache_driver),
            ("SOKETI_RATE_LIMITER_DRIVER", settings.rate_limiter_driver),
            ("SOKETI_QUEUE_DRIVER", settings.queue_driver),
        )
        if value == "redis"
    ]
    if settings.adapter == "nats" and redis_drivers:
        return CheckResult(
            "cluster-adapter",
            "fail",
            f"{', '.join(redis_drivers)}=redis, but the bus is NATS: rtctl runs no Redis for them",
            "use SOKETI_ADAPTER_DRIVER=redis (one Redis carries everything), or unset those",
        )
    return CheckResult(
        "cluster-adapter",
        "pass",
        f"{settings.nodes} nodes joined by {settings.adapter} on 127.0.0.1:{settings.bus_port}, "
        f"prefix {settings.cluster_prefix}",
    )


def drivers_check(settings: Settings) -> CheckResult:
    broken = [
        text.format(n=settings.nodes)
        for attribute, (local, text) in PER_NODE.items()
        if getattr(settings, attribute) == local
    ]
    if not broken:
        return CheckResult(
            "cluster-drivers",
            "pass",
            f"cache {settings.cache_driver}, rate limiter {settings.rate_limiter_driver}, "
            f"queue {settings.queue_driver}: shared by every node",
        )
    fix = (
        "Soketi 1.6 has no NATS cache, rate limiter or queue: use SOKETI_ADAPTER_DRIVER=redis "
        "to share them"
        if settings.adapter == "nats"
        else "set SOKETI_CACHE_DRIVER=redis, SOKETI_RATE_LIMITER_DRIVER=redis, "
        "SOKETI_QUEUE_DRIVER=redis (the defaults on the redis adapter)"
    )
    return CheckResult("cluster-drivers", "warn", "; ".join(broken), fix)


def programs_check(settings: Settings) -> CheckResult:
    found, missing = [], []
    getters = [haproxy.binary]
    if settings.adapter in cluster.BUS_BINARIES:
        getters.insert(0, lambda: cluster.bus_binary(settings.adapter))
    for getter in getters:
        try:
            found.append(getter())
        except RtctlError as error:
            missing.append(error.hint or error.message)
    if missing:
        return CheckResult(
            "cluster-programs",
            "fail",
            "missing: " + "; ".join(m.removeprefix("install it: ") for m in missing),
            " and ".join(missing),
        )
    return CheckResult("cluster-programs", "pass", ", ".join(found))


def front_door_check(settings: Settings, state: cluster.ClusterState | None) -> CheckResult:
    limit = haproxy.open_files_limit()
    maxconn = settings.front_door_maxconn or haproxy.default_maxconn(limit)
    needed = haproxy.files_needed(maxconn)
    source = "RTCTL_FRONT_DOOR_MAXCONN" if settings.front_door_maxconn else "maxconn"
    processes = settings.front_door_processes
    if needed > limit:
        return CheckResult(
            "front-door-limit",
            "fail",
            f"{source} {maxconn} needs about {needed:,} open files (two per connection); a "
            f"process may open {limit:,} here: HAProxy refuses to start (Cannot raise FD limit)",
            f"set RTCTL_FRONT_DOOR_MAXCONN to at most {haproxy.default_maxconn(limit)}, and "
            "RTCTL_FRONT_DOOR_PROCESSES to more processes for more connections",
        )
    evidence = (
        f"{source} {maxconn} x 2 + {haproxy.FD_OVERHEAD} = {needed:,} open files <= limit "
        f"{limit:,}; {processes} process{'es carry' if processes > 1 else ' carries'} up to "
        f"{maxconn * processes:,} connections"
    )
    if state is not None:
        running = [p for p in state.front_doors if p is not None]
        for proc in running:
            allowed = _process_file_limit(proc.pid)
            if allowed is not None and allowed < needed:
                return CheckResult(
                    "front-door-limit",
                    "fail",
                    f"front door pid {proc.pid} may open {allowed:,} files; maxconn {maxconn} "
                    f"needs {needed:,}",
                    "restart it (`rtctl down && rtctl up`) from a shell with a higher limit",
                )
    return CheckResult("front-door-limit", "pass", evidence)


def _process_file_limit(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
    except (OSError, ValueError, IndexError):
        return None
    return None


def bus_checks(plan: cluster.ClusterPlan, answering: int) -> list[CheckResult]:
    if plan.adapter not in cluster.BUS_BINARIES:
        reason = f"the {plan.adapter} adapter has no bus (see cluster-adapter)"
        return [CheckResult("bus", "skip", reason), CheckResult("bus-prefix", "skip", reason)]
    where = f"{plan.adapter} at {plan.bus_host}:{plan.bus_port}"
    answer = cluster.bus_answers(plan.adapter, plan.bus_host, plan.bus_port)
    if answer is None:
        return [
            CheckResult(
                "bus",
                "fail",
                f"nothing answers as {where}: nodes cannot pass events to each other (each "
                "delivers only to its own clients) and the HTTP API sees one node's channels",
                "`rtctl up` starts the bus again (see `rtctl logs --component bus`), or fix "
                "RTCTL_BUS_PORT",
            ),
            CheckResult("bus-prefix", "skip", "the bus does not answer"),
        ]
    results = [CheckResult("bus", "pass", f"{where}: {answer}")]
    listeners = cluster.adapter_listeners(plan)
    if listeners is None:
        results.append(
            CheckResult(
                "bus-prefix",
                "skip",
                "NATS does not say who listens on a subject without its monitoring port",
            )
        )
    elif listeners > answering:
        results.append(
            CheckResult(
                "bus-prefix",
                "fail",
                f"{listeners} Soketi nodes listen on prefix {plan.prefix!r}, this cluster has "
                f"{answering}: another cluster shares the bus and the prefix, so clients of each "
                "receive the other's events and the HTTP API counts both",
                "give each cluster its own RTCTL_CLUSTER_PREFIX (or its own RTCTL_BUS_PORT)",
            )
        )
    elif listeners < answering:
        results.append(
            CheckResult(
                "bus-prefix",
                "fail",
                f"only {listeners} of {answering} answering nodes listen on prefix "
                f"{plan.prefix!r}: a node is on another adapter, bus or prefix",
                "start every node with the same SOKETI_ADAPTER_DRIVER, bus and prefix "
                "(`rtctl down && rtctl up`)",
            )
        )
    else:
        results.append(
            CheckResult(
                "bus-prefix",
                "pass",
                f"{listeners} nodes listen on prefix {plan.prefix!r}: this cluster's, no other",
            )
        )
    return results


def _node_credentials(settings: Settings, node: cluster.NodePlan, timeout: float) -> str | None:
    """Why this node refuses our credentials, or None when it accepts them."""
    import json

    import websocket

    from rtctl.protocol.httpapi import ApiClient

    direct = cluster.node_settings(settings, node)
    try:
        with ApiClient(direct, timeout=timeout) as client:
            client.channels()
    except AuthRejected as error:
        return f"HTTP API: {error.message}"
    except RtctlError:
        return None  # not a verdict on the credentials: the nodes check says what is wrong
    try:
        sock = websocket.create_connection(direct.ws_url, timeout=timeout)
        try:
            first = json.loads(sock.recv())
        finally:
            sock.close()
    except (OSError, ValueError, websocket.WebSocketException):
        return None  # unreachable now: the nodes check reports it
    if first.get("event") != "pusher:connection_established":
        return f"WebSocket /app/{settings.key}: {first.get('event')} {first.get('data')}"
    return None


def node_checks(
    settings: Settings,
    plan: cluster.ClusterPlan,
    state: cluster.ClusterState | None,
    timeout: float,
) -> tuple[list[CheckResult], int]:
    """The nodes check and the credentials check; also how many nodes answer."""
    folder = cluster.cluster_dir(native.state_dir(settings))
    routed: dict[str, str] = {}
    if state is not None:
        for k, proc in enumerate(state.front_doors, start=1):
            if proc is not None:
                for server in haproxy.server_states(folder / f"front-door-{k}.sock", timeout) or []:
                    if not server.up or server.name not in routed:
                        routed[server.name] = server.status
    with ThreadPoolExecutor(max_workers=len(plan.nodes)) as pool:
        probes = list(
            pool.map(
                lambda n: health.fetch(
                    f"http://127.0.0.1:{n.port}/ready", cluster.node_settings(settings, n), timeout
                ),
                plan.nodes,
            )
        )
    down, seen = [], []
    for node, probe in zip(plan.nodes, probes, strict=True):
        view = routed.get(node.name)
        if probe.status != 200:
            front = f"; the front door has it {view}" if view else ""
            down.append(f"{node.name} (127.0.0.1:{node.port}): /ready {probe.summary()}{front}")
        elif view is not None and not view.startswith("UP"):
            down.append(f"{node.name}: answers, but the front door has it {view}")
        else:
            seen.append(node.name)
    answering = [n for n, p in zip(plan.nodes, probes, strict=True) if p.status == 200]
    if down:
        nodes_result = CheckResult(
            "nodes",
            "fail",
            "; ".join(down),
            "`rtctl up` starts a stopped node again; `rtctl logs --component NODE` says why it "
            "stopped",
        )
    else:
        through = " and routed to by the front door" if routed else ""
        nodes_result = CheckResult(
            "nodes", "pass", f"{len(seen)} of {len(plan.nodes)} nodes ready{through}"
        )
    refused = [
        f"{node.name}: {reason}"
        for node in answering
        if (reason := _node_credentials(settings, node, timeout)) is not None
    ]
    if refused:
        creds = CheckResult(
            "node-credentials",
            "fail",
            "; ".join(refused),
            "every node must run with the same PUSHER_APP_ID/KEY/SECRET: restart the cluster "
            "with `rtctl down && rtctl up`",
        )
    elif answering:
        creds = CheckResult(
            "node-credentials",
            "pass",
            f"{len(answering)} nodes accept app {settings.app_id} (signed API call and "
            "WebSocket key)",
        )
    else:
        creds = CheckResult("node-credentials", "skip", "no node answers")
    return [creds, nodes_result], len(answering)


def _ours(
    results: list[CheckResult], settings: Settings, state: cluster.ClusterState
) -> list[CheckResult]:
    """The ports check for a cluster rtctl started here: its own processes hold the ports."""
    if not state.alive:
        return results
    front = next((p for p in state.front_doors if p is not None), None)
    parts = []
    if front is not None:
        parts.append(f"{settings.port} ours (front door pid {front.pid})")
    for node in state.plan.nodes:
        running = state.nodes.get(node.name)
        if running is not None:
            parts.append(
                f"{node.port} and {node.metrics_port} ours ({node.name} pid {running.pid})"
            )
    return [
        CheckResult("ports", "pass", ", ".join(parts)) if r.name == "ports" else r for r in results
    ]


def cluster_checks(
    settings: Settings, results: list[CheckResult], timeout: float = 3.0
) -> list[CheckResult]:
    """The hook `rtctl doctor` calls after its own checks: returns the full list of results."""
    if not settings.is_cluster:
        mode = queue_mode(settings)
        return results if mode.status == "pass" else [*results, mode]
    state = cluster.read_state(native.state_dir(settings))
    plan = state.plan if state is not None else cluster.plan(settings)
    results = _ours(results, settings, state) if state is not None else list(results)
    results += [
        adapter_check(settings),
        drivers_check(settings),
        queue_mode(settings),
        programs_check(settings),
        front_door_check(settings, state),
    ]
    node_results, answering = node_checks(settings, plan, state, timeout)
    results += bus_checks(plan, answering)
    results += node_results
    return results
