"""Sending webhooks to an app's endpoint: `trigger` (signed samples), `replay` (recorded deliveries,
re-signed) and `listen --forward-to` (the exact bytes and headers that arrived).

The HTTP client is the standard library's ``http.client``: a forward must carry exactly the body
and headers that arrived, and nothing that a higher-level client adds on its own.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from rtctl.errors import InvalidInput, Unreachable, UsageError
from rtctl.protocol.webhooks import (
    SIGNATURE_HEADER,
    Flavour,
    build_body,
    forged_signature,
    retimed,
    signed_headers,
)

DEFAULT_TIMEOUT = 10.0
ANSWER_EXCERPT = 2000  # characters of the app's answer kept for display
# Not forwarded: they describe the connection that arrived, not the delivery.
HOP_HEADERS = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "te"}


@dataclass(frozen=True)
class Answer:
    """What an endpoint answered."""

    url: str
    status: int
    reason: str
    body: str
    ms: float

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "status": self.status,
            "reason": self.reason,
            "ms": round(self.ms, 3),
            "body": self.body,
        }


@dataclass(frozen=True)
class Sent:
    """One POST: the delivery that went out and the answer that came back."""

    body: bytes
    headers: dict[str, str]
    events: tuple[dict[str, Any], ...]
    answer: Answer
    forged: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": list(self.events),
            "signature": "forged" if self.forged else "valid",
            "headers": self.headers,
            **self.answer.to_dict(),
        }


def check_url(url: str, option: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"{option} {url!r} is not an http(s) URL",
            hint=f"e.g. {option} http://127.0.0.1:3000/pusher/webhooks",
        )
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise UsageError(f"{option} {url!r} has an invalid port") from None
    return url


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float = DEFAULT_TIMEOUT,
    ca_bundle: str | None = None,
) -> Answer:
    """POST ``body`` with exactly ``headers`` (plus Host and Content-Length). Raises Unreachable
    when no HTTP answer comes back: refused, timed out, unresolvable, TLS failure, closed."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=ca_bundle)
        connection = http.client.HTTPSConnection(host, parts.port, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    started = time.perf_counter()
    try:
        connection.putrequest("POST", target, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        raw = response.read(ANSWER_EXCERPT * 4)
        elapsed = (time.perf_counter() - started) * 1000
        return Answer(
            url,
            response.status,
            response.reason,
            raw.decode("utf-8", "replace")[:ANSWER_EXCERPT],
            elapsed,
        )
    except ConnectionRefusedError:
        raise Unreachable(
            f"{url}: connection refused", hint="is the app running and listening on that port?"
        ) from None
    except TimeoutError:
        raise Unreachable(
            f"{url}: no answer within {timeout:g} s", hint="the app hangs, or a firewall drops it"
        ) from None
    except socket.gaierror:
        raise Unreachable(f"{url}: cannot resolve {host!r}", hint="check the host name") from None
    except ssl.SSLError as exc:
        raise Unreachable(
            f"{url}: TLS failed ({exc.reason or exc})",
            hint="trust its certificate with RTCTL_CA_BUNDLE, or use http:// locally",
        ) from None
    except (http.client.HTTPException, ConnectionError) as exc:
        raise Unreachable(
            f"{url}: the connection closed without an HTTP answer ({type(exc).__name__})",
            hint="is that port an HTTP server?",
        ) from None
    except OSError as exc:
        raise Unreachable(f"{url}: {exc.strerror or exc}") from None
    finally:
        connection.close()


def _sent(
    url: str,
    body: bytes,
    headers: dict[str, str],
    events: Sequence[dict[str, Any]],
    timeout: float,
    ca_bundle: str | None,
    forged: bool = False,
) -> Sent:
    answer = post(url, body, headers, timeout, ca_bundle)
    return Sent(body, headers, tuple(events), answer, forged)


def trigger(
    key: str,
    secret: str,
    events: Sequence[dict[str, Any]],
    to: str,
    *,
    batch: bool = False,
    flavour: Flavour = "pusher",
    bad_signature: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    ca_bundle: str | None = None,
) -> Iterator[Sent]:
    """Sign and POST ``events``: one delivery each, or all in one (``batch``); yields each."""
    groups = [list(events)] if batch else [[event] for event in events]
    for group in groups:
        body = build_body(group)
        headers = signed_headers(key, secret, body, flavour)
        if bad_signature:
            headers[SIGNATURE_HEADER] = forged_signature(body)
        yield _sent(to, body, headers, group, timeout, ca_bundle, forged=bad_signature)


@dataclass
class ReplayPlan:
    """Recorded deliveries to re-send, and what was left out and why."""

    bodies: list[tuple[bytes, Flavour]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def plan_replay(records: Iterable[Mapping[str, Any]]) -> ReplayPlan:
    """Keep the verified deliveries of a recording (status 200); say why others are left out."""
    plan = ReplayPlan()
    for number, record in enumerate(records, 1):
        status = record.get("status", 200)
        if status != 200:
            plan.skipped.append(
                f"record {number}: refused when recorded ({status} {record.get('code')})"
            )
            continue
        body = record_body(record)
        if body is None:
            plan.skipped.append(f"record {number}: no body")
            continue
        headers = record.get("headers") or {}
        agent = next((v for k, v in headers.items() if k.lower() == "user-agent"), "")
        plan.bodies.append((body, "soketi" if str(agent).startswith("Soketi") else "pusher"))
    return plan


def record_body(record: Mapping[str, Any]) -> bytes | None:
    if isinstance(record.get("body"), str):
        return str(record["body"]).encode("utf-8")
    if isinstance(record.get("body_base64"), str):
        import base64
        import binascii

        try:
            return base64.b64decode(record["body_base64"], validate=True)
        except binascii.Error:
            raise InvalidInput("a record's body_base64 is not base64") from None
    return None


def replay(
    key: str,
    secret: str,
    plan: ReplayPlan,
    to: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    ca_bundle: str | None = None,
) -> Iterator[Sent]:
    """POST every planned body again, re-signed with this app's secret and a fresh time_ms."""
    for body, flavour in plan.bodies:
        fresh = retimed(body)
        headers = signed_headers(key, secret, fresh, flavour)
        events = json.loads(fresh)["events"]
        yield _sent(to, fresh, headers, events, timeout, ca_bundle)


def forward_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The arrived headers minus those that describe the connection (Host, Content-Length...)."""
    return {name: value for name, value in headers.items() if name.lower() not in HOP_HEADERS}


def forward(
    body: bytes,
    headers: Mapping[str, str],
    to: str,
    timeout: float = DEFAULT_TIMEOUT,
    ca_bundle: str | None = None,
) -> Answer:
    """Re-post a delivery byte for byte (its signature stays valid for the same secret)."""
    return post(to, body, forward_headers(headers), timeout, ca_bundle)
