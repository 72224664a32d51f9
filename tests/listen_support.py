"""Shared by test_protocol.py and test_listen.py: a tiny app auth endpoint (what a backend or the
gateway serves to pusher-js), `rtctl listen` as a streaming subprocess, and the pusher-js sender."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from rtctl.config import Settings, load_settings
from rtctl.protocol.httpapi import ApiClient
from rtctl.protocol.signing import authorize_channel, presence_channel_data
from rtctl.protocol.validation import Event
from tests.helpers import JS_DIR, SoketiServer
from tests.waiting import wait_until

MASTER_KEY = "5Ha5bT4Tf1XgWA5lJSVwHmeeBzWDzqI1FBmlbAQvsmY="  # 32 random bytes, base64


def settings_for(server: SoketiServer, **changes: str) -> Settings:
    return load_settings(
        environ={**server.env, "PUSHER_ENCRYPTION_MASTER_KEY_BASE64": MASTER_KEY, **changes}
    )


def trigger(server: SoketiServer, channel: str, event: str, data: Any) -> None:
    text = data if isinstance(data, str) else json.dumps(data)
    with ApiClient(settings_for(server), timeout=10) as api:
        api.trigger(Event((channel,), event, text))


@dataclass
class AuthEndpoint:
    """An app's channel-auth endpoint: signs with the app secret, records every request."""

    server: SoketiServer
    status: int = 200
    user_id: str = "endpoint-user"
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    @contextmanager
    def running(self) -> Iterator[AuthEndpoint]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode()
                form = dict(urllib.parse.parse_qsl(body))
                endpoint.requests.append(
                    {"body": body, "form": form, "headers": dict(self.headers.items())}
                )
                if endpoint.status != 200:
                    self._answer(endpoint.status, {"error": "no"})
                    return
                channel, socket_id = form["channel_name"], form["socket_id"]
                channel_data = None
                if channel.startswith("presence-"):
                    channel_data = presence_channel_data(endpoint.user_id, {"via": "endpoint"})
                settings = settings_for(endpoint.server)
                self._answer(
                    200,
                    authorize_channel(
                        settings.key,
                        settings.secret,
                        socket_id,
                        channel,
                        channel_data,
                        settings.master_key,
                    ),
                )

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{httpd.server_address[1]}/pusher/auth"
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            httpd.shutdown()
            httpd.server_close()


class ListenProcess:
    """`python -m rtctl listen ...` with stdout and stderr as pipes, read as lines arrive (one
    thread per pipe, so a line is seen the moment the CLI flushes it)."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rtctl", "listen", *args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._out: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._err: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self._out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self.stderr_lines: list[str] = []

    @staticmethod
    def _pump(stream: Any, lines: queue.SimpleQueue[str | None]) -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    def stdout_line(self, timeout: float = 15) -> str:
        try:
            line = self._out.get(timeout=timeout)
        except queue.Empty:
            line = None
        assert line is not None, f"no stdout line within {timeout}s; stderr: {self.stderr_lines}"
        return line

    def wait_stderr(self, fragment: str, timeout: float = 20) -> str:
        def next_has_it() -> str | None:
            try:
                line: str = self._err.get(timeout=0.1)
            except queue.Empty:
                return None
            self.stderr_lines.append(line)
            return line if fragment in line else None

        return wait_until(
            next_has_it,
            timeout,
            lambda: f"{fragment!r} not on stderr within {timeout}s: {self.stderr_lines}",
            interval=0,
        )

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        """Wait for the exit; return (code, rest of stdout, all of stderr)."""
        code = self.proc.wait(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout=10)
        return code, "".join(_drain(self._out)), "".join(self.stderr_lines + _drain(self._err))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _drain(lines: queue.SimpleQueue[str | None]) -> list[str]:
    found: list[str] = []
    while not lines.empty():
        line = lines.get()
        if line is not None:
            found.append(line)
    return found


@contextmanager
def listening(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> Iterator[ListenProcess]:
    listener = ListenProcess(args, cwd, env)
    try:
        yield listener
    finally:
        listener.kill()


def pusher_js_send(
    server: SoketiServer,
    channel: str,
    count: int,
    event: str = "client-test",
    ca: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Send client events with pusher-js 8.6.0 (tests/js/client_event_sender.mjs); ``ca`` is a
    certificate Node should trust (a self-signed TLS Soketi)."""
    options = {
        "host": "127.0.0.1",
        "port": server.port,
        "key": server.key,
        "secret": server.secret,
        "channel": channel,
        "event": event,
        "count": count,
        **extra,
    }
    done = subprocess.run(
        ["node", str(JS_DIR / "client_event_sender.mjs"), json.dumps(options)],
        cwd=JS_DIR,
        env={**os.environ, **({"NODE_EXTRA_CA_CERTS": ca} if ca else {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


class InjectingRelay:
    """A WebSocket relay in front of a real Soketi that passes every frame both ways and, right
    after the first ``pusher_internal:subscription_succeeded`` it forwards, sends ``inject`` (raw
    frame texts) to the client: what a buggy server or a newer Pusher feature would send."""

    def __init__(self, server: SoketiServer, inject: list[str]) -> None:
        from websockets.sync.server import serve

        self.upstream = f"ws://127.0.0.1:{server.port}"
        self.inject = inject
        self._server = serve(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.socket.getsockname()[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _handle(self, client: Any) -> None:
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        with connect(self.upstream + client.request.path) as upstream:

            def pump() -> None:
                try:
                    for message in client:
                        upstream.send(message)
                except ConnectionClosed:
                    pass
                upstream.close()

            threading.Thread(target=pump, daemon=True).start()
            injected = False
            try:
                for message in upstream:
                    client.send(message)
                    if not injected and "pusher_internal:subscription_succeeded" in message:
                        injected = True
                        for frame in self.inject:
                            client.send(frame)
            except ConnectionClosed:
                pass

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(5)
