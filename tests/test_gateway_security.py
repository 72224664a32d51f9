"""Gateway security cases, in process (Starlette TestClient) against the real session Soketi.

Every refusal is asserted exactly: status, stable error code, message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.testclient import TestClient

from rtctl.errors import ConfigError
from rtctl.gateway import create_app
from rtctl.gateway.app import AUTH_BODY_LIMIT, EMIT_BODY_LIMIT
from tests.gateway_support import (
    BOT,
    DM,
    EMIT_TOKEN,
    JWT_SECRET,
    MASTER_KEY,
    MONITOR_TOKEN,
    OTHER_DM,
    USER,
    bearer,
    gateway_settings,
    token,
)

SOCKET = "1234.5678"


def hex_signature(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def client(soketi):
    with TestClient(create_app(gateway_settings(soketi))) as test_client:
        yield test_client


def auth(client, channel, user_token=None, socket_id=SOCKET, **extra):
    headers = bearer(user_token or token()) if user_token != "" else {}
    form = {"socket_id": socket_id, "channel_name": channel, **extra}
    return client.post("/realtime/auth", data=form, headers=headers)


def error_of(response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"]["code"], body["error"]["message"]


# --- what pusher-js expects -----------------------------------------------------------------------


def test_private_dm_is_signed_for_both_members(client, soketi) -> None:
    for user in (USER, BOT):
        response = auth(client, DM, token(user))
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        signature = hex_signature(soketi.secret, f"{SOCKET}:{DM}")
        assert response.json() == {"auth": f"{soketi.key}:{signature}"}


def test_presence_channel_data_comes_from_the_token_and_forged_data_is_ignored(
    client, soketi
) -> None:
    forged = json.dumps({"user_id": "1", "user_info": {"name": "Admin"}})
    response = auth(
        client,
        "presence-lobby",
        token(USER, name="Ada", avatar="/a.png", role="admin"),
        channel_data=forged,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["channel_data"] == '{"user_id":"123","user_info":{"name":"Ada","avatar":"/a.png"}}'
    signature = hex_signature(soketi.secret, f"{SOCKET}:presence-lobby:{body['channel_data']}")
    assert body["auth"] == f"{soketi.key}:{signature}"


def test_presence_without_profile_claims_has_no_user_info(client) -> None:
    response = auth(client, "presence-lobby", token("u-7"))
    assert response.json()["channel_data"] == '{"user_id":"u-7"}'


def test_encrypted_dm_gets_the_shared_secret_from_the_master_key(client, soketi) -> None:
    channel = f"private-encrypted-{USER}_{BOT}"
    response = auth(client, channel)
    assert response.status_code == 200
    expected = hashlib.sha256(channel.encode() + base64.b64decode(MASTER_KEY)).digest()
    assert response.json() == {
        "auth": f"{soketi.key}:{hex_signature(soketi.secret, f'{SOCKET}:{channel}')}",
        "shared_secret": base64.b64encode(expected).decode(),
    }


def test_json_body_is_accepted_too(client) -> None:
    response = client.post(
        "/realtime/auth",
        json={"socket_id": SOCKET, "channel_name": DM},
        headers=bearer(token()),
    )
    assert response.status_code == 200
    assert set(response.json()) == {"auth"}


def test_user_auth_signs_the_identity_for_pusher_signin(client, soketi) -> None:
    response = client.post(
        "/realtime/user-auth", data={"socket_id": SOCKET}, headers=bearer(token(USER, name="Ada"))
    )
    assert response.status_code == 200
    body = response.json()
    assert body["user_data"] == '{"id":"123","user_info":{"name":"Ada"}}'
    signature = hex_signature(soketi.secret, f"{SOCKET}::user::{body['user_data']}")
    assert body["auth"] == f"{soketi.key}:{signature}"


# --- identity: 401 --------------------------------------------------------------------------------


def test_missing_token_is_401(client) -> None:
    response = auth(client, DM, user_token="")
    assert error_of(response) == (401, "missing_token", "no Authorization: Bearer token was sent")
    assert response.headers["www-authenticate"] == 'Bearer realm="realtime"'


def test_non_bearer_authorization_is_401(client) -> None:
    response = client.post(
        "/realtime/auth",
        data={"socket_id": SOCKET, "channel_name": DM},
        headers={"Authorization": "Basic dXNlcjpwYXNz"},
    )
    assert error_of(response) == (
        401,
        "missing_token",
        "Authorization header is not 'Bearer <token>'",
    )


def test_expired_token_is_401(client) -> None:
    response = auth(client, DM, token(expires_in=-3600))
    assert error_of(response) == (401, "token_expired", "bearer token has expired")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_wrongly_signed_token_is_401(client) -> None:
    forged = token(key="x" * 64)
    assert error_of(auth(client, DM, forged)) == (
        401,
        "invalid_token",
        "bearer token signature does not verify",
    )


def test_alg_none_token_is_401(client) -> None:
    unsigned = jwt.encode({"sub": USER, "exp": int(time.time()) + 300}, None, algorithm="none")
    assert error_of(auth(client, DM, unsigned)) == (
        401,
        "invalid_token",
        "token algorithm 'none' is not accepted (accepted: HS256)",
    )


def test_token_without_expiry_is_401(client) -> None:
    assert error_of(auth(client, DM, token(expires_in=None))) == (
        401,
        "invalid_token",
        "bearer token has no 'exp' claim",
    )


def test_token_without_subject_is_401(client) -> None:
    assert error_of(auth(client, DM, token(None))) == (
        401,
        "invalid_token",
        "bearer token has no 'sub' claim",
    )


def test_garbage_token_is_401(client) -> None:
    assert error_of(auth(client, DM, "not.a.jwt")) == (
        401,
        "invalid_token",
        "bearer token is not a JWT",
    )


def test_subject_that_cannot_be_a_pusher_user_id_is_401(client) -> None:
    assert error_of(auth(client, DM, token("auth0|123"))) == (
        401,
        "invalid_token",
        "token subject is not a usable user id (1-128 of A-Z a-z 0-9 - _ = @ , . ;)",
    )


def test_subject_with_a_trailing_newline_is_401(client) -> None:
    assert error_of(auth(client, DM, token(USER + "\n")))[:2] == (401, "invalid_token")


def test_hs_token_signed_with_the_public_key_text_is_refused(soketi) -> None:
    """Algorithm confusion: an RS256 gateway never accepts HS256, whatever key signed it."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = gateway_settings(
        soketi, REALTIME_JWT_SECRET="", REALTIME_JWT_PUBLIC_KEY=public_pem.decode()
    )
    forged = jwt.encode({"sub": USER, "exp": int(time.time()) + 60}, "k" * 64, algorithm="HS256")
    with TestClient(create_app(settings)) as client:
        assert error_of(auth(client, DM, forged)) == (
            401,
            "invalid_token",
            "token algorithm 'HS256' is not accepted (accepted: RS256)",
        )


