"""Servers for tests: a native Soketi started on free loopback ports, or an existing deployment.

A started Soketi goes through rtctl's own runtime (``rtctl.runtime.native``: loopback-pinned
discovery, the pinned install, the PID-and-start-time bookkeeping). A watchdog process holds the
read end of a pipe whose write end only this process has: when this process ends in any way
(a normal stop, Ctrl-C, a crash, ``os._exit``, SIGKILL) the pipe closes and the watchdog stops the
server by its recorded PID, so no Soketi outlives the test session.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rtctl.errors import ConfigError, RtctlError, Unreachable

if TYPE_CHECKING:
    from rtctl.config import Settings
    from rtctl.ops.webhook_receiver import WebhookReceiver
    from rtctl.runtime.native import Running
    from rtctl.testing.webhooks import WebhookInbox

# What the plugin's own Soketi enforces on top of rtctl's settings: Pusher's 10 KB event limit
# (Soketi's default is 100 KB), so a payload Pusher would refuse is refused in tests too.
PUSHER_LIMITS = {"SOKETI_EVENT_MAX_SIZE_IN_KB": "10"}
START_TIMEOUT = 30.0


_HANDED_OUT: set[int] = set()
_HANDING_OUT = threading.Lock()


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel's choice on 127.0.0.1), and never one
    this process was given before: the kernel may hand the same port to two calls in a row, and
    a server's port and its metrics port must differ (rtctl refuses a .env where they are equal)."""
    with _HANDING_OUT:
        while True:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                return port


def fresh_credentials() -> dict[str, str]:
    """A new app id (digits, for the pusher SDK), key and secret (letters, for Soketi)."""
    return {
        "PUSHER_APP_ID": str(100000 + secrets.randbelow(899999)),
        "PUSHER_APP_KEY": "key" + secrets.token_hex(8),
        "PUSHER_APP_SECRET": "sec" + secrets.token_hex(12),
    }


def fresh_master_key() -> str:
    """A base64 encryption master key for private-encrypted channels."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def local_env(**overrides: str) -> dict[str, str]:
    """rtctl's variables for a Soketi on free loopback ports with fresh credentials."""
    env = {
        "REALTIME_PROVIDER": "soketi",
        "REALTIME_HOST": "127.0.0.1",
        "REALTIME_PORT": str(free_port()),
        "SOKETI_METRICS_SERVER_PORT": str(free_port()),
        "SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES": "true",
        **fresh_credentials(),
    }
    env.update(overrides)
    return env


def write_env(path: Path, values: Mapping[str, str]) -> Path:
    """A .env of ``values``, written as rtctl writes every .env: atomically, mode 0600."""
    from rtctl.envfile import atomic_write

    atomic_write(path, "".join(f"{key}={value}\n" for key, value in values.items()))
    return path


