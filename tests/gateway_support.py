"""Shared by the gateway tests: tokens, settings, a real `rtctl gateway` process, the pusher-js client."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt

from rtctl.config import load_settings
from tests.helpers import JS_DIR, REPO, SoketiServer, free_port
from tests.waiting import wait_until

JWT_SECRET = secrets.token_hex(32)
EMIT_TOKEN = "emit-" + secrets.token_hex(16)
MONITOR_TOKEN = "mon-" + secrets.token_hex(16)
MASTER_KEY = base64.b64encode(secrets.token_bytes(32)).decode()
USER = "123"
OTHER = "124"
BOT = "9000000"
DM = f"private-{USER}_{BOT}"
OTHER_DM = f"private-{OTHER}_{BOT}"


def token(
    user: str | None = USER,
    *,
    key: Any = None,
    algorithm: str = "HS256",
    expires_in: float = 300,
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    payload: dict[str, Any] = {"iat": int(time.time())}
    if expires_in is not None:
        payload["exp"] = int(time.time() + expires_in)
    if user is not None:
        payload["sub"] = user
    payload.update(claims)
    return jwt.encode(
        payload, JWT_SECRET if key is None else key, algorithm=algorithm, headers=headers
    )


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def gateway_env(soketi: SoketiServer, **extra: str) -> dict[str, str]:
    env = {
        **soketi.env,
        "REALTIME_JWT_SECRET": JWT_SECRET,
        "REALTIME_EMIT_TOKEN": EMIT_TOKEN,
        "REALTIME_MONITOR_TOKEN": MONITOR_TOKEN,
        "PUSHER_ENCRYPTION_MASTER_KEY_BASE64": MASTER_KEY,
    }
    env.update(extra)
    return {key: value for key, value in env.items() if value != ""}


def gateway_settings(soketi: SoketiServer, **extra: str):  # type: ignore[no-untyped-def]
    return load_settings(environ=gateway_env(soketi, **extra))


@dataclass
class GatewayProcess:
    """`python -m rtctl gateway` on a free port, stopped with SIGTERM by PID."""

    env: dict[str, str]
    args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None
    stderr_path: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/realtime"

    def start(self, folder: Path, timeout: float = 20) -> GatewayProcess:
        self.stderr_path = folder / f"gateway-{self.port}.log"
        full_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PUSHER_", "REALTIME_", "SOKETI_"))
        }
        full_env.update(self.env)
        with self.stderr_path.open("w") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rtctl",
                    "gateway",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    *self.args,
                ],
                cwd=folder,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                text=True,
            )

        def answers() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"gateway exited early:\n{self.log()}")
            try:
                return httpx.get(f"{self.base}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(answers, timeout, lambda: f"gateway did not answer within {timeout}s")
        except AssertionError as failure:
            self.stop()
            raise AssertionError(f"{failure}:\n{self.log()}") from None
        return self

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode

    def log(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path else ""


class NodeClient:
    """tests/js/gateway_e2e.mjs as a subprocess; its JSON lines are read on a thread."""

    def __init__(self, env: Mapping[str, str]) -> None:
        full_env = {**os.environ, **env}
        self.process = subprocess.Popen(
            ["node", str(JS_DIR / "gateway_e2e.mjs")],
            cwd=JS_DIR,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"type": "noise", "line": line})

    def wait_for(self, predicate: Any, timeout: float = 20) -> dict[str, Any]:
        def reported() -> dict[str, Any] | None:
            found = next((item for item in self.seen if predicate(item)), None)
            if found is None:
                with contextlib.suppress(queue.Empty):
                    self.seen.append(self.lines.get(timeout=0.1))
            return found

        return wait_until(
            reported, timeout, lambda: f"pusher-js never reported it; saw {self.seen}", interval=0
        )

    def stop(self, grace: float = 0.0) -> int:
        """Give the script ``grace`` seconds to exit on its own, then terminate it."""
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        return self.process.returncode


def node_env(soketi: SoketiServer, gateway: GatewayProcess, user_token: str, **extra: str):  # type: ignore[no-untyped-def]
    return {
        "KEY": soketi.key,
        "WS_HOST": "127.0.0.1",
        "WS_PORT": str(soketi.port),
        "AUTH_ENDPOINT": f"{gateway.base}/auth",
        "USER_AUTH_ENDPOINT": f"{gateway.base}/user-auth",
        "TOKEN": user_token,
        **extra,
    }


__all__ = ["REPO"]
