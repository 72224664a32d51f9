"""The compose file of a cluster (bus, N nodes, HAProxy) for Docker users. No engine runs here:
the file is parsed and checked against what rtctl relies on, and the front door's configuration
inside it is validated by the real haproxy binary."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from rtctl.config import load_settings
from rtctl.runtime import docker, haproxy
from tests.cluster_support import cluster_env
from tests.helpers import run_cli, write_env


def rendered(nodes: int = 3, adapter: str = "redis") -> dict[str, Any]:
    run = run_cli(["init", "--nodes", str(nodes), "--adapter", adapter, "--dir", "project"])
    assert run.exit_code == 0, run.stderr
    data = yaml.safe_load(Path("project/compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize(("nodes", "adapter"), [(3, "redis"), (2, "nats")])
def test_init_writes_a_valid_cluster_compose(nodes: int, adapter: str) -> None:
    data = rendered(nodes, adapter)
    assert docker.cluster_compose_problems(data, nodes, adapter) == []
    services = data["services"]
    assert sorted(services) == sorted(
        ["bus", "front-door", *(f"soketi-{i}" for i in range(1, nodes + 1))]
    )
    settings = load_settings(Path("project/.env"), environ={})
    node = services["soketi-2"]
    assert node["ports"] == [
        f"127.0.0.1:{settings.port + 2}:6001",
        f"127.0.0.1:{settings.metrics_port + 1}:9601",
    ]
    env = node["environment"]
    assert env["SOKETI_DEFAULT_APP_SECRET"].startswith("${PUSHER_APP_SECRET:?")
    assert env["SOKETI_ADAPTER_DRIVER"] == adapter
    if adapter == "redis":
        assert (env["SOKETI_DB_REDIS_HOST"], env["SOKETI_CACHE_DRIVER"]) == ("bus", "redis")
    else:
        assert env["SOKETI_ADAPTER_NATS_SERVERS"] == '["bus:4222"]'
        assert env["SOKETI_ADAPTER_NATS_NODES_NUMBER"] == str(nodes)
    assert services["front-door"]["ports"] == ["${REALTIME_PORT:-6001}:6001"]


def test_every_node_gets_the_same_webhooks(tmp_path: Path) -> None:
    url = "http://host.docker.internal:6080/webhooks"
    write_env(tmp_path / ".env", {**cluster_env(3, "redis"), "REALTIME_WEBHOOK_URL": url})
    settings = load_settings(tmp_path / ".env", environ={})
    services = yaml.safe_load(docker.render_cluster(settings))["services"]
    for i in (1, 2, 3):
        env = services[f"soketi-{i}"]["environment"]
        assert env["SOKETI_DEFAULT_APP_WEBHOOKS"] == "${SOKETI_DEFAULT_APP_WEBHOOKS:-[]}"
        assert env["SOKETI_WEBHOOKS_BATCHING"] == "${SOKETI_WEBHOOKS_BATCHING:-false}"
    # what `rtctl up --runtime docker` hands compose for that interpolation
    composed = docker.compose_environment(settings)["SOKETI_DEFAULT_APP_WEBHOOKS"]
    assert [entry["url"] for entry in json.loads(composed)] == [url]


def test_haproxy_accepts_the_front_door_config(tmp_path: Path) -> None:
    content = rendered()["configs"]["front-door"]["content"]
    config = tmp_path / "front-door.cfg"
    config.write_text(content)
    checked = subprocess.run(
        [haproxy.binary(), "-c", "-f", str(config)], capture_output=True, text=True, timeout=30
    )
    # the service names resolve only inside the compose network: servers start unresolved
    assert checked.returncode == 0, checked.stderr
    assert "Configuration file is valid" in checked.stdout


def test_validation_catches_a_broken_cluster_compose() -> None:
    good = rendered()
    bad = copy.deepcopy(good)
    del bad["services"]["soketi-3"]
    assert docker.cluster_compose_problems(bad, 3, "redis") == [
        "services must be exactly ['bus', 'front-door', 'soketi-1', 'soketi-2', 'soketi-3'], "
        "got ['bus', 'front-door', 'soketi-1', 'soketi-2']"
    ]
    bad = copy.deepcopy(good)
    bad["services"]["soketi-2"]["environment"]["SOKETI_ADAPTER_DRIVER"] = "local"
    del bad["services"]["soketi-3"]["environment"]["SOKETI_DEFAULT_APP_WEBHOOKS"]
    bad["services"]["soketi-1"]["ports"][0] = "6002:6001"
    bad["services"]["bus"]["ports"] = ["6379:6379"]
    bad["configs"]["front-door"]["content"] = bad["configs"]["front-door"]["content"].replace(
        "server soketi-3 soketi-3:6001 check\n", ""
    )
    assert docker.cluster_compose_problems(bad, 3, "redis") == [
        "soketi-1: a node's ports must be published on 127.0.0.1 only",
        "soketi-2: SOKETI_ADAPTER_DRIVER must be redis",
        "soketi-3: SOKETI_DEFAULT_APP_WEBHOOKS must be interpolated (rtctl up composes it)",
        "bus: its port must be published on 127.0.0.1 only",
        "front-door: its config must route to soketi-3",
    ]


def test_docker_up_uses_the_projects_cluster_compose_or_renders_one(tmp_path: Path) -> None:
    env = cluster_env(3, "redis")
    write_env(tmp_path / ".env", env)
    settings = load_settings(tmp_path / ".env", environ={})
    state = tmp_path / ".rtctl"
    project = docker.project(settings, state)
    assert project.compose_file == state / "compose.cluster.yaml"  # none in the project yet
    assert docker.cluster_marker(settings) in project.compose_file.read_text()
    (tmp_path / "compose.yaml").write_text(docker.render_cluster(settings))
    assert docker.project(settings, state).compose_file == tmp_path / "compose.yaml"
    # a single-node compose.yaml is not used for a cluster
    (tmp_path / "compose.yaml").write_text(docker.compose_template())
    assert docker.project(settings, state).compose_file == state / "compose.cluster.yaml"


def test_the_rendered_cluster_compose_goes_to_the_configured_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rtctl logs` and `status` find the compose project without a folder given: with
    RTCTL_STATE_DIR set, the file goes there too, never into a `.rtctl` inside the project."""
    write_env(tmp_path / ".env", cluster_env(3, "redis"))
    elsewhere = tmp_path / "state-elsewhere"
    monkeypatch.setenv("RTCTL_STATE_DIR", str(elsewhere))
    settings = load_settings(tmp_path / ".env", environ={})
    project = docker.project(settings)
    assert project.compose_file == elsewhere / "compose.cluster.yaml"
    assert docker.cluster_marker(settings) in project.compose_file.read_text()
    assert not (tmp_path / ".rtctl").exists()
