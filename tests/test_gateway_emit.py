"""/realtime/emit, /realtime/channels and readiness against real Soketi servers.

Events posted to the gateway are read back by a real WebSocket subscriber (rtctl.protocol).
"""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from rtctl.gateway import create_app
from rtctl.protocol import PusherSocket
from rtctl.protocol.payloads import bot_message
from tests.gateway_support import (
    BOT,
    DM,
    EMIT_TOKEN,
    MONITOR_TOKEN,
    USER,
    bearer,
    gateway_settings,
)
from tests.helpers import free_port


@pytest.fixture
def client(soketi):
    with TestClient(create_app(gateway_settings(soketi))) as test_client:
        yield test_client


@pytest.fixture
def subscriber(soketi):
    socket = PusherSocket(gateway_settings(soketi), user_id="55")
    socket.connect(timeout=10)
    yield socket
    socket.close()


def emit(client, body, token=EMIT_TOKEN):
    return client.post("/realtime/emit", json=body, headers=bearer(token))


def error_of(response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"]["code"], body["error"]["message"]


def test_emit_reaches_a_subscriber(client, subscriber) -> None:
    subscriber.subscribe(DM, timeout=10)
    response = emit(client, {"channel": DM, "event": "note", "data": {"text": "hi", "n": 1}})
    assert response.status_code == 200
    assert response.json() == {"ok": True, "event": "note", "channels": [DM]}
    message = subscriber.recv(timeout=10)
    assert message is not None
    assert (message.channel, message.event, message.raw) == (DM, "note", '{"text":"hi","n":1}')


def test_string_data_is_sent_as_is_to_several_channels(client, subscriber) -> None:
    subscriber.subscribe("gw-public-a", timeout=10)
    subscriber.subscribe("gw-public-b", timeout=10)
    response = emit(client, {"channels": ["gw-public-a", "gw-public-b"], "event": "e", "data": "x"})
    assert response.json() == {"ok": True, "event": "e", "channels": ["gw-public-a", "gw-public-b"]}
    got = {(m.channel, m.raw) for m in (subscriber.recv(10), subscriber.recv(10)) if m}
    assert got == {("gw-public-a", "x"), ("gw-public-b", "x")}


def test_chat_message_is_validated_against_the_bot_pattern(client, subscriber) -> None:
    subscriber.subscribe(DM, timeout=10)
    payload = bot_message(USER, "Hi from Coach", BOT, "Coach", "/assets/bot.png").to_dict()
    assert (
        emit(client, {"channel": DM, "event": "chat_message", "data": payload}).status_code == 200
    )
    message = subscriber.recv(timeout=10)
    assert message is not None and message.data == payload

    wrong_channel = {**payload, "channel": "private-124_9000000"}
    assert error_of(
        emit(client, {"channel": DM, "event": "chat_message", "data": wrong_channel})
    ) == (
        400,
        "invalid_chat_message",
        "chat_message payload names channel 'private-124_9000000' but is sent on "
        "'private-123_9000000'",
    )
    missing = {k: v for k, v in payload.items() if k != "created_at"}
    assert error_of(emit(client, {"channel": DM, "event": "chat_message", "data": missing})) == (
        400,
        "invalid_chat_message",
        "chat_message payload missing ['created_at']",
    )
    assert error_of(emit(client, {"channel": DM, "event": "chat_message", "data": "{oops"})) == (
        400,
        "invalid_chat_message",
        "chat_message payload is not a JSON object",
    )


def test_encrypted_channel_events_are_encrypted_for_the_subscriber(client, subscriber) -> None:
    channel = f"private-encrypted-{USER}_{BOT}"
    subscriber.subscribe(channel, timeout=10)
    assert (
        emit(client, {"channel": channel, "event": "secret", "data": {"a": 1}}).status_code == 200
    )
    message = subscriber.recv(timeout=10)
    assert message is not None
    assert message.data == {"a": 1}
    assert "ciphertext" in json.loads(message.raw)  # what Soketi carried was not the plaintext


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            {"channel": DM, "event": "pusher:x", "data": "1"},
            "invalid_event",
            "event name 'pusher:x' uses a reserved prefix (pusher: / pusher_internal:)",
        ),
        (
            {"channel": DM, "event": "e", "data": "x" * 10241},
            "invalid_event",
            "event data is 10241 bytes; the limit is 10240",
        ),
        (
            {"channel": "bad channel", "event": "e", "data": "1"},
            "invalid_event",
            "channel name 'bad channel' contains characters Pusher refuses: ' '",
        ),
        ({"channels": [], "event": "e", "data": "1"}, "invalid_event", "no channel given"),
        (
            {"channels": [f"c{i}" for i in range(101)], "event": "e", "data": "1"},
            "invalid_event",
            "101 channels in one trigger; the limit is 100",
        ),
        (
            {"channels": ["private-encrypted-1_2", "a"], "event": "e", "data": "1"},
            "invalid_event",
            "an encrypted channel must be triggered on its own",
        ),
        (
            {"channel": DM, "channels": [DM], "event": "e", "data": "1"},
            "invalid_body",
            "give exactly one of 'channel' or 'channels'",
        ),
        (
            {"event": "e", "data": "1"},
            "invalid_body",
            "give exactly one of 'channel' or 'channels'",
        ),
        ({"channel": DM, "data": "1"}, "invalid_body", "'event' is missing"),
        ({"channel": DM, "event": 7, "data": "1"}, "invalid_body", "'event' must be a string"),
        (
            {"channel": DM, "event": "e", "data": "1", "name": "x"},
            "invalid_body",
            "unknown field(s): name",
        ),
        (
            {"channel": DM, "event": "e", "data": "1", "socket_id": "1.2\n"},
            "invalid_socket_id",
            "socket_id must be two numbers joined by a dot, e.g. 1234.5678",
        ),
        (
            {"channel": ["x"], "event": "e", "data": "1"},
            "invalid_body",
            "'channel' must be a string",
        ),
    ],
)
def test_emit_validation_is_the_shared_one(client, body, code, message) -> None:
    assert error_of(emit(client, body)) == (400, code, message)


