"""Serving the gateway with uvicorn: one process, or several worker processes on one port.

- One worker: the app runs in this process.
- N workers: this process binds the port once and uvicorn's process manager spawns N workers that
  all accept on that one socket, so the port stays served while a worker restarts. A worker that
  dies is replaced at once and the replacement is logged. The workers share the
  failed-authentication counters through an SQLite file (rtctl.gateway.shared) in a private
  temporary folder that this process creates and removes.

Every connection must deliver its request headers within ``header_timeout`` seconds, or it is
closed: a half-sent request cannot hold a connection (and a file descriptor) forever.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors.multiprocess import Multiprocess

from rtctl.config import Settings
from rtctl.errors import Conflict, EnvironmentProblem, ServerDied, UsageError

log = logging.getLogger("rtctl.gateway")

HEADER_TIMEOUT_S = 10.0
WORKER_MEMORY_BYTES = 100 * 1024 * 1024  # budget per worker; one measures about 50 MB resident


@dataclass(frozen=True)
class AppSpec:
    """Everything `create_app` needs, picklable: each spawned worker builds its own app from it."""

    settings: Settings
    prefix: str = "/realtime"
    dev_user_header: bool = False
    audience: str | None = None
    issuer: str | None = None
    shared_state: str | None = None
    auth_failure_limit: int | None = None

    def __call__(self) -> Any:
        from rtctl.gateway.app import create_app
        from rtctl.gateway.ratelimit import DEFAULT_LIMIT

        limit = DEFAULT_LIMIT if self.auth_failure_limit is None else self.auth_failure_limit
        return create_app(
            self.settings,
            prefix=self.prefix,
            dev_user_header=self.dev_user_header,
            audience=self.audience,
            issuer=self.issuer,
            shared_state=self.shared_state,
            auth_failure_limit=limit,
        )


# --- how many workers this machine can hold ------------------------------------------------------


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def max_workers() -> int:
    """2 x CPUs + 1 (the usual ceiling for request workers), less if memory cannot hold them."""
    by_cpu = 2 * usable_cpus() + 1
    memory = available_memory()
    return by_cpu if memory is None else max(1, min(by_cpu, memory // WORKER_MEMORY_BYTES))


def check_workers(workers: int) -> int:
    ceiling = max_workers()
    if workers < 1 or workers > ceiling:
        raise UsageError(
            f"--workers {workers} is not possible here: give 1 to {ceiling} "
            f"({usable_cpus()} CPUs, at most 2 workers per CPU + 1)",
            hint="workers beyond the CPUs add no throughput; e.g. --workers "
            f"{min(usable_cpus(), ceiling)}",
        )
    return workers


# --- uvicorn pieces ------------------------------------------------------------------------------


class GatewayConfig(uvicorn.Config):
    """uvicorn's Config plus the header timeout (pickled to spawned workers with the rest)."""

    header_timeout: float = HEADER_TIMEOUT_S


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for complete request headers.

    uvicorn times out idle keep-alive connections only after a response; a connection that sends
    nothing, or a request line and then nothing, would stay open. The deadline runs from the
    connection and from the first byte of each request, and ends when the headers are complete."""

    header_timer: Any = None

    def _arm(self) -> None:
        self._disarm()
        timeout = getattr(self.config, "header_timeout", HEADER_TIMEOUT_S)
        self.header_timer = self.loop.call_later(timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_too_slow(self) -> None:
        self.header_timer = None
        if not self.transport.is_closing():
            log.debug(
                "closed a connection from %s: no complete request headers in time", self.client
            )
            self.transport.close()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        self._arm()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()


class QuietServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, so the process would die by
    the signal; a gateway that drained its requests and stopped cleanly exits 0 instead."""

    @contextmanager
    def capture_signals(self) -> Any:
        with super().capture_signals():
            yield
            stopped_by = list(getattr(self, "_captured_signals", []))
            if stopped_by:
                self._captured_signals.clear()
                log.info("stopped cleanly (signal %d)", stopped_by[-1])


