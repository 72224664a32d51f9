"""`rtctl doctor`: every check a user trips on, each with its evidence and the fix.

A reusable API (``rtctl smoke`` runs it as its first step):
- ``CheckResult(name, status, evidence, fix)``, status one of pass / fail / warn / skip;
- ``config_checks(layers)``: no network; built on ``config.diagnose`` plus file checks;
- ``runtime_checks(settings)``: can this machine start a server (Docker engine or Node)?
- ``server_checks(settings)``: network, against the configured server;
- ``run_doctor(layers)``: all of them; server checks are skipped when the configuration has errors
  (they would only test a guess).
``summary(results)`` counts the results by status.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal

from rtctl.config import (
    MIRRORED_CREDENTIALS,
    ConfigLayers,
    Problem,
    ProblemKind,
    Settings,
    build_settings,
    diagnose,
    mask,
)
from rtctl.errors import AuthRejected, ConfigError, RtctlError, ServerRejected, Unreachable

Status = Literal["pass", "fail", "warn", "skip"]

# Pusher (and Soketi) refuse signed requests whose auth_timestamp is more than 600 s off.
MAX_CLOCK_SKEW = 600.0
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::")

# The order checks are reported in; also the names a caller can look for.
CONFIG_CHECKS = (
    "env-file",
    "credentials",
    "app-id",
    "key-secret",
    "soketi-matches-pusher",
    "app-manager-driver",
    "provider",
    "scheme-tls-port",
    "other-settings",
    "webhooks",
)
RUNTIME_CHECKS = ("runtime",)
# SERVER_CHECKS (the server checks' names, in order) follows the functions that run them, below.
WEBHOOK_CHECKS = ("webhooks-reachable",)  # rtctl.ops.doctor_webhooks


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    evidence: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summary(results: Iterable[CheckResult]) -> dict[str, int]:
    counts = {"pass": 0, "fail": 0, "warn": 0, "skip": 0}
    for result in results:
        counts[result.status] += 1
    return counts


# --- configuration (no network) -----------------------------------------------------------------


# Which check reports each kind of configuration problem.
CHECK_OF_KIND: dict[ProblemKind, str] = {
    ProblemKind.ENV_FILE_UNPARSABLE: "env-file",
    ProblemKind.ENV_FILE_MISSING: "env-file",
    ProblemKind.CREDENTIAL_MISSING: "credentials",
    ProblemKind.APP_ID_NOT_NUMERIC: "app-id",
    ProblemKind.KEY_OR_SECRET_ALL_DIGITS: "key-secret",
    ProblemKind.KEY_OR_SECRET_CHARACTERS: "key-secret",
    ProblemKind.CREDENTIAL_MIRROR_DIFFERS: "soketi-matches-pusher",
    ProblemKind.UNKNOWN_APP_MANAGER_DRIVER: "app-manager-driver",
    ProblemKind.UNKNOWN_PROVIDER: "provider",
    ProblemKind.PUSHER_WITHOUT_CLUSTER: "provider",
    ProblemKind.PUSHER_WITH_HOST: "provider",
    ProblemKind.PUSHER_WITHOUT_TLS: "provider",
    ProblemKind.SOKETI_WITHOUT_HOST: "provider",
    ProblemKind.NOT_A_HOST: "provider",
    ProblemKind.UNKNOWN_SCHEME: "scheme-tls-port",
    ProblemKind.NOT_A_PORT: "scheme-tls-port",
    ProblemKind.PORTS_COLLIDE: "scheme-tls-port",
    ProblemKind.PORT_SCHEME_MISMATCH: "scheme-tls-port",
    ProblemKind.TLS_HALF_CONFIGURED: "scheme-tls-port",
    ProblemKind.TLS_FILE_MISSING: "scheme-tls-port",
    ProblemKind.TLS_WITHOUT_HTTPS: "scheme-tls-port",
    ProblemKind.WEBHOOK: "webhooks",
}


def check_of(problem: Problem) -> str:
    """The check a configuration problem belongs to (anything unlisted: other-settings)."""
    return CHECK_OF_KIND.get(problem.kind, "other-settings")


def _tls_file_problems(layers: ConfigLayers) -> list[Problem]:
    problems = []
    provider = layers.get("REALTIME_PROVIDER").strip().lower()
    scheme = layers.get("REALTIME_SCHEME").strip().lower()
    for name in ("SOKETI_SSL_CERT", "SOKETI_SSL_KEY"):
        value = layers.get(name).strip()
        if provider == "soketi" and value and not Path(value).is_file():
            problems.append(
                Problem(
                    name,
                    f"{name}={value} is not a file (Soketi exits at start without it)",
                    f"point {name} at a PEM file, or remove it and REALTIME_SCHEME=https",
                    kind=ProblemKind.TLS_FILE_MISSING,
                )
            )
    if provider == "soketi" and scheme != "https" and layers.get("SOKETI_SSL_CERT").strip():
        problems.append(
            Problem(
                "REALTIME_SCHEME",
                "SOKETI_SSL_CERT is set, so Soketi serves TLS, but REALTIME_SCHEME is not https",
                "set REALTIME_SCHEME=https",
                kind=ProblemKind.TLS_WITHOUT_HTTPS,
            )
        )
    return problems


def _pass_evidence(name: str, layers: ConfigLayers) -> str:
    get = layers.get
    provider = get("REALTIME_PROVIDER").strip().lower()
    if name == "env-file":
        if layers.env_file_found:
            return f"{layers.env_file} found and parsed"
        return f"no {layers.env_file}; the credentials come from the process environment"
    if name == "credentials":
        where = ", ".join(
            f"{var} ({layers.source(var)})"
            for var in ("PUSHER_APP_ID", "PUSHER_APP_KEY", "PUSHER_APP_SECRET")
        )
        return f"set: {where}"
    if name == "app-id":
        return f"PUSHER_APP_ID={get('PUSHER_APP_ID')} is numeric"
    if name == "key-secret":
        return (
            f"PUSHER_APP_KEY={get('PUSHER_APP_KEY')} and PUSHER_APP_SECRET="
            f"{mask(get('PUSHER_APP_SECRET'))} contain letters"
        )
    if name == "soketi-matches-pusher":
        set_vars = [var for var in MIRRORED_CREDENTIALS if var in layers.values]
        if not set_vars:
            return "no SOKETI_DEFAULT_APP_* overrides: Soketi gets PUSHER_* (one source of truth)"
        return f"{', '.join(set_vars)} equal their PUSHER_* values"
    if name == "app-manager-driver":
        return f"SOKETI_APP_MANAGER_DRIVER={get('SOKETI_APP_MANAGER_DRIVER').strip()}"
    if name == "provider":
        if provider == "pusher":
            return f"pusher, cluster {get('PUSHER_APP_CLUSTER')}, hosts derived from the cluster"
        return f"soketi at {get('REALTIME_HOST')}:{get('REALTIME_PORT') or '6001'}"
    if name == "scheme-tls-port":
        if provider == "pusher":
            return "https (Pusher always uses TLS)"
        scheme = get("REALTIME_SCHEME").strip().lower() or "http"
        tls = " with SOKETI_SSL_CERT/KEY" if get("SOKETI_SSL_CERT") else ""
        return f"{scheme} on port {get('REALTIME_PORT') or '6001'}{tls}"
    if name == "webhooks":
        from rtctl.ops import doctor_webhooks

        return doctor_webhooks.evidence(layers)
    return "booleans, encryption master key and CA bundle are valid"


def config_checks(layers: ConfigLayers) -> list[CheckResult]:
    """Every configuration check, without touching the network (built on config.diagnose)."""
    from rtctl.ops import doctor_webhooks

    problems = diagnose(layers) + _tls_file_problems(layers) + doctor_webhooks.problems(layers)
    grouped: dict[str, list[Problem]] = {name: [] for name in CONFIG_CHECKS}
    for problem in problems:
        grouped[check_of(problem)].append(problem)
    if not layers.env_file_found:
        creds_from_env = all(
            layers.source(var) == "env"
            for var in ("PUSHER_APP_ID", "PUSHER_APP_KEY", "PUSHER_APP_SECRET")
        )
        grouped["env-file"].append(
            Problem(
                str(layers.env_file),
                f"{layers.env_file} does not exist",
                "create it with `rtctl init` (or pass --env-file)",
                "warning" if creds_from_env else "error",
                kind=ProblemKind.ENV_FILE_MISSING,
            )
        )
    results = []
    for name, found in grouped.items():
        if not found:
            results.append(CheckResult(name, "pass", _pass_evidence(name, layers)))
            continue
        errors = [p for p in found if p.severity == "error"]
        shown = errors or found
        results.append(
            CheckResult(
                name,
                "fail" if errors else "warn",
                "; ".join(p.message for p in shown),
                " / ".join(dict.fromkeys(p.hint for p in shown)),
            )
        )
    return results


# --- can this machine start a server? -----------------------------------------------------------


def runtime_checks(settings: Settings) -> list[CheckResult]:
    """Docker engine or a suitable Node: a warning only (a server may already run elsewhere)."""
    from rtctl.runtime import docker, native

    if settings.provider != "soketi":
        return [CheckResult("runtime", "skip", "provider is pusher: nothing to run locally")]
    found = []
    if docker.engine_answers():
        found.append("a Docker engine answers")
    try:
        _, version = native.find_node()
    except RtctlError as error:
        node_note = error.message
    else:
        installed = "installed" if native.is_installed() else "not installed yet"
        found.append(f"Node {version} (Soketi {native.SOKETI_VERSION} {installed})")
        node_note = ""
    if found:
        return [CheckResult("runtime", "pass", "; ".join(found))]
    return [
        CheckResult(
            "runtime",
            "warn",
            f"no Docker engine answers and {node_note}",
            "install Node 20 (native runtime) or start a Docker engine, then `rtctl up`",
        )
    ]


# --- the server (network) -----------------------------------------------------------------------


def clock_skew_result(date_header: str | None, now: float | None = None) -> CheckResult:
    """Compare the server's Date header with our clock (signatures expire after 600 s)."""
    if not date_header:
        return CheckResult("clock-skew", "skip", "the server sent no Date header")
    try:
        server_time = parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError):
        return CheckResult("clock-skew", "warn", f"unreadable Date header {date_header!r}")
    skew = server_time - (time.time() if now is None else now)
    if abs(skew) < 2:  # the Date header has a resolution of one second
        evidence = f"server clock agrees with ours within 1 s (Date: {date_header})"
    else:
        direction = "ahead of" if skew > 0 else "behind"
        evidence = f"server clock {abs(skew):.0f} s {direction} ours (Date: {date_header})"
    if abs(skew) <= MAX_CLOCK_SKEW:
        return CheckResult("clock-skew", "pass", evidence)
    return CheckResult(
        "clock-skew",
        "fail",
        f"{evidence}: signed requests are refused beyond ±{MAX_CLOCK_SKEW:.0f} s",
        "synchronise the clocks (e.g. `timedatectl set-ntp true`) on this machine and the server",
    )


