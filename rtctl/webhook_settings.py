"""The webhook part of the configuration: rtctl's REALTIME_WEBHOOK_* variables, checked, and
composed into what Soketi reads.

One source of truth, like the credentials: ``.env`` says where webhooks go and which event types,
in rtctl's terms; Soketi's ``SOKETI_DEFAULT_APP_WEBHOOKS`` (a JSON array the array app manager
parses) and its batching variables are derived from them, for the native runtime and the compose
file alike. A hand-written ``SOKETI_DEFAULT_APP_WEBHOOKS`` is still accepted, and checked the way
Soketi 1.6.1 will read it (a missing ``event_types`` crashes its queue worker at the first event).

No network and no server here: ``config`` calls ``problems`` and ``from_layers``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from rtctl.hosts import is_loopback
from rtctl.protocol import strictjson
from rtctl.protocol.webhooks import DEFAULT_MAX_AGE, EVENT_TYPES, SOKETI_EVENT_TYPES

if TYPE_CHECKING:
    from rtctl.config import Problem

URL = "REALTIME_WEBHOOK_URL"
EVENTS = "REALTIME_WEBHOOK_EVENTS"
CHANNEL_PREFIX = "REALTIME_WEBHOOK_CHANNEL_PREFIX"
CHANNEL_SUFFIX = "REALTIME_WEBHOOK_CHANNEL_SUFFIX"
BATCHING = "REALTIME_WEBHOOK_BATCHING"
BATCHING_MS = "REALTIME_WEBHOOK_BATCHING_MS"
MAX_AGE = "REALTIME_WEBHOOK_MAX_AGE"
HOOK = "REALTIME_WEBHOOK_HOOK"
DEDUP_WINDOW = "REALTIME_WEBHOOK_DEDUP_WINDOW"
SOKETI_WEBHOOKS = "SOKETI_DEFAULT_APP_WEBHOOKS"

DEFAULT_LISTEN_HOST = "127.0.0.1"
DEFAULT_LISTEN_PORT = 6080
DEFAULT_LISTEN_PATH = "/webhooks"
DEFAULT_LISTEN_URL = f"http://{DEFAULT_LISTEN_HOST}:{DEFAULT_LISTEN_PORT}{DEFAULT_LISTEN_PATH}"
DEFAULT_BATCHING_MS = 50  # Soketi's SOKETI_WEBHOOKS_BATCHING_DURATION default
DEFAULT_DEDUP_WINDOW = 2.0

# Defaults as config.DEFAULTS holds them ("" = unset). Documented in .env.example.
DEFAULTS: dict[str, str] = {
    URL: "",
    EVENTS: "",  # every type Soketi sends
    CHANNEL_PREFIX: "",
    CHANNEL_SUFFIX: "",
    BATCHING: "false",
    BATCHING_MS: str(DEFAULT_BATCHING_MS),
    MAX_AGE: f"{DEFAULT_MAX_AGE:g}",
    HOOK: "",
    DEDUP_WINDOW: f"{DEFAULT_DEDUP_WINDOW:g}",
    SOKETI_WEBHOOKS: "",  # derived from REALTIME_WEBHOOK_*; hand-written is accepted
}
VARIABLES = tuple(DEFAULTS)
ENTRY_KEYS = {"url", "lambda_function", "lambda", "event_types", "headers", "filter"}
FILTER_KEYS = ("channel_name_starts_with", "channel_name_ends_with")
_CHANNEL_PART = re.compile(r"[-a-zA-Z0-9_=@,.;]*")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

Get = Callable[[str], str]


def webhook_problem(
    variable: str, message: str, hint: str, severity: Literal["error", "warning"] = "error"
) -> Problem:
    """A configuration problem of the webhook settings (the doctor's webhooks check)."""
    from rtctl.config import Problem, ProblemKind

    return Problem(variable, message, hint, severity, ProblemKind.WEBHOOK)


@dataclass(frozen=True)
class WebhookSettings:
    """The resolved webhook configuration (``Settings.webhooks``)."""

    urls: tuple[str, ...] = ()
    events: tuple[str, ...] = SOKETI_EVENT_TYPES
    channel_prefix: str | None = None
    channel_suffix: str | None = None
    batching: bool = False
    batching_ms: int = DEFAULT_BATCHING_MS
    max_age: float = DEFAULT_MAX_AGE  # receivers: seconds either side of now; 0 = no window
    hook: str | None = None  # gateway: module:function called with each verified event
    dedup_window: float = DEFAULT_DEDUP_WINDOW  # gateway: seconds of time_ms; 0 = off
    soketi_json: str | None = None  # SOKETI_DEFAULT_APP_WEBHOOKS: composed, or as hand-written

    @property
    def configured(self) -> bool:
        return bool(self.entries())

    def entries(self) -> list[dict[str, Any]]:
        """Soketi's ``webhooks`` list (composed from REALTIME_WEBHOOK_*, or hand-written)."""
        if not self.soketi_json:
            return []
        parsed = strictjson.loads(self.soketi_json)
        return parsed if isinstance(parsed, list) else []

    def soketi_environment(self) -> dict[str, str]:
        """What Soketi reads: the app's webhooks and the (server-wide) batching switch."""
        env: dict[str, str] = {}
        if self.soketi_json:
            env[SOKETI_WEBHOOKS] = self.soketi_json
        if self.batching:
            env["SOKETI_WEBHOOKS_BATCHING"] = "true"
            env["SOKETI_WEBHOOKS_BATCHING_DURATION"] = str(self.batching_ms)
        return env

    def listen_address(self) -> tuple[int, str]:
        """(port, path) for `rtctl webhooks listen`: the first URL's, else the defaults."""
        for url in (entry.get("url") for entry in self.entries() if entry.get("url")):
            parts = urlsplit(str(url))
            if parts.scheme == "http" and parts.port:
                return parts.port, parts.path or "/"
        return DEFAULT_LISTEN_PORT, DEFAULT_LISTEN_PATH

    def local_url(self) -> str | None:
        """The first webhook URL on this machine (where rtctl itself can receive), if any."""
        for entry in self.entries():
            url = str(entry.get("url") or "")
            parts = urlsplit(url)
            if parts.scheme == "http" and is_loopback(parts.hostname or ""):
                return url
        return None


def compose(
    urls: tuple[str, ...], events: tuple[str, ...], prefix: str | None, suffix: str | None
) -> list[dict[str, Any]]:
    """Soketi's webhooks list for rtctl's variables: one entry per URL, same types and filter."""
    entries = []
    for url in urls:
        entry: dict[str, Any] = {"url": url, "event_types": list(events)}
        filters = {}
        if prefix:
            filters["channel_name_starts_with"] = prefix
        if suffix:
            filters["channel_name_ends_with"] = suffix
        if filters:
            entry["filter"] = filters
        entries.append(entry)
    return entries


def _listing(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _number(get: Get, name: str, problems: list[Problem], default: float) -> float:
    raw = get(name).strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        problems.append(
            webhook_problem(
                name, f"{name}={raw!r} is not a number of seconds", f"set {name}=300 or 0"
            )
        )
        return default
    return value


def _flag(get: Get, name: str, problems: list[Problem]) -> bool:
    raw = get(name).strip().lower()
    if raw in _TRUE:
        return True
    if raw not in _FALSE:
        problems.append(
            webhook_problem(name, f"{name}={raw!r} is not a boolean", f"set {name}=true or false")
        )
    return False


def url_problem(url: str, variable: str) -> str | None:
    """Why ``url`` cannot be a webhook target, or None (the rule every URL follows)."""
    from rtctl.protocol.validation import http_url_problem

    return http_url_problem(url, variable)


def check_entries(text: str) -> tuple[list[str], list[str]]:
    """(errors, warnings) of a hand-written SOKETI_DEFAULT_APP_WEBHOOKS, as Soketi reads it."""
    name = SOKETI_WEBHOOKS
    try:
        data = strictjson.loads(text)
    except strictjson.NotJson as exc:
        return [f"{name} is not JSON ({exc})"], []
    if not isinstance(data, list):
        return [f"{name} must be a JSON array of webhooks, got {type(data).__name__}"], []
    errors: list[str] = []
    warnings: list[str] = []
    for index, entry in enumerate(data):
        where = f"{name}[{index}]"
        if not isinstance(entry, dict):
            errors.append(f"{where} is not an object")
            continue
        unknown = sorted(set(entry) - ENTRY_KEYS)
        if unknown:
            errors.append(f"{where} has unknown key(s) {', '.join(unknown)} (Soketi ignores them)")
        url = entry.get("url")
        if url is None and entry.get("lambda_function") is None:
            errors.append(f"{where} has neither url nor lambda_function")
        elif url is not None:
            problem = url_problem(url, f"{where}.url") if isinstance(url, str) else None
            if not isinstance(url, str):
                errors.append(f"{where}.url is not a string")
            elif problem:
                errors.append(problem)
        types = entry.get("event_types")
        if not isinstance(types, list) or not types:
            errors.append(
                f"{where}.event_types is missing or empty (Soketi's queue worker crashes on it)"
            )
        else:
            for event_type in types:
                if event_type not in EVENT_TYPES:
                    errors.append(f"{where}.event_types has unknown type {event_type!r}")
                elif event_type not in SOKETI_EVENT_TYPES:
                    warnings.append(f"{where}: Soketi 1.6.1 never sends {event_type} webhooks")
        headers = entry.get("headers")
        if headers is not None and (
            not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values())
        ):
            errors.append(f"{where}.headers must be an object of strings")
        filters = entry.get("filter")
        if filters is not None:
            if not isinstance(filters, dict):
                errors.append(f"{where}.filter must be an object")
            else:
                for key, value in filters.items():
                    if key not in FILTER_KEYS:
                        errors.append(
                            f"{where}.filter has unknown key {key!r} (known: {', '.join(FILTER_KEYS)})"
                        )
                    elif not isinstance(value, str):
                        errors.append(f"{where}.filter.{key} must be a string")
    return errors, warnings


def problems(get: Get, provider: str, present: Callable[[str], bool]) -> list[Problem]:
    """Every problem in the webhook variables. ``present(name)``: was it set at all?"""
    found: list[Problem] = []
    example = f"e.g. {URL}={DEFAULT_LISTEN_URL} (where `rtctl webhooks listen` receives)"
    urls = _listing(get(URL))
    for url in urls:
        problem = url_problem(url, URL)
        if problem:
            found.append(webhook_problem(URL, problem, example))
    for event_type in _listing(get(EVENTS)):
        if event_type not in EVENT_TYPES:
            found.append(
                webhook_problem(
                    EVENTS,
                    f"{EVENTS} has {event_type!r}, which is not a webhook event type",
                    "choose from: " + ", ".join(EVENT_TYPES),
                )
            )
        elif event_type not in SOKETI_EVENT_TYPES and provider == "soketi":
            found.append(
                webhook_problem(
                    EVENTS,
                    f"{EVENTS} has {event_type}: Soketi 1.6.1 never sends it",
                    "drop it, or use Pusher (its dashboard enables subscription_count)",
                    "warning",
                )
            )
    for name in (CHANNEL_PREFIX, CHANNEL_SUFFIX):
        if not _CHANNEL_PART.fullmatch(get(name).strip()):
            found.append(
                webhook_problem(
                    name,
                    f"{name}={get(name)!r} has characters no channel name can have",
                    "use letters, digits and - _ = @ , . ;",
                )
            )
    _flag(get, BATCHING, found)
    raw_ms = get(BATCHING_MS).strip()
    if raw_ms and (not raw_ms.isdigit() or int(raw_ms) == 0):
        found.append(
            webhook_problem(
                BATCHING_MS, f"{BATCHING_MS}={raw_ms!r} is not a number of ms", "e.g. 50"
            )
        )
    _number(get, MAX_AGE, found, DEFAULT_MAX_AGE)
    _number(get, DEDUP_WINDOW, found, DEFAULT_DEDUP_WINDOW)
    hook = get(HOOK).strip()
    if hook:
        module, sep, function = hook.partition(":")
        if not sep or not module or not function:
            found.append(
                webhook_problem(
                    HOOK,
                    f"{HOOK}={hook!r} is not module:function",
                    "name a function, e.g. REALTIME_WEBHOOK_HOOK=myapp.realtime:on_webhook",
                )
            )
    handwritten = get(SOKETI_WEBHOOKS).strip()
    if handwritten:
        errors, warnings = check_entries(handwritten)
        hint = f"fix it, or delete it and set {URL} (rtctl composes {SOKETI_WEBHOOKS} from it)"
        found += [webhook_problem(SOKETI_WEBHOOKS, message, hint) for message in errors]
        found += [
            webhook_problem(SOKETI_WEBHOOKS, m, "drop that event type", "warning") for m in warnings
        ]
        if not errors and urls and not [p for p in found if p.severity == "error"]:
            built = _build(get)
            composed = compose(built.urls, built.events, built.channel_prefix, built.channel_suffix)
            if strictjson.loads(handwritten) != composed:
                found.append(
                    webhook_problem(
                        SOKETI_WEBHOOKS,
                        f"{SOKETI_WEBHOOKS} differs from what {URL} and the other "
                        "REALTIME_WEBHOOK_* variables give Soketi",
                        f"delete {SOKETI_WEBHOOKS} (rtctl composes it) or {URL}",
                    )
                )
    if provider == "pusher" and (urls or handwritten):
        found.append(
            webhook_problem(
                URL if urls else SOKETI_WEBHOOKS,
                "with Pusher, webhooks are set in its dashboard (your app > Webhooks), not here: "
                f"{URL} only tells `rtctl webhooks listen` where to receive",
                "add the URL in the Pusher dashboard; rtctl verifies what arrives",
                "warning",
            )
        )
    elif not urls and not handwritten:
        for name in (EVENTS, CHANNEL_PREFIX, CHANNEL_SUFFIX, BATCHING):
            if present(name) and get(name).strip() and get(name).strip().lower() not in _FALSE:
                found.append(
                    webhook_problem(
                        name,
                        f"{name} is set but {URL} is not: no webhooks are sent",
                        f"set {URL}, {example[5:]}",
                        "warning",
                    )
                )
    return found


def _build(get: Get) -> WebhookSettings:
    sink: list[Problem] = []
    urls = _listing(get(URL))
    events = tuple(dict.fromkeys(_listing(get(EVENTS)) or SOKETI_EVENT_TYPES))
    prefix = get(CHANNEL_PREFIX).strip() or None
    suffix = get(CHANNEL_SUFFIX).strip() or None
    raw_ms = get(BATCHING_MS).strip()
    if urls:
        soketi_json: str | None = json.dumps(
            compose(urls, events, prefix, suffix), separators=(",", ":")
        )
    else:
        soketi_json = get(SOKETI_WEBHOOKS).strip() or None
    return WebhookSettings(
        urls=urls,
        events=events,
        channel_prefix=prefix,
        channel_suffix=suffix,
        batching=_flag(get, BATCHING, sink),
        batching_ms=int(raw_ms) if raw_ms.isdigit() and int(raw_ms) else DEFAULT_BATCHING_MS,
        max_age=_number(get, MAX_AGE, sink, DEFAULT_MAX_AGE),
        hook=get(HOOK).strip() or None,
        dedup_window=_number(get, DEDUP_WINDOW, sink, DEFAULT_DEDUP_WINDOW),
        soketi_json=soketi_json,
    )


def from_layers(get: Get) -> WebhookSettings:
    """The webhook settings of already-checked layers (``config.build_settings`` calls it)."""
    return _build(get)
