"""Why a signature does or does not verify (protocol §3 channel auth and sign-in, §5.2 HTTP API).

Pure functions over the configured key and secret: rebuild the string to sign, compare, and when
the signature differs, try the mistakes signers really make (``channel_data`` re-serialized, the
other form of a name, a placeholder where a value was missing, another key used as the secret, a
path prefix added by a proxy, ...) and name the one that reproduces the signature. A signature
that none of them reproduces was made with another secret or over values we cannot guess, and
the explanation says exactly that. Nothing here sends anything; used by ``rtctl verify``, the
console's signature explainer, and the hints of ``listen`` and ``smoke``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from rtctl.errors import InvalidInput, RtctlError
from rtctl.protocol import strictjson
from rtctl.protocol.signing import channel_kind, check_socket_id, sign

TIMESTAMP_WINDOW = 600  # seconds either side of the server's clock (Pusher; Soketi does not check)
SIGNATURE_RE = re.compile(r"[0-9a-fA-F]{64}")  # HMAC-SHA256 as hex; used with fullmatch
AUTH_PARAMS = ("auth_key", "auth_timestamp", "auth_version", "body_md5")
# What a signer puts where a value was missing: JS, JSON, Python, an empty form field.
PLACEHOLDERS = ("", "undefined", "null", "None")
PREFIXES = ("private-encrypted-", "private-", "presence-", "")

Kind = Literal["channel", "user", "api"]


@dataclass(frozen=True)
class Finding:
    """One part of the request that is wrong (``blocking``) or worth knowing (not blocking)."""

    part: str  # key, secret, signature, channel_data, user_data, socket_id, channel, body_md5, ...
    message: str
    blocking: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part, "message": self.message, "blocking": self.blocking}


@dataclass(frozen=True)
class Explanation:
    """The verdict and the evidence: what should have been signed, and what differs."""

    kind: Kind
    verifies: bool
    string_to_sign: str
    expected: str  # key:signature (channel, user) or the auth_signature (api)
    received: str
    findings: tuple[Finding, ...] = ()
    signed_string: str | None = None  # what the signature covers, when a known mistake explains it
    facts: dict[str, Any] = field(default_factory=dict)  # body_md5, timestamp skew, ...

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "verifies": self.verifies,
            "string_to_sign": self.string_to_sign,
            "expected": self.expected,
            "received": self.received,
            "signed_string": self.signed_string,
            "findings": [finding.to_dict() for finding in self.findings],
            "facts": self.facts,
        }


@dataclass(frozen=True)
class _Candidate:
    part: str
    message: str
    text: str
    secret: str | None = None  # None: the configured secret


# --- channel authorization and user sign-in ------------------------------------------------------


def parse_auth(auth: str) -> tuple[str, str, list[Finding]]:
    """``KEY:SIGNATURE`` -> (key, signature, findings); InvalidInput when it is not that."""
    findings: list[Finding] = []
    text = auth.strip()
    got_key, sep, signature = text.rpartition(":")
    if got_key.endswith("::user:"):  # "key::user::sig", copied from an error in Pusher's docs
        got_key = got_key[: -len("::user:")]
        findings.append(
            Finding(
                "auth",
                "the auth value has the 'KEY::user::SIGNATURE' form of an error in Pusher's "
                "protocol docs; servers expect 'KEY:SIGNATURE' for sign-in too",
            )
        )
    if not sep or not got_key or not signature:
        raise InvalidInput(
            f"--auth {auth[:80]!r} is not KEY:SIGNATURE",
            hint="pass the auth value exactly as the auth endpoint returned it, e.g. "
            "--auth 278d425bdf160c739803:58df8b0c…",
        )
    if not SIGNATURE_RE.fullmatch(signature):
        raise InvalidInput(
            f"the signature part of --auth is not 64 hex digits: {signature[:80]!r}",
            hint="an auth signature is the lowercase hex HMAC-SHA256 after 'KEY:'",
        )
    return got_key, signature, findings


def auth_string(
    socket_id: str, channel: str | None, channel_data: str | None, user_data: str | None
) -> str:
    """The exact string to sign (protocol §3.1)."""
    if channel is None:
        return f"{socket_id}::user::{user_data}"
    if channel_kind(channel) == "presence":
        return f"{socket_id}:{channel}:{channel_data}"
    return f"{socket_id}:{channel}"


def explain_auth(
    key: str,
    secret: str,
    *,
    socket_id: str,
    auth: str,
    channel: str | None = None,
    channel_data: str | None = None,
    user_data: str | None = None,
) -> Explanation:
    """Explain a channel authorization (``channel``) or a user sign-in (``user_data``) signature."""
    check_socket_id(socket_id)
    if (channel is None) == (user_data is None):
        raise InvalidInput(
            "name either a channel (--channel) or sign-in user data (--user-data), not both",
            hint="a channel auth signs socket_id:channel; a sign-in signs socket_id::user::user_data",
        )
    if channel is not None:
        if not channel.strip():
            raise InvalidInput("--channel is empty", hint="name the channel, e.g. private-foo")
        kind = channel_kind(channel)
        if kind == "public":
            raise InvalidInput(
                f"{channel!r} is a public channel: its subscriptions carry no signature",
                hint="only private-*, private-encrypted-* and presence-* channels are signed",
            )
        if kind == "server-to-user":
            raise InvalidInput(
                f"{channel!r} is never subscribed with a signature: a signed-in connection "
                "receives it",
                hint="explain the sign-in instead: --socket-id, --user-data, --auth",
            )
        if kind == "presence" and channel_data is None:
            raise InvalidInput(
                f"a presence signature covers channel_data: pass the --channel-data sent for "
                f"{channel!r}",
                hint='e.g. --channel-data \'{"user_id":"123","user_info":{"name":"Ann"}}\'',
            )
    got_key, got_signature, findings = parse_auth(auth)
    text = auth_string(socket_id, channel, channel_data, user_data)
    expected = sign(secret, text)
    received = f"{got_key}:{got_signature}"
    facts: dict[str, Any] = {"configured_key": key}
    if got_key != key:
        findings.append(
            Finding(
                "key",
                f"the auth carries key {got_key!r} but the configured key is {key!r}: it was "
                "signed for another app, or the server and this config name different apps",
            )
        )
    if channel is not None:
        findings.extend(_payload_shape(channel, channel_data, "channel_data"))
    else:
        findings.extend(_payload_shape(None, user_data, "user_data"))
    signed_string = None
    if got_signature == expected:
        signed_string = text
    elif got_signature.lower() == expected:
        signed_string = text
        findings.append(
            Finding(
                "signature",
                "the signature is upper-case hex; servers compare the text exactly "
                "(Soketi with ===), so only lower-case hex verifies",
            )
        )
    else:
        match = _first_match(
            got_signature.lower(),
            secret,
            _auth_candidates(key, secret, socket_id, channel, channel_data, user_data),
        )
        if match is not None:
            signed_string = match.text
            findings.append(Finding(match.part, match.message))
        else:
            findings.append(_unexplained(channel is not None))
    if not findings or all(not f.blocking for f in findings):
        findings.append(
            Finding(
                "secret",
                "this signature is right for the configured key and secret; if a server refused "
                "it, that server's app has another secret or key (compare PUSHER_APP_SECRET and "
                "PUSHER_APP_KEY with the server's; `rtctl doctor` checks them over the HTTP API)",
                blocking=False,
            )
        )
    verifies = all(not f.blocking for f in findings)
    return Explanation(
        kind="channel" if channel is not None else "user",
        verifies=verifies,
        string_to_sign=text,
        expected=f"{key}:{expected}",
        received=received,
        findings=tuple(findings),
        signed_string=signed_string,
        facts=facts,
    )


def _payload_shape(channel: str | None, payload: str | None, name: str) -> list[Finding]:
    """Problems of the JSON a presence channel or a sign-in carries (the server reads it)."""
    if payload is None or (channel is not None and channel_kind(channel) != "presence"):
        return []
    try:
        value = strictjson.loads(payload)
    except ValueError:
        return [Finding(name, f"{name} is not JSON: the server cannot read the user from it")]
    id_field = "user_id" if name == "channel_data" else "id"
    if not isinstance(value, dict) or id_field not in value or value[id_field] in ("", None):
        return [Finding(name, f"{name} has no {id_field}: the server refuses it")]
    return []


def _unexplained(is_channel: bool) -> Finding:
    what = "socket id and channel" if is_channel else "socket id and user data"
    return Finding(
        "secret",
        "the signature matches none of the known mistakes: it was made with another secret, "
        f"or over another {what} than these (a signature is bound to one connection's socket id: "
        "one made before a reconnect does not verify after it)",
    )


def _json_variants(text: str) -> Iterator[tuple[str, str]]:
    """Other serializations of the same JSON, each with what makes it differ."""
    try:
        value = strictjson.loads(text)
    except ValueError:
        return
    forms = {
        "compact": json.dumps(value, separators=(",", ":"), ensure_ascii=False),
        "with spaces": json.dumps(value, ensure_ascii=False),
        "with spaces, non-ASCII escaped": json.dumps(value),
        "compact, non-ASCII escaped": json.dumps(value, separators=(",", ":")),
        "compact, keys sorted": json.dumps(
            value, separators=(",", ":"), sort_keys=True, ensure_ascii=False
        ),
        "with spaces, keys sorted": json.dumps(value, sort_keys=True, ensure_ascii=False),
        "compact, / and non-ASCII escaped (PHP json_encode)": json.dumps(
            value, separators=(",", ":")
        ).replace("/", "\\/"),
        "indented": json.dumps(value, indent=2, ensure_ascii=False),
    }
    if isinstance(value, dict):
        user_key = "user_id" if "user_id" in value else "id"
        user = value.get(user_key)
        other: Any = None
        if isinstance(user, str) and user.isdigit():
            other = int(user)
        elif isinstance(user, int) and not isinstance(user, bool):
            other = str(user)
        if other is not None:
            changed = {**value, user_key: other}
            kind = "a number" if isinstance(other, int) else "a string"
            forms[f"{user_key} as {kind}"] = json.dumps(
                changed, separators=(",", ":"), ensure_ascii=False
            )
            forms[f"{user_key} as {kind}, with spaces"] = json.dumps(changed, ensure_ascii=False)
    seen = {text}
    for label, form in forms.items():
        if form not in seen:
            seen.add(form)
            yield label, form


def describe_json_difference(signed: str, sent: str) -> str:
    """Which of spaces, key order, escapes or values differ between two JSON texts."""
    try:
        a, b = strictjson.loads(signed), strictjson.loads(sent)
    except ValueError:
        return "different text"
    if a != b:
        return "different values"
    reasons = []

    def ordered(text: str) -> str:
        return json.dumps(strictjson.loads(text), separators=(",", ":"), ensure_ascii=False)

    if ordered(signed) != ordered(sent):
        reasons.append("key order")

    def escapes(text: str) -> bool:
        return "\\u" in text or "\\/" in text

    if escapes(signed) != escapes(sent):
        reasons.append("escapes")

    def spacing(text: str) -> str:
        # whitespace outside strings: remove string contents first
        return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)

    if re.findall(r"\s+", spacing(signed)) != re.findall(r"\s+", spacing(sent)):
        reasons.append("spaces")
    return ", ".join(reasons) or "formatting"


def _auth_candidates(
    key: str,
    secret: str,
    socket_id: str,
    channel: str | None,
    channel_data: str | None,
    user_data: str | None,
) -> Iterator[_Candidate]:
    payload_name = "channel_data" if channel is not None else "user_data"
    payload = channel_data if channel is not None else user_data
    presence = channel is not None and channel_kind(channel) == "presence"
    text = auth_string(socket_id, channel, channel_data, user_data)

    # 1. The JSON was serialized twice: signed in one form, sent in another.
    if payload is not None and (presence or channel is None):
        for label, form in _json_variants(payload):
            signed = auth_string(socket_id, channel, form, form)
            yield _Candidate(
                payload_name,
                f"{payload_name} was re-serialized between signing and sending "
                f"({describe_json_difference(form, payload)}): the signature covers "
                f"{form!r} ({label}) but {payload!r} was sent; sign and send one same string",
                signed,
            )
        for placeholder in PLACEHOLDERS:
            yield _Candidate(
                payload_name,
                f"the signer signed {placeholder!r} as {payload_name}: it did not have the user "
                "data when it signed (a missing field read as empty/undefined/null)",
                auth_string(socket_id, channel, placeholder, placeholder),
            )
    # 2. Signed as another kind of request.
    if channel is not None:
        if presence:
            yield _Candidate(
                "channel_data",
                "the signature leaves channel_data out (signed as a private channel): a presence "
                "signature covers socket_id:channel:channel_data",
                f"{socket_id}:{channel}",
            )
        elif channel_data is not None:
            yield _Candidate(
                "channel_data",
                "the signature includes channel_data, but a private channel signs only "
                "socket_id:channel (and the server checks that)",
                f"{socket_id}:{channel}:{channel_data}",
            )
        yield _Candidate(
            "string",
            "socket id and channel are swapped in the signed string: it must be socket_id:channel",
            text.replace(f"{socket_id}:{channel}", f"{channel}:{socket_id}", 1),
        )
    else:
        for wrong in (f"{socket_id}:user:{user_data}", f"{socket_id}:{user_data}"):
            yield _Candidate(
                "string",
                f"the sign-in string was {wrong!r}: it must be socket_id::user::user_data",
                wrong,
            )
    # 3. Another channel or socket id than the one sent.
    if channel is not None:
        names = []
        for encoded in (quote(channel, safe=""), unquote(channel), channel.strip()):
            names.append((encoded, "URL-encoded or decoded differently"))
        bare = channel
        for prefix in PREFIXES[:-1]:
            if channel.startswith(prefix):
                bare = channel[len(prefix) :]
                break
        for prefix in PREFIXES:
            names.append((prefix + bare, f"with the prefix {prefix!r}" if prefix else "no prefix"))
        for placeholder in PLACEHOLDERS:
            names.append((placeholder, "a missing channel name"))
        seen = {channel}
        for name, why in names:
            if name in seen:
                continue
            seen.add(name)
            signed = f"{socket_id}:{name}" + (f":{channel_data}" if presence else "")
            yield _Candidate(
                "channel",
                f"the signature is for channel {name!r} ({why}), not {channel!r}: the signer read "
                "the channel from the wrong place",
                signed,
            )
    for placeholder in PLACEHOLDERS:
        yield _Candidate(
            "socket_id",
            f"the signature is for socket id {placeholder!r}, not {socket_id!r}: the signer did "
            "not receive the socket_id form field (pusher-js posts socket_id and channel_name)",
            auth_string(placeholder, channel, channel_data, user_data),
        )
    swapped = ".".join(reversed(socket_id.split(".")))
    if swapped != socket_id:
        yield _Candidate(
            "socket_id",
            f"the signature is for socket id {swapped!r}, not {socket_id!r} (its halves swapped)",
            auth_string(swapped, channel, channel_data, user_data),
        )
    # 4. Another secret that we can name.
    yield from _secret_candidates(key, secret, text)


def _secret_candidates(key: str, secret: str, text: str) -> Iterator[_Candidate]:
    yield _Candidate(
        "string",
        "the signed string ends with a newline (e.g. `echo` piped into openssl): sign it without",
        text + "\n",
    )
    yield _Candidate(
        "secret",
        "it was signed with the app key as the secret: HMAC with PUSHER_APP_SECRET, not the key",
        text,
        secret=key,
    )
    for extra, what in (("\n", "a trailing newline"), (" ", "a trailing space")):
        yield _Candidate(
            "secret",
            f"it was signed with the secret plus {what} (read from a file or a variable that kept "
            "it): strip the secret",
            text,
            secret=secret + extra,
        )
    stripped = secret.strip()
    if stripped != secret:
        yield _Candidate(
            "secret",
            "it was signed with the secret without the whitespace the configured one has: check "
            "PUSHER_APP_SECRET for stray spaces",
            text,
            secret=stripped,
        )


def _first_match(
    signature: str, secret: str, candidates: Iterator[_Candidate]
) -> _Candidate | None:
    for candidate in candidates:
        digest = sign(candidate.secret if candidate.secret is not None else secret, candidate.text)
        if hmac.compare_digest(digest, signature):
            return candidate
    return None


# --- HTTP API requests ---------------------------------------------------------------------------


def api_query_string(params: list[tuple[str, str]], lowercase: bool = True) -> str:
    """Every parameter but auth_signature: keys lowercased and sorted, values not escaped."""
    items = [(k.lower() if lowercase else k, v) for k, v in params if k != "auth_signature"]
    return "&".join(f"{k}={v}" for k, v in sorted(items))


def parse_api_request(method: str, target: str) -> tuple[str, str, list[tuple[str, str]], str]:
    """(method, path, query parameters, auth_signature) of a request; InvalidInput if malformed."""
    method = method.strip()
    if not method.isalpha():
        raise InvalidInput(f"--method {method!r} is not an HTTP method", hint="e.g. --method POST")
    parts = urlsplit(target.strip())
    path = parts.path
    if not path.startswith("/"):
        raise InvalidInput(
            f"{target[:80]!r} has no path",
            hint="pass the request's path and query string, e.g. "
            "'/apps/1/events?auth_key=…&auth_timestamp=…&auth_signature=…'",
        )
    params = parse_qsl(parts.query, keep_blank_values=True)
    values = dict(params)
    signature = values.get("auth_signature")
    if signature is None:
        raise InvalidInput(
            "the request has no auth_signature parameter: there is nothing to verify",
            hint="pass the whole query string as sent, auth_signature included",
        )
    if not SIGNATURE_RE.fullmatch(signature):
        raise InvalidInput(
            f"auth_signature is not 64 hex digits: {signature[:80]!r}",
            hint="auth_signature is the lowercase hex HMAC-SHA256 of the string to sign",
        )
    return method, path, params, signature


def explain_api(
    key: str,
    secret: str,
    *,
    method: str,
    target: str,
    body: str = "",
    now: float,
    provider: str = "soketi",
) -> Explanation:
    """Explain an HTTP API request's ``auth_signature``: ``target`` is the path and query string as
    the server received it (a full URL is fine), ``body`` the exact body text."""
    method, path, params, signature = parse_api_request(method, target)
    values = dict(params)
    upper = method.upper()
    findings: list[Finding] = []
    facts: dict[str, Any] = {"configured_key": key}
    body_bytes = body.encode("utf-8")
    body_md5 = hashlib.md5(body_bytes).hexdigest()
    facts["body_md5"] = body_md5
    for name in ("auth_key", "auth_timestamp", "auth_version"):
        if name not in values:
            findings.append(Finding(name, f"the request has no {name}: the server refuses it"))
    if "auth_key" in values and values["auth_key"] != key:
        findings.append(
            Finding(
                "key",
                f"auth_key is {values['auth_key']!r} but the configured key is {key!r}: the "
                "request was signed for another app",
            )
        )
    if "auth_version" in values and values["auth_version"] != "1.0":
        findings.append(
            Finding("auth_version", f"auth_version is {values['auth_version']!r}; it must be 1.0")
        )
    findings.extend(_timestamp(values.get("auth_timestamp"), now, provider, facts))
    findings.extend(_body_md5(values.get("body_md5"), body, body_md5, provider))
    if method != upper:
        findings.append(
            Finding("method", f"the method is {method!r}: it is signed and sent upper-case")
        )
    text = f"{upper}\n{path}\n{api_query_string(params)}"
    expected = sign(secret, text)
    signed_string = None
    if signature == expected:
        signed_string = text
    elif signature.lower() == expected:
        signed_string = text
        findings.append(
            Finding("signature", "auth_signature is upper-case hex; only lower-case verifies")
        )
    else:
        match = _first_match(
            signature.lower(), secret, _api_candidates(key, secret, upper, path, params)
        )
        if match is not None:
            signed_string = match.text
            findings.append(Finding(match.part, match.message))
        else:
            findings.append(
                Finding(
                    "secret",
                    "the signature matches none of the known mistakes: it was made with another "
                    "secret, or over another method, path or parameters than these",
                )
            )
    if not findings or all(not f.blocking for f in findings):
        findings.append(
            Finding(
                "secret",
                "this signature is right for the configured key and secret; if the server "
                "refused it, its app has another secret or key (`rtctl doctor` checks them)",
                blocking=False,
            )
        )
    return Explanation(
        kind="api",
        verifies=all(not f.blocking for f in findings),
        string_to_sign=text,
        expected=expected,
        received=signature,
        findings=tuple(findings),
        signed_string=signed_string,
        facts=facts,
    )


def _timestamp(
    value: str | None, now: float, provider: str, facts: dict[str, Any]
) -> list[Finding]:
    if value is None:
        return []
    try:
        stamp = int(value)
    except ValueError:
        return [Finding("auth_timestamp", f"auth_timestamp {value!r} is not Unix seconds")]
    skew = round(now - stamp)
    facts["timestamp_skew_seconds"] = skew
    if abs(skew) <= TIMESTAMP_WINDOW:
        return []
    when = f"{abs(skew)} s {'before' if skew > 0 else 'after'} now"
    soketi = provider == "soketi"
    return [
        Finding(
            "auth_timestamp",
            f"auth_timestamp is {when}, outside Pusher's {TIMESTAMP_WINDOW} s window: Pusher "
            "refuses it (Soketi does not check the timestamp); sign each request when it is sent "
            "and keep the clock in sync",
            blocking=not soketi,
        )
    ]


def _body_md5(given: str | None, body: str, actual: str, provider: str) -> list[Finding]:
    if given is None:
        if body:
            return [
                Finding(
                    "body_md5",
                    f"the request has a body but no body_md5 (the body's MD5 is {actual})",
                )
            ]
        return []
    if given.lower() == actual:
        return []
    cause = "the body changed after signing"
    for label, form in [
        ("a trailing newline", body.rstrip("\n") if body.endswith("\n") else body + "\n"),
        *_json_variants(body),
    ]:
        if hashlib.md5(form.encode("utf-8")).hexdigest() == given.lower():
            cause = f"the signed body differs from the one sent ({label}): serialize the body once"
            break
    if not body:
        cause = "no body was given here; pass the exact body sent with --body"
    return [Finding("body_md5", f"body_md5 is {given} but the body's MD5 is {actual}: {cause}")]


def _api_candidates(
    key: str, secret: str, method: str, path: str, params: list[tuple[str, str]]
) -> Iterator[_Candidate]:
    query = api_query_string(params)
    if "/apps/" in path and not path.startswith("/apps/"):
        signed_path = path[path.index("/apps/") :]
        prefix = path[: path.index("/apps/")]
        yield _Candidate(
            "path",
            f"the request was signed for {signed_path} but received under the prefix {prefix!r} "
            f"({path}): a proxy rewrote the path; sign the path the server receives, or strip "
            "the prefix before the request reaches it",
            f"{method}\n{signed_path}\n{query}",
        )
    toggled = path[:-1] if path.endswith("/") and len(path) > 1 else path + "/"
    yield _Candidate(
        "path",
        f"the signature is for {toggled} (trailing slash) but the path is {path}",
        f"{method}\n{toggled}\n{query}",
    )
    for other in ("GET", "POST", "PUT", "DELETE"):
        if other != method:
            yield _Candidate(
                "method",
                f"the request was signed as {other} but sent as {method}",
                f"{other}\n{path}\n{query}",
            )
    yield _Candidate(
        "method",
        f"the method was signed lower-case ({method.lower()}): sign it upper-case",
        f"{method.lower()}\n{path}\n{query}",
    )
    escaped = "&".join(
        f"{k.lower()}={quote(v, safe='')}"
        for k, v in sorted((k.lower(), v) for k, v in params if k != "auth_signature")
    )
    yield _Candidate(
        "query",
        "the parameter values were URL-escaped in the signed string: sign them unescaped",
        f"{method}\n{path}\n{escaped}",
    )
    unsorted = "&".join(f"{k}={v}" for k, v in params if k != "auth_signature")
    yield _Candidate(
        "query",
        "the parameters were signed in the order sent, not sorted by key",
        f"{method}\n{path}\n{unsorted}",
    )
    if any(k != k.lower() for k, _ in params):
        yield _Candidate(
            "query",
            "the parameter names were signed without lower-casing them",
            f"{method}\n{path}\n{api_query_string(params, lowercase=False)}",
        )
    without_md5 = [(k, v) for k, v in params if k != "body_md5"]
    if len(without_md5) != len(params):
        yield _Candidate(
            "body_md5",
            "body_md5 was added after signing: it must be part of the signed parameters",
            f"{method}\n{path}\n{api_query_string(without_md5)}",
        )
    yield from _secret_candidates(key, secret, f"{method}\n{path}\n{query}")


# --- the hint listen and smoke print -------------------------------------------------------------


def verify_command(socket_id: str, channel: str, auth: str, channel_data: str | None = None) -> str:
    """The `rtctl verify auth` command line for a subscription that was refused."""
    words = [
        "rtctl",
        "verify",
        "auth",
        "--socket-id",
        socket_id,
        "--channel",
        channel,
        "--auth",
        auth,
    ]
    if channel_data is not None:
        words += ["--channel-data", channel_data]
    return " ".join(shlex.quote(word) for word in words)


def add_verify_hint(error: RtctlError, signed: Mapping[str, str] | None) -> RtctlError:
    """A refused subscription that we had signed: point at `rtctl verify auth` with its values."""
    if not signed or "auth" not in signed:
        return error
    command = verify_command(
        signed["socket_id"], signed["channel"], signed["auth"], signed.get("channel_data")
    )
    error.hint = f"{error.hint}; see why: {command}" if error.hint else f"see why: {command}"
    return error