def _is_local(host: str) -> bool:
    return host.strip("[]") in LOCAL_HOSTS


def _port_owners(settings: Settings, folder: Path) -> tuple[list[str], list[str]]:
    """(evidence per port, ports busy with something rtctl did not start)."""
    from rtctl.runtime import docker, native

    running = native.read_running(folder)
    docker_project = docker.read_marker(folder)
    checks = [("REALTIME_PORT", settings.port, settings.host)]
    if settings.metrics_enabled:
        checks.append(("SOKETI_METRICS_SERVER_PORT", settings.metrics_port, "127.0.0.1"))
    evidence, foreign = [], []
    for name, port, bind_host in checks:
        if native.port_is_free(bind_host, port):
            evidence.append(f"{port} free")
        elif running is not None and port in (running.port, running.metrics_port):
            evidence.append(f"{port} ours (native pid {running.pid})")
        elif docker_project is not None:
            evidence.append(f"{port} in use (Docker project {docker_project})")
        else:
            foreign.append(f"{port} ({name})")
            evidence.append(f"{port} in use by a process rtctl did not start")
    return evidence, foreign


def _api_check(settings: Settings, timeout: float) -> tuple[CheckResult, str | None, bool]:
    """A signed read call; Soketi's HTTP-200 error bodies are mapped by ApiClient.
    Returns the result, the server's Date header, and whether the API answered at all."""
    from rtctl.protocol.httpapi import ApiClient

    path = f"GET /apps/{settings.app_id}/channels"
    try:
        with ApiClient(settings, timeout=timeout) as client:
            response = client.request("GET", "/channels", expect_json=False)
    except AuthRejected as error:
        return CheckResult("api-signature", "fail", error.message, error.hint), None, True
    except ServerRejected as error:
        result = CheckResult("api-signature", "fail", f"{path}: {error.message}", error.hint)
        return result, None, True
    except Unreachable as error:
        result = CheckResult("api-signature", "fail", f"{path}: {error.message}", error.hint)
        return result, None, False
    data = response.data
    if not isinstance(data, dict) or "channels" not in data:
        # Soketi answers an empty 200 when its app manager failed, then exits.
        shown = "an empty body" if data is None else repr(data)[:80]
        result = CheckResult(
            "api-signature",
            "fail",
            f"{path} answered {response.status} with {shown} instead of a channel list",
            "the server's app manager failed: check SOKETI_APP_MANAGER_DRIVER=array "
            "and `rtctl logs`",
        )
        return result, response.date, True
    occupied = len(data["channels"])
    result = CheckResult(
        "api-signature", "pass", f"{path} accepted our signature ({occupied} occupied channels)"
    )
    return result, response.date, True


