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

from rtctl import locks
from rtctl.config import Settings
from rtctl.errors import (
    ConfigError,
    Conflict,
    EnvironmentProblem,
    ExitCode,
    RtctlError,
    TimedOut,
)
from rtctl.runtime import docker, health, native

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "started": self.started,
            "already_running": not self.started,
            "pid": self.pid,
            "endpoints": self.endpoints,
            "log_file": self.log_file,
            "project_dir": self.project_dir,
        }


def _stale_note(folder: Path) -> str | None:
    """read_running removes a PID file whose process is gone or whose PID was reused: say so."""
    path = native.pid_file(folder)
    if not path.exists():
        return None
    if native.read_running(folder) is None:
        return f"removed a stale PID file ({path}): the process it named no longer runs"
    return None


# How long `up`/`down` wait for another `up`/`down` in the same state folder: as long as a first
# start may take (a first `up` installs Soketi with npm, bounded at 15 minutes).
STATE_LOCK_WAIT = 900.0


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
    with locks.folder_lock(folder, "starting or stopping Soketi", STATE_LOCK_WAIT, progress):
        return _up(settings, folder, runtime, wait, timeout, progress)


def _up(
    settings: Settings,
    folder: Path,
    runtime: str,
    wait: bool,
    timeout: float,
    progress: Progress,
) -> UpResult:
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
    if (
        docker.read_marker(folder) is not None
        and runtime != "native"
        and health.fetch(f"{settings.api_base}/ready", settings, 2.0).ok
    ):
        return UpResult(
            "docker", False, None, endpoints(settings), project_dir=docker.read_marker(folder)
        )
    chosen = choose_runtime(runtime)
    if chosen == "native":
        started, _ = native.start(settings, folder, wait=wait, timeout=timeout, progress=progress)
        return UpResult(
            "native", True, started.pid, endpoints(settings), started.log_file, notes=notes
        )
    docker.require_engine()
    for port, host in ((settings.port, settings.host), (settings.metrics_port, "127.0.0.1")):
        busy = Conflict(
            f"port {port} on {host} is already in use",
            hint="stop what listens there, or choose other ports in .env",
        )
        native.require_free_port(host, port, busy, "REALTIME_HOST")
    progress("starting Soketi with docker compose (the first run pulls the image)")
    proj = docker.up(settings, folder)
    if wait:
        try:
            wait_ready(settings, timeout)
        except BaseException:
            docker.down(settings, folder)  # nothing left half-running
            raise
    return UpResult(
        "docker", True, None, endpoints(settings), project_dir=str(proj.directory), notes=notes
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

    def to_dict(self) -> dict[str, Any]:
        return {"stopped": self.stopped, "runtime": self.runtime, "pid": self.pid}


def down(settings: Settings, grace: float = 10.0, progress: Progress = _silent) -> DownResult:
    """Stop what `up` started here; idempotent (stopped=False when nothing was running).
    Waits for an `up` in progress in the same state folder, so it stops what that one starts."""
    folder = native.state_dir(settings)
    if not folder.exists():
        return DownResult(False, None)  # nothing was ever started here (and nothing is created)
    with locks.folder_lock(folder, "starting or stopping Soketi", STATE_LOCK_WAIT, progress):
        return _down(settings, folder, grace)


def _down(settings: Settings, folder: Path, grace: float) -> DownResult:
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
        """OK healthy, FAILED running but unhealthy, UNREACHABLE not running (docs/runtime.md)."""
        if self.healthy:
            return ExitCode.OK
        return ExitCode.FAILED if self.running else ExitCode.UNREACHABLE

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


def status(settings: Settings, timeout: float = 2.0) -> StatusReport:
    require_local_provider(settings)
    folder = native.state_dir(settings)
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
    path = native.log_file(folder)
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
        alive = native.read_running(folder) is not None
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
        if not alive:
            if pending:
                yield pending
            return
        if deadline is not None and time.monotonic() >= deadline:
            return
        time.sleep(poll)
