"""rtctl.protocol.webhooks: signing against the reference vector and the `pusher` SDK's own webhook
validation, every refusal of verify, every explanation, and the sample shapes of trigger."""

from __future__ import annotations

import json
import time

import pusher
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtctl.errors import InvalidInput
from rtctl.protocol.webhooks import (
    EVENT_TYPES,
    WebhookRejected,
    build_body,
    explain,
    retimed,
    sample_event,
    sign,
    signed_headers,
    verify,
)

KEY, SECRET = "app-key-1", "app-secret-1"
# protocol reference §9, V12 (pusher-http-node tests/integration/webhook.js)
V12_KEY, V12_SECRET = "123456789", "tofu"
V12_BODY = (
    b'{"time_ms":1403175510755,"events":[{"channel":"test_channel","name":"channel_vacated"}]}'
)
V12_SIGNATURE = "c17257e92037cd7de407ebc1ed174ceb7b2e518db127f44411b9ffc4f5b28cc5"


def now_ms() -> int:
    return int(time.time() * 1000)


def delivery(events: list[dict] | None = None, time_ms: int | None = None) -> tuple[bytes, dict]:
    body = build_body(events or [{"name": "channel_occupied", "channel": "room"}], time_ms)
    return body, signed_headers(KEY, SECRET, body)


def sdk(key: str = KEY, secret: str = SECRET) -> pusher.Pusher:
    return pusher.Pusher(app_id="1", key=key, secret=secret)


# --- the reference vector and the SDK ------------------------------------------------------------


def test_v12_vector() -> None:
    assert sign(V12_SECRET, V12_BODY) == V12_SIGNATURE
    headers = {"Content-Type": "application/json", "X-Pusher-Key": V12_KEY}
    headers["X-Pusher-Signature"] = V12_SIGNATURE
    verified = verify(V12_BODY, headers, V12_KEY, V12_SECRET, max_age=0)
    assert verified.time_ms == 1403175510755
    assert verified.events == ({"channel": "test_channel", "name": "channel_vacated"},)


def test_v12_is_stale_for_the_sdk_and_for_us() -> None:
    """The SDK refuses a time_ms more than 300 s away; so do we, by default, naming why."""
    assert sdk(V12_KEY, V12_SECRET).validate_webhook(V12_KEY, V12_SIGNATURE, V12_BODY) is None
    headers = {"Content-Type": "application/json", "X-Pusher-Key": V12_KEY}
    headers["X-Pusher-Signature"] = V12_SIGNATURE
    with pytest.raises(WebhookRejected) as refused:
        verify(V12_BODY, headers, V12_KEY, V12_SECRET)
    assert (refused.value.status, refused.value.code) == (401, "stale")
    assert refused.value.message.endswith("days old; deliveries more than 300 s away are refused")


events_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(EVENT_TYPES),
            "channel": st.from_regex(r"[-a-zA-Z0-9_=@,.;]{1,40}", fullmatch=True),
        },
        optional={
            "user_id": st.text(min_size=1, max_size=20),
            "data": st.one_of(
                st.text(max_size=50), st.dictionaries(st.text(max_size=5), st.integers())
            ),
        },
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(events=events_strategy, secret=st.text(min_size=1, max_size=40))
def test_the_sdk_accepts_what_we_sign_and_both_refuse_a_change(events, secret) -> None:
    body = build_body(events)
    signature = sign(secret, body)
    assert signature == pusher.signature.sign(secret, body.decode("utf-8"))
    headers = {
        "Content-Type": "application/json",
        "X-Pusher-Key": KEY,
        "X-Pusher-Signature": signature,
    }
    client = sdk(KEY, secret)
    assert client.validate_webhook(KEY, signature, body) == json.loads(body)
    assert verify(body, headers, KEY, secret).events == tuple(events)
    changed = body.replace(b'"events"', b'"events" ', 1)  # same JSON, other bytes
    assert client.validate_webhook(KEY, signature, changed) is None
    with pytest.raises(WebhookRejected) as refused:
        verify(changed, headers, KEY, secret)
    assert refused.value.code == "bad_signature"


def test_the_sdk_and_we_refuse_another_key() -> None:
    body, headers = delivery()
    headers["X-Pusher-Key"] = "someone-else"
    assert sdk().validate_webhook("someone-else", headers["X-Pusher-Signature"], body) is None
    with pytest.raises(WebhookRejected) as refused:
        verify(body, headers, KEY, SECRET)
    assert (refused.value.status, refused.value.code) == (401, "unknown_key")
    assert refused.value.message == "X-Pusher-Key 'someone-else' is not this app's key"


# --- every refusal --------------------------------------------------------------------------------


def refusal(body: bytes, headers: dict, **options) -> tuple[int, str, str]:
    with pytest.raises(WebhookRejected) as refused:
        verify(body, headers, KEY, SECRET, **options)
    return refused.value.status, refused.value.code, refused.value.message


