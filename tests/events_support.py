"""Receivers for the event-path tests: a raw Pusher-protocol socket (websocket-client) and the
pusher-js script in tests/js. Both talk to a real Soketi; neither uses rtctl's own listener."""

from __future__ import annotations

import contextlib
import json
import queue
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

from rtctl.protocol.signing import authenticate_user, authorize_channel, presence_channel_data, sign
from tests.helpers import JS_DIR, SoketiServer
from tests.waiting import wait_until


@dataclass
class RawSocket:
    """One Pusher connection that reads frames on a thread as fast as it can (Soketi drops frames to
    slow readers) and keeps them raw; tests decode what they look at."""

    server: SoketiServer
    ws: websocket.WebSocket = field(init=False)
    socket_id: str = field(init=False)
    frames: list[str] = field(default_factory=list)
    close_code: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        url = f"ws://127.0.0.1:{self.server.port}/app/{self.server.key}?protocol=7&client=test&version=1"
        self.ws = websocket.create_connection(url, timeout=10)
        established = json.loads(self.ws.recv())
        assert established["event"] == "pusher:connection_established", established
        self.socket_id = json.loads(established["data"])["socket_id"]

    # synchronous set-up, before the reader thread starts
    def _await(self, event: str, channel: str | None = None) -> dict[str, Any]:
        def next_is_it() -> dict[str, Any] | None:
            frame = json.loads(self.ws.recv())
            if frame["event"] == event and (channel is None or frame.get("channel") == channel):
                return frame
            if frame["event"] in ("pusher:subscription_error", "pusher:error"):
                raise AssertionError(f"server refused: {frame}")
            self.frames.append(json.dumps(frame))
            return None

        return wait_until(next_is_it, 10, f"no {event} within 10 s", interval=0)

    def subscribe(
        self, channel: str, user_id: str | None = None, user_info: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"channel": channel}
        if channel.startswith("presence-"):
            channel_data = presence_channel_data(user_id or "1", user_info)
            data.update(
                authorize_channel(
                    self.server.key, self.server.secret, self.socket_id, channel, channel_data
                )
            )
        elif channel.startswith("private-"):  # encrypted too: the server checks only this
            signature = sign(self.server.secret, f"{self.socket_id}:{channel}")
            data["auth"] = f"{self.server.key}:{signature}"
        self.ws.send(json.dumps({"event": "pusher:subscribe", "data": data}))
        return self._await("pusher_internal:subscription_succeeded", channel)

    def subscribe_with(self, data: dict[str, Any]) -> dict[str, Any]:
        """Send a subscribe frame as given; return the server's answer (success or error)."""
        self.ws.send(json.dumps({"event": "pusher:subscribe", "data": data}))

        def next_is_the_answer() -> dict[str, Any] | None:
            frame = json.loads(self.ws.recv())
            answers = ("pusher_internal:subscription_succeeded", "pusher:subscription_error")
            if frame.get("channel") == data["channel"] and frame["event"] in answers:
                return dict(frame)
            return None

        return wait_until(
            next_is_the_answer, 10, "no answer to the subscribe within 10 s", interval=0
        )

    def signin(self, user_id: str) -> dict[str, Any]:
        data = authenticate_user(
            self.server.key, self.server.secret, self.socket_id, {"id": user_id}
        )
        self.ws.send(json.dumps({"event": "pusher:signin", "data": data}))
        return self._await("pusher:signin_success")

    def start(self) -> RawSocket:
        self.ws.settimeout(0.2)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        append = self.frames.append
        while not self._stop.is_set():
            try:
                opcode, frame = self.ws.recv_data_frame(True)
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketConnectionClosedException, OSError):
                return
            if opcode == websocket.ABNF.OPCODE_TEXT:
                append(frame.data.decode("utf-8"))
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                if len(frame.data) >= 2:
                    self.close_code = int.from_bytes(frame.data[:2], "big")
                return

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Decoded non-protocol frames (``data`` decoded once more if it is a JSON string)."""
        found = []
        for text in list(self.frames):
            frame = json.loads(text)
            if frame["event"].startswith(("pusher:", "pusher_internal:")):
                continue
            if name is not None and frame["event"] != name:
                continue
            found.append(frame)
        return found

    def wait_events(self, count: int, name: str | None = None, timeout: float = 10) -> list[dict]:
        """The events once ``count`` arrived; after ``timeout``, whatever did (the caller's
        assertion then shows what is missing)."""
        with contextlib.suppress(AssertionError):
            wait_until(lambda: len(self.events(name)) >= count, timeout, "", interval=0.02)
        return self.events(name)

    def count_frames(self, marker: str, count: int, timeout: float = 20) -> int:
        """Count raw frames containing ``marker`` until ``count`` arrived or time ran out
        (cheap: no JSON decoding, for thousands of events)."""

        def seen() -> int:
            return sum(1 for text in list(self.frames) if marker in text)

        with contextlib.suppress(AssertionError):
            wait_until(lambda: seen() >= count, timeout, "")
        return seen()

    def wait_closed(self, timeout: float = 10) -> int | None:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.close_code

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        with contextlib.suppress(Exception):
            self.ws.close(timeout=1)


def rtctl_command(env_file: Path) -> list[str]:
    return [sys.executable, "-m", "rtctl", "--env-file", str(env_file)]


class JsReceiver:
    """tests/js/emit_receiver.mjs (pusher-js 8.6.0 in Node) as a subprocess."""

    def __init__(
        self,
        server: SoketiServer,
        channels: list[str],
        count: int,
        env_file: Path,
        timeout: float = 30,
        quiet: bool = False,
        auth_args: dict[str, list[str]] | None = None,
    ) -> None:
        node = shutil.which("node")
        assert node, "node is needed for the pusher-js end-to-end tests"
        config = {
            "host": "127.0.0.1",
            "port": server.port,
            "key": server.key,
            "channels": channels,
            "count": count,
            "timeoutMs": int(timeout * 1000),
            "quiet": quiet,
            "rtctl": rtctl_command(env_file),
            "authArgs": auth_args or {},
        }
        self.channels = channels
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.proc = subprocess.Popen(
            [node, str(JS_DIR / "emit_receiver.mjs"), json.dumps(config)],
            cwd=JS_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self.seen: list[dict[str, Any]] = []

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def wait_subscribed(self, timeout: float = 20) -> None:
        pending = set(self.channels)

        def all_subscribed() -> bool:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                return False
            self.seen.append(line)
            if line["type"] in ("error", "timeout"):
                raise AssertionError(f"pusher-js could not subscribe: {line}")
            if line["type"] == "subscribed":
                pending.discard(line["channel"])
            return not pending

        wait_until(
            all_subscribed,
            timeout,
            lambda: f"pusher-js did not subscribe to {sorted(pending)}; saw {self.seen}",
            interval=0,
        )

    def finish(self, timeout: float = 40) -> tuple[int, list[dict[str, Any]], dict[str, Any]]:
        """Wait for the script's end: (exit code, event lines, last line)."""
        code = self.proc.wait(timeout)
        self._thread.join(5)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        events = [line for line in self.seen if line["type"] == "event"]
        return code, events, self.seen[-1] if self.seen else {}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


