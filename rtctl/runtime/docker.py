"""Soketi with Docker Compose: `docker compose --project-directory <dir> --env-file .env -f
compose.yaml up -d`, down, ps, logs, and whether an engine answers at all.

The project is the folder of the .env file. Its compose.yaml (written by `rtctl init`) is used when
present; otherwise the template shipped inside rtctl is used as is, so `up` never writes into the
project. A marker in the state folder records that `up` started a compose project there, so `down`
and `status` know what is ours.
"""

from __future__ import annotations

import contextlib
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
GATEWAY_SERVICE = "gateway"  # optional, behind the compose profile of the same name
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


def compose_problems(data: Mapping[str, Any], node_ports: bool = False) -> list[str]:
    """What a parsed compose file lacks compared with what rtctl relies on. ``node_ports``: a
    cluster node, whose ports are all published on 127.0.0.1 (clients use the front door)."""
    problems: list[str] = []
    services = data.get("services") or {}
    if set(services) - {GATEWAY_SERVICE} != {SERVICE}:
        problems.append(
            f"services must be [{SERVICE}] and optionally [{GATEWAY_SERVICE}] (no Redis), "
            f"got {sorted(services)}"
        )
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
    elif node_ports and not all(port.startswith("127.0.0.1:") for port in ports):
        problems.append("a node's ports must be published on 127.0.0.1 only")
    metrics = [port for port in ports if port.endswith(":9601")]
    if not metrics or not all(port.startswith("127.0.0.1:") for port in metrics):
        problems.append("metrics port 9601 must be published on 127.0.0.1 only")
    if GATEWAY_SERVICE in services:
        problems += gateway_problems(services[GATEWAY_SERVICE])
    return problems


def gateway_problems(gateway: Mapping[str, Any]) -> list[str]:
    """The optional gateway service: off by default, talking to the soketi service, loopback."""
    problems: list[str] = []
    if GATEWAY_SERVICE not in (gateway.get("profiles") or []):
        problems.append(f"the gateway must be off by default (profiles: [{GATEWAY_SERVICE}])")
    if SERVICE not in (gateway.get("depends_on") or {}):
        problems.append(f"the gateway must depend on {SERVICE}")
    env = gateway.get("environment") or {}
    if str(env.get("REALTIME_HOST")) != SERVICE or str(env.get("REALTIME_PORT")) != "6001":
        problems.append(f"the gateway must reach Soketi as {SERVICE}:6001 inside the network")
    command = [str(part) for part in gateway.get("command") or []]
    if command[:1] != ["gateway"] or "--dev-user-header" in command:
        problems.append("the gateway command must be `gateway` without --dev-user-header")
    ports = [str(port) for port in gateway.get("ports") or []]
    if not ports or not all(port.startswith("127.0.0.1:") for port in ports):
        problems.append("the gateway port must be published on 127.0.0.1 only")
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


def project(settings: Settings, folder: Path | None = None) -> Project:
    """The compose project of the .env's folder. With several nodes, the project's compose.yaml
    is used when it describes that cluster (its marker line); otherwise one is rendered into the
    state folder (``folder``, by default the configured one), so rtctl never writes into the
    project."""
    env_file = settings.env_file.resolve()
    directory = env_file.parent
    compose_file = directory / COMPOSE_FILE
    if settings.is_cluster:
        marker = cluster_marker(settings)
        with contextlib.suppress(OSError):
            if marker in compose_file.read_text():
                return Project(directory, env_file, compose_file)
        from rtctl.runtime.native import state_dir

        state = folder if folder is not None else state_dir(settings)
        state.mkdir(parents=True, exist_ok=True)
        rendered = state / "compose.cluster.yaml"
        atomic_write(rendered, render_cluster(settings))  # `logs` may read it while `up` writes
        return Project(directory, env_file, rendered)
    if not compose_file.is_file():
        compose_file = template_path()
    return Project(directory, env_file, compose_file)


# --- a cluster as a compose project --------------------------------------------------------------

BUS_IMAGES = {"redis": "redis:7.0-alpine", "nats": "nats:2.9-alpine"}
FRONT_DOOR_IMAGE = "haproxy:2.6-alpine"
SOKETI_IMAGE = "quay.io/soketi/soketi:1.6-16-debian"
HEALTHCHECK = (
    "require('http').get('http://127.0.0.1:6001/ready', r => process.exit(r.statusCode === 200 "
    "? 0 : 1)).on('error', () => process.exit(1))"
)


