"""Webhooks of the Pusher protocol: signing, verification, and why a delivery does not verify.

Pure: bytes and mappings in, values or ``WebhookRejected`` out. No server, no network, no CLI, so
the receiver of `rtctl webhooks listen`, the gateway's ``POST /realtime/webhooks``, `rtctl webhooks
verify` and a user's own code all decide exactly alike.

A delivery (protocol §6) is an HTTP POST with ``Content-Type: application/json`` and the body
``{"time_ms": <ms>, "events": [{"name": ..., "channel": ..., ...}, ...]}``, signed in two headers:
``X-Pusher-Key`` (the app key) and ``X-Pusher-Signature`` = hex HMAC-SHA256 of the **raw** body
with the app secret. The order of the checks follows the validation recipe: the signature is
compared (in constant time) over the raw bytes before the body is parsed, and a ``time_ms`` more
than ``max_age`` seconds away from now is refused (the Python SDK's 300 s).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rtctl.errors import InvalidInput
from rtctl.protocol import strictjson
from rtctl.protocol.signing import channel_kind, is_cache_channel
from rtctl.protocol.validation import validate_channel

# Every event type Pusher documents, in its documentation's order; Soketi 1.6.1 sends all but the
# last one.
EVENT_TYPES = (
    "channel_occupied",
    "channel_vacated",
    "member_added",
    "member_removed",
    "client_event",
    "cache_miss",
    "subscription_count",
)
SOKETI_EVENT_TYPES = EVENT_TYPES[:-1]
DEFAULT_MAX_AGE = 300.0  # seconds either side of now (the pusher Python SDK's window)
KEY_HEADER = "X-Pusher-Key"
SIGNATURE_HEADER = "X-Pusher-Signature"
JSON_TYPE = "application/json"
SOKETI_USER_AGENT = "SoketiWebhooksAxiosClient/1.0"
_HEX64 = re.compile(r"[0-9a-f]{64}")

Flavour = Literal["pusher", "soketi"]


class WebhookRejected(Exception):
    """A delivery that must not be trusted: the HTTP status to answer, a stable code, a reason."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: what was signed, and the events it carries."""

    time_ms: int
    events: tuple[dict[str, Any], ...]
    key: str
    signature: str
    body: bytes

    def age_ms(self, now_ms: float | None = None) -> float:
        """How long ago the sender created it (negative: its clock is ahead of ours)."""
        return (time.time() * 1000 if now_ms is None else now_ms) - self.time_ms


# --- signing -------------------------------------------------------------------------------------


