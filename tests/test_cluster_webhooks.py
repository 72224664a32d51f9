"""Webhooks from a real 3-node cluster (the session's Redis cluster, whose nodes send webhooks):
every node gets the same webhook configuration, webhooks go through the Redis queue (BullMQ) and
each arrives once whichever node produced it, and smoke's webhooks check puts its two sockets on
two nodes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rtctl.config import load_settings
from rtctl.ops.webhook_receiver import Received, WebhookReceiver
from rtctl.protocol import PusherSocket
from rtctl.protocol.webhooks import SOKETI_EVENT_TYPES
from rtctl.runtime import cluster
from rtctl.runtime.cluster_status import status
from tests.cluster_support import Cluster
from tests.helpers import run_cli
from tests.waiting import wait_until

pytestmark = pytest.mark.soketi


def process_environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode()
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def test_every_node_gets_the_same_webhooks_and_the_redis_queue(redis_cluster: Cluster) -> None:
    settings = load_settings(environ={**redis_cluster.env, **redis_cluster.webhook_env})
    composed = settings.webhooks.soketi_json
    assert composed is not None and redis_cluster.webhook_url in composed
    nodes = redis_cluster.recorded().nodes
    assert sorted(nodes) == ["node-1", "node-2", "node-3"]
    for name, running in nodes.items():
        assert running is not None, name
        env = process_environment(running.pid)
        assert env["SOKETI_DEFAULT_APP_WEBHOOKS"] == composed, name
        assert env["SOKETI_QUEUE_DRIVER"] == "redis", name


def test_a_node_started_again_sends_the_webhooks_of_its_siblings(redis_cluster: Cluster) -> None:
    """Failover and `rtctl up` start a dead node again from what the cluster recorded: with the
    webhooks the others send, even when `.env` no longer says so (here: it never did)."""
    composed = load_settings(
        environ={**redis_cluster.env, **redis_cluster.webhook_env}
    ).webhooks.soketi_json
    settings = redis_cluster.settings()
    assert settings.webhooks.soketi_json is None  # this .env has no webhooks
    cluster.stop_node(redis_cluster.state, "node-3")
    running = cluster.start_node(settings, redis_cluster.state, "node-3")
    assert process_environment(running.pid)["SOKETI_DEFAULT_APP_WEBHOOKS"] == composed
    # the front door routes to it again before the next test uses the cluster
    wait_until(lambda: status(settings).healthy, 20, "the cluster healthy again", interval=0.2)


def node_socket(found: Cluster, index: int, user: str) -> PusherSocket:
    settings = found.settings()
    node = cluster.plan(settings).nodes[index - 1]
    return PusherSocket(cluster.node_settings(settings, node), user_id=user, user_info={})


def test_webhooks_through_the_redis_queue_arrive_once_from_any_node(
    redis_cluster: Cluster,
) -> None:
    settings = redis_cluster.settings()
    url = redis_cluster.webhook_url
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    channel = f"presence-queue-{time.monotonic_ns()}"
    got: list[tuple[str, str | None]] = []

    def expect(receiver: WebhookReceiver, *wanted: tuple[str, str | None]) -> None:
        """Wait for these webhooks of our channel (any order) before the next action."""
        missing = list(wanted)
        deadline = time.monotonic() + 10
        while missing and time.monotonic() < deadline:
            item = receiver.get(timeout=0.2)
            if not isinstance(item, Received):
                continue
            for event in item.events:
                if event.get("channel") == channel:
                    pair = (str(event["name"]), event.get("user_id"))
                    got.append(pair)
                    if pair in missing:
                        missing.remove(pair)
        assert not missing, f"missing {missing}; arrived {got}"

    with WebhookReceiver(settings.key, settings.secret, port=port) as receiver:
        ann = node_socket(redis_cluster, 1, "ann")
        bob = node_socket(redis_cluster, 3, "bob")
        try:
            ann.connect(10)
            bob.connect(10)
            time.sleep(0.3)  # what earlier tests' sockets queued is queued by now
            jobs_before = queued_jobs(settings)
            ann.subscribe(channel, 10)
            expect(receiver, ("channel_occupied", None), ("member_added", "ann"))
            bob.subscribe(channel, 10)  # on another node: the channel is occupied already
            expect(receiver, ("member_added", "bob"))
            bob.send_client_event(channel, "client-wave", {"hi": 1})
            expect(receiver, ("client_event", "bob"))
            ann.unsubscribe(channel)  # bob is still there: not vacated
            expect(receiver, ("member_removed", "ann"))
            bob.unsubscribe(channel)
            expect(receiver, ("member_removed", "bob"), ("channel_vacated", None))
        finally:
            ann.close()
            bob.close()
        time.sleep(1.0)  # a duplicate from another node's worker would arrive by now
        while (item := receiver.get(timeout=0.1)) is not None:
            if isinstance(item, Received):
                got += [
                    (str(e["name"]), e.get("user_id"))
                    for e in item.events
                    if e.get("channel") == channel
                ]
        assert receiver.rejected == []
    assert got[:5] == [
        ("channel_occupied", None),
        ("member_added", "ann"),
        ("member_added", "bob"),
        ("client_event", "bob"),
        ("member_removed", "ann"),
    ]
    assert sorted(got[5:], key=str) == [("channel_vacated", None), ("member_removed", "bob")]
    # each was one job in the cluster's Redis (BullMQ, one queue per event type), not in-process
    jobs = queued_jobs(settings)
    added = {name: jobs[name] - jobs_before.get(name, 0) for name in jobs}
    assert {name: count for name, count in added.items() if count} == {
        "channel_occupied": 1,
        "member_added": 2,
        "client_event": 1,
        "member_removed": 2,
        "channel_vacated": 1,
    }


def queued_jobs(settings: Any) -> dict[str, int]:
    """Jobs ever added to each webhook queue in Redis (BullMQ's id counter per queue)."""
    counts = {}
    for name in SOKETI_EVENT_TYPES:
        key = f"{settings.cluster_prefix}:{name}_webhooks:id"
        counts[name] = int(cluster.redis_command("127.0.0.1", settings.bus_port, "GET", key) or 0)
    return counts


def smoke(*args: str) -> tuple[int, dict[str, Any]]:
    result = run_cli(["smoke", "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def test_smoke_webhooks_on_a_cluster_uses_two_nodes_and_counts_each_webhook(
    redis_cluster: Cluster, use_cluster: Callable[..., Path]
) -> None:
    use_cluster(redis_cluster, **redis_cluster.webhook_env)
    code, report = smoke("--checks", "webhooks")
    assert code == 0, report
    check = next(c for c in report["checks"] if c["name"] == "webhooks")
    assert check["status"] == "pass", check
    details = check["details"]
    assert details["url"] == redis_cluster.webhook_url
    assert details["sockets"] == {"a": "node-1", "b": "node-2"}
    assert "; sockets on node-1 and node-2" in check["evidence"]
    a, b = (f"smoke-{side}-{report['run_id']}" for side in "ab")
    copies = details["copies"]
    assert sorted(copies) == sorted(
        [
            "channel_occupied",
            f"member_added {a}",
            f"member_added {b}",
            f"client_event {b}",
            f"member_removed {a}",
            f"member_removed {b}",
            "channel_vacated",
        ]
    )
    assert all(count >= 1 for count in copies.values())
    # a second copy (two nodes that saw the channel empty at the same moment) is a warning,
    # named as such, never a failure; exactly the events that came twice are named
    duplicated = sorted(label for label, count in copies.items() if count > 1)
    warned = sorted(
        w["detail"].split(" arrived ", 1)[0]
        for w in details["warnings"]
        if w["name"] == "duplicate-webhooks"
    )
    assert warned == duplicated
    for warning in details["warnings"]:
        if warning["name"] == "duplicate-webhooks":
            assert warning["detail"].endswith(
                "(nodes that see the channel change at the same moment each send it)"
            )
