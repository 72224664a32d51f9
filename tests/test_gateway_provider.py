"""Switching provider needs no code change: the same create_app with REALTIME_PROVIDER=pusher.

Pusher itself is not reachable from tests (loopback only), so RTCTL_PUSHER_ENDPOINT points the
pusher provider at a local Soketi serving TLS with a self-signed certificate (RTCTL_CA_BUNDLE),
which is exactly how a Pusher cluster is addressed: https, port 443-style TLS, derived hosts.
"""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from rtctl.config import load_settings
from rtctl.gateway import create_app
from rtctl.protocol import PusherSocket
from rtctl.protocol.signing import authorize_channel
from tests.gateway_support import (
    DM,
    EMIT_TOKEN,
    JWT_SECRET,
    MONITOR_TOKEN,
    bearer,
    token,
)


@pytest.fixture
def pusher_like(pusher_standin, monkeypatch):
    """(settings for provider=pusher, the TLS Soketi standing in for api-eu.pusher.com)."""
    # requests lets these override a Session's verify=<file>; keep them out (see httpapi).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    settings = load_settings(
        environ=pusher_standin.env(
            REALTIME_JWT_SECRET=JWT_SECRET,
            REALTIME_EMIT_TOKEN=EMIT_TOKEN,
            REALTIME_MONITOR_TOKEN=MONITOR_TOKEN,
        )
    )
    return settings, pusher_standin.server


def test_the_same_app_serves_the_pusher_provider_by_config_alone(pusher_like) -> None:
    settings, server = pusher_like
    assert (settings.provider, settings.api_base) == ("pusher", f"https://127.0.0.1:{server.port}")
    with TestClient(create_app(settings)) as client:
        assert client.get("/realtime/ready").json() == {"status": "ready", "provider": "pusher"}

        with PusherSocket(settings) as listener:  # wss, trusting the CA bundle
            socket_id = listener.connect(timeout=10)
            # The gateway's answer for this socket is the very signature the provider accepts.
            answer = client.post(
                "/realtime/auth",
                data={"socket_id": socket_id, "channel_name": DM},
                headers=bearer(token()),
            )
            assert answer.status_code == 200
            assert answer.json() == authorize_channel(settings.key, settings.secret, socket_id, DM)
            assert listener.subscribe(DM, timeout=10).subscribed

            sent = client.post(
                "/realtime/emit",
                json={"channel": DM, "event": "note", "data": {"via": "pusher provider"}},
                headers=bearer(EMIT_TOKEN),
            )
            assert sent.json() == {"ok": True, "event": "note", "channels": [DM]}
            message = listener.recv(timeout=10)
            assert message is not None
            assert (message.event, message.data) == ("note", {"via": "pusher provider"})

            listed = client.get("/realtime/channels", headers=bearer(MONITOR_TOKEN)).json()
            assert listed["channels"][DM] == {"subscription_count": 1}
