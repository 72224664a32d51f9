"""Run a real Soketi 1.6.1 natively from the npm registry (no Docker engine needed).

The facts behind this module (see shared/reference/soketi-native.md):
- the pinned package.json overrides uWebSockets.js with a registry fork that ships Node 16/18/20
  binaries; on another Node ABI the fork silently falls back to a JS shim that crashes on the first
  upgrade, so the addon is checked after install;
- peer discovery broadcasts on the LAN unless pinned: env + a config file pin it to 127.0.0.1;
- Soketi loads a .env from its working directory, so it runs from its own state folder;
- uWS listens with SO_REUSEPORT, so a busy port is refused here rather than silently shared;
- the process renames itself, so it is tracked only by the PID (and start time) we recorded.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol, TypeVar

from rtctl import locks
from rtctl.config import Settings
from rtctl.envfile import atomic_write
from rtctl.errors import (
    ConfigError,
    Conflict,
    EnvironmentProblem,
    RtctlError,
    ServerDied,
    TimedOut,
    UsageError,
)

SOKETI_VERSION = "1.6.1"
SUPPORTED_NODE_MAJORS = (16, 18, 20)
# Any .node file is not enough: the fork's JS fallback pulls in ws, whose bufferutil prebuild is
# a .node file too. Only the fork's own uws_<platform>_<arch>_<abi>.node proves the real addon.
ADDON_CHECK = (
    'require("uWebSockets.js");'
    "process.exit(Object.keys(require.cache).some(k=>/uws_[^/]*[.]node$/.test(k))?0:1)"
)
SERVER_JS = Path("node_modules/@soketi/soketi/bin/server.js")
LOG_TAIL_LINES = 15

Progress = Callable[[str], None]


def _silent(_: str) -> None:
    pass


# --- folders ------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Per-user cache for the npm install (RTCTL_CACHE_DIR overrides)."""
    if os.environ.get("RTCTL_CACHE_DIR"):
        return Path(os.environ["RTCTL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rtctl"


def install_dir() -> Path:
    return cache_dir() / f"soketi-{SOKETI_VERSION}"


def state_dir(settings: Settings) -> Path:
    """Per-project state (PID file, log, Soketi's working folder): next to the .env file."""
    if os.environ.get("RTCTL_STATE_DIR"):
        return Path(os.environ["RTCTL_STATE_DIR"])
    return settings.env_file.resolve().parent / ".rtctl"


# How long `up`/`down` wait for another `up`/`down` in the same state folder: as long as a first
# start may take (a first `up` installs Soketi with npm, bounded at 15 minutes).
STATE_LOCK_WAIT = 900.0


def state_lock(folder: Path, progress: Progress = _silent) -> AbstractContextManager[None]:
    """One `up` or `down` at a time per state folder (one server or a whole cluster): a second
    one waits (saying so through ``progress``), then sees what the first did."""
    return locks.folder_lock(folder, "starting or stopping Soketi", STATE_LOCK_WAIT, progress)


# --- node and npm -------------------------------------------------------------------------------


def node_binary() -> str:
    return os.environ.get("RTCTL_NODE") or "node"


def find_node() -> tuple[str, str]:
    """Return (path, version) of a Node that can run the native uWS addon, or raise."""
    node = shutil.which(node_binary())
    if node is None:
        raise EnvironmentProblem(
            f"Node.js ({node_binary()}) was not found on PATH",
            hint="install Node 16, 18 or 20 (e.g. apt-get install nodejs) or set RTCTL_NODE, "
            "or use Docker with `rtctl up --runtime docker`",
        )
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=20, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise EnvironmentProblem(f"{node} --version failed: {exc}") from exc
    head = version.lstrip("v").split(".")[0]
    major = int(head) if head.isdigit() else 0
    if major not in SUPPORTED_NODE_MAJORS:
        raise EnvironmentProblem(
            f"Node {version} is not supported by the native Soketi (needs 16, 18 or 20)",
            hint="install Node 20 and point RTCTL_NODE at it, or use `rtctl up --runtime docker`",
        )
    return node, version


def _asset(name: str) -> bytes:
    return (resources.files("rtctl.runtime") / "assets" / name).read_bytes()


def _lock_digest() -> str:
    return hashlib.sha256(_asset("package.json") + _asset("package-lock.json")).hexdigest()[:16]


def is_installed() -> bool:
    marker = install_dir() / ".rtctl-installed"
    return marker.is_file() and marker.read_text().strip() == _lock_digest()


def ensure_installed(progress: Progress = _silent) -> Path:
    """Install the pinned Soketi with `npm ci` once; verify that the native addon loads."""
    node, _ = find_node()
    target = install_dir()
    if is_installed():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise EnvironmentProblem(
            "npm was not found on PATH", hint="install npm (it ships with Node.js)"
        )
    target.mkdir(parents=True, exist_ok=True)
    (target / "package.json").write_bytes(_asset("package.json"))
    (target / "package-lock.json").write_bytes(_asset("package-lock.json"))
    progress(f"installing Soketi {SOKETI_VERSION} from the npm registry into {target}")
    try:
        result = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=target,
            capture_output=True,
            text=True,
            timeout=900,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise EnvironmentProblem("npm ci took more than 15 minutes and was stopped") from exc
    if result.returncode != 0:
        # leave nothing half-installed behind: the next `up` starts from a clean folder
        shutil.rmtree(target / "node_modules", ignore_errors=True)
        last = (result.stderr or result.stdout).strip().splitlines()[-3:] or ["(no output)"]
        raise EnvironmentProblem(
            f"npm ci failed (exit {result.returncode}): {' | '.join(last)}",
            hint="check that the npm registry is reachable (npm ping) and retry `rtctl up`",
        )
    try:
        check_addon(node, target)
    except EnvironmentProblem:
        shutil.rmtree(target / "node_modules", ignore_errors=True)  # useless on this Node
        raise
    (target / ".rtctl-installed").write_text(_lock_digest())
    return target


def check_addon(node: str, folder: Path) -> None:
    """The uWS fork falls back to a JS shim on an unknown ABI; insist on the real .node file."""
    result = subprocess.run(
        [node, "-e", ADDON_CHECK], cwd=folder, capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise EnvironmentProblem(
            "the native uWebSockets.js addon did not load (no .node binary for this Node ABI)",
            hint="use Node 16, 18 or 20 (RTCTL_NODE=/path/to/node) or `rtctl up --runtime docker`",
        )


# --- process state ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Running:
    """What `up` recorded about the server it started."""

    pid: int
    start_ticks: int
    host: str
    port: int
    metrics_port: int
    scheme: str
    started_at: float
    log_file: str
    runtime: str = "native"


def start_ticks(pid: int) -> int | None:
    """The kernel's start time of a PID: tells our process apart from a reused PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has exited; only its exit status is left to collect
        return None
    return int(fields[19])


def pid_file(folder: Path) -> Path:
    return folder / "soketi.pid.json"


def log_file(folder: Path) -> Path:
    return folder / "soketi.log"


def read_running(folder: Path) -> Running | None:
    """The recorded server if it is still alive; a stale PID file is removed."""
    return read_pid_record(pid_file(folder), Running)


class _PidRecord(Protocol):
    @property
    def pid(self) -> int: ...
    @property
    def start_ticks(self) -> int: ...


Record = TypeVar("Record", bound=_PidRecord)


def read_pid_record(path: Path, record: Callable[..., Record]) -> Record | None:
    """The process a PID file records, if it still runs (same PID and start time). A file that
    does not parse, or names a process that is gone or a reused PID, is removed; our own exited
    child is collected on the way."""
    try:
        found = record(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        path.unlink(missing_ok=True)
        return None
    if start_ticks(found.pid) != found.start_ticks:
        _reap(found.pid)
        path.unlink(missing_ok=True)
        return None
    return found


def spawn_detached(
    argv: list[str], cwd: Path, env: Mapping[str, str] | None, log: Path
) -> subprocess.Popen[bytes]:
    """Start a process that outlives rtctl: its own session (survives the terminal; stopped by
    PID), no stdin, stdout and stderr appended to ``log``."""
    with open(log, "ab") as handle:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def bind_problem(host: str, port: int) -> OSError | None:
    """Bind without SO_REUSEPORT: fails exactly when something (uWS included) listens there,
    or when the host is no address of this machine. None when a server could listen there.

    SO_REUSEADDR lets the probe ignore TIME_WAIT leftovers; on Linux it still fails on a listener.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except (OSError, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode
            return exc if isinstance(exc, OSError) else socket.gaierror(str(exc))
    return None


def port_is_free(host: str, port: int) -> bool:
    return bind_problem(host, port) is None


def require_free_port(host: str, port: int, in_use: RtctlError, host_source: str) -> None:
    """Raise ``in_use`` when something listens on host:port; when the host itself is the
    problem (unresolvable, not this machine's), say that, naming ``host_source`` (a variable
    means a config error, a flag a usage error)."""
    problem = bind_problem(host, port)
    if problem is not None:
        raise listen_error(problem, host, port, in_use, host_source)


def listen_error(
    problem: OSError, host: str, port: int, in_use: RtctlError, host_source: str
) -> RtctlError:
    """What a failed bind means, for every server rtctl starts: ``in_use`` for a busy port; a
    config error (``host_source`` a variable) or usage error (a flag) for a host that does not
    resolve or is not this machine's; an environment problem for the rest."""
    if problem.errno == errno.EADDRINUSE:
        return in_use
    fix = f"set {host_source} to an address of this machine, e.g. 127.0.0.1"
    wrong_host = ConfigError if host_source.isupper() else UsageError
    if isinstance(problem, socket.gaierror):
        return wrong_host(f"{host_source} {host!r} cannot be resolved to an address", hint=fix)
    if problem.errno == errno.EADDRNOTAVAIL:
        return wrong_host(f"{host_source} {host} is not an address of this machine", hint=fix)
    if problem.errno == errno.EACCES:
        return EnvironmentProblem(
            f"no permission to listen on port {port} of {host}",
            hint="ports below 1024 need extra privileges: choose a port above 1023",
        )
    return EnvironmentProblem(f"cannot listen on {host}:{port}: {problem.strerror or problem}")


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_colours(text: str) -> str:
    """Soketi colours its own log lines: drop those escape sequences."""
    return _ANSI.sub("", text) if "\x1b" in text else text


def log_tail(folder: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of the log, colour codes removed (Soketi colours its own output)."""
    return file_tail(log_file(folder), lines)


def file_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last non-empty lines of any log file, colour codes removed."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    kept = [line.rstrip() for line in _ANSI.sub("", text).splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


# --- start and stop -----------------------------------------------------------------------------


def soketi_environment(settings: Settings) -> dict[str, str]:
    """Soketi's env from rtctl's settings: PUSHER_* are the single source of the credentials."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SOKETI_", "PUSHER_", "REALTIME_"))
    }
    env.update(
        SOKETI_HOST=settings.host,
        SOKETI_PORT=str(settings.port),
        SOKETI_APP_MANAGER_DRIVER=settings.app_manager_driver,
        SOKETI_DEFAULT_APP_ID=settings.app_id,
        SOKETI_DEFAULT_APP_KEY=settings.key,
        SOKETI_DEFAULT_APP_SECRET=settings.secret,
        SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES=json.dumps(settings.client_messages),
        SOKETI_DEFAULT_APP_USER_AUTHENTICATION=json.dumps(settings.user_authentication),
        SOKETI_METRICS_ENABLED=json.dumps(settings.metrics_enabled),
        SOKETI_METRICS_HOST="127.0.0.1",
        SOKETI_METRICS_SERVER_PORT=str(settings.metrics_port),
        # Never broadcast discovery packets on the LAN: pin clustering to loopback.
        SOKETI_CLUSTER_UNICAST_ADDRESSES="127.0.0.1",
        SOKETI_CLUSTER_HOST="127.0.0.1",
        SOKETI_SHUTDOWN_GRACE_PERIOD="0",
    )
    if settings.ssl_cert and settings.ssl_key:
        env.update(SOKETI_SSL_CERT=settings.ssl_cert, SOKETI_SSL_KEY=settings.ssl_key)
    # Webhooks: composed from REALTIME_WEBHOOK_* (or the hand-written SOKETI_DEFAULT_APP_WEBHOOKS).
    env.update(settings.webhooks.soketi_environment())
    # Passthrough of extra SOKETI_* tuning from the user's own environment (limits, debug),
    # except the credentials, which come only from PUSHER_*.
    for key, value in os.environ.items():
        if (
            key.startswith("SOKETI_")
            and key not in env
            and not key.startswith("SOKETI_DEFAULT_APP_")
        ):
            env[key] = value
    return env


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def own_discovery_port() -> dict[str, str]:
    """A discovery port of its own for a single Soketi: on the shared default (11002) every
    Soketi on the machine finds every other one as a cluster peer (log noise, and a peer set
    nobody asked for). SOKETI_CLUSTER_PORT from the environment still wins."""
    if os.environ.get("SOKETI_CLUSTER_PORT"):
        return {}
    return {"SOKETI_CLUSTER_PORT": str(free_udp_port())}


def start(
    settings: Settings,
    folder: Path,
    wait: bool = True,
    timeout: float = 20.0,
    progress: Progress = _silent,
    extra_env: Mapping[str, str] | None = None,
) -> tuple[Running, bool]:
    """Start Soketi detached, or find the one already running. Returns (running, started_now).

    ``extra_env`` adds Soketi variables that rtctl's settings do not carry (limits such as
    ``SOKETI_EVENT_MAX_SIZE_IN_KB``, per-app options such as ``SOKETI_DEFAULT_APP_WEBHOOKS``)."""
    if settings.provider != "soketi":
        raise ConfigError(
            "the provider is pusher: there is no local server to start",
            hint="run `rtctl switch soketi` to use a local Soketi",
        )
    existing = read_running(folder)
    if existing is not None:
        if (existing.host, existing.port) != (settings.host, settings.port):
            raise Conflict(
                f"a Soketi started by rtctl already runs here on {existing.host}:{existing.port} "
                f"(pid {existing.pid})",
                hint="stop it with `rtctl down` before starting one on another address",
            )
        return existing, False
    for name, port, bind_host in (
        ("REALTIME_PORT", settings.port, settings.host),
        ("SOKETI_METRICS_SERVER_PORT", settings.metrics_port, "127.0.0.1"),
    ):
        busy = Conflict(
            f"port {port} on {bind_host} is already in use ({name})",
            hint=f"stop what listens there, or set {name} to a free port in .env",
        )
        require_free_port(bind_host, port, busy, "REALTIME_HOST")
    root = ensure_installed(progress)
    node, _ = find_node()
    folder.mkdir(parents=True, exist_ok=True)
    work = folder / "run"  # Soketi reads a .env from its cwd: give it an empty folder
    work.mkdir(exist_ok=True)
    config = work / "soketi.config.json"
    config.write_text(json.dumps({"cluster.address": "127.0.0.1"}))
    log = log_file(folder)
    process = spawn_detached(
        [node, str(root / SERVER_JS), "start", f"--config={config}"],
        work,
        {**soketi_environment(settings), **own_discovery_port(), **(extra_env or {})},
        log,
    )
    ticks = start_ticks(process.pid) or 0
    running = Running(
        pid=process.pid,
        start_ticks=ticks,
        host=settings.host,
        port=settings.port,
        metrics_port=settings.metrics_port,
        scheme=settings.scheme,
        started_at=time.time(),
        log_file=str(log),
    )
    atomic_write(pid_file(folder), json.dumps(asdict(running)))
    if wait:
        try:
            wait_ready(settings, process, folder, timeout)
        except BaseException:
            stop(folder)
            raise
    return running, True


def wait_ready(
    settings: Settings, process: subprocess.Popen[bytes], folder: Path, timeout: float
) -> None:
    from rtctl.runtime.health import fetch

    deadline = time.monotonic() + timeout
    url = f"{settings.api_base}/"
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise ServerDied(
                f"Soketi exited with code {code} during start; last log lines:\n{log_tail(folder)}",
                hint=f"read the whole log with `rtctl logs` ({log_file(folder)})",
            )
        answer = fetch(url, settings, timeout=1.0)
        if answer.status == 200 and answer.body.strip() == "OK":
            return
        time.sleep(0.1)
    raise TimedOut(
        f"Soketi did not answer {url} within {timeout:g}s",
        hint=f"see `rtctl logs`; raise --timeout on a slow machine ({log_file(folder)})",
    )


def stop(folder: Path, grace: float = 10.0) -> Running | None:
    """SIGTERM the recorded PID, wait, SIGKILL after `grace`. Idempotent: None if nothing ran."""
    running = read_running(folder)
    if running is None:
        return None
    stop_pid(running.pid, running.start_ticks, grace)
    pid_file(folder).unlink(missing_ok=True)
    return running


def stop_pid(pid: int, ticks: int, grace: float = 10.0) -> None:
    """SIGTERM one process we started (the PID *and* its start time must match), SIGKILL after
    ``grace`` seconds; returns once it is gone. Never signals a PID that was reused."""
    if start_ticks(pid) != ticks:
        _reap(pid)
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and start_ticks(pid) == ticks:
        _reap(pid)
        time.sleep(0.05)
    if start_ticks(pid) == ticks:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            _reap(pid)
            if start_ticks(pid) != ticks:
                break
            time.sleep(0.05)


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
