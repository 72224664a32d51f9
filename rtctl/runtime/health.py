"""Soketi's health routes and Prometheus metrics, read from the host.

What a live Soketi 1.6.1 serves (checked against the native server):
- on the main port: ``/`` -> ``OK``, ``/ready`` -> ``OK`` (503 while it shuts down),
  ``/accept-traffic`` -> JSON memory figures (503 over its memory limit);
- on the metrics port (``SOKETI_METRICS_SERVER_PORT``, loopback): ``/``, ``/ready``, ``/metrics``
  (Prometheus text) and ``/usage``; ``/accept-traffic`` does not exist there.

The metric names read here, exactly as the server prints them (samples carry ``app_id`` and
``port`` labels; a per-app series only appears after that app's first connection, so absent
means 0):
``soketi_connected`` (gauge), ``soketi_new_connections_total``,
``soketi_new_disconnections_total``, ``soketi_ws_messages_received_total`` (messages in),
``soketi_ws_messages_sent_total`` (messages out), ``soketi_socket_received_bytes``,
``soketi_socket_transmitted_bytes``, ``soketi_http_calls_received_total``,
``soketi_process_start_time_seconds``, ``soketi_process_resident_memory_bytes``.

Plain urllib: the probes are tiny, and the CLI must not pay for an HTTP library at import.
"""

from __future__ import annotations

import contextlib
import json
import math
import ssl
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

from rtctl.config import Settings
from rtctl.errors import ExitCode

CONNECTED = "soketi_connected"
NEW_CONNECTIONS = "soketi_new_connections_total"
DISCONNECTIONS = "soketi_new_disconnections_total"
MESSAGES_IN = "soketi_ws_messages_received_total"
MESSAGES_OUT = "soketi_ws_messages_sent_total"
BYTES_IN = "soketi_socket_received_bytes"
BYTES_OUT = "soketi_socket_transmitted_bytes"


def status_exit_code(running: bool, healthy: bool) -> ExitCode:
    """`rtctl status` exits 0 when healthy, 1 when running but unhealthy, 4 when nothing answers
    (docs/runtime.md): one server or a whole cluster alike."""
    if healthy:
        return ExitCode.OK
    return ExitCode.FAILED if running else ExitCode.UNREACHABLE


HTTP_CALLS = "soketi_http_calls_received_total"
START_TIME = "soketi_process_start_time_seconds"
MEMORY = "soketi_process_resident_memory_bytes"


@dataclass(frozen=True)
class Probe:
    """One GET: status 0 means nothing answered (``error`` says why)."""

    url: str
    status: int  # the real status: Soketi's body code when it answers an error with HTTP 200
    body: str = ""
    date: str | None = None  # the server's Date header (clock-skew checks)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    def summary(self) -> str:
        if self.status == 0:
            return f"no answer ({self.error})"
        body = self.body.strip()
        # Soketi's error bodies say it in "error"; other JSON (/accept-traffic's memory figures)
        # is shown as it came.
        with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
            body = str(json.loads(body)["error"])
        return f"{self.status} {body[:60]}".strip()


def ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.ca_bundle)
    if settings.ca_bundle is None:
        # A health probe sends nothing secret and only asks whether the server answers; a local
        # Soketi usually has a self-signed certificate. The signed API check verifies properly.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _reason(exc: BaseException) -> str:
    reason: Any = getattr(exc, "reason", exc)
    if isinstance(reason, ssl.SSLError):
        return f"TLS error: {reason.reason or reason}"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return "timed out"
    text = str(reason) or type(reason).__name__
    return text.splitlines()[0][:120]


def _real_status(status: int, body: str) -> int:
    """Soketi answers some refusals with HTTP 200 and ``{"error": ..., "code": 500}`` (e.g.
    /accept-traffic over its memory threshold): the code in the body is the real status."""
    from rtctl.protocol.httpapi import error_status

    if not body.startswith("{"):
        return status
    try:
        return error_status(json.loads(body)) or status
    except ValueError:
        return status


def fetch(url: str, settings: Settings, timeout: float = 2.0) -> Probe:
    """GET ``url``; never raises for network trouble (the result says what happened)."""
    context = ssl_context(settings) if url.startswith("https") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            body = response.read(65536).decode("utf-8", "replace")
            return Probe(
                url, _real_status(response.status, body), body, response.headers.get("Date")
            )
    except urllib.error.HTTPError as exc:
        body = exc.read(4096).decode("utf-8", "replace")
        return Probe(url, exc.code, body, exc.headers.get("Date"))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return Probe(url, 0, error=_reason(exc))


