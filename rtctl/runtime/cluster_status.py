"""`rtctl status` for a cluster: every component (front door, each node, the bus) with its health,
and connections and messages per node.

Works for a cluster rtctl started here (PIDs from the state folder, the front door's view of each
node from its stats socket) and for one it did not start (a compose project, a cluster elsewhere):
then the addresses come from `.env` and only what answers on the network is shown.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtctl.config import Settings
from rtctl.errors import ExitCode
from rtctl.runtime import cluster, haproxy, health, native


@dataclass
class Component:
    name: str  # front-door, front-door-2, node-1, bus
    kind: str  # front-door | node | bus
    address: str
    running: bool  # something answers there (or our process is alive)
    healthy: bool
    evidence: str
    pid: int | None = None
    connections: int | None = None
    messages_in: int | None = None
    messages_out: int | None = None
    routed: str | None = None  # a node as the front door sees it: UP, DOWN, ...

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ClusterStatus:
    runtime: str | None
    managed: bool
    adapter: str
    started_at: float | None
    endpoints: dict[str, str | None]
    components: list[Component] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return any(c.running for c in self.components)

    @property
    def healthy(self) -> bool:
        return bool(self.components) and all(c.healthy for c in self.components)

    @property
    def exit_code(self) -> ExitCode:
        return health.status_exit_code(self.running, self.healthy)

    def to_dict(self) -> dict[str, Any]:
        nodes = [c for c in self.components if c.kind == "node"]
        return {
            "running": self.running,
            "healthy": self.healthy,
            "managed": self.managed,
            "runtime": self.runtime,
            "cluster": {
                "nodes": len(nodes),
                "adapter": self.adapter,
                "connections": sum(c.connections or 0 for c in nodes),
            },
            "uptime_seconds": None
            if self.started_at is None
            else round(max(0.0, time.time() - self.started_at)),
            "endpoints": self.endpoints,
            "components": [c.to_dict() for c in self.components],
        }


def _front_door(
    settings: Settings, recorded: cluster.ClusterState | None, folder: Path, timeout: float
) -> tuple[list[Component], dict[str, str]]:
    """The front door's components, and each node's state as the front door sees it."""
    ready = health.fetch(f"{settings.api_base}/ready", settings, timeout)
    address = f"{settings.host}:{settings.port}"
    routed: dict[str, str] = {}
    if recorded is None:
        answering = ready.status != 0
        return [
            Component(
                "front-door",
                "front-door",
                address,
                answering,
                ready.ok,
                f"/ready {ready.summary()}",
            )
        ], routed
    components = []
    for k, proc in enumerate(recorded.front_doors, start=1):
        name = f"front-door-{k}"
        if proc is None:
            components.append(Component(name, "front-door", address, False, False, "not running"))
            continue
        states = haproxy.server_states(folder / f"{name}.sock", timeout)
        if states is None:
            evidence, seen_all = "process alive, its stats socket does not answer", False
        else:
            for state in states:
                routed.setdefault(state.name, state.status)
                if not state.up:
                    routed[state.name] = state.status
            down = [s.name for s in states if not s.up]
            seen_all = not down
            evidence = (
                f"routes to {len(states) - len(down)}/{len(states)} nodes"
                + (f" (not to {', '.join(down)})" if down else "")
                + ("" if ready.ok else f"; /ready {ready.summary()}")
            )
        components.append(
            Component(
                name,
                "front-door",
                address,
                True,
                ready.ok and seen_all,
                evidence,
                pid=proc.pid,
                connections=None if states is None else sum(s.current for s in states),
            )
        )
    return components, routed


def _node(
    settings: Settings,
    node: cluster.NodePlan,
    running: native.Running | None,
    managed: bool,
    timeout: float,
) -> Component:
    direct = cluster.node_settings(settings, node)
    probes = health.check(direct, timeout)
    figures = probes.metrics.figures if probes.metrics is not None else None
    address = f"127.0.0.1:{node.port}"
    if probes.root.status == 0:
        evidence = (
            "not running" if managed and running is None else f"no answer ({probes.root.error})"
        )
        return Component(
            node.name,
            "node",
            address,
            running is not None,
            False,
            evidence,
            pid=running.pid if running else None,
        )
    if probes.healthy:
        evidence = "/ready 200"
    else:
        evidence = (
            f"/ {probes.root.summary()}, /ready {probes.ready.summary()}, "
            f"/accept-traffic {probes.accept_traffic.summary()}"
        )
    if probes.metrics is not None and figures is None:
        evidence += f"; metrics: {probes.metrics.error}"
    return Component(
        node.name,
        "node",
        address,
        True,
        probes.healthy,
        evidence,
        pid=running.pid if running else None,
        connections=figures.connections if figures else None,
        messages_in=figures.messages_in if figures else None,
        messages_out=figures.messages_out if figures else None,
    )


def _bus(
    plan: cluster.ClusterPlan, recorded: cluster.ClusterState | None, timeout: float
) -> Component:
    if plan.adapter not in cluster.BUS_BINARIES:
        return Component(
            "bus",
            "bus",
            "-",
            False,
            False,
            f"none: the {plan.adapter} adapter "
            "cannot join nodes (set SOKETI_ADAPTER_DRIVER=redis or nats)",
        )
    answer = cluster.bus_answers(plan.adapter, plan.bus_host, plan.bus_port, timeout)
    pid = recorded.bus.pid if recorded is not None and recorded.bus is not None else None
    shared = recorded is not None and recorded.bus_shared
    if answer is None:
        gone = recorded is not None and not shared and recorded.bus is None
        evidence = "not running" if gone else "does not answer"
        evidence += ": nodes cannot reach each other (events stay on the node they reach)"
        return Component(
            "bus",
            "bus",
            f"{plan.bus_host}:{plan.bus_port}",
            pid is not None,
            False,
            evidence,
            pid=pid,
        )
    note = " (shared: not started by this cluster)" if shared else ""
    return Component(
        "bus",
        "bus",
        f"{plan.bus_host}:{plan.bus_port}",
        True,
        True,
        f"{answer}{note}",
        pid=pid,
    )


def status(
    settings: Settings, timeout: float = 2.0, endpoints: dict[str, str | None] | None = None
) -> ClusterStatus:
    folder = native.state_dir(settings)
    recorded = cluster.read_state(folder)
    plan = recorded.plan if recorded is not None else cluster.plan(settings)
    managed = recorded is not None
    cluster_folder = cluster.cluster_dir(folder)
    with ThreadPoolExecutor(max_workers=len(plan.nodes) + 2) as pool:
        front = pool.submit(_front_door, settings, recorded, cluster_folder, timeout)
        bus = pool.submit(_bus, plan, recorded, timeout)
        nodes = [
            pool.submit(
                _node,
                settings,
                node,
                recorded.nodes.get(node.name) if recorded is not None else None,
                managed,
                timeout,
            )
            for node in plan.nodes
        ]
        front_components, routed = front.result()
        node_components = [future.result() for future in nodes]
        bus_component = bus.result()
    for component in node_components:
        component.routed = routed.get(component.name)
        if component.routed is not None and not component.routed.startswith("UP"):
            component.healthy = False
            component.evidence += f"; the front door has it {component.routed}"
    runtime = "native" if managed else None
    return ClusterStatus(
        runtime=runtime,
        managed=managed,
        adapter=plan.adapter,
        started_at=recorded.started_at if recorded is not None else None,
        endpoints=endpoints or {},
        components=[*front_components, *node_components, bus_component],
    )
