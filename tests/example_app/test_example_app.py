"""The example app's tests, written with the rtctl pytest plugin (docs/testing.md shows them):
a real Soketi with Pusher's limits, a listener subscribed before the view runs, and assertions on
what a subscriber really receives."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from tests.example_app.app import create_app


@pytest.fixture
def client(pusher_client):
    """The app's test client, the app publishing through the plugin's pusher client."""
    return create_app(pusher_client).test_client()


@pytest.fixture
def live_app(pusher_client) -> Iterator[str]:
    """The app served over HTTP on a free loopback port (the auth endpoint a socket calls)."""
    server = make_server("127.0.0.1", 0, create_app(pusher_client), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def test_a_message_arrives_on_the_orders_private_channel(client, realtime_listener, unique_channel):
    order = unique_channel("order")  # a fresh order id: no other test sees its channel
    listener = realtime_listener(f"private-order-{order}")

    response = client.post(
        f"/orders/{order}/messages", json={"text": "hi"}, headers={"X-User": "ann"}
    )

    assert response.status_code == 201
    message = listener.wait_for(event="message.created", channel=f"private-order-{order}")
    assert message.data == {"order": order, "from": "ann", "text": "hi"}
    listener.assert_nothing(within=0.2)  # exactly one event


def test_another_orders_channel_gets_nothing(client, realtime_listener, unique_channel):
    mine, other = unique_channel("order"), unique_channel("order")
    listener = realtime_listener(f"private-order-{other}")

    client.post(f"/orders/{mine}/messages", json={"text": "hi"}, headers={"X-User": "ann"})

    listener.assert_nothing(event="message.created", within=0.5)


def test_an_over_limit_message_is_refused_and_nothing_arrives(
    client, realtime_listener, unique_channel
):
    order = unique_channel("order")
    listener = realtime_listener(f"private-order-{order}")

    response = client.post(
        f"/orders/{order}/messages", json={"text": "x" * 11_000}, headers={"X-User": "ann"}
    )

    assert response.status_code == 502  # Pusher's 10 KB limit, enforced by the test server
    assert "10 KB" in response.get_json()["error"]
    listener.assert_nothing(within=0.5)


def test_a_presence_member_appears_with_the_apps_user_info(
    live_app, realtime_listener, realtime_webhooks, unique_channel
):
    room = unique_channel("presence-room")
    observer = realtime_listener(room, user_id="observer")

    # a second connection joins the way pusher-js does: signed by the app's auth endpoint
    realtime_listener(room, auth_endpoint=f"{live_app}/pusher/auth", auth_headers={"X-User": "bob"})

    joined = observer.wait_for(event="pusher_internal:member_added", channel=room)
    assert joined.data == {"user_id": "bob", "user_info": {"name": "Bob"}}
    assert observer.members(room) == {"observer": None, "bob": {"name": "Bob"}}
    # and the server told the app's backend, in a signed webhook (the user id the app signed)
    assert realtime_webhooks.wait_for(name="member_added", user_id="bob").channel == room


def test_the_app_configured_from_the_environment_publishes_too(
    monkeypatch, realtime_env, realtime_listener, unique_channel
):
    for name, value in realtime_env.items():
        monkeypatch.setenv(name, value)
    client = create_app().test_client()  # builds its own pusher.Pusher from PUSHER_*
    order = unique_channel("order")
    listener = realtime_listener(f"private-order-{order}")

    client.post(f"/orders/{order}/messages", json={"text": "from env"}, headers={"X-User": "cy"})

    assert listener.wait_for(event="message.created").data["text"] == "from env"