def _websocket_check(settings: Settings, timeout: float) -> CheckResult:
    """The HTTP API never looks at the key; clients do: open /app/<key> and read the greeting."""
    import json

    import websocket

    sslopt = {"ca_certs": settings.ca_bundle} if settings.ca_bundle else {}
    url = settings.ws_url.split("?", 1)[0]
    try:
        sock = websocket.create_connection(settings.ws_url, timeout=timeout, sslopt=sslopt)
    except (OSError, websocket.WebSocketException) as exc:
        return CheckResult(
            "websocket-key",
            "fail",
            f"cannot open {url}: {str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}",
            "is the server running? `rtctl status`",
        )
    try:
        first = json.loads(sock.recv())
    except (OSError, ValueError, websocket.WebSocketException) as exc:
        return CheckResult(
            "websocket-key", "fail", f"{url}: no greeting ({exc})", "see `rtctl logs`"
        )
    finally:
        sock.close()
    event = first.get("event") if isinstance(first, dict) else None
    if event == "pusher:connection_established":
        return CheckResult("websocket-key", "pass", f"{url} -> pusher:connection_established")
    data = first.get("data") if isinstance(first, dict) else None
    if isinstance(data, str):
        with contextlib.suppress(ValueError):
            data = json.loads(data)
    detail = data if not isinstance(data, dict) else f"{data.get('code')} {data.get('message')}"
    return CheckResult(
        "websocket-key",
        "fail",
        f"{url} -> {event}: {detail}",
        "PUSHER_APP_KEY must be the server's app key (rtctl passes PUSHER_* to a Soketi it starts)",
    )


