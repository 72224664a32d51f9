"""up / down / status / logs over both runtimes, returning plain data (the CLI renders it).

Which runtime: `auto` takes Docker when an engine answers, else native when a suitable Node is
present, else an EnvironmentProblem naming both ways. What is "ours" is what the state folder
records: the native PID file (pid + kernel start time) or the Docker marker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rtctl.config import Settings
from rtctl.errors import (
    ConfigError,
    Conflict,
    EnvironmentProblem,
    ExitCode,
    RtctlError,
    TimedOut,
)
from rtctl.runtime import cluster, docker, health, native

Progress = Callable[[str], None]


def _silent(_: str) -> None:
    pass


def endpoints(settings: Settings) -> dict[str, str | None]:
    base = settings.api_base
    return {
        "websocket": settings.ws_url.split("?", 1)[0],
        "http_api": f"{base}/apps/{settings.app_id}",
        "health_url": f"{base}/",
        "ready_url": f"{base}/ready",
        "metrics_url": settings.metrics_url,
    }


def require_local_provider(settings: Settings) -> None:
    if settings.provider != "soketi":
        raise ConfigError(
            "the provider is pusher: there is no local server to run",
            hint="run `rtctl switch soketi` (or set REALTIME_PROVIDER=soketi) to use a local Soketi",
        )


def choose_runtime(requested: str) -> Literal["docker", "native"]:
    """auto: Docker when an engine answers, else native when Node fits, else say how to get one."""
    if requested == "docker":
        return "docker"
    if requested == "native":
        return "native"
    if docker.engine_answers():
        return "docker"
    try:
        native.find_node()
    except EnvironmentProblem as problem:
        raise EnvironmentProblem(
            f"cannot run Soketi here: no Docker engine answers, and {problem.message}",
            hint="either install Node 20 (e.g. `apt-get install nodejs npm`) for the native "
            "runtime, or start a Docker engine; then run `rtctl up` again",
        ) from problem
    return "native"


@dataclass
class UpResult:
    runtime: str
    started: bool  # False: it was already running
    pid: int | None
    endpoints: dict[str, str | None]
    log_file: str | None = None
    project_dir: str | None = None
    notes: list[str] = field(default_factory=list)
    # A cluster: every process (front door, nodes, bus) with its PID, address and log.
    components: list[dict[str, Any]] | None = None
    adapter: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "runtime": self.runtime,
            "started": self.started,
            "already_running": not self.started,
            "pid": self.pid,
            "endpoints": self.endpoints,
            "log_file": self.log_file,
            "project_dir": self.project_dir,
        }
        if self.components is not None:
            data["cluster"] = {
                "nodes": sum(1 for c in self.components if c["kind"] == "node"),
                "adapter": self.adapter,
                "components": self.components,
            }
        return data


def _stale_note(folder: Path) -> str | None:
    """read_running removes a PID file whose process is gone or whose PID was reused: say so."""
    path = native.pid_file(folder)
    if not path.exists():
        return None
    if native.read_running(folder) is None:
        return f"removed a stale PID file ({path}): the process it named no longer runs"
    return None


def up(
    settings: Settings,
    runtime: str = "auto",
    wait: bool = True,
    timeout: float = 30.0,
    progress: Progress = _silent,
) -> UpResult:
    """Start a server, or report the one running. One `up`/`down` at a time per state folder:
    a second `up` waits for the first, then finds its server instead of starting another."""
    require_local_provider(settings)
    folder = native.state_dir(settings)
    with native.state_lock(folder, progress):
        return _up(settings, folder, runtime, wait, timeout, progress)


def _up(
    settings: Settings,
    folder: Path,
    runtime: str,
    wait: bool,
    timeout: float,
    progress: Progress,
) -> UpResult:
    recorded = cluster.read_state(folder)
    if settings.is_cluster or (recorded is not None and recorded.alive):
        return _cluster_up(settings, folder, runtime, wait, timeout, progress)
    notes = [note for note in (_stale_note(folder),) if note]
    running = native.read_running(folder)
    if running is not None:
        if runtime == "docker":
            raise Conflict(
                f"a native Soketi started by rtctl already runs (pid {running.pid})",
                hint="stop it with `rtctl down` first",
            )
        if (running.host, running.port) != (settings.host, settings.port):
            raise Conflict(
                f"a Soketi started by rtctl already runs here on {running.host}:{running.port} "
                f"(pid {running.pid})",
                hint="stop it with `rtctl down` before starting one on another address",
            )
        return UpResult("native", False, running.pid, endpoints(settings), running.log_file)
    compose = _compose_running(settings, folder, runtime)
    if compose is not None:
        return compose
    chosen = choose_runtime(runtime)
    if chosen == "native":
        started, _ = native.start(settings, folder, wait=wait, timeout=timeout, progress=progress)
        return UpResult(
            "native", True, started.pid, endpoints(settings), started.log_file, notes=notes
        )
    return _docker_up(settings, folder, wait, timeout, progress, notes)


def cluster_components(recorded: cluster.ClusterState) -> list[dict[str, Any]]:
    """Every process of a running cluster, as `up` reports it."""
    plan = recorded.plan
    rows: list[dict[str, Any]] = []
    for k, proc in enumerate(recorded.front_doors, start=1):
        rows.append(
            {
                "name": f"front-door-{k}",
                "kind": "front-door",
                "pid": proc.pid if proc else None,
                "address": f"{plan.host}:{plan.port}",
                "log_file": proc.log_file if proc else None,
            }
        )
    for node in plan.nodes:
        running = recorded.nodes.get(node.name)
        rows.append(
            {
                "name": node.name,
                "kind": "node",
                "pid": running.pid if running else None,
                "address": f"127.0.0.1:{node.port}",
                "metrics": f"127.0.0.1:{node.metrics_port}",
                "log_file": running.log_file if running else None,
            }
        )
    rows.append(
        {
            "name": "bus",
            "kind": "bus",
            "pid": recorded.bus.pid if recorded.bus else None,
            "address": f"{plan.bus_host}:{plan.bus_port}",
            "log_file": recorded.bus.log_file if recorded.bus else None,
            "shared": recorded.bus_shared,
        }
    )
    return rows


def _cluster_up(
    settings: Settings,
    folder: Path,
    runtime: str,
    wait: bool,
    timeout: float,
    progress: Progress,
) -> UpResult:
    """Several nodes: natively (bus, nodes, front door by PID) or as a compose project."""
    recorded = cluster.read_state(folder)
    if recorded is not None and recorded.alive and not settings.is_cluster:
        raise Conflict(
            f"a {len(recorded.plan.nodes)}-node cluster started by rtctl runs here, but the "
            "configuration asks for one node",
            hint="stop it with `rtctl down` first, or set RTCTL_SOKETI_NODES back in .env",
        )
    if recorded is None or not recorded.alive:
        compose = _compose_running(settings, folder, runtime)
        if compose is not None:
            return compose
        chosen = choose_runtime(runtime)
        if chosen == "docker":
            return _docker_up(settings, folder, wait, timeout, progress)
    elif runtime == "docker":
        raise Conflict(
            "a native cluster started by rtctl already runs here",
            hint="stop it with `rtctl down` first",
        )
    state, started = cluster.start(settings, folder, wait=wait, timeout=timeout, progress=progress)
    notes = [f"started again: {', '.join(state.restarted)}"] if state.restarted else []
    return UpResult(
        "native",
        started,
        None,
        endpoints(settings),
        str(cluster.cluster_dir(folder)),
        notes=notes,
        components=cluster_components(state),
        adapter=state.plan.adapter,
    )


def _cluster_adapter(settings: Settings) -> str | None:
    return settings.adapter if settings.is_cluster else None


def _compose_running(settings: Settings, folder: Path, runtime: str) -> UpResult | None:
    """The compose project `up` started here, when it answers (unless native was asked for)."""
    project = docker.read_marker(folder)
    if (
        project is None
        or runtime == "native"
        or not health.fetch(f"{settings.api_base}/ready", settings, 2.0).ok
    ):
        return None
    return UpResult(
        "docker",
        False,
        None,
        endpoints(settings),
        project_dir=project,
        adapter=_cluster_adapter(settings),
    )


def _docker_up(
    settings: Settings,
    folder: Path,
    wait: bool,
    timeout: float,
    progress: Progress,
    notes: list[str] | None = None,
) -> UpResult:
    """Start the compose project (one Soketi or a cluster); a start that does not get ready is
    taken down again, so nothing is left half-running."""
    docker.require_engine()
    wanted = [(settings.port, settings.host)]
    if not settings.is_cluster:  # a cluster publishes metrics per node, on ports of their own
        wanted.append((settings.metrics_port, "127.0.0.1"))
    for port, host in wanted:
        busy = Conflict(
            f"port {port} on {host} is already in use",
            hint="stop what listens there, or choose other ports in .env",
        )
        native.require_free_port(host, port, busy, "REALTIME_HOST")
    if settings.is_cluster:
        progress("starting the cluster with docker compose (the first run pulls the images)")
    else:
        progress("starting Soketi with docker compose (the first run pulls the image)")
    proj = docker.up(settings, folder)
    if wait:
        try:
            wait_ready(settings, timeout)
        except BaseException:
            docker.down(settings, folder)
            raise
    return UpResult(
        "docker",
        True,
        None,
        endpoints(settings),
        project_dir=str(proj.directory),
        notes=notes or [],
        adapter=_cluster_adapter(settings),
    )


def wait_ready(settings: Settings, timeout: float) -> None:
    """Probe /ready from the host (the images have no curl for an in-container check)."""
    deadline = time.monotonic() + timeout
    url = f"{settings.api_base}/ready"
    while time.monotonic() < deadline:
        if health.fetch(url, settings, 1.0).ok:
            return
        time.sleep(0.25)
    raise TimedOut(
        f"Soketi did not answer {url} within {timeout:g}s",
        hint="see `rtctl logs`; raise --timeout on a slow machine or a first image pull",
    )


@dataclass
class DownResult:
    stopped: bool
    runtime: str | None
    pid: int | None = None
    components: list[dict[str, Any]] | None = None  # a cluster: every process stopped

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"stopped": self.stopped, "runtime": self.runtime, "pid": self.pid}
        if self.components is not None:
            data["components"] = self.components
        return data


def down(settings: Settings, grace: float = 10.0, progress: Progress = _silent) -> DownResult:
    """Stop what `up` started here; idempotent (stopped=False when nothing was running).
    Waits for an `up` in progress in the same state folder, so it stops what that one starts."""
    folder = native.state_dir(settings)
    if not folder.exists():
        return DownResult(False, None)  # nothing was ever started here (and nothing is created)
    with native.state_lock(folder, progress):
        return _down(settings, folder, grace)


def _down(settings: Settings, folder: Path, grace: float) -> DownResult:
    gone = cluster.stop(folder, grace=grace)
    if gone is not None and gone.names:
        components = [
            {"name": name, "pid": pid} for name, pid in zip(gone.names, gone.pids, strict=True)
        ]
        return DownResult(True, "native", None, components)
    stopped = native.stop(folder, grace=grace)
    if stopped is not None:
        return DownResult(True, "native", stopped.pid)
    if docker.down(settings, folder):
        return DownResult(True, "docker")
    return DownResult(False, None)


# --- status -------------------------------------------------------------------------------------


@dataclass
class StatusReport:
    running: bool
    managed: bool  # started by rtctl from this project (PID file or Docker marker)
    runtime: str | None
    pid: int | None
    started_at: float | None
    endpoints: dict[str, str | None]
    health: health.Health
    container: str | None = None  # Docker: "<name> (<state>)" from `docker compose ps`

    @property
    def healthy(self) -> bool:
        return self.running and self.health.healthy

    @property
    def uptime_seconds(self) -> float | None:
        return None if self.started_at is None else max(0.0, time.time() - self.started_at)

    @property
    def exit_code(self) -> ExitCode:
        return health.status_exit_code(self.running, self.healthy)

    def to_dict(self) -> dict[str, Any]:
        metrics = self.health.metrics
        figures = metrics.figures if metrics is not None else None
        return {
            "running": self.running,
            "healthy": self.healthy,
            "managed": self.managed,
            "runtime": self.runtime,
            "pid": self.pid,
            "container": self.container,
            "uptime_seconds": None if self.uptime_seconds is None else round(self.uptime_seconds),
            "endpoints": self.endpoints,
            "health": {
                "/": self.health.root.status,
                "/ready": self.health.ready.status,
                "/accept-traffic": self.health.accept_traffic.status,
                "memory_percent": self.health.memory_percent,
            },
            "metrics": None
            if figures is None
            else {
                "connections": figures.connections,
                "new_connections": figures.new_connections,
                "disconnections": figures.disconnections,
                "messages_in": figures.messages_in,
                "messages_out": figures.messages_out,
                "bytes_in": figures.bytes_in,
                "bytes_out": figures.bytes_out,
                "http_calls": figures.http_calls,
                "memory_bytes": figures.memory_bytes,
            },
            "metrics_error": None if metrics is None else metrics.error,
        }


def status(settings: Settings, timeout: float = 2.0) -> Any:
    """A StatusReport for one node; a cluster_status.ClusterStatus for a cluster."""
    require_local_provider(settings)
    folder = native.state_dir(settings)
    if settings.is_cluster or cluster.read_state(folder) is not None:
        from rtctl.runtime import cluster_status

        report = cluster_status.status(settings, timeout, endpoints(settings))
        if report.runtime is None and docker.read_marker(folder) is not None:
            report.runtime, report.managed = "docker", True
        return report
    probes = health.check(settings, timeout)
    running = native.read_running(folder)
    if running is not None:
        return StatusReport(
            True, True, "native", running.pid, running.started_at, endpoints(settings), probes
        )
    figures = probes.metrics.figures if probes.metrics is not None else None
    started_at = figures.start_time if figures is not None else None
    if docker.read_marker(folder) is not None:
        return StatusReport(
            probes.answering,
            True,
            "docker",
            None,
            started_at,
            endpoints(settings),
            probes,
            container=_container(settings),
        )
    # Something may answer that rtctl did not start here (another project, a user's own server).
    return StatusReport(
        probes.answering,
        False,
        None,
        None,
        started_at if probes.answering else None,
        endpoints(settings),
        probes,
    )


def _container(settings: Settings) -> str | None:
    """The compose service's container, when an engine answers (status must not fail on it)."""
    if not docker.engine_answers():
        return "unknown (no Docker engine answers)"
    try:
        rows = docker.ps(settings)
    except (RtctlError, OSError, ValueError):
        return None
    for row in rows:
        if row.get("Service") == docker.SERVICE:
            return f"{row.get('Name')} ({row.get('State')})"
    return "none"


