"""`rtctl doctor`'s cluster rules against real clusters with real faults (a node on the wrong
adapter, a second cluster on the same bus and prefix, a node with other credentials, a node and
the bus stopped), and the configuration rules that need no server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from rtctl.runtime import cluster, haproxy
from tests.cluster_support import Cluster, alive, cluster_env, make_cluster
from tests.helpers import make_server, run_cli, write_env

pytestmark = pytest.mark.soketi

CLUSTER_RULES = [
    "cluster-adapter",
    "cluster-drivers",
    "queue-mode",
    "cluster-programs",
    "front-door-limit",
    "bus",
    "bus-prefix",
    "node-credentials",
    "nodes",
]


def doctor() -> tuple[int, dict[str, dict]]:
    result = run_cli(["doctor", "--json"])
    return result.exit_code, {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def test_healthy_cluster_passes_every_rule(
    redis_cluster: Cluster, use_cluster: Callable[..., Path]
) -> None:
    use_cluster(redis_cluster)
    code, checks = doctor()
    assert code == 0, {n: c for n, c in checks.items() if c["status"] != "pass"}
    assert [name for name in checks if name in CLUSTER_RULES] == CLUSTER_RULES
    assert {checks[name]["status"] for name in CLUSTER_RULES} == {"pass"}
    recorded = redis_cluster.recorded()
    front = recorded.front_doors[0]
    assert front is not None
    assert checks["ports"]["evidence"].startswith(
        f"{redis_cluster.port} ours (front door pid {front.pid}), "
    )
    assert checks["cluster-drivers"]["evidence"] == (
        "cache redis, rate limiter redis, queue redis: shared by every node"
    )
    assert checks["bus-prefix"]["evidence"] == (
        f"3 nodes listen on prefix 'rtctl-{redis_cluster.env['PUSHER_APP_ID']}': this cluster's, "
        "no other"
    )
    assert checks["nodes"]["evidence"] == "3 of 3 nodes ready and routed to by the front door"


def test_a_node_on_the_wrong_adapter_is_seen_on_the_bus(
    wrong_adapter_cluster: Cluster, use_cluster: Callable[..., Path]
) -> None:
    use_cluster(wrong_adapter_cluster)
    code, checks = doctor()
    assert code == 1
    prefix = f"rtctl-{wrong_adapter_cluster.env['PUSHER_APP_ID']}"
    assert checks["bus-prefix"]["status"] == "fail"
    assert checks["bus-prefix"]["evidence"] == (
        f"only 2 of 3 answering nodes listen on prefix {prefix!r}: a node is on another adapter, "
        "bus or prefix"
    )


def test_two_clusters_on_one_bus_with_one_prefix(
    redis_cluster: Cluster,
    use_cluster: Callable[..., Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # a second cluster on the first one's bus, with the same prefix (same app id: copied .env)
    second = make_cluster(
        tmp_path_factory.mktemp("second-cluster"),
        nodes=2,
        adapter="redis",
        RTCTL_BUS_PORT=redis_cluster.env["RTCTL_BUS_PORT"],
        PUSHER_APP_ID=redis_cluster.env["PUSHER_APP_ID"],
    )
    state = second.start()
    try:
        assert state.bus_shared is True and state.bus is None  # shared, not started
        use_cluster(redis_cluster)
        code, checks = doctor()
        assert code == 1
        assert checks["bus-prefix"]["evidence"].startswith(
            "5 Soketi nodes listen on prefix "
            f"'rtctl-{redis_cluster.env['PUSHER_APP_ID']}', this cluster has 3: another cluster "
            "shares the bus and the prefix"
        )
        assert checks["bus-prefix"]["fix"] == (
            "give each cluster its own RTCTL_CLUSTER_PREFIX (or its own RTCTL_BUS_PORT)"
        )
    finally:
        second.stop()
    # stopping the second cluster left the shared bus (and the first cluster) alone
    bus = redis_cluster.recorded().bus
    assert bus is not None and alive(bus.pid)
    assert doctor()[0] == 0


def test_other_credentials_a_stopped_node_and_a_stopped_bus(
    tmp_path_factory: pytest.TempPathFactory, use_cluster: Callable[..., Path]
) -> None:
    odd = make_cluster(
        tmp_path_factory.mktemp("odd-cluster"),
        nodes=2,
        adapter="redis",
        node_overrides={"node-2": {"SOKETI_DEFAULT_APP_SECRET": "another-secret-entirely"}},
    )
    odd.start()
    try:
        use_cluster(odd)
        code, checks = doctor()
        assert code == 1
        assert checks["node-credentials"]["status"] == "fail"
        assert checks["node-credentials"]["evidence"].startswith("node-2: HTTP API: ")
        assert "node-1" not in checks["node-credentials"]["evidence"]

        cluster.stop_node(odd.state, "node-2")
        code, checks = doctor()
        assert checks["nodes"]["status"] == "fail"
        assert checks["nodes"]["evidence"].startswith(
            f"node-2 (127.0.0.1:{odd.node_port(2)}): /ready no answer (connection refused)"
        )

        cluster.stop_proc(cluster.cluster_dir(odd.state), "bus")
        code, checks = doctor()
        assert checks["bus"]["evidence"] == (
            f"nothing answers as redis at 127.0.0.1:{odd.env['RTCTL_BUS_PORT']}: nodes cannot "
            "pass events to each other (each delivers only to its own clients) and the HTTP API "
            "sees one node's channels"
        )
        assert checks["bus-prefix"]["status"] == "skip"
        status = run_cli(["status", "--json"])
        assert status.exit_code == 1
        rows = {c["name"]: c for c in json.loads(status.stdout)["components"]}
        assert rows["bus"]["evidence"].startswith("not running: nodes cannot reach each other")
        assert rows["node-2"]["running"] is False
    finally:
        odd.stop()


# --- configuration rules (no server needed) -----------------------------------------------------


def config_doctor(tmp_path: Path, env: dict[str, str]) -> dict[str, dict]:
    write_env(tmp_path / ".env", env)
    return doctor()[1]


def test_several_nodes_on_the_local_adapter(tmp_path: Path) -> None:
    checks = config_doctor(tmp_path, cluster_env(3, "local"))
    assert checks["cluster-adapter"] == {
        "name": "cluster-adapter",
        "status": "fail",
        "evidence": "3 nodes on the local adapter: each node delivers events only to its own "
        "clients, and the HTTP API of each sees only its own channels",
        "fix": "set SOKETI_ADAPTER_DRIVER=redis (or nats) in .env",
    }


def test_nats_keeps_cache_limits_and_webhooks_per_node(tmp_path: Path) -> None:
    checks = config_doctor(tmp_path, cluster_env(3, "nats"))
    drivers = checks["cluster-drivers"]
    assert drivers["status"] == "warn"
    assert "a client subscribing on another node gets no cache event" in drivers["evidence"]
    assert "an app may send 3x its limits through the front door" in drivers["evidence"]
    queue = "SOKETI_QUEUE_DRIVER=sync: each node sends its own clients' webhooks in-process"
    assert queue in drivers["evidence"]
    assert drivers["fix"].startswith("Soketi 1.6 has no NATS cache, rate limiter or queue")
    checks = config_doctor(tmp_path, cluster_env(3, "nats", SOKETI_CACHE_DRIVER="redis"))
    assert checks["cluster-adapter"]["status"] == "fail"
    assert checks["cluster-adapter"]["evidence"] == (
        "SOKETI_CACHE_DRIVER=redis, but the bus is NATS: rtctl runs no Redis for them"
    )


def test_local_rate_limiter_on_redis_is_named(tmp_path: Path) -> None:
    checks = config_doctor(tmp_path, cluster_env(2, "redis", SOKETI_RATE_LIMITER_DRIVER="local"))
    assert checks["cluster-drivers"]["status"] == "warn"
    assert checks["cluster-drivers"]["evidence"] == (
        "SOKETI_RATE_LIMITER_DRIVER=local: every node counts limits on its own, so an app may send "
        "2x its limits through the front door"
    )


def test_server_mode_with_the_sync_queue_drops_webhooks_even_on_one_node(
    tmp_path: Path, soketi: object
) -> None:
    env = make_server(tmp_path, SOKETI_MODE="server").env
    checks = config_doctor(tmp_path, env)
    assert checks["queue-mode"]["status"] == "fail"
    assert checks["queue-mode"]["evidence"].startswith(
        "SOKETI_MODE=server with SOKETI_QUEUE_DRIVER=sync: a server-mode node hands webhooks to "
        "a queue that no worker reads"
    )
    # one node, default settings: none of the cluster rules appear at all
    assert "queue-mode" not in config_doctor(tmp_path, make_server(tmp_path).env)


def test_front_door_limit_over_the_open_files_limit(tmp_path: Path) -> None:
    checks = config_doctor(tmp_path, cluster_env(3, "redis", RTCTL_FRONT_DOOR_MAXCONN="50000"))
    limit = haproxy.open_files_limit()
    assert checks["front-door-limit"]["status"] == "fail"
    assert checks["front-door-limit"]["evidence"] == (
        f"RTCTL_FRONT_DOOR_MAXCONN 50000 needs about 100,100 open files (two per connection); a "
        f"process may open {limit:,} here: HAProxy refuses to start (Cannot raise FD limit)"
    )
    assert checks["front-door-limit"]["fix"].startswith(
        f"set RTCTL_FRONT_DOOR_MAXCONN to at most {haproxy.default_maxconn(limit)}"
    )


def test_a_front_door_over_the_limit_really_fails_to_start(tmp_path: Path) -> None:
    """What the rule predicts, for real: HAProxy refuses, `up` exits 10 and stops the rest."""
    limit = haproxy.open_files_limit()
    env = cluster_env(2, "redis", RTCTL_FRONT_DOOR_MAXCONN=str(limit))
    write_env(tmp_path / ".env", env)
    result = run_cli(["up"])
    assert result.exit_code == 10, result.stderr
    assert "error: the front door (haproxy, process 1) exited during start" in result.stderr
    assert "Cannot raise FD limit" in result.stderr
    assert not any((tmp_path / ".rtctl" / "cluster").glob("**/*.pid.json"))
