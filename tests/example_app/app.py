"""A small Flask app that publishes with the pusher SDK: the example of docs/testing.md.

A signed-in user (the X-User header stands in for a real login) posts a message to an order; the
view triggers ``message.created`` on the order's private channel. ``/pusher/auth`` is the
channel-auth endpoint pusher-js calls: it signs private channels and adds the user to presence
channels with a display name.
"""

from __future__ import annotations

import os

import pusher
import pusher.errors
from flask import Flask, abort, request


def client_from_env() -> pusher.Pusher:
    """The app's own client, configured from the environment as in production."""
    return pusher.Pusher(
        app_id=os.environ["PUSHER_APP_ID"],
        key=os.environ["PUSHER_APP_KEY"],
        secret=os.environ["PUSHER_APP_SECRET"],
        cluster=os.environ.get("PUSHER_APP_CLUSTER"),
        host=os.environ.get("PUSHER_HOST"),
        port=int(os.environ["PUSHER_PORT"]) if "PUSHER_PORT" in os.environ else None,
        ssl=os.environ.get("PUSHER_SCHEME", "https") == "https",
    )


def create_app(realtime: pusher.Pusher | None = None) -> Flask:
    app = Flask(__name__)
    client = realtime or client_from_env()

    def current_user() -> str:
        user = request.headers.get("X-User")
        if not user:
            abort(401)
        return user

    @app.post("/orders/<order_id>/messages")
    def post_message(order_id: str) -> tuple[dict[str, str], int]:
        user = current_user()
        text = str((request.get_json(silent=True) or {}).get("text", ""))
        try:
            client.trigger(
                f"private-order-{order_id}",
                "message.created",
                {"order": order_id, "from": user, "text": text},
            )
        except (ValueError, pusher.errors.PusherError) as refused:  # ValueError: the SDK's checks
            return {"error": f"not delivered: {refused}"}, 502
        return {"status": "sent"}, 201

    @app.post("/pusher/auth")
    def pusher_auth() -> dict[str, str]:
        user = current_user()
        channel, socket_id = request.form["channel_name"], request.form["socket_id"]
        if channel.startswith("presence-"):
            member = {"user_id": user, "user_info": {"name": user.title()}}
            return dict(client.authenticate(channel, socket_id, member))
        return dict(client.authenticate(channel, socket_id))

    return app