# --- asymmetric keys ------------------------------------------------------------------------------


def pem(public_key) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def test_rs256_token_verified_with_a_public_key_in_the_environment(soketi) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings = gateway_settings(
        soketi, REALTIME_JWT_SECRET="", REALTIME_JWT_PUBLIC_KEY=pem(private.public_key())
    )
    with TestClient(create_app(settings)) as client:
        good = token(USER, key=private, algorithm="RS256", name="Ada")
        assert auth(client, DM, good).status_code == 200
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        bad = token(USER, key=other, algorithm="RS256")
        assert error_of(auth(client, DM, bad)) == (
            401,
            "invalid_token",
            "bearer token signature does not verify",
        )


def test_es256_token_verified_with_a_public_key_file(soketi, tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "idp.pub.pem"
    key_file.write_text(pem(private.public_key()))
    settings = gateway_settings(
        soketi, REALTIME_JWT_SECRET="", REALTIME_JWT_PUBLIC_KEY=str(key_file)
    )
    with TestClient(create_app(settings)) as client:
        good = token(BOT, key=private, algorithm="ES256")
        assert auth(client, DM, good).status_code == 200
        expired = token(BOT, key=private, algorithm="ES256", expires_in=-60)
        assert error_of(auth(client, DM, expired))[:2] == (401, "token_expired")


def test_audience_and_issuer_are_checked_when_configured(soketi) -> None:
    app = create_app(gateway_settings(soketi), audience="chat", issuer="https://idp.example")
    with TestClient(app) as client:
        good = token(USER, aud="chat", iss="https://idp.example")
        assert auth(client, DM, good).status_code == 200
        assert error_of(
            auth(client, DM, token(USER, aud="billing", iss="https://idp.example"))
        ) == (
            401,
            "invalid_token",
            "bearer token refused: Audience doesn't match",
        )


# --- channel rules: 403 ---------------------------------------------------------------------------


def test_another_users_dm_is_403(client) -> None:
    assert error_of(auth(client, OTHER_DM)) == (
        403,
        "forbidden_channel",
        "user 123 is not a member of private-124_9000000",
    )


@pytest.mark.parametrize(
    ("channel", "code", "message"),
    [
        (
            "private-cache-123_9000000",
            "channel_type_refused",
            "channels like private-cache-123_9000000 are not authorized here",
        ),
        (
            "private-room",
            "forbidden_channel",
            "private-room is not a private-{a}_{b} channel between two users",
        ),
        (
            "private-123_9000000_1",
            "forbidden_channel",
            "private-123_9000000_1 is not a private-{a}_{b} channel between two users",
        ),
        ("lobby", "channel_type_refused", "lobby is a public channel: it needs no authorization"),
        (
            "cache-lobby",
            "channel_type_refused",
            "cache-lobby is a public channel: it needs no authorization",
        ),
        (
            "private-encrypted-124_9000000",
            "forbidden_channel",
            "user 123 is not a member of private-encrypted-124_9000000",
        ),
    ],
)
def test_unknown_channel_types_and_shapes_are_403(client, channel, code, message) -> None:
    assert error_of(auth(client, channel)) == (403, code, message)


def test_encrypted_channels_are_refused_without_a_master_key(soketi) -> None:
    settings = gateway_settings(soketi, PUSHER_ENCRYPTION_MASTER_KEY_BASE64="")
    with TestClient(create_app(settings)) as client:
        assert error_of(auth(client, f"private-encrypted-{USER}_{BOT}")) == (
            403,
            "channel_type_refused",
            "encrypted channels are off: PUSHER_ENCRYPTION_MASTER_KEY_BASE64 is not set",
        )


# --- malformed requests: 400 / 413 ----------------------------------------------------------------


@pytest.mark.parametrize("socket_id", ["", "abc", "1234", "1.2.3", "1.2\n", "-1.2", "1 .2"])
def test_malformed_socket_id_is_400(client, socket_id) -> None:
    assert error_of(auth(client, DM, socket_id=socket_id)) == (
        400,
        "invalid_socket_id",
        "socket_id must be two numbers joined by a dot, e.g. 1234.5678",
    )


def test_malformed_channel_names_are_400(client) -> None:
    assert error_of(auth(client, "private-a b")) == (
        400,
        "invalid_channel_name",
        "channel name 'private-a b' contains characters Pusher refuses: ' '",
    )
    assert error_of(auth(client, "#server-to-user-123")) == (
        400,
        "invalid_channel_name",
        "'#server-to-user-123' is Pusher's channel for events sent to one user: apps neither "
        "create nor authorize it",
    )
    assert error_of(auth(client, "presence-" + "x" * 160)) == (
        400,
        "invalid_channel_name",
        "channel name is 169 characters; Pusher allows 164",
    )
    assert error_of(auth(client, "")) == (400, "invalid_channel_name", "channel name is empty")
    assert error_of(auth(client, DM + "\n")) == (
        400,
        "invalid_channel_name",
        "channel name 'private-123_9000000\\n' contains characters Pusher refuses: '\\n'",
    )


def test_missing_and_repeated_fields_are_400(client) -> None:
    headers = {**bearer(token()), "Content-Type": "application/x-www-form-urlencoded"}
    missing = client.post("/realtime/auth", content=f"socket_id={SOCKET}", headers=headers)
    assert error_of(missing) == (400, "invalid_body", "channel_name is missing")
    twice = client.post(
        "/realtime/auth",
        content=f"socket_id={SOCKET}&channel_name={DM}&channel_name={OTHER_DM}",
        headers=headers,
    )
    assert error_of(twice) == (400, "invalid_body", "channel_name must be given once, as a string")
    not_string = client.post(
        "/realtime/auth", json={"socket_id": SOCKET, "channel_name": 5}, headers=bearer(token())
    )
    assert error_of(not_string) == (
        400,
        "invalid_body",
        "channel_name must be given once, as a string",
    )


def test_wrong_content_type_is_400(client) -> None:
    response = client.post(
        "/realtime/auth",
        content=f"socket_id={SOCKET}&channel_name={DM}",
        headers={**bearer(token()), "Content-Type": "text/plain"},
    )
    assert error_of(response) == (
        400,
        "unsupported_content_type",
        "send application/x-www-form-urlencoded (as pusher-js does) or application/json",
    )


def test_invalid_json_is_400(client) -> None:
    response = client.post(
        "/realtime/auth",
        content=b"{not json",
        headers={**bearer(token()), "Content-Type": "application/json"},
    )
    assert error_of(response) == (400, "invalid_body", "request body is not valid JSON")


def test_oversize_auth_body_is_413(client) -> None:
    response = auth(client, DM, padding="x" * AUTH_BODY_LIMIT)
    assert error_of(response) == (
        413,
        "body_too_large",
        f"request body is over {AUTH_BODY_LIMIT} bytes",
    )


def test_oversize_body_without_content_length_is_413(client) -> None:
    def chunks():
        for _ in range(EMIT_BODY_LIMIT // 1024 + 2):
            yield b"x" * 1024

    response = client.post(
        "/realtime/emit",
        content=chunks(),
        headers={**bearer(EMIT_TOKEN), "Content-Type": "application/json"},
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert error_of(response) == (
        413,
        "body_too_large",
        f"request body is over {EMIT_BODY_LIMIT} bytes",
    )


def test_unknown_routes_and_methods_are_json_errors(client) -> None:
    assert error_of(client.get("/realtime/nope")) == (404, "not_found", "no such route")
    assert error_of(client.get("/realtime/auth")) == (
        405,
        "method_not_allowed",
        "method not allowed on this route",
    )


# --- service tokens -------------------------------------------------------------------------------


def emit_body() -> dict[str, object]:
    return {"channel": DM, "event": "note", "data": {"text": "hi"}}


def test_emit_without_token_is_401(client) -> None:
    assert error_of(client.post("/realtime/emit", json=emit_body())) == (
        401,
        "missing_token",
        "emit needs Authorization: Bearer <token>",
    )


def test_emit_with_a_wrong_token_or_a_user_jwt_is_401(client) -> None:
    for wrong in (EMIT_TOKEN + "x", EMIT_TOKEN[:-1], token(), MONITOR_TOKEN):
        response = client.post("/realtime/emit", json=emit_body(), headers=bearer(wrong))
        assert error_of(response) == (401, "invalid_token", "the emit token is wrong")


def test_monitor_without_or_with_a_wrong_token_is_401(client) -> None:
    assert error_of(client.get("/realtime/channels")) == (
        401,
        "missing_token",
        "monitor needs Authorization: Bearer <token>",
    )
    assert error_of(client.get("/realtime/channels", headers=bearer(EMIT_TOKEN))) == (
        401,
        "invalid_token",
        "the monitor token is wrong",
    )


def test_monitor_and_emit_routes_are_absent_when_unconfigured(soketi) -> None:
    settings = gateway_settings(soketi, REALTIME_MONITOR_TOKEN="", REALTIME_EMIT_TOKEN="")
    with TestClient(create_app(settings)) as client:
        assert error_of(client.get("/realtime/channels", headers=bearer(MONITOR_TOKEN))) == (
            404,
            "not_found",
            "no such route",
        )
        assert (
            client.post("/realtime/emit", json=emit_body(), headers=bearer(EMIT_TOKEN)).status_code
            == 404
        )


def test_token_comparisons_are_constant_time(monkeypatch, client) -> None:
    """The service tokens go through hmac.compare_digest (spied on, not timed)."""
    import rtctl.gateway.app as gateway_app

    calls = []
    real = gateway_app.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(gateway_app.hmac, "compare_digest", spy)
    client.post("/realtime/emit", json=emit_body(), headers=bearer("guess"))
    assert calls == [(b"guess", EMIT_TOKEN.encode())]


# --- CORS -----------------------------------------------------------------------------------------


def test_cors_allows_only_listed_origins(soketi) -> None:
    settings = gateway_settings(soketi, REALTIME_CORS_ORIGINS="https://app.example.com")
    with TestClient(create_app(settings)) as client:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        }
        ok = client.options(
            "/realtime/auth", headers={"Origin": "https://app.example.com", **preflight}
        )
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "access-control-allow-credentials" not in ok.headers
        evil = client.options(
            "/realtime/auth", headers={"Origin": "https://evil.example", **preflight}
        )
        assert evil.status_code == 400
        assert "access-control-allow-origin" not in evil.headers
        refused = auth(client, OTHER_DM, Origin="https://app.example.com")
        assert refused.status_code == 403


def test_cors_refuses_a_wildcard_or_a_path(soketi) -> None:
    with pytest.raises(ConfigError) as wildcard:
        create_app(gateway_settings(soketi, REALTIME_CORS_ORIGINS="*"))
    assert wildcard.value.message == (
        "REALTIME_CORS_ORIGINS contains '*': the gateway needs an explicit allow-list"
    )
    with pytest.raises(ConfigError) as path:
        create_app(gateway_settings(soketi, REALTIME_CORS_ORIGINS="https://app.example.com/"))
    assert path.value.message == (
        "REALTIME_CORS_ORIGINS entry 'https://app.example.com/' is not an origin "
        "(scheme://host[:port])"
    )


# --- configuration refusals -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"REALTIME_JWT_SECRET": ""},
            "the gateway has no way to verify users: no JWT secret or public key configured",
        ),
        (
            {"REALTIME_JWT_SECRET": "short"},
            "REALTIME_JWT_SECRET is 5 bytes; HS256 needs at least 32",
        ),
        (
            {"REALTIME_JWT_ALGORITHMS": "HS256,none"},
            "REALTIME_JWT_ALGORITHMS lists 'none': unsigned tokens are never accepted",
        ),
        (
            {"REALTIME_JWT_ALGORITHMS": "RS256"},
            "REALTIME_JWT_ALGORITHMS lists RS256, which no configured key can verify",
        ),
        (
            {"REALTIME_JWT_PUBLIC_KEY": "/nope/key.pem"},
            "REALTIME_JWT_PUBLIC_KEY is neither PEM text nor an existing file: /nope/key.pem",
        ),
        (
            {"REALTIME_AUTH_HOOK": "no_such_module_xyz:rule"},
            "REALTIME_AUTH_HOOK module 'no_such_module_xyz' cannot be imported: No module named 'no_such_module_xyz'",
        ),
        ({"REALTIME_AUTH_HOOK": "json"}, "REALTIME_AUTH_HOOK='json' is not module:function"),
    ],
)
def test_unsafe_or_broken_configuration_is_refused_at_start(soketi, changes, message) -> None:
    with pytest.raises(ConfigError) as error:
        create_app(gateway_settings(soketi, **changes))
    assert error.value.message == message