# --- logs ---------------------------------------------------------------------------------------


def log_path(settings: Settings) -> Path:
    return native.log_file(native.state_dir(settings))


def tail_lines(path: Path, lines: int) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []  # other failures (a folder in its place, no permission) are for the user
    return text.splitlines()[-lines:] if lines > 0 else []


def follow(
    settings: Settings,
    lines: int,
    stop_after: float | None = None,
    poll: float = 0.2,
) -> Iterator[str]:
    """The last `lines` lines, then new ones as they are written; ends when the server that
    writes the log is gone (after a last read), after `stop_after` seconds, or on Ctrl-C."""
    folder = native.state_dir(settings)
    return follow_file(
        native.log_file(folder),
        lines,
        stop_after,
        poll,
        alive=lambda: native.read_running(folder) is not None,
    )


def follow_file(
    path: Path,
    lines: int,
    stop_after: float | None = None,
    poll: float = 0.2,
    alive: Callable[[], bool] | None = None,
) -> Iterator[str]:
    """`follow` for any log file; ``alive`` says whether its writer still runs (default: a
    cluster process whose PID file sits next to the log)."""
    if alive is None:
        alive = _writer_alive(path)
    # The tail and the point to follow from come from one read: a line written in between is
    # neither lost nor shown twice.
    try:
        with open(path, errors="replace") as handle:
            text = handle.read()
            position = handle.tell()
    except OSError:
        text, position = "", 0
    yield from text.splitlines()[-lines:] if lines > 0 else []
    deadline = None if stop_after is None else time.monotonic() + stop_after
    pending = ""
    while True:
        running = alive()
        try:
            with open(path, errors="replace") as handle:
                handle.seek(position)
                chunk = handle.read()
                position = handle.tell()
        except FileNotFoundError:
            chunk = ""
        if chunk:
            pending += chunk
            *complete, pending = pending.split("\n")
            yield from complete
        if not running:
            if pending:
                yield pending
            return
        if deadline is not None and time.monotonic() >= deadline:
            return
        time.sleep(poll)