class JsUser:
    """tests/js/user_receiver.mjs: pusher-js 8.6.0 signed in as ``user_id`` (pusher.signin()),
    binding ``events`` with pusher.user.bind. Lines: signed_in, event, closed, done/timeout."""

    def __init__(
        self,
        server: SoketiServer,
        user_id: str,
        env_file: Path,
        events: list[str] | None = None,
        count: int = 1,
        timeout: float = 30,
    ) -> None:
        node = shutil.which("node")
        assert node, "node is needed for the pusher-js end-to-end tests"
        config = {
            "host": "127.0.0.1",
            "port": server.port,
            "key": server.key,
            "userId": user_id,
            "events": events or [],
            "count": count,
            "timeoutMs": int(timeout * 1000),
            "rtctl": rtctl_command(env_file),
        }
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.proc = subprocess.Popen(
            [node, str(JS_DIR / "user_receiver.mjs"), json.dumps(config)],
            cwd=JS_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def wait_for(self, kind: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"pusher-js never reported {kind!r}: {self.seen}") from None
            self.seen.append(line)
            if line["type"] == kind:
                return line
            if line["type"] in ("signin_error", "timeout"):
                raise AssertionError(f"pusher-js: {line} while waiting for {kind!r}")

    def finish(self, timeout: float = 40) -> tuple[int, list[dict[str, Any]]]:
        code = self.proc.wait(timeout)
        self._thread.join(5)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code, self.seen

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