def test_data_defaults_to_an_empty_object_as_in_rtctl_emit(client, subscriber) -> None:
    subscriber.subscribe("gw-default-data", timeout=10)
    assert emit(client, {"channel": "gw-default-data", "event": "ping"}).status_code == 200
    message = subscriber.recv(timeout=10)
    assert message is not None and message.raw == "{}"


def test_encrypted_emit_without_a_master_key_is_400(soketi) -> None:
    settings = gateway_settings(soketi, PUSHER_ENCRYPTION_MASTER_KEY_BASE64="")
    with TestClient(create_app(settings)) as client:
        body = {"channel": f"private-encrypted-{USER}_{BOT}", "event": "e", "data": "1"}
        assert error_of(emit(client, body)) == (
            400,
            "invalid_event",
            "'private-encrypted-123_9000000' is an encrypted channel and no master key is configured",
        )


def test_emit_needs_a_json_object(client) -> None:
    form = client.post("/realtime/emit", data={"channel": DM}, headers=bearer(EMIT_TOKEN))
    assert error_of(form) == (400, "unsupported_content_type", "send the event as application/json")
    array = client.post("/realtime/emit", json=[1], headers=bearer(EMIT_TOKEN))
    assert error_of(array) == (400, "invalid_body", "request body must be a JSON object")


def test_socket_id_excludes_the_sender(client, soketi) -> None:
    settings = gateway_settings(soketi)
    with PusherSocket(settings) as sender, PusherSocket(settings) as other:
        sender_id = sender.connect(timeout=10)
        other.connect(timeout=10)
        for socket in (sender, other):
            socket.subscribe("gw-exclude", timeout=10)
        body = {"channel": "gw-exclude", "event": "e", "data": "1", "socket_id": sender_id}
        assert emit(client, body).status_code == 200
        assert (
            emit(client, {"channel": "gw-exclude", "event": "after", "data": "2"}).status_code
            == 200
        )
        first = sender.recv(timeout=10)
        assert first is not None and first.event == "after"  # "e" skipped the sender
        seen = [other.recv(timeout=10), other.recv(timeout=10)]
        assert [m.event for m in seen if m] == ["e", "after"]


