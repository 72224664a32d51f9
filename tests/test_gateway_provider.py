"""Switching provider needs no code change: the same create_app with REALTIME_PROVIDER=pusher.

Pusher itself is not reachable from tests (loopback only), so RTCTL_PUSHER_ENDPOINT points the
pusher provider at a local Soketi serving TLS with a self-signed certificate (RTCTL_CA_BUNDLE),
which is exactly how a Pusher cluster is addressed: https, port 443-style TLS, derived hosts.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.testclient import TestClient

from rtctl.config import load_settings
from rtctl.gateway import create_app
from rtctl.protocol import PusherSocket
from rtctl.signing import authorize_channel
from tests.gateway_support import (
    DM,
    EMIT_TOKEN,
    JWT_SECRET,
    MONITOR_TOKEN,
    bearer,
    token,
)


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def pusher_like(soketi_factory, tmp_path_factory, monkeypatch):
    """(settings for provider=pusher, the TLS Soketi standing in for api-eu.pusher.com)."""
    # requests lets these override a Session's verify=<file>; keep them out (see httpapi).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    cert, key = self_signed(tmp_path_factory.mktemp("gateway-tls"))
    server = soketi_factory(
        REALTIME_SCHEME="https",
        SOKETI_SSL_CERT=str(cert),
        SOKETI_SSL_KEY=str(key),
        RTCTL_CA_BUNDLE=str(cert),
    )
    settings = load_settings(
        environ={
            "REALTIME_PROVIDER": "pusher",
            "PUSHER_APP_CLUSTER": "eu",
            "RTCTL_PUSHER_ENDPOINT": f"127.0.0.1:{server.port}",
            "RTCTL_CA_BUNDLE": str(cert),
            "PUSHER_APP_ID": server.app_id,
            "PUSHER_APP_KEY": server.key,
            "PUSHER_APP_SECRET": server.secret,
            "REALTIME_JWT_SECRET": JWT_SECRET,
            "REALTIME_EMIT_TOKEN": EMIT_TOKEN,
            "REALTIME_MONITOR_TOKEN": MONITOR_TOKEN,
        }
    )
    return settings, server


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
