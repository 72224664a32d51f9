"""The compose template and the Docker runtime. No engine runs on these machines: the template is
validated by parsing it (and by `docker compose config` where the plugin exists), the engine check
runs the real docker CLI, and engine-only tests are skipped with the reason."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from rtctl.runtime import docker
from tests.helpers import REPO, free_port, make_server, run_cli, write_env

ENGINE = docker.engine_answers()
COMPOSE = docker.compose_available()


def template() -> dict[str, Any]:
    data = yaml.safe_load(docker.compose_template())
    assert isinstance(data, dict)
    return data


def test_template_has_what_rtctl_relies_on() -> None:
    assert docker.compose_problems(template()) == []


def test_template_details() -> None:
    service = template()["services"]["soketi"]
    env = service["environment"]
    assert service["image"] == "quay.io/soketi/soketi:1.6-16-debian"
    assert env["SOKETI_DEFAULT_APP_ID"].startswith("${PUSHER_APP_ID:?")
    assert env["SOKETI_DEFAULT_APP_KEY"].startswith("${PUSHER_APP_KEY:?")
    assert env["SOKETI_DEFAULT_APP_SECRET"].startswith("${PUSHER_APP_SECRET:?")
    assert env["SOKETI_APP_MANAGER_DRIVER"] == "array"
    assert env["SOKETI_ADAPTER_DRIVER"] == "local"
    assert service["ports"] == [
        "${REALTIME_PORT:-6001}:6001",
        "127.0.0.1:${SOKETI_METRICS_SERVER_PORT:-9601}:9601",
    ]
    # the images have no curl: the healthcheck uses node and probes /ready
    test = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "node", "-e"]
    assert "/ready" in test[3]
    assert "redis" not in docker.compose_template().lower().replace("no redis", "")


def test_healthcheck_script_is_valid_javascript() -> None:
    """Run the healthcheck's node one-liner for real: against nothing it must exit 1, not crash
    with a syntax error (exit 1 as well, so check stderr is empty)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = template()["services"]["soketi"]["healthcheck"]["test"][3]
    # point it at a port where nothing listens
    script = script.replace("127.0.0.1:6001", "127.0.0.1:9")
    result = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=20)
    assert (result.returncode, result.stderr) == (1, "")


def test_validation_catches_a_bad_compose_file() -> None:
    bad = copy.deepcopy(template())
    bad["services"]["redis"] = {"image": "redis:7"}
    assert docker.compose_problems(bad) == [
        "services must be [soketi] and optionally [gateway] (no Redis), "
        "got ['gateway', 'redis', 'soketi']"
    ]
    bad = copy.deepcopy(template())
    service = bad["services"]["soketi"]
    service["image"] = "quay.io/soketi/soketi:0.34-16-debian"
    service["environment"]["SOKETI_DEFAULT_APP_SECRET"] = "hard-coded-secret"
    service["environment"]["SOKETI_APP_MANAGER_DRIVER"] = "${SOKETI_APP_MANAGER_DRIVER:-array}"
    service["environment"]["SOKETI_CLUSTER_HOST"] = "0.0.0.0"
    service["ports"] = ["6001:6001", "9601:9601"]
    assert docker.compose_problems(bad) == [
        "image must be Soketi 1.x from quay.io/soketi/soketi, got "
        "'quay.io/soketi/soketi:0.34-16-debian'",
        "SOKETI_DEFAULT_APP_SECRET must be interpolated from PUSHER_APP_SECRET",
        "SOKETI_APP_MANAGER_DRIVER must be array",
        "SOKETI_CLUSTER_HOST must pin discovery to 127.0.0.1",
        "metrics port 9601 must be published on 127.0.0.1 only",
    ]


def test_the_gateway_service_is_off_by_default_and_wired_to_soketi() -> None:
    gateway = template()["services"]["gateway"]
    assert gateway["profiles"] == ["gateway"]  # `docker compose up` alone never starts it
    assert gateway["image"] == "${RTCTL_GATEWAY_IMAGE:-rtctl-gateway}"
    assert gateway["depends_on"] == {"soketi": {"condition": "service_healthy"}}
    assert gateway["env_file"] == [".env"]
    assert gateway["environment"] == {
        "REALTIME_PROVIDER": "soketi",
        "REALTIME_HOST": "soketi",
        "REALTIME_PORT": "6001",
        "REALTIME_SCHEME": "${REALTIME_SCHEME:-http}",
    }
    assert gateway["command"] == [
        "gateway",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "--workers",
        "${RTCTL_GATEWAY_WORKERS:-2}",
    ]
    assert gateway["ports"] == ["127.0.0.1:${RTCTL_GATEWAY_PORT:-8080}:8080"]
    assert gateway["read_only"] is True and gateway["tmpfs"] == ["/tmp"]
    assert "/realtime/health" in gateway["healthcheck"]["test"][3]


def test_the_gateway_command_in_the_compose_file_is_one_rtctl_accepts() -> None:
    """Every option of the service's command exists on `rtctl gateway` (interpolation filled)."""
    from rtctl.cli.app import app

    command = [
        part.replace("${RTCTL_GATEWAY_WORKERS:-2}", "2")
        for part in template()["services"]["gateway"]["command"]
    ]
    params = typer.main.get_command(app).commands["gateway"].params  # type: ignore[attr-defined]
    options = {option for param in params for option in param.opts}
    given = [part for part in command if part.startswith("--")]
    assert given == ["--host", "--port", "--workers"]
    assert set(given) <= options


