"""`rtctl bench` with worker processes and on a real cluster: one report, every delivery
counted once, per-node figures, and the processes that did the work."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cluster_support import Cluster
from tests.helpers import run_cli

pytestmark = pytest.mark.soketi

SMALL = ["-n", "60", "-c", "6", "-r", "30", "-d", "1", "--drain", "5", "--json"]


def bench(*args: str) -> tuple[int, dict]:
    result = run_cli(["bench", *args])
    return result.exit_code, json.loads(result.stdout)


def test_workers_through_the_front_door_share_one_report(
    redis_cluster: Cluster, use_cluster: Callable[..., Path]
) -> None:
    use_cluster(redis_cluster)
    code, report = bench(*SMALL, "--workers", "2")
    assert code == 0, report["verdict"]
    delivery = report["delivery"]
    assert report["connections"]["subscribed"] == 60
    assert delivery["expected"] == report["publish"]["sent"] * 10 > 0  # 60 subscribers / 6 channels
    assert (delivery["received"], delivery["duplicates"]) == (delivery["expected"], 0)
    workers = report["rtctl"]["per_worker"]
    assert [(w["connections"], w["subscribed"]) for w in workers] == [(30, 30), (30, 30)]
    # each worker connects from its own loopback address (ephemeral ports per address)
    assert [w["source_address"] for w in workers] == ["127.0.0.1", "127.0.0.2"]
    processes = {p["name"]: p for p in report["processes"]}
    assert {
        "worker-0",
        "worker-1",
        "publisher",
        "node-1",
        "node-2",
        "node-3",
        "front-door-1",
        "bus",
    } <= set(processes)
    # the front door spread the 60 subscribers over the three nodes
    assert sum(processes[f"node-{i}"]["connections"] for i in (1, 2, 3)) == 60
    assert all(processes[f"node-{i}"]["connections"] > 0 for i in (1, 2, 3))
    assert all(
        processes[name]["cpu_percent"] is not None for name in ("node-1", "front-door-1", "bus")
    )
    assert report["limit"]["reason"]
    assert report["targets"] == [
        {
            **report["targets"][0],
            "name": "front-door",
            "subscribers": 60,
            "received": delivery["received"],
        }
    ]


def test_direct_spreads_subscribers_over_the_nodes(
    redis_cluster: Cluster, use_cluster: Callable[..., Path]
) -> None:
    use_cluster(redis_cluster)
    code, report = bench(*SMALL, "--direct")
    assert code == 0, report["verdict"]
    rows = report["targets"]
    assert [row["name"] for row in rows] == ["node-1", "node-2", "node-3"]
    assert [row["subscribers"] for row in rows] == [24, 18, 18]  # groups of 6, round robin
    assert all(row["received"] == row["expected"] > 0 and row["rate"] == 1.0 for row in rows)
    assert [row["url"] for row in rows] == [
        f"ws://127.0.0.1:{redis_cluster.node_port(i)}" for i in (1, 2, 3)
    ]
    table = run_cli(["bench", *SMALL[:-1], "--direct"])
    assert table.exit_code == 0
    assert any(
        line.split("│")[1].strip() == "on node-2"
        for line in table.stdout.splitlines()
        if "│" in line
    )


def test_direct_needs_a_cluster(env_file: Path) -> None:
    result = run_cli(["--env-file", str(env_file), "bench", "--direct", "-n", "5", "-c", "1"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        "error: --direct connects subscribers to a cluster's nodes, but the configuration names "
        "one server"
    )


def test_workers_against_one_server(env_file: Path) -> None:
    result = run_cli(["--env-file", str(env_file), "bench", *SMALL, "--workers", "3"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["delivery"]["rate"] == 1.0
    assert [w["connections"] for w in report["rtctl"]["per_worker"]] == [20, 20, 20]
    assert report["targets"][0]["name"] == "server"


def test_more_workers_than_connections_is_a_usage_error(env_file: Path) -> None:
    result = run_cli(["--env-file", str(env_file), "bench", "-n", "2", "-c", "1", "--workers", "3"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == "error: --workers 3 is more than --connections 2"