def _other_scheme_answers(settings: Settings, timeout: float) -> bool:
    from dataclasses import replace

    from rtctl.runtime import health

    other = replace(settings, scheme="http" if settings.tls else "https")
    return health.fetch(f"{other.api_base}/", other, timeout).ok


@dataclass
class _Server:
    """What the server checks observed so far, shared so each asks the network only once."""

    settings: Settings
    timeout: float
    folder: Path
    foreign: list[str] = field(default_factory=list)  # our ports held by a process we did not start
    ports_evidence: list[str] = field(default_factory=list)
    probes: Any = None  # runtime.health.Health of the Soketi health routes
    reachable: bool = True
    api_answered: bool = True
    api_ok: bool = False
    server_date: str | None = None

    @property
    def soketi(self) -> bool:
        return self.settings.provider == "soketi"


def _check_ports(server: _Server) -> CheckResult:
    settings = server.settings
    if not server.soketi:
        return CheckResult("ports", "skip", "Pusher (managed): no local ports")
    if not _is_local(settings.host):
        return CheckResult("ports", "skip", f"{settings.host} is not this machine: not checked")
    server.ports_evidence, server.foreign = _port_owners(settings, server.folder)
    return CheckResult("ports", "pass", ", ".join(server.ports_evidence))


def _check_reachable(server: _Server) -> CheckResult:
    from rtctl.runtime import health

    settings = server.settings
    if not server.soketi:
        return CheckResult("reachable", "skip", "Pusher has no health routes: see api-signature")
    probes = server.probes = health.check(settings, server.timeout, metrics=False)
    root = probes.root
    server.server_date = root.date
    if root.status == 0:
        server.reachable = False
        if _other_scheme_answers(settings, server.timeout):
            other = "http" if settings.tls else "https"
            return CheckResult(
                "reachable",
                "fail",
                f"{root.url}: {root.error}, but the server answers with {other}: "
                f"REALTIME_SCHEME={settings.scheme} does not match the server",
                f"set REALTIME_SCHEME={other} in .env",
            )
        return CheckResult(
            "reachable",
            "fail",
            f"nothing answers at {root.url} ({root.error})",
            "start it with `rtctl up` (or fix REALTIME_HOST/REALTIME_PORT)",
        )
    if root.ok and root.body.strip() == "OK":
        return CheckResult("reachable", "pass", f"GET {root.url} -> 200 OK")
    return CheckResult(
        "reachable",
        "fail",
        f"GET {root.url} -> {root.summary()} (not Soketi's 'OK')",
        "REALTIME_HOST/REALTIME_PORT point at something that is not Soketi",
    )


