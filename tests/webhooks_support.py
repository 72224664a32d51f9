"""Shared by the webhook tests: a real small app endpoint, `rtctl webhooks listen` as a process,
and helpers that make a real Soketi fire webhooks."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pusher

from rtctl.protocol import PusherSocket
from tests.helpers import JS_DIR, SoketiServer


@dataclass
class AppRequest:
    headers: dict[str, str]
    body: bytes
    valid: dict[str, Any] | None  # what the pusher SDK's validate_webhook returned


class AppServer:
    """A webhook endpoint as an app writes it with the `pusher` SDK: ``validate_webhook`` on the
    raw body, 200 when it validates, 401 when not. ``mode`` "fail" answers 500, "naive" 200 to
    anything (an app that forgot to verify), "hang" never answers (until stopped)."""

    def __init__(self, key: str, secret: str, mode: str = "validate") -> None:
        self.client = pusher.Pusher(app_id="1", key=key, secret=secret)
        self.key = key
        self.mode = mode
        self.requests: list[AppRequest] = []
        self.arrived: queue.Queue[AppRequest] = queue.Queue()
        self._release = threading.Event()
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = dict(self.headers.items())
                valid = app.client.validate_webhook(
                    headers.get("X-Pusher-Key", ""), headers.get("X-Pusher-Signature", ""), body
                )
                request = AppRequest(headers, body, valid)
                app.requests.append(request)
                app.arrived.put(request)
                if app.mode == "hang":
                    app._release.wait(30)
                    return
                if app.mode == "fail":
                    self._answer(500, b'{"error":"boom"}')
                elif app.mode == "naive":
                    self._answer(200, b'{"ok":true}')
                elif valid is None:
                    self._answer(401, b'{"error":"invalid webhook"}')
                else:
                    self._answer(200, b'{"ok":true}')

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/pusher/webhooks"

    def __enter__(self) -> AppServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def wait(self, count: int, timeout: float = 10) -> list[AppRequest]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.requests)


@dataclass
class ListenProcess:
    """`python -m rtctl webhooks listen ...` in the background; stdout read on a thread."""

    args: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[str] | None = None
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    stderr_lines: list[str] = field(default_factory=list)

    def start(self, timeout: float = 20) -> ListenProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rtctl", *self.args],
            cwd=self.cwd,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready = threading.Event()

        def pump_out() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self.lines.put(line.rstrip("\n"))

        def pump_err() -> None:
            assert self.process is not None and self.process.stderr is not None
            for line in self.process.stderr:
                self.stderr_lines.append(line.rstrip("\n"))
                if line.startswith("listening on"):
                    ready.set()
            ready.set()  # exited

        threading.Thread(target=pump_out, daemon=True).start()
        self._err_thread = threading.Thread(target=pump_err, daemon=True)
        self._err_thread.start()
        if not ready.wait(timeout) or self.process.poll() is not None:
            raise AssertionError(f"listen did not start: {self.stderr_lines}")
        return self

    def line(self, timeout: float = 10) -> str:
        return self.lines.get(timeout=timeout)

    def json_lines(self, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        found = []
        while len(found) < count:
            found.append(json.loads(self.lines.get(timeout=max(0.01, deadline - time.monotonic()))))
        return found

    def wait(self, timeout: float = 30) -> int:
        assert self.process is not None
        code = self.process.wait(timeout=timeout)
        self._err_thread.join(timeout=5)
        return code

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._err_thread.join(timeout=5)
        return self.process.returncode

    def rest(self) -> list[str]:
        """Every stdout line not read yet (after the process ended)."""
        out = []
        while True:
            try:
                out.append(self.lines.get(timeout=0.2))
            except queue.Empty:
                return out


def presence_round(
    server: SoketiServer,
    channel: str,
    user_id: str = "42",
    client_data: Any = None,
    wait: Callable[[], None] | None = None,
) -> None:
    """One user joins ``channel``, optionally sends a client event, and leaves: Soketi fires
    occupied, member_added, [client_event], member_removed, vacated."""
    settings = server.settings()
    with PusherSocket(settings, user_id=user_id, user_info={"name": "T"}) as sock:
        sock.connect(10)
        sock.subscribe(channel, 10)
        # Soketi sends member_added once its member lookup is done (asynchronously, after the
        # subscription succeeded): a socket that leaves at once may never get one.
        time.sleep(0.2)
        if client_data is not None:
            sock.send_client_event(channel, "client-hi", client_data)
            time.sleep(0.2)  # the server processes it before the unsubscribe below
        if wait is not None:
            wait()
        sock.unsubscribe(channel)
        time.sleep(0.1)


def pusher_js_client_events(
    server: SoketiServer, channel: str, user_id: str, count: int
) -> dict[str, Any]:
    """pusher-js (tests/js/client_event_sender.mjs) joins, sends client events, and leaves."""
    options = {
        "host": "127.0.0.1",
        "port": server.port,
        "key": server.key,
        "secret": server.secret,
        "channel": channel,
        "event": "client-note",
        "count": count,
        "data": {"from": "pusher-js"},
        "userId": user_id,
        "timeout": 30,
    }
    result = subprocess.run(
        ["node", str(JS_DIR / "client_event_sender.mjs"), json.dumps(options)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