# --- custom rules ---------------------------------------------------------------------------------


HOOK = """
def rule(identity, channel, allowed):
    if channel == "private-support":
        return identity.user_id == "123"
    if channel.startswith("presence-staff"):
        return identity.user_info.get("name") == "Staff"
    if channel == "private-broken":
        raise RuntimeError("boom")
    return None

async def async_rule(identity, channel, allowed):
    return allowed and identity.user_id != "9000000"
"""


def test_custom_hook_widens_narrows_and_fails_closed(soketi, tmp_path, monkeypatch, caplog) -> None:
    (tmp_path / "my_rules.py").write_text(HOOK)
    monkeypatch.syspath_prepend(str(tmp_path))
    with TestClient(
        create_app(gateway_settings(soketi, REALTIME_AUTH_HOOK="my_rules:rule"))
    ) as client:
        assert auth(client, "private-support", token(USER)).status_code == 200
        assert error_of(auth(client, "private-support", token("124"))) == (
            403,
            "forbidden_channel",
            "refused by the custom rule: private-support",
        )
        assert error_of(auth(client, "presence-staff-room", token(USER, name="Ada")))[:2] == (
            403,
            "forbidden_channel",
        )
        assert auth(client, "presence-staff-room", token(USER, name="Staff")).status_code == 200
        assert auth(client, DM, token(USER)).status_code == 200  # None keeps the built-in rule
        assert error_of(auth(client, OTHER_DM, token(USER)))[:2] == (403, "forbidden_channel")
        with caplog.at_level(logging.ERROR, logger="rtctl.gateway"):
            assert error_of(auth(client, "private-broken", token(USER))) == (
                500,
                "auth_hook_failed",
                "the custom authorization rule failed",
            )
        assert "RuntimeError: boom" in caplog.text
    app = create_app(gateway_settings(soketi, REALTIME_AUTH_HOOK="my_rules:async_rule"))
    with TestClient(app) as client:
        assert auth(client, DM, token(USER)).status_code == 200
        assert error_of(auth(client, DM, token(BOT)))[:2] == (403, "forbidden_channel")