def _check_ready(server: _Server) -> CheckResult:
    if not server.soketi:
        return CheckResult("ready", "skip", "Pusher has no health routes")
    probes = server.probes
    memory = f", memory {probes.memory_percent:.1f} %" if probes.memory_percent is not None else ""
    if probes.ready.ok and probes.accept_traffic.ok:
        return CheckResult("ready", "pass", f"/ready 200, /accept-traffic 200{memory}")
    return CheckResult(
        "ready",
        "fail",
        f"/ready {probes.ready.summary()}, /accept-traffic {probes.accept_traffic.summary()}",
        "the server is closing, or over its memory threshold "
        "(SOKETI_HTTP_ACCEPT_TRAFFIC_MEMORY_THRESHOLD): see `rtctl logs`",
    )


def _check_api_signature(server: _Server) -> CheckResult:
    result, date, server.api_answered = _api_check(server.settings, server.timeout)
    server.api_ok = result.status == "pass"
    server.server_date = date or server.server_date
    return result


def _check_websocket_key(server: _Server) -> CheckResult:
    return _websocket_check(server.settings, server.timeout)


def _check_clock_skew(server: _Server) -> CheckResult:
    if not server.api_answered:
        return CheckResult("clock-skew", "skip", "the HTTP API is not reachable")
    return clock_skew_result(server.server_date)