def cluster_marker(settings: Settings) -> str:
    return f"# rtctl-cluster: nodes={settings.nodes} adapter={settings.adapter}"


def _node_environment(settings: Settings) -> list[tuple[str, str]]:
    """A node's variables inside the compose network (the bus is the service `bus`)."""
    env = [
        ("SOKETI_DEFAULT_APP_ID", "${PUSHER_APP_ID:?PUSHER_APP_ID is not set - run rtctl init}"),
        ("SOKETI_DEFAULT_APP_KEY", "${PUSHER_APP_KEY:?PUSHER_APP_KEY is not set - run rtctl init}"),
        (
            "SOKETI_DEFAULT_APP_SECRET",
            "${PUSHER_APP_SECRET:?PUSHER_APP_SECRET is not set - run rtctl init}",
        ),
        ("SOKETI_APP_MANAGER_DRIVER", "array"),
        (
            "SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES",
            "${SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES:-true}",
        ),
        (
            "SOKETI_DEFAULT_APP_USER_AUTHENTICATION",
            "${SOKETI_DEFAULT_APP_USER_AUTHENTICATION:-false}",
        ),
        ("SOKETI_METRICS_ENABLED", "${SOKETI_METRICS_ENABLED:-true}"),
        # Every node sends webhooks, so every node gets the same ones (composed by `rtctl up`
        # from REALTIME_WEBHOOK_*, as for one node).
        ("SOKETI_DEFAULT_APP_WEBHOOKS", "${SOKETI_DEFAULT_APP_WEBHOOKS:-[]}"),
        ("SOKETI_WEBHOOKS_BATCHING", "${SOKETI_WEBHOOKS_BATCHING:-false}"),
        ("SOKETI_WEBHOOKS_BATCHING_DURATION", "${SOKETI_WEBHOOKS_BATCHING_DURATION:-50}"),
        ("SOKETI_PORT", "6001"),
        ("SOKETI_METRICS_SERVER_PORT", "9601"),
        ("SOKETI_CLUSTER_UNICAST_ADDRESSES", "127.0.0.1"),
        ("SOKETI_CLUSTER_HOST", "127.0.0.1"),
        ("SOKETI_SHUTDOWN_GRACE_PERIOD", "1000"),
        ("SOKETI_ADAPTER_DRIVER", settings.adapter),
        ("SOKETI_CACHE_DRIVER", settings.cache_driver),
        ("SOKETI_RATE_LIMITER_DRIVER", settings.rate_limiter_driver),
        ("SOKETI_QUEUE_DRIVER", settings.queue_driver),
        ("SOKETI_MODE", settings.soketi_mode),
    ]
    if settings.adapter == "redis" or "redis" in (
        settings.cache_driver,
        settings.rate_limiter_driver,
        settings.queue_driver,
    ):
        env += [
            ("SOKETI_DB_REDIS_HOST", "bus"),
            ("SOKETI_DB_REDIS_PORT", "6379"),
            ("SOKETI_DB_REDIS_KEY_PREFIX", f"{settings.cluster_prefix}:"),
            ("SOKETI_ADAPTER_REDIS_PREFIX", settings.cluster_prefix),
        ]
    if settings.adapter == "nats":
        env += [
            ("SOKETI_ADAPTER_NATS_SERVERS", '["bus:4222"]'),
            ("SOKETI_ADAPTER_NATS_PREFIX", settings.cluster_prefix),
            ("SOKETI_ADAPTER_NATS_NODES_NUMBER", str(settings.nodes)),
        ]
    return env