# --- dev mode -------------------------------------------------------------------------------------


def test_dev_user_header_is_ignored_from_non_loopback_clients(soketi, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="rtctl.gateway"):
        app = create_app(gateway_settings(soketi), dev_user_header=True)
    assert "DEV MODE: trusting the X-Realtime-User-Id header" in caplog.text
    with TestClient(app) as client:  # TestClient's client host is "testclient", not loopback
        response = client.post(
            "/realtime/auth",
            data={"socket_id": SOCKET, "channel_name": DM},
            headers={"X-Realtime-User-Id": USER},
        )
        assert error_of(response) == (
            401,
            "missing_token",
            "X-Realtime-User-Id is trusted only from loopback; send Authorization: Bearer",
        )
    with TestClient(app, client=("127.0.0.1", 50000)) as local:
        form = {"socket_id": SOCKET, "channel_name": DM}
        for host in ("127.0.0.1:8080", "localhost", "[::1]:8080"):
            response = local.post(
                "/realtime/auth", data=form, headers={"X-Realtime-User-Id": USER, "Host": host}
            )
            assert response.status_code == 200, host
        # A loopback peer with a foreign Host header: a browser under DNS rebinding.
        rebound = local.post(
            "/realtime/auth",
            data=form,
            headers={"X-Realtime-User-Id": USER, "Host": "evil.example:8080"},
        )
        assert error_of(rebound)[:2] == (401, "missing_token")