def _check_metrics(server: _Server) -> CheckResult:
    from rtctl.runtime import health

    settings = server.settings
    if not server.soketi:
        return CheckResult("metrics", "skip", "Pusher: no Prometheus endpoint")
    if not settings.metrics_enabled:
        return CheckResult("metrics", "skip", "SOKETI_METRICS_ENABLED=false")
    metrics = health.scrape(settings, server.timeout)
    if metrics is not None and metrics.figures is not None:
        fig = metrics.figures
        return CheckResult(
            "metrics",
            "pass",
            f"{metrics.url}: {fig.connections} connections, {fig.messages_in} messages in, "
            f"{fig.messages_out} out",
        )
    error = metrics.error if metrics is not None else "metrics are off"
    return CheckResult(
        "metrics",
        "fail",
        f"{settings.metrics_url}: {error}",
        "SOKETI_METRICS_SERVER_PORT must match the server's metrics port "
        "(or set SOKETI_METRICS_ENABLED=false)",
    )


# One function per server check, in report order (the names are SERVER_CHECKS).
_SERVER_CHECK_FUNCTIONS: tuple[tuple[str, Callable[[_Server], CheckResult]], ...] = (
    ("ports", _check_ports),
    ("reachable", _check_reachable),
    ("ready", _check_ready),
    ("api-signature", _check_api_signature),
    ("websocket-key", _check_websocket_key),
    ("clock-skew", _check_clock_skew),
    ("metrics", _check_metrics),
)
SERVER_CHECKS = tuple(name for name, _ in _SERVER_CHECK_FUNCTIONS)


def server_checks(
    settings: Settings, timeout: float = 3.0, folder: Path | None = None
) -> list[CheckResult]:
    """Checks against the configured server; the later ones are skipped when it does not answer."""
    from rtctl.runtime import native

    server = _Server(
        settings, timeout, folder if folder is not None else native.state_dir(settings)
    )
    results: list[CheckResult] = []
    for name, check in _SERVER_CHECK_FUNCTIONS:
        if server.reachable:
            results.append(check(server))
        else:
            results.append(CheckResult(name, "skip", "the server is not reachable"))
    return _finish_ports(
        results, server.foreign, server.ports_evidence, api_ok=server.reachable and server.api_ok
    )


def _finish_ports(
    results: list[CheckResult],
    foreign: list[str],
    evidence: list[str],
    api_ok: bool = False,
) -> list[CheckResult]:
    """A port held by a process rtctl did not start: fine if it is a Soketi that accepts us."""
    if not foreign:
        return results
    index = next(i for i, r in enumerate(results) if r.name == "ports")
    if api_ok:
        results[index] = CheckResult(
            "ports",
            "warn",
            f"{', '.join(evidence)}; that server accepts our credentials, but `rtctl down` "
            "cannot stop it",
            "stop it where it was started if you want `rtctl up` to manage the server",
        )
    else:
        results[index] = CheckResult(
            "ports",
            "fail",
            f"port {' and '.join(foreign)} is in use by a process rtctl did not start, and it "
            "is not a Soketi that accepts our credentials",
            "stop that process (`ss -ltnp` shows it) or choose free ports in .env",
        )
    return results


def run_doctor(layers: ConfigLayers, timeout: float = 3.0) -> list[CheckResult]:
    """Configuration, runtime and server checks; the network ones need a valid configuration."""
    results = config_checks(layers)
    try:
        settings = build_settings(layers)
    except ConfigError:
        results += [
            CheckResult(name, "skip", "not run until the configuration errors above are fixed")
            for name in (*RUNTIME_CHECKS, *SERVER_CHECKS, *WEBHOOK_CHECKS)
        ]
        return results
    results += runtime_checks(settings)
    results += server_checks(settings, timeout)
    from rtctl.ops import doctor_webhooks
    from rtctl.ops.doctor_cluster import cluster_checks  # several nodes: their own rules

    results += doctor_webhooks.network_checks(settings, timeout)
    return cluster_checks(settings, results, timeout)
