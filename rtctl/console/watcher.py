"""The console's own Pusher connection: watches the channels chosen in the page, in one thread.

It is rtctl's protocol client (``PusherSocket``): private and presence channels are signed with
the configured secret, encrypted channels decrypted with the master key, presence member lists
kept. Everything it sees goes to the feed: channel events, member joins and leaves, and every
connection or subscription error. When the server goes away it keeps trying (Pusher's close-code
policy, backing off up to 5 s, never giving up: a console outlives server restarts) and
re-signs and resubscribes every watched channel once it is back.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rtctl.console.feed import Feed
from rtctl.errors import RtctlError
from rtctl.protocol.signing import channel_kind
from rtctl.protocol.validation import validate_channel

if TYPE_CHECKING:
    from rtctl.config import Settings
    from rtctl.protocol import Message, PusherSocket

PRESENCE_USER = "rtctl-console"  # the member the console appears as on presence channels
PRESENCE_INFO = {"name": "rtctl console"}
SUBSCRIBE_TIMEOUT = 10.0
MAX_BACKOFF = 5.0
PUBLIC_NAMES = {
    "pusher_internal:member_added": "pusher:member_added",
    "pusher_internal:member_removed": "pusher:member_removed",
}


@dataclass
class Watched:
    status: str = "pending"  # pending | subscribed | refused
    error: str | None = None


class Watcher:
    def __init__(self, settings: Settings, feed: Feed) -> None:
        self.settings = settings
        self.feed = feed
        self.channels: dict[str, Watched] = {}
        self.connected = False
        self.socket_id: str | None = None
        self.last_error: str | None = None
        self._commands: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtctl-console-watch", daemon=True)
        self._sock: PusherSocket | None = None
        self._lock = threading.Lock()

    # --- the page's side ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def watch(self, channel: str) -> None:
        """Start watching (InvalidInput for a name Pusher refuses); the outcome shows in the feed."""
        validate_channel(channel)
        with self._lock:
            if channel in self.channels:
                return
            self.channels[channel] = Watched()
        self._commands.put(("watch", channel))

    def unwatch(self, channel: str) -> None:
        with self._lock:
            if self.channels.pop(channel, None) is None:
                return
        self._commands.put(("unwatch", channel))

    def members(self, channel: str) -> dict[str, Any] | None:
        sock = self._sock
        sub = sock.subscriptions.get(channel) if sock is not None else None
        if sub is None or sub.members is None:
            return None
        try:  # the watcher thread may be updating it: a copy from a moment later is as good
            return dict(sub.members)
        except RuntimeError:
            return None

    def state(self) -> dict[str, Any]:
        with self._lock:
            channels: dict[str, dict[str, Any]] = {
                name: {"status": watched.status, "error": watched.error}
                for name, watched in self.channels.items()
            }
        for name, info in channels.items():
            members = self.members(name)
            if members is not None:
                info["members"] = members
        return {
            "connected": self.connected,
            "socket_id": self.socket_id,
            "error": self.last_error,
            "channels": channels,
        }

    # --- the thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        from rtctl.protocol import PusherSocket

        self._sock = PusherSocket(self.settings, user_id=PRESENCE_USER, user_info=PRESENCE_INFO)
        attempt = 0
        while not self._stop.is_set():
            if not self.connected:
                if self._connect():
                    attempt = 0
                else:
                    attempt += 1
                    self._stop.wait(min(MAX_BACKOFF, 0.5 * 2 ** min(attempt - 1, 5)))
                    continue
            self._commands_due()
            self._receive(0.2)
        self._sock.close()

    def _connect(self) -> bool:
        from rtctl.protocol import Disconnected, close_policy

        sock = self._sock
        assert sock is not None
        sock.subscriptions.clear()
        try:
            socket_id = sock.connect(SUBSCRIBE_TIMEOUT)
        except RtctlError as error:
            stop = isinstance(error, Disconnected) and close_policy(error.close_code) == "stop"
            self._lost(error.message + (" (the server refuses this app)" if stop else ""))
            return False
        self.connected, self.socket_id, self.last_error = True, socket_id, None
        self.feed.publish("status", text=f"connected to {self._where()} as socket {socket_id}")
        with self._lock:
            wanted = list(self.channels)
        for channel in wanted:
            self._subscribe(channel)
        return True

    def _where(self) -> str:
        return self.settings.ws_url.split("?", 1)[0].rsplit("/app/", 1)[0]

    def _lost(self, reason: str) -> None:
        first = self.connected or self.last_error != reason
        self.connected, self.socket_id, self.last_error = False, None, reason
        if first:  # say it once, not on every retry
            self.feed.publish("error", text=f"connection lost: {reason}; reconnecting")

    def _commands_due(self) -> None:
        while True:
            try:
                action, channel = self._commands.get_nowait()
            except queue.Empty:
                return
            if action == "watch":
                self._subscribe(channel)
            else:
                self._unsubscribe(channel)

    def _subscribe(self, channel: str) -> None:
        from rtctl.protocol import Disconnected
        from rtctl.protocol.explain import add_verify_hint

        sock = self._sock
        assert sock is not None
        with self._lock:
            watched = self.channels.get(channel)
        if watched is None:
            return
        try:
            sub = sock.subscribe(channel, SUBSCRIBE_TIMEOUT)
        except Disconnected as error:
            self._lost(error.message)
            return
        except RtctlError as error:
            add_verify_hint(error, sock.signed.get(channel))
            watched.status, watched.error = "refused", error.message
            self.feed.publish("error", channel=channel, text=error.message, hint=error.hint or None)
            return
        watched.status, watched.error = "subscribed", None
        members = sub.members
        detail = f"; {len(members)} members" if members is not None else ""
        self.feed.publish(
            "status", channel=channel, text=f"subscribed to {channel} ({sub.kind}){detail}"
        )

    def _unsubscribe(self, channel: str) -> None:
        from rtctl.protocol import Disconnected

        sock = self._sock
        assert sock is not None
        try:
            sock.unsubscribe(channel)
        except Disconnected as error:
            self._lost(error.message)
            return
        self.feed.publish("status", channel=channel, text=f"stopped watching {channel}")

    def _receive(self, timeout: float) -> None:
        """Everything already received, then up to ``timeout`` for more (commands wait that long)."""
        from rtctl.protocol import Disconnected

        sock = self._sock
        assert sock is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = sock.recv(max(0.0, deadline - time.monotonic()))
            except Disconnected as error:
                self._lost(error.message)
                return
            if message is None:
                return
            self._publish(message)
            if not sock.has_buffered() and time.monotonic() >= deadline:
                return

    def _publish(self, message: Message) -> None:
        event = message.event
        if event.startswith("pusher"):
            public = PUBLIC_NAMES.get(event)
            if public is None:
                if event == "pusher:error":
                    data = message.data if isinstance(message.data, dict) else {}
                    self.feed.publish(
                        "error",
                        text=f"server error {data.get('code')}: {data.get('message', message.raw)}",
                    )
                return
            data = message.data if isinstance(message.data, dict) else {}
            verb = "joined" if event.endswith("added") else "left"
            self.feed.publish(
                "member",
                channel=message.channel,
                event=public,
                user_id=data.get("user_id"),
                data=data,
                text=f"{data.get('user_id')} {verb}",
            )
            return
        if message.error is not None:
            self.feed.publish(
                "error",
                channel=message.channel,
                event=event,
                text=f"could not decrypt {event}: {message.error}",
            )
            return
        fields: dict[str, Any] = {"channel": message.channel, "event": event, "data": message.data}
        if message.user_id is not None:
            fields["user_id"] = message.user_id
        if message.channel and channel_kind(message.channel) == "private-encrypted":
            fields["decrypted"] = True
        self.feed.publish("event", **fields)