@dataclass
class LocalSoketi:
    """A real native Soketi for tests: ``env`` holds rtctl's variables that describe it,
    ``soketi_env`` extra Soketi variables for its process only, ``state`` its folder (PID file,
    log). Start and stop are idempotent."""

    env: dict[str, str]
    state: Path
    running: Running | None = None
    extra: dict[str, str] = field(default_factory=dict)  # settings-only additions
    soketi_env: dict[str, str] = field(default_factory=dict)
    _watchdog: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return int(self.env["REALTIME_PORT"])

    @property
    def metrics_port(self) -> int:
        return int(self.env["SOKETI_METRICS_SERVER_PORT"])

    @property
    def key(self) -> str:
        return self.env["PUSHER_APP_KEY"]

    @property
    def secret(self) -> str:
        return self.env["PUSHER_APP_SECRET"]

    @property
    def app_id(self) -> str:
        return self.env["PUSHER_APP_ID"]

    @property
    def log_path(self) -> Path:
        from rtctl.runtime import native

        return native.log_file(self.state)

    def settings(self) -> Settings:
        """Built from ``env`` and ``extra`` only: no .env in the working folder and no shell
        variable changes what the server is."""
        from rtctl.config import DEFAULT_ENV_FILE, ConfigLayers, build_settings

        values = {**self.env, **self.extra}
        return build_settings(
            ConfigLayers(values, dict.fromkeys(values, "env"), DEFAULT_ENV_FILE, False)
        )

    def write_env(self, path: Path, **changes: str) -> Path:
        return write_env(path, {**self.env, **changes})

    def start(self, timeout: float = START_TIMEOUT) -> LocalSoketi:
        from rtctl.runtime import native

        self.state.mkdir(parents=True, exist_ok=True)
        self._start_watchdog()
        try:
            self.running, _ = native.start(
                self.settings(), self.state, timeout=timeout, extra_env=self.soketi_env
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        from rtctl.runtime import native

        try:
            native.stop(self.state)
        finally:
            self.running = None
            self._stop_watchdog()

    def alive(self) -> bool:
        from rtctl.runtime import native

        return native.read_running(self.state) is not None

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def settle_log(self, quiet: float = 0.1, bound: float = 1.0) -> None:
        """Wait (at most ``bound`` seconds) until the log has not grown for ``quiet`` seconds:
        Soketi writes what a test made it do a moment after the test, more so on a busy machine."""
        import time

        deadline = time.monotonic() + bound
        size, since = self.log_size(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(quiet / 4)
            now_size = self.log_size()
            if now_size != size:
                size, since = now_size, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return

    def log_since(self, offset: int, max_lines: int = 200) -> str:
        """What Soketi logged after byte ``offset`` (colour codes removed, the last lines)."""
        from rtctl.runtime.native import strip_colours

        self.settle_log()
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [line.rstrip() for line in strip_colours(text).splitlines() if line.strip()]
        if len(lines) > max_lines:
            hidden = len(lines) - max_lines
            lines = [f"… {hidden} earlier lines are in {self.log_path}", *lines[-max_lines:]]
        return "\n".join(lines)

    # --- the watchdog ----------------------------------------------------------------------------

    def _start_watchdog(self) -> None:
        if self._watchdog is not None:
            return
        self._watchdog = subprocess.Popen(
            [sys.executable, "-m", "rtctl.testing.watchdog", str(self.state)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal must not stop it before the server
        )

    def _stop_watchdog(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is None:
            return
        with contextlib.suppress(OSError):
            assert watchdog.stdin is not None
            watchdog.stdin.close()  # the server is already stopped: it finds nothing to do
        try:
            watchdog.wait(timeout=10)
        except subprocess.TimeoutExpired:
            watchdog.kill()
            watchdog.wait(timeout=5)


@dataclass
class RealtimeServer:
    """The server a test session talks to. ``soketi`` is set when this process started it;
    ``env_file`` describes it in rtctl's .env format (what ``rtctl --env-file`` reads);
    ``webhooks`` holds the webhooks it sent, verified, when it sends them here (the Soketi the
    plugin starts natively)."""

    settings: Settings
    env_file: Path
    description: str
    soketi: LocalSoketi | None = None
    webhooks: WebhookInbox | None = None
    receiver: WebhookReceiver | None = None

    @property
    def env(self) -> dict[str, str]:
        """The variables an app under test reads, in the usual Pusher names and rtctl's own."""
        return app_environment(self.settings)

    def stop(self) -> None:
        try:
            if self.soketi is not None:
                self.soketi.stop()
        finally:
            if self.receiver is not None:
                self.receiver.stop()


def app_environment(settings: Settings) -> dict[str, str]:
    """``PUSHER_*`` (also ``PUSHER_HOST``/``PORT``/``SCHEME`` as Laravel Echo and most guides
    name them) and ``REALTIME_*`` for one server."""
    env = {
        "PUSHER_APP_ID": settings.app_id,
        "PUSHER_APP_KEY": settings.key,
        "PUSHER_APP_SECRET": settings.secret,
        "PUSHER_APP_CLUSTER": settings.cluster,
        "PUSHER_HOST": settings.api_host,
        "PUSHER_PORT": str(settings.port),
        "PUSHER_SCHEME": settings.scheme,
        "REALTIME_PROVIDER": settings.provider,
        "REALTIME_SCHEME": settings.scheme,
    }
    if settings.provider == "soketi":
        env.update(REALTIME_HOST=settings.host, REALTIME_PORT=str(settings.port))
    elif settings.host != f"api-{settings.cluster}.pusher.com":
        env["RTCTL_PUSHER_ENDPOINT"] = f"{settings.host}:{settings.port}"
    if settings.encryption_master_key_base64:
        env["PUSHER_ENCRYPTION_MASTER_KEY_BASE64"] = settings.encryption_master_key_base64
    if settings.ca_bundle:
        env["RTCTL_CA_BUNDLE"] = settings.ca_bundle
    return env


def start_local(folder: Path, timeout: float = START_TIMEOUT) -> RealtimeServer:
    """A native Soketi with Pusher's limits, fresh credentials and an encryption master key,
    sending every webhook to a verifying receiver in this process (started first, on a free
    port: Soketi reads its webhooks once, at start)."""
    from rtctl import webhook_settings
    from rtctl.config import load_settings
    from rtctl.ops.webhook_receiver import WebhookReceiver
    from rtctl.testing.webhooks import WebhookInbox

    env = local_env()
    inbox = WebhookInbox()
    receiver = WebhookReceiver(
        env["PUSHER_APP_KEY"],
        env["PUSHER_APP_SECRET"],
        on_delivery=inbox.delivered,
        on_rejection=inbox.refused,
        keep=False,
        buffer=False,
    ).start()
    master_key = {"PUSHER_ENCRYPTION_MASTER_KEY_BASE64": fresh_master_key()}
    soketi = LocalSoketi(
        env,
        folder / "soketi",
        # settings-only: composed into SOKETI_DEFAULT_APP_WEBHOOKS as for `rtctl up`
        extra={**master_key, webhook_settings.URL: receiver.url},
        soketi_env=dict(PUSHER_LIMITS),
    )
    try:
        soketi.start(timeout)
    except BaseException:
        receiver.stop()
        raise
    pid = soketi.running.pid if soketi.running else "?"
    # The .env describes the server, not where its webhooks go: `rtctl smoke --env-file` on it
    # must not try to receive on the port this process holds.
    env_file = write_env(folder / ".env", {**soketi.env, **master_key})
    settings = load_settings(env_file=env_file, environ={})
    return RealtimeServer(
        settings,
        env_file,
        f"a native Soketi on 127.0.0.1:{soketi.port} (pid {pid})",
        soketi,
        webhooks=inbox,
        receiver=receiver,
    )


def existing(env_file: Path, timeout: float = 10.0) -> RealtimeServer:
    """The deployment an env file names (only that file: no stray shell variable redirects a test
    run), checked by opening a Pusher connection to it."""
    from rtctl.config import load_settings
    from rtctl.protocol import PusherSocket

    if not env_file.is_file():
        raise ConfigError(
            f"the env file {env_file} does not exist",
            hint="pass --rtctl-env-file (or RTCTL_ENV_FILE) with the .env of a running deployment, "
            "or leave both unset to start a Soketi for the session",
        )
    settings = load_settings(env_file=env_file, environ={})
    where = settings.ws_url.split("?", 1)[0]
    try:
        with PusherSocket(settings) as sock:
            sock.connect(timeout)
    except RtctlError as error:
        raise Unreachable(
            f"the deployment in {env_file} does not answer at {where}: {error.message}",
            hint=error.hint or "start it (e.g. `rtctl up --env-file FILE`) or fix the env file",
        ) from error
    return RealtimeServer(settings, env_file, f"the deployment in {env_file} ({where})")


def start_docker(folder: Path, timeout: float = 300.0) -> RealtimeServer:
    """Soketi in Docker through rtctl's compose runtime (`rtctl up --runtime docker`)."""
    from rtctl.config import load_settings
    from rtctl.runtime import docker, service

    env_file = write_env(
        folder / ".env",
        {**local_env(), "PUSHER_ENCRYPTION_MASTER_KEY_BASE64": fresh_master_key()},
    )
    settings = load_settings(env_file=env_file, environ={})
    docker.require_engine()
    docker.up(settings, folder / "state", timeout)
    server = _DockerServer(settings, env_file, f"Soketi in Docker on 127.0.0.1:{settings.port}")
    server.folder = folder / "state"
    try:
        service.wait_ready(settings, START_TIMEOUT)
    except BaseException:
        server.stop()
        raise
    return server


@dataclass
class _DockerServer(RealtimeServer):
    folder: Path | None = None

    def stop(self) -> None:
        from rtctl.runtime import docker

        if self.folder is not None:
            docker.down(self.settings, self.folder)