def test_dev_user_header_is_not_trusted_without_dev_mode(soketi) -> None:
    with TestClient(create_app(gateway_settings(soketi)), client=("127.0.0.1", 50000)) as client:
        response = client.post(
            "/realtime/auth",
            data={"socket_id": SOCKET, "channel_name": DM},
            headers={"X-Realtime-User-Id": USER},
        )
        assert error_of(response)[:2] == (401, "missing_token")


# --- logs -----------------------------------------------------------------------------------------


def test_access_log_is_structured_and_never_holds_tokens(client, caplog) -> None:
    user_token = token(USER)
    with caplog.at_level(logging.INFO, logger="rtctl.gateway.access"):
        auth(client, DM, user_token)
        client.post("/realtime/emit?token=" + EMIT_TOKEN, json=emit_body(), headers=bearer("bad"))
        client.get("/realtime/channels", headers=bearer(MONITOR_TOKEN + "x"))
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "rtctl.gateway.access"]
    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("POST", "/realtime/auth", 200),
        ("POST", "/realtime/emit", 401),
        ("GET", "/realtime/channels", 401),
    ]
    assert lines[0]["user"] == USER
    assert lines[1]["code"] == "invalid_token"
    for secret in (user_token, EMIT_TOKEN, MONITOR_TOKEN, JWT_SECRET, user_token.split(".")[2]):
        assert secret not in caplog.text