def test_every_refusal_has_its_status() -> None:
    body, headers = delivery()
    assert refusal(body, {**headers, "Content-Type": "text/plain"}) == (
        415,
        "unsupported_content_type",
        "Content-Type is 'text/plain', not application/json",
    )
    no_type = {k: v for k, v in headers.items() if k != "Content-Type"}
    assert refusal(body, no_type)[:2] == (415, "unsupported_content_type")
    assert refusal(body, {"Content-Type": "application/json"}) == (
        401,
        "unsigned",
        "no X-Pusher-Key and no X-Pusher-Signature header",
    )
    no_signature = {k: v for k, v in headers.items() if k != "X-Pusher-Signature"}
    assert refusal(body, no_signature) == (401, "unsigned", "no X-Pusher-Signature header")
    assert refusal(body, {**headers, "X-Pusher-Signature": "0" * 64})[:2] == (401, "bad_signature")
    for text, reason in (
        (b"not json", "the body is not JSON"),
        (b"[1, 2]", "the body is not a JSON object"),
        (b'{"events": []}', "time_ms is missing or not an integer"),
        (b'{"time_ms": true, "events": [{"name": "x"}]}', "time_ms is missing or not an integer"),
        (b'{"time_ms": 1, "events": []}', "events is missing or not a non-empty list"),
        (b'{"time_ms": 1, "events": [{"channel": "x"}]}', "every event needs a string name"),
        (b"\xff\xfe", "the body is not JSON"),
        # JSON.parse (Pusher, Soketi, a Node receiver) refuses these too
        (b'{"time_ms": NaN, "events": [{"name": "x"}]}', "the body is not JSON"),
        (b"[" * 5000 + b"]" * 5000, "the body is not JSON"),
    ):
        signed = signed_headers(KEY, SECRET, text)
        assert refusal(text, signed, max_age=0) == (400, "invalid_body", reason)


def test_time_window() -> None:
    old_body, old_headers = delivery(time_ms=now_ms() - 301_000)
    assert refusal(old_body, old_headers) == (
        401,
        "stale",
        "time_ms is 301 s old; deliveries more than 300 s away are refused",
    )
    future_body, future_headers = delivery(time_ms=now_ms() + 3_600_000)
    assert refusal(future_body, future_headers)[2].startswith("time_ms is 60 min in the future")
    assert verify(old_body, old_headers, KEY, SECRET, max_age=0).time_ms < now_ms()
    assert verify(old_body, old_headers, KEY, SECRET, max_age=400).time_ms < now_ms()


def test_headers_are_case_insensitive_and_charset_is_fine() -> None:
    body, headers = delivery()
    lowered = {k.lower(): v for k, v in headers.items()}
    lowered["content-type"] = "application/json; charset=utf-8"
    assert verify(body, lowered, KEY, SECRET).events[0]["name"] == "channel_occupied"


# --- why it does not verify ----------------------------------------------------------------------


def codes(findings) -> list[str]:
    return [finding.code for finding in findings]


def test_a_good_delivery_has_no_findings() -> None:
    body, headers = delivery()
    assert explain(body, headers, KEY, SECRET) == []


def test_other_key_and_other_secret_are_named() -> None:
    body = build_body([{"name": "channel_vacated", "channel": "room"}])
    headers = signed_headers("pusher-key", "pusher-secret", body)
    findings = explain(
        body,
        headers,
        KEY,
        SECRET,
        other_credentials={
            "the pusher settings kept by `rtctl switch`": ("pusher-key", "pusher-secret")
        },
    )
    assert codes(findings) == ["unknown_key", "other_secret"]
    assert findings[0].message == (
        "signed for app key 'pusher-key', but this app's key is 'app-key-1': it is the key of the "
        "pusher settings kept by `rtctl switch`"
    )
    assert findings[1].message == (
        "signed with the secret of the pusher settings kept by `rtctl switch`, not this app's secret"
    )
    unknown = explain(body, {**headers, "X-Pusher-Key": KEY}, KEY, SECRET)
    assert codes(unknown) == ["bad_signature"]
    assert unknown[0].message.startswith("the signature does not match: the body was signed with")


@pytest.mark.parametrize(
    ("rewrite", "says"),
    [
        (
            lambda data: json.dumps(data).encode(),
            "the body was re-serialized (spaces after , and :, non-ASCII characters escaped as "
            "\\uXXXX): the signature matches the bytes the sender posted, not these",
        ),
        (
            lambda data: json.dumps(data, indent=2).encode(),
            "the body was re-serialized (pretty-printed",
        ),
        (
            lambda data: json.dumps(data, separators=(",", ":")).encode(),
            "the body was re-serialized (non-ASCII characters escaped as \\uXXXX)",
        ),
        (
            lambda data: (
                json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
            ),
            "a trailing newline or spaces were added to the body",
        ),
        (
            lambda data: json.dumps(
                data, sort_keys=True, separators=(",", ":"), ensure_ascii=False
            ).encode(),
            "the body was re-serialized with its keys reordered",
        ),
    ],
)
def test_a_rewritten_body_is_recognised(rewrite, says) -> None:
    """Soketi signs JSON.stringify's bytes: a body that was parsed and written again still
    carries the old signature, and explain finds the form that was signed."""
    events = [
        {"name": "client_event", "channel": "presence-r", "event": "client-x", "data": {"t": "Grüße"},
         "socket_id": "1.2", "user_id": "42"},
    ]  # fmt: skip
    body, headers = delivery(events)
    rewritten = rewrite(json.loads(body))
    assert rewritten != body
    findings = explain(rewritten, headers, KEY, SECRET)
    assert codes(findings) == ["body_changed"]
    assert findings[0].message.startswith(says)
    assert findings[0].hint == "verify the raw request body, before any JSON parsing or re-encoding"


