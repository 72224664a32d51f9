"""The gateway under abuse: short service tokens, guessing, aborted and half-sent requests, probes
that say too much, redirects to a client-chosen host, oversized presence info, sloppy JWT claims,
and an event name that used to fail only after it was published.

In process (Starlette TestClient) where the app decides, a real `rtctl gateway` process where the
server does (disconnects, header timeout), and the real Soketi wherever an event or a member goes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time

import pytest
from jwt.utils import base64url_encode
from starlette.testclient import TestClient

from rtctl.errors import ConfigError
from rtctl.gateway import create_app
from rtctl.gateway.app import AsciiJSONResponse
from rtctl.protocol import PusherSocket
from tests.gateway_support import (
    DM,
    EMIT_TOKEN,
    JWT_SECRET,
    USER,
    GatewayProcess,
    bearer,
    gateway_env,
    gateway_settings,
    token,
)
from tests.helpers import free_port, run_rtctl
from tests.waiting import wait_until

SOCKET = "1234.5678"


def auth(client, channel=DM, user_token=None, **headers):
    return client.post(
        "/realtime/auth",
        data={"socket_id": SOCKET, "channel_name": channel},
        headers={**bearer(user_token or token()), **headers},
    )


def error_of(response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"]["code"], body["error"]["message"]


# --- service tokens -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["REALTIME_EMIT_TOKEN", "REALTIME_MONITOR_TOKEN"])
def test_a_short_service_token_is_refused_at_start(soketi, name) -> None:
    with pytest.raises(ConfigError) as refused:
        create_app(gateway_settings(soketi, **{name: "x" * 31}))
    assert refused.value.message == f"{name} is 31 bytes; service tokens need at least 32"
    assert refused.value.hint == "generate one with `openssl rand -hex 32`"
    create_app(gateway_settings(soketi, **{name: "x" * 32}))  # the minimum is enough


def test_rtctl_gateway_with_a_short_emit_token_exits_3(soketi, tmp_path) -> None:
    env = gateway_env(soketi, REALTIME_EMIT_TOKEN="letmein")
    result = run_rtctl(["gateway", "--port", str(free_port())], env=env, cwd=tmp_path, timeout=30)
    assert (result.returncode, result.stderr) == (
        3,
        "error: REALTIME_EMIT_TOKEN is 7 bytes; service tokens need at least 32\n"
        "hint: generate one with `openssl rand -hex 32`\n",
    )


# --- failed authentication limit ------------------------------------------------------------------


def limited_app(soketi, limit=3):
    return create_app(gateway_settings(soketi), auth_failure_limit=limit)


def test_wrong_tokens_from_one_address_end_in_429_for_every_credential(soketi) -> None:
    app = limited_app(soketi)
    with TestClient(app, client=("203.0.113.7", 5000)) as attacker:
        wrong = token(key="x" * 64)
        for _ in range(3):
            assert error_of(auth(attacker, user_token=wrong))[:2] == (401, "invalid_token")
        refused = auth(attacker, user_token=wrong)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "too_many_failures"
        assert 55 <= int(refused.headers["retry-after"]) <= 60
        # a right guess now learns nothing either, and the emit token is behind the same wall
        assert auth(attacker).status_code == 429
        emitted = attacker.post("/realtime/emit", json={}, headers=bearer(EMIT_TOKEN))
        assert emitted.status_code == 429
        # probes carry no credentials and are never refused
        assert attacker.get("/realtime/health").json() == {"status": "ok"}
    with TestClient(app, client=("203.0.113.8", 5000)) as neighbour:
        assert auth(neighbour).status_code == 200


def test_wrong_service_tokens_count_too(soketi) -> None:
    with TestClient(limited_app(soketi), client=("203.0.113.9", 5000)) as client:
        for _ in range(3):
            response = client.post("/realtime/emit", json={}, headers=bearer("guess" * 8))
            assert error_of(response)[:2] == (401, "invalid_token")
        assert auth(client).status_code == 429


def test_expired_and_missing_tokens_do_not_count(soketi) -> None:
    """A browser back after a night re-authorizes every channel with an old token at once; it
    must get 401 token_expired (and fetch a new token), not lock its address out."""
    with TestClient(limited_app(soketi), client=("203.0.113.10", 5000)) as client:
        for _ in range(10):
            assert error_of(auth(client, user_token=token(expires_in=-60)))[1] == "token_expired"
            no_token = client.post("/realtime/auth", data={"socket_id": SOCKET})
            assert error_of(no_token)[1] == "missing_token"
        assert auth(client).status_code == 200


def test_a_limit_of_zero_turns_it_off(soketi) -> None:
    with TestClient(limited_app(soketi, limit=0)) as client:
        for _ in range(50):
            assert auth(client, user_token="not.a.jwt").status_code == 401


# --- what the routes say and where they send you --------------------------------------------------


def test_a_trailing_slash_is_404_never_a_redirect_to_the_clients_host(soketi) -> None:
    with TestClient(create_app(gateway_settings(soketi))) as client:
        for path in ("/realtime/health/", "/realtime/auth/"):
            response = client.request(
                "GET" if "health" in path else "POST",
                path,
                headers={"Host": "evil.example"},
                follow_redirects=False,
            )
            assert "location" not in response.headers
            assert error_of(response) == (404, "not_found", "no such route")


# --- presence user_info in bytes ------------------------------------------------------------------


def test_user_info_is_limited_in_bytes_as_json(soketi) -> None:
    with TestClient(create_app(gateway_settings(soketi))) as client:

        def info(**claims):
            body = auth(client, "presence-bytes", token(**claims)).json()
            return json.loads(body["channel_data"]).get("user_info")

        assert info(name="€" * 133) == {"name": "€" * 133}  # 399 bytes
        assert info(name="€" * 134) is None  # 402 bytes: left out
        assert info(name='"' * 200) == {"name": '"' * 200}  # 400 bytes once escaped
        assert info(name='"' * 201) is None
        assert info(name="\x01" * 67) is None  # \u0001 is 6 bytes of JSON
        assert info(name="\ud800") is None  # not text at all
        assert info(name="€" * 134, avatar="/a.png") == {"avatar": "/a.png"}


def test_the_largest_user_info_fits_pushers_1_kb_on_a_real_soketi(
    soketi_factory, tmp_path, monkeypatch
) -> None:
    """Soketi set to Pusher's 1 KB member limit accepts the largest name and avatar the gateway
    lets through; a name of 400 "€" (1,200 bytes) used to pass the gateway and be refused."""
    monkeypatch.setenv("SOKETI_PRESENCE_MAX_MEMBER_SIZE", "1")  # KB, passed through to Soketi
    server = soketi_factory()
    gateway = GatewayProcess(gateway_env(server)).start(tmp_path)
    try:
        largest = {"name": "€" * 133 + "x", "avatar": "/" + "a" * 399}
        for claims, expected in (
            (largest, largest),
            ({"name": "€" * 400, "avatar": "/a.png"}, {"avatar": "/a.png"}),
        ):
            sock = PusherSocket(
                server.settings(),
                auth_endpoint=f"{gateway.base}/auth",
                auth_headers=bearer(token(USER, **claims)),
            )
            with sock:
                sock.connect(10)
                members = sock.subscribe("presence-bytes", timeout=10).members
            assert members == {USER: expected}
    finally:
        gateway.stop()


# --- JWT claim types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"exp": str(int(time.time()) + 300)}, "bearer token claim 'exp' is not a number"),
        ({"nbf": "0"}, "bearer token claim 'nbf' is not a number"),
        ({"iat": True}, "bearer token claim 'iat' is not a number"),
        ({"aud": ""}, "bearer token refused: Invalid audience"),
        ({"aud": []}, "bearer token refused: Invalid audience"),
        ({"aud": "chat"}, "bearer token refused: Invalid audience"),
    ],
)
def test_claims_of_the_wrong_type_are_refused(soketi, claims, message) -> None:
    with TestClient(create_app(gateway_settings(soketi))) as client:
        exp = claims.pop("exp", None)
        user_token = (
            token(expires_in=None, exp=exp, **claims) if exp is not None else token(**claims)
        )
        assert error_of(auth(client, user_token=user_token)) == (401, "invalid_token", message)


def test_an_infinite_expiry_is_401_not_500(soketi) -> None:
    """JSON allows 1e400, Python parses it as infinity; a signed token carrying it is refused."""
    header = base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
    payload = base64url_encode(b'{"sub":"123","exp":1e400}')
    signing_input = header + b"." + payload
    signature = hmac.new(JWT_SECRET.encode(), signing_input, hashlib.sha256).digest()
    signed = (signing_input + b"." + base64url_encode(signature)).decode()
    with TestClient(create_app(gateway_settings(soketi))) as client:
        status, code, _ = error_of(auth(client, user_token=signed))
    assert (status, code) == (401, "invalid_token")


# --- emit: validate before publishing -------------------------------------------------------------


def test_a_surrogate_event_name_is_refused_before_anything_is_published(soketi) -> None:
    channel = "gw-surrogate"
    with (
        TestClient(create_app(gateway_settings(soketi))) as client,
        PusherSocket(soketi.settings()) as listener,
    ):
        listener.connect(10)
        listener.subscribe(channel, timeout=10)
        for body in (
            b'{"channel": "gw-surrogate", "event": "\\ud800", "data": "x"}',
            b'{"channel": "gw-surrogate", "event": "ok", "data": {"text": "\\udfff"}}',
        ):
            response = client.post(
                "/realtime/emit",
                content=body,
                headers={**bearer(EMIT_TOKEN), "Content-Type": "application/json"},
            )
            assert error_of(response) == (
                400,
                "invalid_body",
                "request body holds a lone surrogate escape (not valid Unicode)",
            )
        marker = client.post(
            "/realtime/emit",
            json={"channel": channel, "event": "marker", "data": "after"},
            headers=bearer(EMIT_TOKEN),
        )
        assert marker.status_code == 200
        first = listener.recv(10)
        assert first is not None and (first.event, first.data) == ("marker", "after")


def test_the_answer_after_a_publish_cannot_fail_to_encode() -> None:
    response = AsciiJSONResponse({"ok": True, "event": "\ud800€"})
    assert response.body == b'{"ok":true,"event":"\\ud800\\u20ac"}'


# --- the server: aborted bodies and half-sent headers ---------------------------------------------


@pytest.fixture
def served(soketi, tmp_path):
    process = GatewayProcess(gateway_env(soketi), args=["--header-timeout", "1"]).start(tmp_path)
    yield process
    process.stop()


def wait_for_log(process: GatewayProcess, text: str, timeout: float = 10) -> str:
    return wait_until(
        lambda: log if text in (log := process.log()) else None,
        timeout,
        lambda: f"{text!r} never appeared in the gateway log:\n{process.log()}",
    )


def test_a_client_that_leaves_mid_body_is_logged_as_a_client_abort(served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(
            b"POST /realtime/auth HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer " + token().encode() + b"\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 1000\r\n\r\nsocket_id=12"
        )
        time.sleep(0.3)
    log = wait_for_log(served, '"code":"client_abort"')
    line = next(line for line in log.splitlines() if "client_abort" in line)
    assert '"path":"/realtime/auth","status":499' in line
    assert "Traceback" not in log and "unexpected" not in log


@pytest.mark.parametrize(
    "sent", [b"", b"POST /realtime/auth HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-"]
)
def test_a_connection_without_complete_headers_is_closed(served, sent) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=15) as sock:
        sock.sendall(sent)
        assert sock.recv(1024) == b""  # closed by the gateway, long before our 15 s
    # the gateway itself is fine
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(b"GET /realtime/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 200 OK\r\n")


# --- remembered verifications -------------------------------------------------------------------


def test_a_remembered_token_is_refused_once_it_expires(soketi, monkeypatch) -> None:
    from rtctl.gateway import identity

    monkeypatch.setattr(identity, "LEEWAY_SECONDS", 0)
    app = create_app(gateway_settings(soketi))
    with TestClient(app) as client:
        short_lived = token(expires_in=1)
        assert auth(client, user_token=short_lived).status_code == 200
        assert short_lived in app.state.gateway.verifier._verified
        time.sleep(1.6)
        assert error_of(auth(client, user_token=short_lived))[:2] == (401, "token_expired")
        assert short_lived not in app.state.gateway.verifier._verified


def test_remembered_tokens_are_bounded_and_failures_never_remembered(soketi, monkeypatch) -> None:
    from rtctl.gateway import identity

    monkeypatch.setattr(identity, "VERIFIED_CACHE_SIZE", 3)
    app = create_app(gateway_settings(soketi))
    remembered = app.state.gateway.verifier._verified
    with TestClient(app) as client:
        tokens = [token(f"u{i}") for i in range(5)]
        for user_token in tokens:
            client.post(
                "/realtime/auth",
                data={"socket_id": SOCKET, "channel_name": "presence-x"},
                headers=bearer(user_token),
            )
        assert list(remembered) == tokens[2:]  # the oldest went first
        auth(client, user_token=token(key="y" * 64))
        assert len(remembered) == 3 and all(t in tokens for t in remembered)