# --- mounting -------------------------------------------------------------------------------------


def test_mounts_inside_a_users_starlette_app(soketi, caplog) -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    async def home(request):
        return PlainTextResponse("the user's own app")

    gateway = create_app(gateway_settings(soketi), prefix="")
    parent = Starlette(routes=[Route("/", home), Mount("/realtime", app=gateway)])
    with TestClient(parent) as client, caplog.at_level(logging.INFO, "rtctl.gateway.access"):
        assert client.get("/").text == "the user's own app"
        assert auth(client, DM).status_code == 200
        assert error_of(auth(client, OTHER_DM))[:2] == (403, "forbidden_channel")
    paths = [
        json.loads(r.getMessage())["path"] for r in caplog.records if r.name.endswith("access")
    ]
    assert paths == ["/realtime/auth", "/realtime/auth"]


# --- timeouts -------------------------------------------------------------------------------------


SLOW_HOOK = """
import asyncio

async def slow(identity, channel, allowed):
    await asyncio.sleep(5)
    return True
"""


def test_a_request_over_the_time_limit_is_a_504(soketi, tmp_path, monkeypatch) -> None:
    import rtctl.gateway.app as gateway_app

    (tmp_path / "slow_rules.py").write_text(SLOW_HOOK)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(gateway_app, "REQUEST_TIMEOUT", 0.2)
    app = create_app(gateway_settings(soketi, REALTIME_AUTH_HOOK="slow_rules:slow"))
    with TestClient(app) as client:
        assert error_of(auth(client, DM)) == (504, "timeout", "the request took too long")


def test_audience_and_issuer_come_from_the_environment_contract(soketi) -> None:
    """REALTIME_JWT_AUDIENCE / REALTIME_JWT_ISSUER make the checks a deployment setting."""
    settings = gateway_settings(
        soketi, REALTIME_JWT_AUDIENCE="chat", REALTIME_JWT_ISSUER="https://idp.example"
    )
    with TestClient(create_app(settings)) as client:
        assert (
            auth(client, DM, token(USER, aud="chat", iss="https://idp.example")).status_code == 200
        )
        assert error_of(auth(client, DM, token(USER, aud="chat", iss="https://evil.example"))) == (
            401,
            "invalid_token",
            "bearer token refused: Invalid issuer",
        )
