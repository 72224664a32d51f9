"""rtctl.protocol.PusherSocket against a real Soketi: every channel kind, presence, client events,
encryption, keepalive, refusals, the auth-endpoint path, and reconnect after a real restart."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rtctl.config import load_settings
from rtctl.errors import AuthRejected, ServerRejected, Unreachable, UsageError
from rtctl.protocol import Disconnected, PusherSocket, backoff_delay, close_policy
from tests.helpers import SoketiServer, free_port
from tests.listen_support import AuthEndpoint, settings_for, trigger
from tests.waiting import wait_until

T = 10.0  # generous per-operation timeout (the machine is shared)


def channel(prefix: str) -> str:
    return f"{prefix}t{secrets.token_hex(4)}"


@pytest.fixture
def sockets(soketi: SoketiServer) -> Iterator[list[PusherSocket]]:
    opened: list[PusherSocket] = []
    yield opened
    for sock in opened:
        sock.close()


def open_socket(server: SoketiServer, opened: list[PusherSocket], **kwargs) -> PusherSocket:
    sock = PusherSocket(settings_for(server), **kwargs)
    opened.append(sock)
    sock.connect(T)
    return sock


@pytest.mark.parametrize("prefix", ["", "private-", "presence-"])
def test_trigger_reaches_a_subscriber(soketi: SoketiServer, sockets, prefix: str) -> None:
    name = channel(prefix)
    sock = open_socket(soketi, sockets, user_id="42")
    sock.subscribe(name, T)
    trigger(soketi, name, "order-shipped", {"id": 7, "note": "ü"})
    message = sock.recv(T)
    assert message is not None
    assert (message.event, message.channel, message.data) == (
        "order-shipped",
        name,
        {"id": 7, "note": "ü"},
    )
    assert json.loads(message.raw) == {"id": 7, "note": "ü"}  # the wire string, double-encoded
    assert message.json_text == message.raw


def test_plain_string_data_stays_a_string(soketi: SoketiServer, sockets) -> None:
    name = channel("")
    sock = open_socket(soketi, sockets)
    sock.subscribe(name, T)
    trigger(soketi, name, "note", "not json at all")
    message = sock.recv(T)
    assert message is not None
    assert (message.data, message.raw, message.json_text) == ("not json at all",) * 2 + (None,)


def test_encrypted_round_trip(soketi: SoketiServer, sockets) -> None:
    name = channel("private-encrypted-")
    sock = open_socket(soketi, sockets)
    sock.subscribe(name, T)
    trigger(soketi, name, "secret", {"pin": "1234"})
    message = sock.recv(T)
    assert message is not None and message.error is None
    assert message.data == {"pin": "1234"}
    sealed = json.loads(message.raw)  # what travelled: ciphertext, not the pin
    assert set(sealed) == {"nonce", "ciphertext"} and "1234" not in message.raw
    assert message.json_text is None  # decrypted data is never spliced from the wire text


def test_encrypted_event_with_the_wrong_key_is_flagged(soketi: SoketiServer, sockets) -> None:
    name = channel("private-encrypted-")
    other_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    sock = PusherSocket(settings_for(soketi, PUSHER_ENCRYPTION_MASTER_KEY_BASE64=other_key))
    sockets.append(sock)
    sock.connect(T)
    sock.subscribe(name, T)
    trigger(soketi, name, "secret", {"pin": "1234"})
    message = sock.recv(T)
    assert message is not None
    assert message.error == "decryption failed: wrong key or tampered payload"


def test_presence_members_between_two_sockets(soketi: SoketiServer, sockets) -> None:
    name = channel("presence-")
    ann = open_socket(soketi, sockets, user_id="ann", user_info={"name": "Ann"})
    assert ann.subscribe(name, T).members == {"ann": {"name": "Ann"}}
    bob = open_socket(soketi, sockets, user_id="bob")
    assert bob.subscribe(name, T).members == {"ann": {"name": "Ann"}, "bob": None}
    added = ann.recv(T)
    assert added is not None
    assert (added.event, added.data) == ("pusher_internal:member_added", {"user_id": "bob"})
    assert ann.subscriptions[name].members == {"ann": {"name": "Ann"}, "bob": None}
    bob.close()
    removed = ann.recv(T)
    assert removed is not None
    assert (removed.event, removed.data) == ("pusher_internal:member_removed", {"user_id": "bob"})
    assert ann.subscriptions[name].members == {"ann": {"name": "Ann"}}


@pytest.mark.parametrize("prefix", ["private-", "presence-"])
def test_client_events_between_two_sockets(soketi: SoketiServer, sockets, prefix: str) -> None:
    name = channel(prefix)
    receiver = open_socket(soketi, sockets, user_id="rx")
    receiver.subscribe(name, T)
    sender = open_socket(soketi, sockets, user_id="tx")
    sender.subscribe(name, T)
    if prefix == "presence-":
        assert receiver.recv(T).event == "pusher_internal:member_added"  # type: ignore[union-attr]
    sender.send_client_event(name, "client-typing", {"typing": True})
    message = receiver.recv(T)
    assert message is not None
    assert (message.event, message.channel, message.data) == (
        "client-typing",
        name,
        {"typing": True},
    )
    # Presence client events carry the sender's user id (set by the server from its auth).
    assert message.user_id == ("tx" if prefix == "presence-" else None)
    assert sender.recv(0.3) is None  # never echoed back to the sender


def test_a_zero_timeout_returns_what_has_already_arrived(soketi: SoketiServer, sockets) -> None:
    """`while sock.has_buffered(): sock.recv(0)` drains the buffer: recv(0) hands over events
    that have arrived instead of answering None (which made that loop spin forever)."""
    name = channel("")
    sock = open_socket(soketi, sockets)
    sock.subscribe(name, T)
    assert sock.recv(0) is None  # nothing there: a zero timeout returns at once, empty
    for number in range(3):
        trigger(soketi, name, "tick", {"n": number})
    drained: list[int] = []

    def drain() -> bool:
        while sock.has_buffered() and len(drained) < 10:
            message = sock.recv(0)
            assert message is not None, (
                f"recv(0) returned None with events buffered after {drained}"
            )
            drained.append(message.data["n"])
        return len(drained) >= 3

    wait_until(drain, T, lambda: f"only {drained} arrived")
    assert drained == [0, 1, 2]


def test_wait_for_skips_other_events_and_channels(soketi: SoketiServer, sockets) -> None:
    wanted, other = channel(""), channel("")
    sock = open_socket(soketi, sockets)
    sock.subscribe(wanted, T)
    sock.subscribe(other, T)
    trigger(soketi, wanted, "noise", {"n": 1})
    trigger(soketi, other, "done", {"n": 2})
    trigger(soketi, wanted, "done", {"n": 3})
    message = sock.wait_for("done", wanted, T)
    assert message is not None and (message.channel, message.data) == (wanted, {"n": 3})
    assert sock.wait_for("done", wanted, 0.3) is None  # nothing more: None once the time is up


def test_client_event_name_must_start_with_client(soketi: SoketiServer, sockets) -> None:
    sock = open_socket(soketi, sockets)
    with pytest.raises(UsageError) as caught:
        sock.send_client_event("private-x", "typing", {})
    assert caught.value.message == "client event 'typing' must start with 'client-'"


def test_keepalive_pings_and_gets_pongs(soketi: SoketiServer, sockets) -> None:
    sock = PusherSocket(settings_for(soketi), activity_timeout=0.2)
    sockets.append(sock)
    sock.connect(T)
    assert sock.activity_timeout == 0.2  # min(ours, Soketi's 30)
    assert sock.recv(1.0) is None  # nothing to return: pings and pongs are housekeeping
    assert sock.pings_sent >= 2 and sock.pongs_received >= 1


def test_server_activity_timeout_is_used(soketi: SoketiServer, sockets) -> None:
    sock = open_socket(soketi, sockets)
    assert sock.activity_timeout == 30.0  # what Soketi advertises


def test_unknown_app_key_is_auth_rejected(soketi: SoketiServer) -> None:
    sock = PusherSocket(settings_for(soketi, PUSHER_APP_KEY="nokey"))
    with pytest.raises(AuthRejected) as caught:
        sock.connect(T)
    assert caught.value.message == (
        "app key 'nokey' is unknown to the server (App key nokey does not exist.)"
    )


def test_wrong_secret_subscription_is_auth_rejected(soketi: SoketiServer, sockets) -> None:
    sock = PusherSocket(settings_for(soketi, PUSHER_APP_SECRET="not-the-secret"))
    sockets.append(sock)
    sock.connect(T)
    with pytest.raises(AuthRejected) as caught:
        sock.subscribe("private-orders", T)
    assert caught.value.message == (
        "subscription to 'private-orders' refused: The connection is unauthorized. (status 401)"
    )
    assert "private-orders" not in sock.subscriptions


def test_invalid_channel_name_is_server_rejected(soketi: SoketiServer, sockets) -> None:
    sock = open_socket(soketi, sockets)
    with pytest.raises(ServerRejected) as caught:
        sock.subscribe("bad channel!", T)
    assert caught.value.status == 4009


def test_unreachable_server() -> None:
    port = free_port()
    settings = load_settings(
        environ={
            "REALTIME_PORT": str(port),
            "PUSHER_APP_ID": "1",
            "PUSHER_APP_KEY": "k",
            "PUSHER_APP_SECRET": "s",
        }
    )
    with pytest.raises(Unreachable) as caught:
        PusherSocket(settings).connect(T)
    assert caught.value.message == (
        f"cannot connect to ws://127.0.0.1:{port}/app/k: [Errno 111] Connection refused"
    )


def test_auth_endpoint_is_called_like_pusher_js(soketi: SoketiServer, sockets) -> None:
    private, presence = channel("private-"), channel("presence-")
    with AuthEndpoint(soketi).running() as endpoint:
        sock = PusherSocket(
            settings_for(soketi, PUSHER_APP_SECRET="unused-when-an-endpoint-signs"),
            auth_endpoint=endpoint.url,
            auth_headers={"Authorization": "Bearer t0k"},
        )
        sockets.append(sock)
        socket_id = sock.connect(T)
        sock.subscribe(private, T)
        members = sock.subscribe(presence, T).members
    assert members == {"endpoint-user": {"via": "endpoint"}}
    first = endpoint.requests[0]
    assert first["body"] == f"socket_id={socket_id}&channel_name={private}"
    assert first["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert first["headers"]["Authorization"] == "Bearer t0k"
    trigger(soketi, private, "hello", {"ok": True})
    message = sock.recv(T)
    assert message is not None and message.data == {"ok": True}


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (
            403,
            AuthRejected,
            'the auth endpoint refused \'private-x\' with HTTP 403: {"error": "no"}',
        ),
        (
            500,
            ServerRejected,
            'the auth endpoint refused \'private-x\' with HTTP 500: {"error": "no"}',
        ),
    ],
)
def test_auth_endpoint_refusals(soketi: SoketiServer, sockets, status, error, text) -> None:
    with AuthEndpoint(soketi, status=status).running() as endpoint:
        sock = PusherSocket(settings_for(soketi), auth_endpoint=endpoint.url)
        sockets.append(sock)
        sock.connect(T)
        with pytest.raises(error) as caught:
            sock.subscribe("private-x", T)
    assert caught.value.message == text


@pytest.mark.parametrize("channel_data", ['{"name":"Ann"}', "[" * 5000 + "]" * 5000])
def test_presence_auth_without_a_readable_user_id_is_server_rejected(
    soketi: SoketiServer, sockets, channel_data: str
) -> None:
    # What an auth endpoint answers is server input: nesting too deep for a parser is refused
    # like any channel_data without a user_id (it was an internal error).
    body = json.dumps({"auth": "k:" + "0" * 64, "channel_data": channel_data}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/pusher/auth"
        sock = PusherSocket(settings_for(soketi), auth_endpoint=url)
        sockets.append(sock)
        sock.connect(T)
        with pytest.raises(ServerRejected) as caught:
            sock.subscribe("presence-x", T)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert caught.value.message == "the channel_data for 'presence-x' has no user_id"


def test_reconnect_after_a_real_restart_resigns_and_resubscribes(soketi_factory) -> None:
    server = soketi_factory()
    private, presence = channel("private-"), channel("presence-")
    sock = PusherSocket(settings_for(server), user_id="u1")
    try:
        old_id = sock.connect(T)
        sock.subscribe(private, T)
        sock.subscribe(presence, T)
        server.stop()  # SIGTERM: Soketi sends pusher:error 4200, then closes with 4200
        with pytest.raises(Disconnected) as caught:
            while True:
                sock.recv(T)
        assert caught.value.close_code == 4200
        assert close_policy(caught.value.close_code) == "now"
        server.start()  # same port, same credentials
        new_id = sock.reconnect(T)
        assert new_id != old_id
        assert all(sub.subscribed for sub in sock.subscriptions.values())
        assert sock.subscriptions[presence].members == {"u1": None}
        trigger(server, private, "after-restart", {"n": 1})
        message = sock.recv(T)
        assert message is not None
        assert (message.channel, message.event, message.data) == (
            private,
            "after-restart",
            {"n": 1},
        )
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("code", "policy"),
    [
        (4001, "stop"),
        (4099, "stop"),
        (4100, "backoff"),
        (4200, "now"),
        (4299, "now"),
        (4301, "backoff"),
        (1006, "backoff"),
        (None, "backoff"),
    ],
)
def test_close_code_ranges(code: int | None, policy: str) -> None:
    assert close_policy(code) == policy


def test_backoff_delays() -> None:
    assert backoff_delay(1, 4200) == 0.0  # reconnect at once
    assert backoff_delay(2, 4200) > 0  # ... but not in a tight loop if that failed
    assert backoff_delay(1, 4100) >= 1.0  # 4100-4199: at least a second
    assert all(0.1 <= backoff_delay(n, 1006) <= 10.0 for n in range(1, 12))
