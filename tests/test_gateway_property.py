"""Property-based: arbitrary bodies and headers at every route (in process, real Soketi behind).

Two properties, for every request hypothesis can think of:
- the gateway never answers 500, and every refusal is a JSON error with a code and a message;
- it never issues a channel signature the caller's identity may not have (checked against an
  independent statement of the rules), and never signs in anyone but the token's subject.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from rtctl.gateway import create_app
from tests.gateway_support import (
    BOT,
    EMIT_TOKEN,
    MONITOR_TOKEN,
    OTHER,
    USER,
    gateway_settings,
    token,
)

HYPOTHESIS = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NAME_RE = re.compile(r"[-a-zA-Z0-9_=@,.;]{1,164}")


def may_join(user: str, channel: str) -> bool:
    """The rules, stated independently of rtctl.gateway.rules."""
    if not NAME_RE.fullmatch(channel):
        return False
    if channel.startswith("presence-"):
        return True
    if channel.startswith(("private-cache-", "private-encrypted-cache-")):
        return False
    pair = re.fullmatch(r"private-(?:encrypted-)?([^_]+)_([^_]+)", channel)
    return pair is not None and user in pair.groups()


# Identities: (Authorization header value, the user it proves or None).
def identities() -> st.SearchStrategy[tuple[str | None, str | None]]:
    valid = [(f"Bearer {token(user)}", user) for user in (USER, OTHER, BOT, "u-1")]
    invalid: list[tuple[str | None, str | None]] = [
        (None, None),
        (f"Bearer {token(USER, expires_in=-600)}", None),
        (f"Bearer {token(USER, key='k' * 64)}", None),
        (f"Bearer {token(USER, expires_in=None)}", None),
        (f"Bearer {EMIT_TOKEN}", None),
        (f"Bearer {MONITOR_TOKEN}", None),
        ("Bearer ", None),
    ]
    printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)
    return st.one_of(
        st.sampled_from(valid),
        st.sampled_from(valid),
        st.sampled_from(invalid),
        printable.map(lambda text: (text, None)),
    )


CHANNEL_SAMPLES = st.sampled_from(
    [
        f"private-{USER}_{BOT}",
        f"private-{OTHER}_{BOT}",
        f"private-encrypted-{USER}_{BOT}",
        f"private-encrypted-cache-{USER}_{BOT}",
        f"private-cache-{USER}_{BOT}",
        f"private-{USER}_{USER}_{BOT}",
        f"private-{BOT}_u-1",
        "presence-lobby",
        "presence-",
        "private-",
        "lobby",
        "#server-to-user-123",
        f"private-{USER}_{BOT}\n",
        "presence-lobby\n",
    ]
)
channels = st.one_of(
    CHANNEL_SAMPLES,
    CHANNEL_SAMPLES,
    CHANNEL_SAMPLES,
    st.from_regex(
        r"(private-|presence-|private-encrypted-|cache-)?[-a-zA-Z0-9_=@,.;]{0,12}", fullmatch=True
    ),
    st.text(max_size=40),
)
VALID_SOCKET_IDS = st.from_regex(r"[0-9]{1,10}\.[0-9]{1,10}", fullmatch=True)
socket_ids = st.one_of(VALID_SOCKET_IDS, VALID_SOCKET_IDS, VALID_SOCKET_IDS, st.text(max_size=20))
content_types = st.one_of(
    st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=UTF-8",
            "application/json",
            "text/plain",
            "multipart/form-data; boundary=x",
            "",
        ]
    ),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


FORM = "application/x-www-form-urlencoded"


@st.composite
def payloads(draw: Any) -> tuple[str, bytes]:
    """(Content-Type, body): mostly what pusher-js or a backend would send, sometimes garbage."""
    fields: dict[str, Any] = {}
    for name, values in (
        ("socket_id", socket_ids),
        ("channel_name", channels),
        ("channel_data", st.just('{"user_id":"1","user_info":{"admin":true}}')),
        ("channel", channels),
        ("channels", st.lists(channels, max_size=3)),
        ("event", st.sampled_from(["e", "chat_message", "pusher:x", ""])),
        ("data", json_values),
    ):
        required = name in ("socket_id", "channel_name")
        if draw(st.integers(0, 9)) < (8 if required else 4):
            fields[name] = draw(values)
    shape = draw(st.sampled_from(["form", "form", "json", "json", "bytes"]))
    if shape == "form":
        body = urlencode(
            {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        ).encode()
        matching = st.sampled_from([FORM, FORM + "; charset=UTF-8"])
    elif shape == "json":
        body = json.dumps(fields).encode()
        matching = st.sampled_from(["application/json", "application/json; charset=utf-8"])
    else:
        body = draw(st.binary(max_size=5000))
        matching = st.sampled_from([FORM, "application/json"])
    content_type = draw(st.one_of(matching, matching, matching, content_types))
    return content_type, body


USER_ROUTES = [("POST", "/realtime/auth"), ("POST", "/realtime/user-auth")]
SERVICE_ROUTES = [
    ("POST", "/realtime/emit"),
    ("GET", "/realtime/channels"),
    ("GET", "/realtime/health"),
    ("GET", "/realtime/ready"),
    ("PUT", "/realtime/auth"),
    ("GET", "/realtime/nope"),
]


@pytest.fixture(scope="module")
def gateway(soketi):
    settings_ = gateway_settings(soketi)
    # thousands of wrong tokens from one client: the failure limit (tested on its own) is off here
    with TestClient(create_app(settings_, auth_failure_limit=0)) as client:
        yield client, settings_


def sent_fields(body: bytes, content_type: str) -> dict[str, Any]:
    """What the gateway could have read from the body (for checking a 200)."""
    text = body.decode("utf-8", "replace")
    if content_type.split(";")[0].strip().lower() == "application/json":
        value = json.loads(text)
        return value if isinstance(value, dict) else {}
    return dict(parse_qsl(text, keep_blank_values=True))


def check(gateway, route, identity, payload, dev_user, query) -> None:
    client, settings_ = gateway
    method, path = route
    authorization, user = identity
    content_type, body = payload
    headers = {"Content-Type": content_type}
    if authorization is not None:
        headers["Authorization"] = authorization
    if dev_user is not None:
        headers["X-Realtime-User-Id"] = dev_user  # never trusted: dev mode is off
    url = path if query is None else f"{path}?prefix={query}"
    response = client.request(method, url, content=body, headers=headers)

    event(f"{method} {path} -> {response.status_code}")  # --hypothesis-show-statistics
    assert response.status_code != 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["code"], str) and error["code"]
        assert isinstance(error["message"], str) and error["message"]
        return
    if path == "/realtime/auth":
        assert user is not None
        fields = sent_fields(body, content_type)
        channel, socket_id = fields["channel_name"], fields["socket_id"]
        assert may_join(user, channel), (user, channel)
        answer = response.json()
        string = f"{socket_id}:{channel}"
        if channel.startswith("presence-"):
            assert json.loads(answer["channel_data"]) == {"user_id": user}
            string += f":{answer['channel_data']}"
        signature = hmac.new(settings_.secret.encode(), string.encode(), hashlib.sha256).hexdigest()
        assert answer["auth"] == f"{settings_.key}:{signature}"
    elif path == "/realtime/user-auth":
        assert user is not None
        assert json.loads(response.json()["user_data"]) == {"id": user}
    elif path == "/realtime/emit":
        assert authorization == f"Bearer {EMIT_TOKEN}"
    elif path == "/realtime/channels":
        assert authorization == f"Bearer {MONITOR_TOKEN}"


queries = st.one_of(
    st.none(), st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=20)
)
dev_users = st.one_of(st.none(), st.sampled_from([USER, BOT, "x y"]))


@settings(HYPOTHESIS, max_examples=800)
@given(
    route=st.sampled_from(USER_ROUTES),
    identity=identities(),
    payload=payloads(),
    dev_user=dev_users,
    query=queries,
)
def test_user_routes_never_500_and_never_sign_beyond_the_rules(
    gateway, route, identity, payload, dev_user, query
) -> None:
    check(gateway, route, identity, payload, dev_user, query)


SERVICE_TOKENS = {
    "/realtime/emit": f"Bearer {EMIT_TOKEN}",
    "/realtime/channels": f"Bearer {MONITOR_TOKEN}",
}


@HYPOTHESIS
@given(data=st.data(), payload=payloads(), dev_user=dev_users, query=queries)
def test_service_routes_never_500_and_need_their_token(
    gateway, data, payload, dev_user, query
) -> None:
    route = data.draw(st.sampled_from(SERVICE_ROUTES))
    right = SERVICE_TOKENS.get(route[1], f"Bearer {EMIT_TOKEN}")
    identity = data.draw(st.one_of(st.just((right, None)), identities()))
    check(gateway, route, identity, payload, dev_user, query)


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    user=st.sampled_from([USER, OTHER, BOT, "u-1", "a_b"]),
    channel=channels,
    socket_id=VALID_SOCKET_IDS,
    as_json=st.booleans(),
)
def test_well_formed_auth_requests_are_decided_exactly_by_the_rules(
    gateway, user, channel, socket_id, as_json
) -> None:
    """For a valid user and socket, the answer is 200 exactly when the rules allow the channel."""
    client, _ = gateway
    fields = {"socket_id": socket_id, "channel_name": channel}
    headers = {"Authorization": f"Bearer {token(user)}"}
    if as_json:
        response = client.post("/realtime/auth", json=fields, headers=headers)
    else:
        response = client.post("/realtime/auth", data=fields, headers=headers)
    valid_name = NAME_RE.fullmatch(channel) is not None
    expected = 200 if may_join(user, channel) else (403 if valid_name else 400)
    event(f"auth -> {response.status_code}")
    assert response.status_code == expected, (user, channel, response.text)