def _writer_alive(path: Path) -> Callable[[], bool]:
    if path.name == native.log_file(path.parent).name:  # a node: native's PID file beside it
        return lambda: native.read_running(path.parent) is not None
    name = path.name.removesuffix(".log")
    return lambda: cluster.read_proc(path.parent, name) is not None


def cluster_logs(settings: Settings) -> dict[str, Path] | None:
    """Each cluster process's log by component name; None when no cluster was started here."""
    folder = native.state_dir(settings)
    recorded = cluster.read_state(folder)
    base = cluster.cluster_dir(folder)
    if recorded is None and not (base / "bus.log").exists() and not any(base.glob("node-*")):
        return None
    names = (
        [f"front-door-{k}" for k in range(1, recorded.plan.front_doors + 1)]
        + [node.name for node in recorded.plan.nodes]
        if recorded is not None
        else sorted(p.name for p in base.glob("node-*"))
    )
    paths = {
        name: (native.log_file(base / name) if name.startswith("node-") else base / f"{name}.log")
        for name in names
    }
    if recorded is None or not recorded.bus_shared:
        paths["bus"] = base / "bus.log"
    return paths


def remember(env_file: Path, changes: dict[str, str]) -> str:
    """Write --nodes/--adapter into .env (atomically) so a plain `up` brings the same back.
    Under the .env's lock, like every writer: a `switch` at the same time loses nothing."""
    from rtctl.envfile import atomic_write, load, locked

    if not env_file.exists():
        return (
            f"note: {', '.join(f'{k}={v}' for k, v in changes.items())} not written: no {env_file}"
        )
    with locked(env_file):
        document = load(env_file)
        changed = [key for key, value in changes.items() if document.set(key, value)]
        if not changed:
            return f"{env_file} already says {', '.join(f'{k}={v}' for k, v in changes.items())}"
        atomic_write(env_file, document.text)
    return f"wrote {', '.join(f'{k}={changes[k]}' for k in changed)} to {env_file}"
