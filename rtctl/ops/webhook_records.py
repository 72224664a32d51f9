"""Recorded webhook deliveries: what `listen --record` writes and `verify`/`replay` read.

A recording is NDJSON, one request per line, written as it arrives (one ``write`` per line,
flushed, so a reader or a crash never sees half a record):

    {"received_at": "...", "client": "127.0.0.1", "method": "POST", "path": "/webhooks",
     "status": 200, "code": null, "headers": {"X-Pusher-Key": "...", ...}, "body": "<raw body>"}

``body`` is the raw body as text (``body_base64`` when it is not UTF-8). `verify` also reads a
raw HTTP request as captured by a proxy or ``nc -l`` (request line, headers, blank line, body).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from rtctl.errors import InvalidInput, RtctlError, UsageError
from rtctl.protocol import strictjson

if TYPE_CHECKING:
    from rtctl.config import Settings


@dataclass(frozen=True)
class Recorded:
    """One delivery read back: where it came from (for messages), its headers and raw body."""

    label: str
    headers: dict[str, str]
    body: bytes
    record: dict[str, Any] | None = None


class RecordWriter:
    """Appends records to a file, one flushed line each (thread-safe)."""

    def __init__(self, path: Path) -> None:
        if path.is_dir():
            raise UsageError(
                f"--record {path} is a directory", hint="name a file, e.g. hooks.ndjson"
            )
        try:
            self._handle: IO[str] = path.open("a", encoding="utf-8")
        except OSError as exc:
            raise UsageError(
                f"--record {path}: cannot write ({exc.strerror})",
                hint="check that the folder exists and is writable",
            ) from None
        self._lock = threading.Lock()

    def write(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
        with self._lock:
            self._handle.write(line)
            self._handle.flush()

    def close(self) -> None:
        with self._lock:
            self._handle.close()


def parse_http_request(raw: bytes, label: str) -> Recorded:
    """A raw HTTP request (CRLF or LF line ends) -> headers and body (Content-Length honoured)."""
    separator = b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n"
    head, found, body = raw.partition(separator)
    if not found:
        raise InvalidInput(
            f"{label}: no blank line between the headers and the body",
            hint="give a whole HTTP request, or a `rtctl webhooks listen --record` file",
        )
    lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise InvalidInput(f"{label}: {line[:60]!r} is not a header line")
        headers[name.strip()] = value.strip()
    length = next((v for k, v in headers.items() if k.lower() == "content-length"), None)
    if length is not None and length.isdigit() and int(length) <= len(body):
        body = body[: int(length)]
    return Recorded(label, headers, body)


def from_record(record: Any, label: str) -> Recorded:
    from rtctl.ops.webhook_sender import record_body

    if not isinstance(record, dict) or not isinstance(record.get("headers"), dict):
        raise InvalidInput(
            f"{label} is not a recorded delivery (an object with headers and body)",
            hint="record deliveries with `rtctl webhooks listen --record FILE`",
        )
    body = record_body(record)
    if body is None:
        raise InvalidInput(f"{label}: the record has no body (it was refused before its body)")
    headers = {str(k): str(v) for k, v in record["headers"].items()}
    return Recorded(label, headers, body, record)


def read_records(text: str, source: str) -> list[dict[str, Any]]:
    """The records of an NDJSON recording (blank lines skipped)."""
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = strictjson.loads(line)
        except ValueError:
            raise InvalidInput(
                f"{source} line {number} is not JSON",
                hint="replay a file written by `rtctl webhooks listen --record`",
            ) from None
        if not isinstance(record, dict):
            raise InvalidInput(f"{source} line {number} is not a JSON object")
        records.append(record)
    return records


def load_deliveries(data: bytes, source: str) -> list[Recorded]:
    """Deliveries in ``data``: an NDJSON recording, one JSON record, or one raw HTTP request."""
    text = data.lstrip()
    if not text:
        raise InvalidInput(f"{source} is empty", hint="pass a recording or an HTTP request")
    if text.startswith(b"{"):
        try:
            decoded = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{source} is not UTF-8 text") from None
        try:
            whole = strictjson.loads(decoded)
        except ValueError:
            return [
                from_record(record, f"{source} record {number}")
                for number, record in enumerate(read_records(decoded, source), 1)
            ]
        return [from_record(whole, source)]
    return [parse_http_request(data, source)]


def verify_deliveries(
    deliveries: Sequence[Recorded],
    settings: Settings,
    *,
    max_age: float,
    require_content_type: bool = True,
) -> list[dict[str, Any]]:
    """One verdict per delivery against this app's key and secret: ``source``, ``verified``,
    ``findings`` (each says why not, with a hint) and, when it verifies, ``time_ms`` and
    ``events``. A delivery signed with credentials `rtctl switch` keeps aside is named so."""
    from rtctl.protocol.webhooks import explain, parse_body

    others = kept_credentials(settings)
    verdicts: list[dict[str, Any]] = []
    for delivery in deliveries:
        findings = explain(
            delivery.body,
            delivery.headers,
            settings.key,
            settings.secret,
            max_age=max_age,
            require_content_type=require_content_type,
            other_credentials=others,
        )
        verdict: dict[str, Any] = {
            "source": delivery.label,
            "verified": not findings,
            "findings": [vars(finding) for finding in findings],
        }
        if not findings:
            time_ms, events = parse_body(delivery.body)
            verdict.update(time_ms=time_ms, events=list(events))
        verdicts.append(verdict)
    return verdicts


def kept_credentials(settings: Settings) -> dict[str, tuple[str, str]]:
    """Credentials the sender may have used instead: those `rtctl switch` keeps aside (none when
    its stash cannot be read: they only sharpen a finding)."""
    from rtctl.ops.switch import read_stash

    try:
        stashes = read_stash(settings.env_file)
    except RtctlError:
        return {}
    found = {}
    for provider, entry in stashes.items():
        values = entry.get("values") or {}
        key, secret = values.get("PUSHER_APP_KEY"), values.get("PUSHER_APP_SECRET")
        if key and secret and (key, secret) != (settings.key, settings.secret):
            found[f"the {provider} settings kept by `rtctl switch`"] = (key, secret)
    return found