def _quote(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML double-quoted scalar


def render_cluster(settings: Settings) -> str:
    """compose.yaml for a cluster: the bus, N Soketi nodes and HAProxy as the one front door.

    Ports are written out from .env at the time of writing (compose cannot add numbers): node i
    on 127.0.0.1:REALTIME_PORT+i, metrics on 127.0.0.1:SOKETI_METRICS_SERVER_PORT+i-1, so
    `rtctl status` and `rtctl smoke` reach each node from the host as they do natively.
    """
    from rtctl.runtime import haproxy

    bus_port = {"redis": 6379, "nats": 4222}[settings.adapter]
    lines = [
        f"# Soketi cluster for `rtctl up --runtime docker` (written by rtctl for {settings.nodes} "
        "nodes).",
        cluster_marker(settings),
        "# The bus, the nodes and HAProxy as the one front door clients see on REALTIME_PORT.",
        "# Credentials are interpolated from .env's PUSHER_* (one source of truth); node ports are",
        "# published on 127.0.0.1 only, for rtctl's checks.",
        "name: rtctl",
        "services:",
        "  bus:",
        f"    image: {BUS_IMAGES[settings.adapter]}",
        "    restart: unless-stopped",
    ]
    if settings.adapter == "redis":
        lines.append('    command: ["redis-server", "--save", "", "--appendonly", "no"]')
    lines += [
        "    ports:",
        f'      - "127.0.0.1:${{RTCTL_BUS_PORT:-{settings.bus_port}}}:{bus_port}"',
    ]
    for i in range(1, settings.nodes + 1):
        lines += [
            f"  soketi-{i}:",
            f"    image: {SOKETI_IMAGE}",
            "    restart: unless-stopped",
            "    depends_on: [bus]",
            "    environment:",
            *(f"      {name}: {_quote(value)}" for name, value in _node_environment(settings)),
            "    ports:",
            f'      - "127.0.0.1:{settings.port + i}:6001"',
            f'      - "127.0.0.1:{settings.metrics_port + i - 1}:9601"',
            "    stop_grace_period: 10s",
            "    healthcheck:",
            f"      test: [CMD, node, -e, {_quote(HEALTHCHECK)}]",
            "      interval: 10s",
            "      timeout: 3s",
            "      retries: 3",
            "      start_period: 5s",
        ]
    config = haproxy.render(
        bind_host="0.0.0.0",
        bind_port=6001,
        servers=[
            haproxy.Server(f"soketi-{i}", f"soketi-{i}", 6001) for i in range(1, settings.nodes + 1)
        ],
        maxconn=settings.front_door_maxconn or haproxy.default_maxconn(),
        docker=True,
    )
    lines += [
        "  front-door:",
        f"    image: {FRONT_DOOR_IMAGE}",
        "    restart: unless-stopped",
        f"    depends_on: [{', '.join(f'soketi-{i}' for i in range(1, settings.nodes + 1))}]",
        "    ports:",
        '      - "${REALTIME_PORT:-6001}:6001"',
        "    configs:",
        "      - source: front-door",
        "        target: /usr/local/etc/haproxy/haproxy.cfg",
        "configs:",
        "  front-door:",
        "    content: |",
        *(f"      {line}" if line else "" for line in config.splitlines()),
    ]
    return "\n".join(lines) + "\n"


def cluster_compose_problems(data: Mapping[str, Any], nodes: int, adapter: str) -> list[str]:
    """What a parsed cluster compose file lacks compared with what rtctl relies on."""
    problems: list[str] = []
    services = data.get("services") or {}
    wanted = {"bus", "front-door", *(f"soketi-{i}" for i in range(1, nodes + 1))}
    if set(services) != wanted:
        return [f"services must be exactly {sorted(wanted)}, got {sorted(services)}"]
    for i in range(1, nodes + 1):
        name = f"soketi-{i}"
        node = services[name]
        node_problems = compose_problems({"services": {SERVICE: node}}, node_ports=True)
        problems += [f"{name}: {problem}" for problem in node_problems]
        env = node.get("environment") or {}
        if str(env.get("SOKETI_ADAPTER_DRIVER")) != adapter:
            problems.append(f"{name}: SOKETI_ADAPTER_DRIVER must be {adapter}")
    bus_image = str(services["bus"].get("image", ""))
    if not bus_image.startswith(BUS_IMAGES[adapter].split(":")[0] + ":"):
        problems.append(f"bus: image must be {BUS_IMAGES[adapter]}, got {bus_image!r}")
    if not all(str(port).startswith("127.0.0.1:") for port in services["bus"].get("ports") or []):
        problems.append("bus: its port must be published on 127.0.0.1 only")
    front = services["front-door"]
    if not any(str(port).endswith(":6001") for port in front.get("ports") or []):
        problems.append("front-door: port 6001 must be published")
    content = str(((data.get("configs") or {}).get("front-door") or {}).get("content", ""))
    for i in range(1, nodes + 1):
        if f"server soketi-{i} soketi-{i}:6001 check" not in content:
            problems.append(f"front-door: its config must route to soketi-{i}")
    if "GET uri /ready" not in content:
        problems.append("front-door: its config must health-check /ready")
    return problems


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
    proj = project(settings, folder)
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
    proj = project(settings, folder)
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
    if settings.is_cluster:  # every service of the cluster, each line prefixed by compose
        return project(settings).command(*args)
    return project(settings).command(*args, SERVICE)