def test_the_gateway_healthcheck_probe_is_valid_python(tmp_path: Path) -> None:
    """The probe's one-liner, run for real against nothing: it must fail by connection, not by
    a syntax error."""
    probe = template()["services"]["gateway"]["healthcheck"]["test"][3]
    probe = probe.replace("127.0.0.1:8080", f"127.0.0.1:{free_port()}")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 1
    assert "ConnectionRefusedError" in result.stderr or "Connection refused" in result.stderr


def test_validation_catches_an_unsafe_gateway_service() -> None:
    bad = copy.deepcopy(template())
    gateway = bad["services"]["gateway"]
    del gateway["profiles"]
    gateway["environment"]["REALTIME_HOST"] = "127.0.0.1"
    gateway["command"] = [*gateway["command"], "--dev-user-header"]
    gateway["ports"] = ["8080:8080"]
    del gateway["depends_on"]
    assert docker.compose_problems(bad) == [
        "the gateway must be off by default (profiles: [gateway])",
        "the gateway must depend on soketi",
        "the gateway must reach Soketi as soketi:6001 inside the network",
        "the gateway command must be `gateway` without --dev-user-header",
        "the gateway port must be published on 127.0.0.1 only",
    ]


def test_the_dockerfile_builds_the_gateway_image_from_this_checkout() -> None:
    """No engine here to build it: check what it copies exists and what it runs."""
    lines = [
        line.strip()
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [line.split()[1] for line in lines if line.startswith("COPY ")]
    assert copied and all((REPO / path).exists() for path in copied)
    assert 'ENTRYPOINT ["rtctl"]' in lines
    assert 'CMD ["gateway", "--host", "0.0.0.0", "--port", "8080"]' in lines
    assert any(line.startswith("USER ") and "root" not in line for line in lines)


def test_project_command_uses_the_template_when_the_project_has_none(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", make_server(tmp_path).env)
    from rtctl.config import load_settings

    settings = load_settings(tmp_path / ".env", environ={})
    proj = docker.project(settings)
    assert proj.compose_file == docker.template_path()
    assert proj.command("up", "-d")[1:] == [
        "compose",
        "--project-directory",
        str(tmp_path),
        "--env-file",
        str(tmp_path / ".env"),
        "-f",
        str(docker.template_path()),
        "up",
        "-d",
    ]
    (tmp_path / "compose.yaml").write_text(docker.compose_template())
    assert docker.project(settings).compose_file == tmp_path / "compose.yaml"


@pytest.mark.skipif(not COMPOSE, reason="the docker compose plugin is not installed here")
def test_docker_compose_config_accepts_the_template(tmp_path: Path) -> None:
    env = make_server(tmp_path).env
    write_env(tmp_path / ".env", env)
    (tmp_path / "compose.yaml").write_text(docker.compose_template())
    result = subprocess.run(
        ["docker", "compose", "--env-file", ".env", "-f", "compose.yaml", "config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]["soketi"]["environment"]
    assert resolved["SOKETI_DEFAULT_APP_KEY"] == env["PUSHER_APP_KEY"]


@pytest.mark.skipif(ENGINE, reason="a Docker engine answers here")
def test_up_with_docker_and_no_engine_is_an_environment_problem(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", make_server(tmp_path).env)
    result = run_cli(["up", "--runtime", "docker"])
    assert result.exit_code == 8
    if shutil.which("docker") is None:
        assert result.stderr.startswith("error: the docker command was not found\n")
    else:
        assert result.stderr == (
            "error: no Docker engine answers (`docker info` failed)\n"
            "hint: start the Docker engine, or use `rtctl up --runtime native` (needs Node 20)\n"
        )
    assert not (tmp_path / ".rtctl" / docker.MARKER).exists()


def test_engine_check_with_a_missing_docker_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTCTL_DOCKER", "/nonexistent/docker")
    assert docker.engine_answers() is False
    assert docker.compose_available() is False


@pytest.mark.docker
@pytest.mark.skipif(not (ENGINE and COMPOSE), reason="no Docker engine with compose answers here")
def test_docker_up_status_down(tmp_path: Path) -> None:  # pragma: no cover - needs an engine
    env = make_server(tmp_path).env
    write_env(tmp_path / ".env", env)
    try:
        up = run_cli(["up", "--runtime", "docker", "--timeout", "180"])
        assert up.exit_code == 0, up.stderr
        status = run_cli(["status", "--json"])
        assert status.exit_code == 0
    finally:
        down = run_cli(["down"])
    assert down.stderr == "stopped Soketi (docker)\n"


@pytest.mark.skipif(ENGINE, reason="a Docker engine answers here")
def test_a_recorded_compose_project_without_an_engine(tmp_path: Path) -> None:
    """`up` recorded a compose project here, and the engine is gone: status says so, down and
    logs report the missing engine instead of pretending."""
    env = make_server(tmp_path).env
    write_env(tmp_path / ".env", env)
    state = tmp_path / ".rtctl"
    state.mkdir()
    (state / docker.MARKER).write_text(json.dumps({"directory": str(tmp_path)}))
    status = run_cli(["status", "--json"])
    assert status.exit_code == 4
    data = json.loads(status.stdout)
    assert (data["running"], data["managed"], data["runtime"]) == (False, True, "docker")
    assert data["container"] == "unknown (no Docker engine answers)"
    down = run_cli(["down"])
    assert down.exit_code == 8
    assert down.stderr.startswith("error: no Docker engine answers (`docker info` failed)\n")
    assert (
        state / docker.MARKER
    ).exists()  # not forgotten: it may still run once the engine is back
    logs = run_cli(["logs"])
    assert logs.exit_code == 8