# --- the provider's refusals ----------------------------------------------------------------------


def test_wrong_provider_credentials_are_a_502(soketi) -> None:
    settings = gateway_settings(soketi, PUSHER_APP_SECRET="secwrong" + "0" * 16)
    with TestClient(create_app(settings)) as client:
        response = emit(client, {"channel": DM, "event": "e", "data": "1"})
        assert error_of(response) == (
            502,
            "provider_auth_rejected",
            "the realtime provider refused the gateway's credentials (check PUSHER_APP_*)",
        )
        ready = client.get("/realtime/ready")
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "not_ready"


def test_provider_limit_refusal_is_surfaced_with_its_status(soketi_factory, monkeypatch) -> None:
    """Soketi answers its own 413 with HTTP 200; the gateway turns it into a real 413."""
    monkeypatch.setenv("SOKETI_EVENT_MAX_SIZE_IN_KB", "1")
    small = soketi_factory()
    with TestClient(create_app(gateway_settings(small))) as client:
        response = emit(client, {"channel": DM, "event": "e", "data": "x" * 4000})
        assert error_of(response) == (
            413,
            "provider_rejected",
            "the server refused POST /events (413): The event data should be less than 1 KB.",
        )


def test_unreachable_provider_is_503_and_not_ready(soketi, caplog) -> None:
    settings = gateway_settings(soketi, REALTIME_PORT=str(free_port()))
    with TestClient(create_app(settings)) as client:
        status, code, message = error_of(emit(client, {"channel": DM, "event": "e", "data": "1"}))
        assert (status, code) == (503, "provider_unreachable")
        assert message.startswith(f"cannot reach the HTTP API at {settings.api_base}")
        assert client.get("/realtime/health").json() == {"status": "ok"}
        with caplog.at_level("WARNING", logger="rtctl.gateway"):
            ready = client.get("/realtime/ready")
        # the unauthenticated probe learns "not ready"; the internal address stays in the log
        assert error_of(ready) == (
            503,
            "not_ready",
            "the realtime provider does not answer (details in the log)",
        )
        assert settings.api_base not in ready.text
        assert [r.getMessage() for r in caplog.records if r.name == "rtctl.gateway"] == [
            "not ready: the provider's API does not answer: cannot reach the HTTP API at "
            f"{settings.api_base}: Connection refused"
        ]


def test_ready_when_the_provider_answers_a_signed_call(client) -> None:
    response = client.get("/realtime/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "provider": "soketi"}


# --- monitor --------------------------------------------------------------------------------------


def test_channels_lists_occupied_channels_with_counts(client, soketi) -> None:
    settings = gateway_settings(soketi)
    with PusherSocket(settings, user_id="41") as a, PusherSocket(settings, user_id="42") as b:
        for socket in (a, b):
            socket.connect(timeout=10)
            socket.subscribe("presence-gw-monitor", timeout=10)
        a.subscribe("gw-monitor-public", timeout=10)
        everything = client.get("/realtime/channels", headers=bearer(MONITOR_TOKEN))
        assert everything.status_code == 200
        listed = everything.json()["channels"]
        assert listed["presence-gw-monitor"]["subscription_count"] == 2
        assert listed["gw-monitor-public"] == {"subscription_count": 1}
        assert everything.json()["count"] == len(listed)
        presence = client.get(
            "/realtime/channels?prefix=presence-gw-", headers=bearer(MONITOR_TOKEN)
        )
        # Soketi ignores info=user_count on /channels (protocol §7.7); Pusher would add it.
        assert presence.json() == {
            "count": 1,
            "channels": {"presence-gw-monitor": {"subscription_count": 2}},
        }
    bad = client.get("/realtime/channels?prefix=a b", headers=bearer(MONITOR_TOKEN))
    assert error_of(bad)[:2] == (400, "invalid_channel_name")
