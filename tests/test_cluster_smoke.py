"""`rtctl smoke` on real clusters: it passes on healthy ones (Redis and NATS), and its cluster
checks fail, naming the culprit, when a fault is injected for real (a node on the wrong adapter,
a node stopped, the bus stopped)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from rtctl.runtime import cluster
from tests.cluster_support import Cluster, alive, make_cluster
from tests.helpers import run_cli

pytestmark = pytest.mark.soketi

CLUSTER_CHECKS = [
    "cluster-bus",
    "cross-node",
    "cross-node-client-event",
    "cross-node-presence",
    "cross-node-api",
    "cross-node-terminate",
]
SINGLE = [
    "config",
    "health",
    "connect",
    "subscribe",
    "deliver",
    "client-event",
    "cache",
    "api-read",
]


def smoke(*args: str) -> tuple[int, dict]:
    result = run_cli(["smoke", "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def checks(report: dict) -> dict[str, dict]:
    return {check["name"]: check for check in report["checks"]}


def test_healthy_redis_cluster_passes_every_check(
    redis_cluster: Cluster, use_cluster: Callable[..., Path]
) -> None:
    use_cluster(redis_cluster)
    code, report = smoke()
    assert code == 0, report
    found = checks(report)
    assert [c["name"] for c in report["checks"]] == [
        "config",
        "health",
        "cluster-bus",
        *SINGLE[2:],
        "gateway",
        "webhooks",
        *CLUSTER_CHECKS[1:],
        "cleanup",
    ]
    assert {name: found[name]["status"] for name in CLUSTER_CHECKS} == dict.fromkeys(
        CLUSTER_CHECKS, "pass"
    )
    cross = found["cross-node"]
    # one event through each of three nodes and the front door, to a socket on every node
    assert cross["evidence"].startswith(
        "one event through each of node-1, node-2, node-3 and the front door reached the "
        "socket on every node: 12 deliveries, each once, byte-identical;"
    )
    assert set(cross["details"]["deliveries"].values()) == {1}
    assert len(cross["details"]["deliveries"]) == 12
    assert found["cross-node-client-event"]["evidence"].startswith(
        "sent on node-1, arrived on the 2 other nodes: 2 deliveries, each once, byte-identical"
    )
    assert found["cross-node-presence"]["evidence"] == (
        "3 members, one per node, listed by users asked on each of 3 nodes"
    )
    counts = found["cross-node-api"]["details"]["subscription_count"]
    assert all(set(per_node.values()) == {3} for per_node in counts.values())
    assert found["cross-node-terminate"]["evidence"].startswith(
        "user signed in on node-1, terminated through node-2: disconnected after"
    )
    assert found["cleanup"]["status"] == "pass"


def test_healthy_nats_cluster_passes(
    nats_cluster: Cluster, use_cluster: Callable[..., Path]
) -> None:
    use_cluster(nats_cluster)
    code, report = smoke()
    assert code == 0, report
    found = checks(report)
    assert found["cluster-bus"]["evidence"].startswith(
        f"nats at 127.0.0.1:{nats_cluster.env['RTCTL_BUS_PORT']}: NATS 2."
    )
    assert found["cross-node"]["status"] == "pass"
    assert found["cross-node-api"]["status"] == "pass"
    # sign-in is off on this app: nothing to terminate, and smoke says why
    assert found["cross-node-terminate"]["status"] == "skip"
    assert (
        "SOKETI_DEFAULT_APP_USER_AUTHENTICATION=false" in found["cross-node-terminate"]["evidence"]
    )


def test_failover_stops_a_node_and_brings_it_back(
    redis_cluster: Cluster, use_cluster: Callable[..., Path]
) -> None:
    use_cluster(redis_cluster)
    before = redis_cluster.recorded()
    code, report = smoke("--failover", "--checks", "failover")
    assert code == 0, report
    failover = checks(report)["failover"]
    victim = failover["details"]["victim"]
    old_pid = before.nodes[victim].pid  # type: ignore[union-attr]
    assert failover["evidence"].startswith(f"stopped {victim} (pid {old_pid}): the front door")
    assert "reconnected through the front door to" in failover["evidence"]
    assert failover["details"]["marked_down_s"] < 10
    after = redis_cluster.recorded()
    new = after.nodes[victim]
    assert new is not None and new.pid != old_pid and alive(new.pid)
    assert not alive(old_pid)
    # the cluster is whole again: a full smoke passes
    code, report = smoke()
    assert code == 0, report


def test_node_on_the_wrong_adapter_fails_cross_node_and_is_named(
    wrong_adapter_cluster: Cluster, use_cluster: Callable[..., Path]
) -> None:
    use_cluster(wrong_adapter_cluster)
    # Only the cluster checks: which single-server check fails first depends on where the front
    # door sends each socket and API call; cross-node says which node is not on the bus.
    result = run_cli(
        [
            "smoke",
            "--json",
            "--timeout",
            "2",
            "--checks",
            "cross-node-client-event,cross-node-presence,cross-node-api",
        ]
    )
    assert result.exit_code == 6  # events did not arrive in time
    report = json.loads(result.stdout)
    found = checks(report)
    assert report["failed_check"] == "cross-node"
    evidence = found["cross-node"]["evidence"]
    # node-1's and node-2's events miss node-3, and node-3's own event stays on node-3
    assert "published via node-1: missed on node-3" in evidence
    assert "published via node-2: missed on node-3" in evidence
    assert "published via node-3: missed on node-1, node-2" in evidence
    assert found["cross-node"]["hint"].startswith(
        "node-3 receives only what is published through itself: not on the cluster's bus"
    )
    for name in ("cross-node-client-event", "cross-node-presence", "cross-node-api"):
        assert found[name] == {
            **found[name],
            "status": "skip",
            "evidence": "depends on cross-node (fail)",
        }


def test_stopped_node_and_stopped_bus_are_named(
    tmp_path_factory: pytest.TempPathFactory, use_cluster: Callable[..., Path]
) -> None:
    faulty = make_cluster(tmp_path_factory.mktemp("faulty"), nodes=2, adapter="redis")
    faulty.start()
    try:
        use_cluster(faulty)
        # 1. node-2 stopped by PID: smoke cannot reach it and says which
        cluster.stop_node(faulty.state, "node-2")
        code, report = smoke("--timeout", "2")
        assert code == 4
        cross = checks(report)["cross-node"]
        assert cross["evidence"].startswith(f"node-2 (127.0.0.1:{faulty.node_port(2)}): ")
        assert "`rtctl up` starts a stopped one again" in cross["hint"]
        # `rtctl up` starts it again, and smoke passes
        up = run_cli(["up"])
        assert up.exit_code == 0, up.stderr
        assert "started again: node-2" in up.stderr
        assert smoke()[0] == 0
        # 2. the bus stopped: nodes still answer, but smoke names the bus
        bus = faulty.recorded().bus
        assert bus is not None
        cluster.stop_proc(cluster.cluster_dir(faulty.state), "bus")
        code, report = smoke("--timeout", "2")
        assert code == 4
        assert report["failed_check"] == "cluster-bus"
        assert checks(report)["cluster-bus"]["evidence"] == (
            f"the bus (redis at 127.0.0.1:{faulty.env['RTCTL_BUS_PORT']}) does not answer: "
            "nodes cannot pass events to each other"
        )
        assert checks(report)["cross-node"]["status"] == "fail"
        assert "the redis bus at" in checks(report)["cross-node"]["evidence"]
    finally:
        faulty.stop()
    assert faulty.pids() == []


def test_smoke_pointed_at_node_addresses(
    redis_cluster: Cluster, use_cluster: Callable[..., Path]
) -> None:
    # .env names one server (the front door); --node names the nodes
    use_cluster(redis_cluster, RTCTL_SOKETI_NODES="1")
    nodes = [f"127.0.0.1:{redis_cluster.node_port(i)}" for i in (1, 2, 3)]
    code, report = smoke(*(arg for node in nodes for arg in ("--node", node)))
    assert code == 0, report
    found = checks(report)
    assert found["cluster-bus"]["status"] == "skip"
    assert found["cross-node"]["evidence"].startswith(
        f"one event through each of {', '.join(nodes)} and the front door"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--node", "127.0.0.1:6002"],
            "error: --node was given once: cluster checks need at least two nodes",
        ),
        (["--node", "nohost", "--node", "127.0.0.1:1"], "error: --node 'nohost' is not HOST:PORT"),
        (["--checks", "cross-nodes"], "error: unknown check 'cross-nodes' in --checks"),
    ],
)
def test_bad_node_options_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / ".env").write_text("PUSHER_APP_ID=1\nPUSHER_APP_KEY=k1\nPUSHER_APP_SECRET=s1\n")
    result = run_cli(["smoke", *args])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == message