# --- Prometheus text ----------------------------------------------------------------------------


def parse_prometheus(text: str) -> dict[str, float]:
    """Sum every sample of each metric over its labels (``name{a="b"} 1`` -> ``{name: 1}``).

    The exposition format's subset Soketi prints: comments, then ``name[{labels}] value [ts]``.
    """
    totals: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line.split(" ", 1)[0]:
            name, _, rest = line.partition("{")
            rest = rest.rpartition("}")[2]
        else:
            name, _, rest = line.partition(" ")
        fields = rest.split()
        if not fields:
            continue
        try:
            value = float(fields[0])
        except ValueError:
            continue
        if math.isnan(value):
            continue
        totals[name] = totals.get(name, 0.0) + value
    return totals


@dataclass(frozen=True)
class Figures:
    """The key numbers of /metrics (sums over apps)."""

    connections: int
    new_connections: int
    disconnections: int
    messages_in: int
    messages_out: int
    bytes_in: int
    bytes_out: int
    http_calls: int
    memory_bytes: int | None
    start_time: float | None


def figures(samples: dict[str, float]) -> Figures:
    def count(name: str) -> int:
        return int(samples.get(name, 0.0))

    return Figures(
        connections=count(CONNECTED),
        new_connections=count(NEW_CONNECTIONS),
        disconnections=count(DISCONNECTIONS),
        messages_in=count(MESSAGES_IN),
        messages_out=count(MESSAGES_OUT),
        bytes_in=count(BYTES_IN),
        bytes_out=count(BYTES_OUT),
        http_calls=count(HTTP_CALLS),
        memory_bytes=int(samples[MEMORY]) if MEMORY in samples else None,
        start_time=samples.get(START_TIME),
    )


@dataclass(frozen=True)
class Metrics:
    url: str
    figures: Figures | None
    error: str | None = None


def scrape(settings: Settings, timeout: float = 2.0) -> Metrics | None:
    """Read /metrics; None when metrics are off (or there is no local server: Pusher)."""
    url = settings.metrics_url
    if url is None:
        return None
    probe = fetch(url, settings, timeout)
    if not probe.ok:
        return Metrics(url, None, probe.summary())
    samples = parse_prometheus(probe.body)
    if not any(name.startswith("soketi_") for name in samples):
        return Metrics(url, None, "answered, but with no soketi_* metrics")
    return Metrics(url, figures(samples))


# --- the health routes --------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    root: Probe
    ready: Probe
    accept_traffic: Probe
    metrics: Metrics | None = None
    memory_percent: float | None = field(default=None)

    @property
    def answering(self) -> bool:
        return self.root.status != 0

    @property
    def healthy(self) -> bool:
        return (
            self.root.ok
            and self.root.body.strip() == "OK"
            and self.ready.ok
            and self.accept_traffic.ok
        )

    def to_dict(self) -> dict[str, Any]:
        data = {
            "healthy": self.healthy,
            "root": asdict(self.root),
            "ready": asdict(self.ready),
            "accept_traffic": asdict(self.accept_traffic),
            "memory_percent": self.memory_percent,
            "metrics": None if self.metrics is None else asdict(self.metrics),
        }
        return data


def check(settings: Settings, timeout: float = 2.0, metrics: bool = True) -> Health:
    """Probe /, /ready and /accept-traffic on the main port, and scrape /metrics."""
    base = settings.health_base or settings.api_base
    root = fetch(f"{base}/", settings, timeout)
    if root.status == 0:  # nothing there: the other probes would only repeat the timeout
        missing = Probe(f"{base}/ready", 0, error=root.error)
        return Health(
            root,
            missing,
            Probe(f"{base}/accept-traffic", 0, error=root.error),
            scrape(settings, timeout) if metrics else None,
        )
    ready = fetch(f"{base}/ready", settings, timeout)
    accept = fetch(f"{base}/accept-traffic", settings, timeout)
    memory = None
    with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
        memory = float(json.loads(accept.body)["memory"]["percentUsage"])
    return Health(
        root, ready, accept, scrape(settings, timeout) if metrics else None, memory_percent=memory
    )