def sign(secret: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of the raw body, as Pusher and Soketi send it."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(secret: str, body: bytes, signature: str) -> bool:
    """Constant-time comparison; any text is accepted (header values may hold anything)."""
    return hmac.compare_digest(
        sign(secret, body).encode(), signature.encode("utf-8", "surrogateescape")
    )


def compact(value: Any) -> bytes:
    """JSON as JavaScript's JSON.stringify writes it (what Soketi signs): no spaces, UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name (a mapping with lowercase keys is the fast case)."""
    wanted = name.lower()
    value = headers.get(wanted)
    if value is not None:
        return value
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def signed_headers(
    key: str, secret: str, body: bytes, flavour: Flavour = "pusher"
) -> dict[str, str]:
    """The headers a sender puts on ``body``; Soketi's variant also names itself."""
    headers = {"Content-Type": JSON_TYPE}
    if flavour == "soketi":
        headers.update(Accept=JSON_TYPE, **{"User-Agent": f"{SOKETI_USER_AGENT} (rtctl)"})
    headers[KEY_HEADER] = key
    headers[SIGNATURE_HEADER] = sign(secret, body)
    return headers


def forged_signature(body: bytes) -> str:
    """A well-formed signature that no app secret produces (for `trigger --bad-signature`)."""
    return sign("forged-" + secrets.token_hex(16), body)


# --- verification --------------------------------------------------------------------------------


def _now_ms(now_ms: float | None) -> float:
    return time.time() * 1000 if now_ms is None else now_ms


def parse_body(body: bytes) -> tuple[int, tuple[dict[str, Any], ...]]:
    """``(time_ms, events)`` of a webhook body, or WebhookRejected(400) saying what is wrong."""
    try:
        data = strictjson.loads(body)
    except ValueError:
        raise WebhookRejected(400, "invalid_body", "the body is not JSON") from None
    if not isinstance(data, dict):
        raise WebhookRejected(400, "invalid_body", "the body is not a JSON object")
    time_ms = data.get("time_ms")
    if not isinstance(time_ms, int) or isinstance(time_ms, bool):
        raise WebhookRejected(400, "invalid_body", "time_ms is missing or not an integer")
    events = data.get("events")
    if not isinstance(events, list) or not events:
        raise WebhookRejected(400, "invalid_body", "events is missing or not a non-empty list")
    for event in events:
        if not isinstance(event, dict) or not isinstance(event.get("name"), str):
            raise WebhookRejected(400, "invalid_body", "every event needs a string name")
    return time_ms, tuple(events)


def describe_age(age_ms: float) -> str:
    seconds = abs(age_ms) / 1000
    if seconds < 600:  # in seconds around the usual 300 s window
        amount = f"{seconds:.0f} s"
    elif seconds < 7200:
        amount = f"{seconds / 60:.0f} min"
    elif seconds < 172800:
        amount = f"{seconds / 3600:.1f} h"
    else:
        amount = f"{seconds / 86400:.0f} days"
    return f"{amount} old" if age_ms >= 0 else f"{amount} in the future"


def _content_type_problem(headers: Mapping[str, str]) -> str | None:
    """What is wrong with the Content-Type; None when it is JSON."""
    content_type = header(headers, "Content-Type")
    if media_type(content_type) == JSON_TYPE:
        return None
    shown = "missing" if content_type is None else repr(content_type[:60])
    return f"Content-Type is {shown}, not {JSON_TYPE}"


def _signature_headers(headers: Mapping[str, str]) -> tuple[str | None, str | None, list[str]]:
    """The key and signature headers, and the names of those missing or empty."""
    given_key = header(headers, KEY_HEADER)
    signature = header(headers, SIGNATURE_HEADER)
    missing = [n for n, v in ((KEY_HEADER, given_key), (SIGNATURE_HEADER, signature)) if not v]
    return given_key, signature, missing


def _key_matches(given_key: str, key: str) -> bool:
    return hmac.compare_digest(given_key.encode("utf-8", "surrogateescape"), key.encode())


def _age_outside_window(time_ms: int, max_age: float, now_ms: float | None) -> float | None:
    """How old ``time_ms`` is (ms, negative: in the future) when it is outside ``max_age``
    seconds; None inside the window, or when the window is off (0)."""
    age = _now_ms(now_ms) - time_ms
    return age if max_age and abs(age) > max_age * 1000 else None


def verify(
    body: bytes,
    headers: Mapping[str, str],
    key: str,
    secret: str,
    *,
    max_age: float = DEFAULT_MAX_AGE,
    now_ms: float | None = None,
    require_content_type: bool = True,
) -> Delivery:
    """The delivery, verified; else WebhookRejected with the status a receiver answers.

    415 not JSON by Content-Type, 401 unsigned / other key / bad signature / ``time_ms`` outside
    ``max_age`` seconds (0 turns the window off), 400 a signed body that is not a webhook.
    """
    if require_content_type and (problem := _content_type_problem(headers)):
        raise WebhookRejected(415, "unsupported_content_type", problem)
    given_key, signature, missing = _signature_headers(headers)
    if missing:
        raise WebhookRejected(401, "unsigned", f"no {' and no '.join(missing)} header")
    assert given_key is not None and signature is not None
    if not _key_matches(given_key, key):
        raise WebhookRejected(
            401, "unknown_key", f"{KEY_HEADER} {given_key[:40]!r} is not this app's key"
        )
    if not signature_matches(secret, body, signature):
        raise WebhookRejected(
            401,
            "bad_signature",
            f"{SIGNATURE_HEADER} does not match the body (HMAC-SHA256 with the app secret)",
        )
    time_ms, events = parse_body(body)
    age = _age_outside_window(time_ms, max_age, now_ms)
    if age is not None:
        raise WebhookRejected(
            401,
            "stale",
            f"time_ms is {describe_age(age)}; deliveries more than {max_age:g} s away are refused",
        )
    return Delivery(time_ms, events, given_key, signature, body)


# --- why a delivery does not verify --------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One reason a delivery does not verify, with what to do about it."""

    code: str
    message: str
    hint: str | None = None


def _reserializations(body: bytes) -> list[tuple[str, bytes]]:
    """Forms the sender may have signed, rebuilt from a body that was parsed and written again."""
    try:
        data = strictjson.loads(body)
    except ValueError:
        return []
    found: list[tuple[str, bytes]] = []
    what = []
    text = body.decode("utf-8")
    if "\n" in text.strip():
        what.append("pretty-printed")
    elif re.search(r"[,:] ", re.sub(r'"(?:\\.|[^"\\])*"', '""', text)):
        what.append("spaces after , and :")
    if re.search(r"\\u[0-9a-fA-F]{4}", text):
        what.append("non-ASCII characters escaped as \\uXXXX")
    how = ", ".join(what) or "written again by a JSON library"
    found.append((f"the body was re-serialized ({how})", compact(data)))
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        order = ("name", "channel", "event", "data", "socket_id", "user_id")
        events = [
            {k: e[k] for k in sorted(e, key=lambda k: (order.index(k) if k in order else 99, k))}
            if isinstance(e, dict)
            else e
            for e in data["events"]
        ]
        rest = {k: v for k, v in data.items() if k not in ("time_ms", "events")}
        rebuilt = {"time_ms": data.get("time_ms"), "events": events, **rest}
        found.append(("the body was re-serialized with its keys reordered", compact(rebuilt)))
    found.append(
        (
            "the body was re-serialized (non-ASCII characters escaped as \\uXXXX)",
            json.dumps(data, separators=(",", ":")).encode(),
        )
    )
    return found


def explain(
    body: bytes,
    headers: Mapping[str, str],
    key: str,
    secret: str,
    *,
    max_age: float = DEFAULT_MAX_AGE,
    now_ms: float | None = None,
    require_content_type: bool = True,
    other_credentials: Mapping[str, tuple[str, str]] | None = None,
) -> list[Finding]:
    """Every reason ``body`` + ``headers`` do not verify for this app (empty: it verifies).

    ``other_credentials`` maps a label to a ``(key, secret)`` pair the sender may have used
    instead (for example the provider settings `rtctl switch` keeps), so a mix-up is named.
    """
    others = dict(other_credentials or {})
    findings: list[Finding] = []
    if require_content_type and (problem := _content_type_problem(headers)):
        findings.append(
            Finding(
                "unsupported_content_type",
                problem,
                "Pusher and Soketi send application/json; a proxy may have rewritten it",
            )
        )
    given_key, signature, missing = _signature_headers(headers)
    if missing:
        findings.append(
            Finding(
                "unsigned",
                f"no {' and no '.join(missing)} header",
                "record the whole request, headers included (`rtctl webhooks listen --record`)",
            )
        )
    if given_key and not _key_matches(given_key, key):
        owner = next((label for label, (k, _) in others.items() if k == given_key), None)
        whose = f": it is the key of {owner}" if owner else ""
        findings.append(
            Finding(
                "unknown_key",
                f"signed for app key {given_key!r}, but this app's key is {key!r}{whose}",
                "the sender uses other credentials: compare PUSHER_APP_KEY with the server's "
                "(or the Pusher dashboard's) app key",
            )
        )
    if signature and not signature_matches(secret, body, signature):
        findings.append(_signature_finding(body, signature, secret, others))
    try:
        time_ms, _ = parse_body(body)
    except WebhookRejected as rejected:
        findings.append(
            Finding(
                rejected.code,
                rejected.message,
                'a webhook body is {"time_ms": ..., "events": [...]}',
            )
        )
    else:
        age = _age_outside_window(time_ms, max_age, now_ms)
        if age is not None:
            findings.append(
                Finding(
                    "stale",
                    f"time_ms is {describe_age(age)}: receivers refuse deliveries more than "
                    f"{max_age:g} s away (a replayed or long-delayed delivery, or a wrong clock)",
                    "`rtctl webhooks replay` re-sends it with a fresh time_ms, re-signed",
                )
            )
    return findings


def _signature_finding(
    body: bytes, signature: str, secret: str, others: Mapping[str, tuple[str, str]]
) -> Finding:
    stripped = signature.strip()
    if not _HEX64.fullmatch(stripped):
        if _HEX64.fullmatch(stripped.lower()) and signature_matches(secret, body, stripped.lower()):
            return Finding(
                "signature_case",
                "the signature is right but in upper case; senders write lowercase hex",
                "compare lowercase hex digests",
            )
        if stripped != signature and signature_matches(secret, body, stripped):
            return Finding(
                "signature_whitespace",
                "the signature is right but has spaces around it",
                "strip the header value",
            )
        return Finding(
            "signature_format",
            f"{SIGNATURE_HEADER} {signature[:20]!r}… is not a 64-character hex SHA-256 digest",
            "it must be hex(HMAC-SHA256(secret, raw body)), lowercase",
        )
    for description, candidate in _body_variants(body):
        if signature_matches(secret, candidate, signature):
            return Finding(
                "body_changed",
                f"{description}: the signature matches the bytes the sender posted, not these",
                "verify the raw request body, before any JSON parsing or re-encoding",
            )
    for label, (_, other_secret) in others.items():
        for description, candidate in [("", body), *_body_variants(body)]:
            if signature_matches(other_secret, candidate, signature):
                also = f" (and {description})" if description else ""
                return Finding(
                    "other_secret",
                    f"signed with the secret of {label}, not this app's secret{also}",
                    "the sender and the receiver use different credentials",
                )
    return Finding(
        "bad_signature",
        "the signature does not match: the body was signed with another secret, or changed "
        "after it was signed",
        "compare PUSHER_APP_SECRET with the sender's secret; verify the raw body",
    )


def _body_variants(body: bytes) -> list[tuple[str, bytes]]:
    variants: list[tuple[str, bytes]] = []
    stripped = body.rstrip(b" \t\r\n")
    if stripped != body:
        variants.append(("a trailing newline or spaces were added to the body", stripped))
    if b"\r\n" in body:
        variants.append(("line endings were changed to CRLF", body.replace(b"\r\n", b"\n")))
    variants += [(what, data) for what, data in _reserializations(stripped) if data != body]
    return variants


# --- building deliveries (trigger, replay) -------------------------------------------------------


def sample_event(
    name: str,
    channel: str,
    *,
    user_id: str = "1",
    client_event: str = "client-event",
    data: str = '{"hello":"world"}',
    socket_id: str = "123.456",
    subscription_count: int = 1,
    flavour: Flavour = "pusher",
) -> dict[str, Any]:
    """One event of type ``name`` as Pusher (or, with flavour soketi, Soketi 1.6.1) sends it.

    Raises InvalidInput for combinations no server sends (a member event on a non-presence
    channel, a client event on a public one, subscription_count from Soketi, ...).
    """
    if name not in EVENT_TYPES:
        raise InvalidInput(
            f"{name!r} is not a webhook event type",
            hint="choose from: " + ", ".join(EVENT_TYPES),
        )
    validate_channel(channel)
    kind = channel_kind(channel)
    event: dict[str, Any] = {"name": name, "channel": channel}
    if name in ("member_added", "member_removed"):
        if kind != "presence":
            raise InvalidInput(
                f"{name} is only sent for presence channels, not {channel!r}",
                hint="pass --channel presence-…",
            )
        event["user_id"] = user_id
    elif name == "client_event":
        if kind == "public":
            raise InvalidInput(
                f"client events only exist on private and presence channels, not {channel!r}",
                hint="pass --channel private-… or presence-…",
            )
        if not client_event.startswith("client-"):
            raise InvalidInput(
                f"client event name {client_event!r} must start with 'client-'",
                hint="e.g. --event client-typing",
            )
        event["event"] = client_event
        if flavour == "soketi":
            # Soketi passes on what the client sent: an object stays an object.
            try:
                event["data"] = strictjson.loads(data)
            except ValueError:
                event["data"] = data
        else:
            event["data"] = data
        event["socket_id"] = socket_id
        if kind == "presence":
            event["user_id"] = user_id
    elif name == "cache_miss":
        if not is_cache_channel(channel):
            raise InvalidInput(
                f"cache_miss is only sent for cache channels, not {channel!r}",
                hint="pass --channel cache-… (or private-cache-…, presence-cache-…)",
            )
    elif name == "subscription_count":
        if flavour == "soketi":
            raise InvalidInput(
                "Soketi 1.6.1 never sends subscription_count webhooks",
                hint="drop --soketi to send Pusher's shape",
            )
        if kind == "presence":
            raise InvalidInput(
                "subscription_count is not sent for presence channels",
                hint="use a public or private channel",
            )
        event["subscription_count"] = subscription_count
    return event


def build_body(events: Sequence[Mapping[str, Any]], time_ms: int | None = None) -> bytes:
    """The exact body bytes a sender signs and posts."""
    stamp = int(time.time() * 1000) if time_ms is None else time_ms
    return compact({"time_ms": stamp, "events": list(events)})


def retimed(body: bytes, time_ms: int | None = None) -> bytes:
    """A recorded body with a fresh ``time_ms`` (compact again: it is signed anew)."""
    try:
        data = strictjson.loads(body)
    except ValueError:
        raise InvalidInput(
            "the recorded body is not JSON", hint="replay recorded webhooks"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise InvalidInput(
            "the recorded body is not a webhook ({time_ms, events})",
            hint="replay what `rtctl webhooks listen --record` wrote",
        )
    data["time_ms"] = int(time.time() * 1000) if time_ms is None else time_ms
    return compact(data)


def event_key(event: Mapping[str, Any]) -> str:
    """A digest of what an event says (not when): equal events from two nodes share it."""
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def describe_event(event: Mapping[str, Any]) -> str:
    """One human line: ``member_added presence-room user 42``."""
    parts = [str(event.get("name")), str(event.get("channel", ""))]
    name = event.get("name")
    if name == "client_event":
        data = event.get("data")
        shown = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        parts += [str(event.get("event", "")), shown[:200]]
        if event.get("socket_id"):
            parts.append(f"from {event['socket_id']}")
    if event.get("user_id") is not None:
        parts.append(f"user {event['user_id']}")
    if name == "subscription_count":
        parts.append(f"count {event.get('subscription_count')}")
    return "  ".join(part for part in parts if part)
