"""Soketi with Docker Compose: `docker compose --project-directory <dir> --env-file .env -f
compose.yaml up -d`, down, ps, logs, and whether an engine answers at all.

The project is the folder of the .env file. Its compose.yaml (written by `rtctl init`) is used when
present; otherwise the template shipped inside rtctl is used as is, so `up` never writes into the
project. A marker in the state folder records that `up` started a compose project there, so `down`
and `status` know what is ours.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from rtctl.config import Settings
from rtctl.envfile import atomic_write
from rtctl.errors import EnvironmentProblem, ServerDied

COMPOSE_FILE = "compose.yaml"
SERVICE = "soketi"
MARKER = "docker.json"
ENGINE_TIMEOUT = (
    3.0  # `docker info` against a dead socket fails at once; a hung one must not hang us
)

# What the template must keep (tests/test_compose.py checks the shipped file against this).
REQUIRED_ENVIRONMENT = {
    "SOKETI_DEFAULT_APP_ID": "PUSHER_APP_ID",
    "SOKETI_DEFAULT_APP_KEY": "PUSHER_APP_KEY",
    "SOKETI_DEFAULT_APP_SECRET": "PUSHER_APP_SECRET",
}


def docker_binary() -> str | None:
    return shutil.which(os.environ.get("RTCTL_DOCKER") or "docker")


def _run(
    args: list[str],
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        env=None if env is None else {**os.environ, **env},
    )


def compose_environment(settings: Settings) -> dict[str, str]:
    """Values the compose file interpolates that rtctl derives: the composed webhooks (Compose
    prefers the process environment over --env-file, so these win over .env)."""
    return settings.webhooks.soketi_environment()


def engine_answers(timeout: float = ENGINE_TIMEOUT) -> bool:
    """True when a Docker engine answers `docker info` within the timeout."""
    docker = docker_binary()
    if docker is None:
        return False
    try:
        return _run([docker, "info", "--format", "{{.ServerVersion}}"], timeout).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def compose_available(timeout: float = ENGINE_TIMEOUT) -> bool:
    """True when the `docker compose` plugin exists (it works without an engine for `config`)."""
    docker = docker_binary()
    if docker is None:
        return False
    try:
        return _run([docker, "compose", "version"], timeout).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def compose_template() -> str:
    """The packaged compose.yaml (credentials interpolated from .env's PUSHER_*)."""
    return (resources.files("rtctl.runtime") / "assets" / COMPOSE_FILE).read_text("utf-8")


def template_path() -> Path:
    return Path(str(resources.files("rtctl.runtime") / "assets" / COMPOSE_FILE))


# --- validation of a parsed compose file (pyyaml is a dev dependency only) ----------------------


def compose_problems(data: Mapping[str, Any]) -> list[str]:
    """What a parsed compose file lacks compared with what rtctl relies on."""
    problems: list[str] = []
    services = data.get("services") or {}
    if set(services) != {SERVICE}:
        problems.append(f"services must be exactly [{SERVICE}] (no Redis), got {sorted(services)}")
        return problems
    soketi = services[SERVICE]
    image = str(soketi.get("image", ""))
    if not image.startswith("quay.io/soketi/soketi:1."):
        problems.append(f"image must be Soketi 1.x from quay.io/soketi/soketi, got {image!r}")
    env = soketi.get("environment") or {}
    for soketi_name, pusher_name in REQUIRED_ENVIRONMENT.items():
        if f"${{{pusher_name}" not in str(env.get(soketi_name, "")):
            problems.append(f"{soketi_name} must be interpolated from {pusher_name}")
    if "${SOKETI_DEFAULT_APP_WEBHOOKS" not in str(env.get("SOKETI_DEFAULT_APP_WEBHOOKS", "")):
        problems.append("SOKETI_DEFAULT_APP_WEBHOOKS must be interpolated (rtctl up composes it)")
    if str(env.get("SOKETI_APP_MANAGER_DRIVER")) != "array":
        problems.append("SOKETI_APP_MANAGER_DRIVER must be array")
    for name in ("SOKETI_CLUSTER_UNICAST_ADDRESSES", "SOKETI_CLUSTER_HOST"):
        if str(env.get(name)) != "127.0.0.1":
            problems.append(f"{name} must pin discovery to 127.0.0.1")
    ports = [str(port) for port in soketi.get("ports") or []]
    if not any(port.endswith(":6001") for port in ports):
        problems.append("port 6001 must be published")
    metrics = [port for port in ports if port.endswith(":9601")]
    if not metrics or not all(port.startswith("127.0.0.1:") for port in metrics):
        problems.append("metrics port 9601 must be published on 127.0.0.1 only")
    return problems


# --- the compose project ------------------------------------------------------------------------


@dataclass(frozen=True)
class Project:
    directory: Path
    env_file: Path
    compose_file: Path

    def command(self, *args: str) -> list[str]:
        docker = docker_binary() or "docker"
        return [
            docker,
            "compose",
            "--project-directory",
            str(self.directory),
            "--env-file",
            str(self.env_file),
            "-f",
            str(self.compose_file),
            *args,
        ]


def project(settings: Settings) -> Project:
    env_file = settings.env_file.resolve()
    directory = env_file.parent
    compose_file = directory / COMPOSE_FILE
    if not compose_file.is_file():
        compose_file = template_path()
    return Project(directory, env_file, compose_file)


def marker_file(folder: Path) -> Path:
    return folder / MARKER


def read_marker(folder: Path) -> str | None:
    """The project folder of a compose project `up` started, if any."""
    try:
        return str(json.loads(marker_file(folder).read_text())["directory"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def require_engine() -> str:
    docker = docker_binary()
    if docker is None:
        raise EnvironmentProblem(
            "the docker command was not found",
            hint="install Docker, or use the native runtime: `rtctl up --runtime native`",
        )
    if not engine_answers():
        raise EnvironmentProblem(
            "no Docker engine answers (`docker info` failed)",
            hint="start the Docker engine, or use `rtctl up --runtime native` (needs Node 20)",
        )
    if not compose_available():
        raise EnvironmentProblem(
            "the `docker compose` plugin is missing",
            hint="install docker-compose-plugin, or use `rtctl up --runtime native`",
        )
    return docker


def up(settings: Settings, folder: Path, timeout: float = 300.0) -> Project:
    """`docker compose up -d`; the caller waits for readiness by probing /ready from the host."""
    require_engine()
    proj = project(settings)
    try:
        result = _run(
            proj.command("up", "-d"), timeout, cwd=proj.directory, env=compose_environment(settings)
        )
    except subprocess.TimeoutExpired as exc:
        raise EnvironmentProblem(f"docker compose up took more than {timeout:g}s") from exc
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ServerDied(
            f"docker compose up failed (exit {result.returncode}): {' | '.join(last)}",
            hint=f"see `docker compose -f {proj.compose_file} logs`",
        )
    folder.mkdir(parents=True, exist_ok=True)
    record = {**{k: str(v) for k, v in asdict(proj).items()}, "started_at": time.time()}
    atomic_write(marker_file(folder), json.dumps(record))
    return proj


def down(settings: Settings, folder: Path, timeout: float = 120.0) -> bool:
    """`docker compose down` for a project `up` started; False when there was none."""
    if read_marker(folder) is None:
        return False
    require_engine()
    proj = project(settings)
    result = _run(proj.command("down"), timeout, cwd=proj.directory)
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()[-2:]
        raise EnvironmentProblem(f"docker compose down failed: {' | '.join(last)}")
    marker_file(folder).unlink(missing_ok=True)
    return True


def ps(settings: Settings) -> list[dict[str, Any]]:
    """The project's containers (`docker compose ps --format json`)."""
    require_engine()
    result = _run(project(settings).command("ps", "--format", "json"), 30)
    rows: list[dict[str, Any]] = []
    for line in result.stdout.splitlines():
        line = line.strip()
        if line.startswith("["):
            rows.extend(json.loads(line))
        elif line.startswith("{"):
            rows.append(json.loads(line))
    return rows


def logs_command(settings: Settings, lines: int, follow: bool) -> list[str]:
    args = ["logs", "--no-color", "--tail", str(lines)]
    if follow:
        args.append("--follow")
    return project(settings).command(*args, SERVICE)