def test_signature_format_problems() -> None:
    body, headers = delivery()
    upper = {**headers, "X-Pusher-Signature": headers["X-Pusher-Signature"].upper()}
    assert codes(explain(body, upper, KEY, SECRET)) == ["signature_case"]
    short = {**headers, "X-Pusher-Signature": "abc"}
    assert codes(explain(body, short, KEY, SECRET)) == ["signature_format"]


def test_stale_unsigned_and_not_json_together() -> None:
    body, _ = delivery(time_ms=now_ms() - 7_200_000)
    findings = explain(body, {"Content-Type": "text/plain"}, KEY, SECRET)
    assert codes(findings) == ["unsupported_content_type", "unsigned", "stale"]
    assert findings[2].message.startswith("time_ms is 2.0 h old: receivers refuse deliveries")
    assert findings[2].hint == "`rtctl webhooks replay` re-sends it with a fresh time_ms, re-signed"
    assert codes(explain(b"nope", signed_headers(KEY, SECRET, b"nope"), KEY, SECRET)) == [
        "invalid_body"
    ]


# --- sample deliveries (trigger) and replays -----------------------------------------------------


def test_sample_shapes() -> None:
    assert sample_event("channel_occupied", "room") == {
        "name": "channel_occupied",
        "channel": "room",
    }
    assert sample_event("member_added", "presence-r", user_id="7") == {
        "name": "member_added",
        "channel": "presence-r",
        "user_id": "7",
    }
    pusher_shape = sample_event("client_event", "presence-r", data='{"a":1}', user_id="7")
    assert pusher_shape == {
        "name": "client_event",
        "channel": "presence-r",
        "event": "client-event",
        "data": '{"a":1}',
        "socket_id": "123.456",
        "user_id": "7",
    }
    soketi_shape = sample_event("client_event", "private-r", data='{"a":1}', flavour="soketi")
    assert soketi_shape["data"] == {"a": 1} and "user_id" not in soketi_shape
    assert sample_event("cache_miss", "private-cache-r") == {
        "name": "cache_miss",
        "channel": "private-cache-r",
    }
    assert (
        sample_event("subscription_count", "room", subscription_count=3)["subscription_count"] == 3
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("member_added", "room"), "member_added is only sent for presence channels, not 'room'"),
        (
            ("client_event", "room"),
            "client events only exist on private and presence channels, not 'room'",
        ),
        (("cache_miss", "room"), "cache_miss is only sent for cache channels, not 'room'"),
        (("channel_moved", "room"), "'channel_moved' is not a webhook event type"),
        (
            ("channel_occupied", "bad channel"),
            "channel name 'bad channel' contains characters Pusher refuses: ' '",
        ),
        (
            ("subscription_count", "presence-r"),
            "subscription_count is not sent for presence channels",
        ),
    ],
)
def test_impossible_samples_are_refused(args, message) -> None:
    with pytest.raises(InvalidInput) as refused:
        sample_event(*args)
    assert refused.value.message == message


def test_soketi_never_sends_subscription_count() -> None:
    with pytest.raises(InvalidInput) as refused:
        sample_event("subscription_count", "room", flavour="soketi")
    assert refused.value.message == "Soketi 1.6.1 never sends subscription_count webhooks"


def test_soketi_client_event_data_that_is_not_strict_json_stays_a_string() -> None:
    # Soketi passes on an object only when the client sent JSON; NaN or nesting too deep for a
    # parser is text, sent as a string (and never an internal error).
    for data in ('{"a":NaN}', "[" * 5000 + "]" * 5000):
        event = sample_event("client_event", "private-r", data=data, flavour="soketi")
        assert event["data"] == data


def test_retimed_keeps_the_events_and_takes_a_fresh_time() -> None:
    body, _ = delivery([{"name": "member_removed", "channel": "presence-r", "user_id": "9"}], 1000)
    fresh = retimed(body, 5000)
    assert json.loads(fresh) == {"time_ms": 5000, "events": [json.loads(body)["events"][0]]}
    with pytest.raises(InvalidInput):
        retimed(b"[]")
    for not_json in (b"[" * 5000 + b"]" * 5000, b'{"time_ms": 1, "events": [], "x": NaN}'):
        with pytest.raises(InvalidInput) as refused:
            retimed(not_json)
        assert refused.value.message == "the recorded body is not JSON"