class Supervisor(Multiprocess):
    """uvicorn's process manager, saying which worker replaced which, and why the old one went."""

    stopped_by_signal = False

    def keep_subprocess_alive(self) -> None:
        before = list(self.processes)
        super().keep_subprocess_alive()
        for old, new in zip(before, self.processes, strict=False):
            if new is not old:
                code = old.exitcode
                how = (
                    f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"
                )
                log.warning("worker %s died (%s); worker %s replaces it", old.pid, how, new.pid)

    def handle_int(self) -> None:
        self.stopped_by_signal = True
        super().handle_int()

    def handle_term(self) -> None:
        self.stopped_by_signal = True
        super().handle_term()


def config_for(
    app: Any,
    *,
    host: str,
    port: int,
    workers: int,
    log_config: dict[str, Any] | None,
    header_timeout: float,
    forwarded_allow_ips: str | None,
) -> GatewayConfig:
    config = GatewayConfig(
        app,
        host=host,
        port=port,
        workers=workers,
        factory=isinstance(app, AppSpec),  # workers build their own app from the spec
        http=HeaderTimeoutProtocol,
        log_config=log_config,
        access_log=False,  # the gateway's own access log never prints query strings
        # X-Forwarded-For is believed only from the proxies named here (none by default), so a
        # remote client can never look local or dodge the failure limit by sending the header
        proxy_headers=bool(forwarded_allow_ips),
        forwarded_allow_ips=forwarded_allow_ips or "",
        server_header=False,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )
    config.header_timeout = header_timeout
    return config


def announce(spec: AppSpec, host: str, port: int, workers: int) -> None:
    where = f"[{host}]" if ":" in host else host
    log.info(
        "serving http://%s:%d%s/auth for %s at %s%s",
        where,
        port,
        spec.prefix.rstrip("/"),
        spec.settings.provider,
        spec.settings.api_base,
        f" with {workers} workers" if workers > 1 else "",
    )


def serve(
    spec: AppSpec,
    *,
    host: str,
    port: int,
    workers: int = 1,
    log_config: dict[str, Any] | None = None,
    header_timeout: float = HEADER_TIMEOUT_S,
    forwarded_allow_ips: str | None = None,
) -> None:
    """Serve until SIGTERM/Ctrl-C. Raises Conflict when the port cannot be bound, ServerDied when
    workers cannot start. The app is built here first, so a bad configuration fails before any
    process is spawned."""
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "header_timeout": header_timeout,
        "forwarded_allow_ips": forwarded_allow_ips,
    }
    if workers == 1:
        app = spec()
        announce(spec, host, port, workers)
        config = config_for(app, workers=1, log_config=None, **options)
        server = QuietServer(config)
        server.run()
        if not server.started:
            raise Conflict(
                f"the gateway could not start on {host}:{port}",
                hint="see the log lines above; another process may have taken the port",
            )
        return

    try:
        folder = Path(tempfile.mkdtemp(prefix="rtctl-gateway-"))  # mode 0700: this user only
    except OSError as exc:
        raise EnvironmentProblem(
            "cannot create the workers' shared state folder in "
            f"{os.environ.get('TMPDIR') or '/tmp'}: {exc.strerror or exc}",
            hint="make TMPDIR a writable folder, or run with --workers 1",
        ) from exc
    try:
        shared = replace(spec, shared_state=str(folder / "shared.sqlite"))
        shared().state.gateway.close()  # validates the configuration and creates the store
        announce(spec, host, port, workers)
        config = config_for(shared, workers=workers, log_config=log_config, **options)
        try:
            sock = config.bind_socket()
        except SystemExit:  # uvicorn logged why and exits; the port is taken
            raise Conflict(
                f"the gateway could not bind {host}:{port}",
                hint="see the log lines above; another process may have taken the port",
            ) from None
        supervisor = Supervisor(config, sockets=[sock])
        supervisor.run()
        sock.close()
        if not supervisor.stopped_by_signal:
            raise ServerDied(
                "the gateway's workers could not start",
                hint="see the log lines above",
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
