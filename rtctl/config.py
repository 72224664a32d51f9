"""The one config loader: flags > process environment > .env file > defaults.

Every layer is keyed by the environment variable name (flags are translated to those names by the
CLI), so precedence is one dictionary merge and every value knows where it came from.
``diagnose`` lists every problem it can see without raising (the doctor uses it);
``load_settings`` raises ``ConfigError`` on the first error-level problem.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from rtctl import __version__, webhook_settings
from rtctl.errors import ConfigError
from rtctl.webhook_settings import WebhookSettings

PROVIDERS = ("soketi", "pusher")
SCHEMES = ("http", "https")
APP_MANAGER_DRIVERS = ("array", "mysql", "postgres", "dynamodb")
DEFAULT_ENV_FILE = Path(".env")

# Every variable rtctl reads, with its default ("" = unset). Documented in .env.example.
DEFAULTS: dict[str, str] = {
    "REALTIME_PROVIDER": "soketi",
    "REALTIME_HOST": "127.0.0.1",
    "REALTIME_PORT": "",  # 6001 on soketi (443/80 by scheme on pusher)
    "REALTIME_SCHEME": "",  # http on soketi, https on pusher
    "REALTIME_MONITOR_TOKEN": "",
    "REALTIME_EMIT_TOKEN": "",
    "REALTIME_JWT_SECRET": "",
    "REALTIME_JWT_PUBLIC_KEY": "",
    "REALTIME_JWT_ALGORITHMS": "",  # default: HS256 with a secret, by key type with a public key
    "REALTIME_JWT_AUDIENCE": "",  # gateway: required 'aud' claim
    "REALTIME_JWT_ISSUER": "",  # gateway: required 'iss' claim
    "REALTIME_CORS_ORIGINS": "",
    "REALTIME_CORS_HEADERS": "",  # extra request headers browsers may send to the gateway
    "REALTIME_AUTH_HOOK": "",
    "REALTIME_BOT_ID": "9000000",
    "REALTIME_BOT_NAME": "Coach",
    "REALTIME_BOT_AVATAR": "/assets/bot.png",
    "RTCTL_PUSHER_ENDPOINT": "",  # host[:port] replacing {ws,api}-{cluster}.pusher.com
    "RTCTL_CA_BUNDLE": "",  # extra CA file to trust (self-signed TLS Soketi, corporate proxies)
    "PUSHER_APP_ID": "",
    "PUSHER_APP_KEY": "",
    "PUSHER_APP_SECRET": "",
    "PUSHER_APP_CLUSTER": "mt1",
    "PUSHER_ENCRYPTION_MASTER_KEY_BASE64": "",
    "SOKETI_APP_MANAGER_DRIVER": "array",
    "SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES": "true",
    "SOKETI_DEFAULT_APP_USER_AUTHENTICATION": "false",
    "SOKETI_METRICS_ENABLED": "true",
    "SOKETI_METRICS_SERVER_PORT": "9601",
    "SOKETI_SSL_CERT": "",
    "SOKETI_SSL_KEY": "",
    **webhook_settings.DEFAULTS,  # REALTIME_WEBHOOK_* and SOKETI_DEFAULT_APP_WEBHOOKS
    # Several Soketi nodes behind one front door (`rtctl up` with more than one node).
    "RTCTL_SOKETI_NODES": "1",
    "SOKETI_ADAPTER_DRIVER": "",  # local with one node, redis with more
    "RTCTL_BUS_PORT": "",  # 6379 for redis, 4222 for nats
    "RTCTL_CLUSTER_PREFIX": "",  # rtctl-<PUSHER_APP_ID>
    "RTCTL_FRONT_DOOR_PROCESSES": "1",
    "RTCTL_FRONT_DOOR_MAXCONN": "",  # as many as the open-files limit allows
    "SOKETI_CACHE_DRIVER": "",  # redis on the redis adapter, else memory
    "SOKETI_RATE_LIMITER_DRIVER": "",  # redis on the redis adapter, else local
    "SOKETI_QUEUE_DRIVER": "",  # redis on the redis adapter, else sync
    "SOKETI_MODE": "",  # full
}

# Cluster vocabulary (Soketi's own names for its drivers).
ADAPTERS = ("local", "redis", "nats")
CLUSTER_ADAPTERS = ("redis", "nats")
MAX_NODES = 16  # beyond this one machine's ports, files and cores are the problem, not Soketi
MAX_FRONT_DOOR_PROCESSES = 16
BUS_DEFAULT_PORTS = {"redis": 6379, "nats": 4222}
DRIVER_CHOICES = {
    "SOKETI_CACHE_DRIVER": ("memory", "redis"),
    "SOKETI_RATE_LIMITER_DRIVER": ("local", "redis", "cluster"),
    "SOKETI_QUEUE_DRIVER": ("sync", "redis", "sqs"),
    "SOKETI_MODE": ("full", "server", "worker"),
}

# Soketi variables that must equal a PUSHER_* credential when they are set at all.
MIRRORED_CREDENTIALS = {
    "SOKETI_DEFAULT_APP_ID": "PUSHER_APP_ID",
    "SOKETI_DEFAULT_APP_KEY": "PUSHER_APP_KEY",
    "SOKETI_DEFAULT_APP_SECRET": "PUSHER_APP_SECRET",
}

# Variables whose values are secrets: masked in every view unless asked (--show-secrets).
SECRET_VARIABLES = (
    "PUSHER_APP_SECRET",
    "SOKETI_DEFAULT_APP_SECRET",
    "PUSHER_ENCRYPTION_MASTER_KEY_BASE64",
    "REALTIME_MONITOR_TOKEN",
    "REALTIME_EMIT_TOKEN",
    "REALTIME_JWT_SECRET",
)

PREFIXES = ("REALTIME_", "PUSHER_", "SOKETI_", "RTCTL_")

Source = Literal["flag", "env", ".env", "default", "derived"]


class ProblemKind(str, Enum):
    """What is wrong, as a stable code: code that reacts to a problem (the doctor's grouping,
    `rtctl config` tolerating missing credentials) reads the kind, never the message, so messages
    can be reworded freely. Shown as ``kind`` in `rtctl config --json`."""

    ENV_FILE_UNPARSABLE = "env-file-unparsable"
    ENV_FILE_MISSING = "env-file-missing"
    CREDENTIAL_MISSING = "credential-missing"
    APP_ID_NOT_NUMERIC = "app-id-not-numeric"
    KEY_OR_SECRET_ALL_DIGITS = "key-or-secret-all-digits"
    KEY_OR_SECRET_CHARACTERS = "key-or-secret-characters"
    CREDENTIAL_MIRROR_DIFFERS = "credential-mirror-differs"
    UNKNOWN_APP_MANAGER_DRIVER = "unknown-app-manager-driver"
    UNKNOWN_PROVIDER = "unknown-provider"
    PUSHER_WITHOUT_CLUSTER = "pusher-without-cluster"
    PUSHER_WITH_HOST = "pusher-with-host"
    PUSHER_WITHOUT_TLS = "pusher-without-tls"
    SOKETI_WITHOUT_HOST = "soketi-without-host"
    NOT_A_HOST = "not-a-host"
    PORTS_COLLIDE = "ports-collide"
    BAD_BOT_ID = "bad-bot-id"
    UNKNOWN_SCHEME = "unknown-scheme"
    NOT_A_PORT = "not-a-port"
    PORT_SCHEME_MISMATCH = "port-scheme-mismatch"
    TLS_HALF_CONFIGURED = "tls-half-configured"
    TLS_FILE_MISSING = "tls-file-missing"
    TLS_WITHOUT_HTTPS = "tls-without-https"
    NOT_A_BOOLEAN = "not-a-boolean"
    BAD_MASTER_KEY = "bad-master-key"
    CA_BUNDLE_MISSING = "ca-bundle-missing"
    WEBHOOK = "webhook"  # a REALTIME_WEBHOOK_* or SOKETI_DEFAULT_APP_WEBHOOKS problem
    OTHER = "other"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration: what, which variable, and how to fix it."""

    variable: str
    message: str
    hint: str
    severity: Literal["error", "warning"] = "error"
    kind: ProblemKind = ProblemKind.OTHER


@dataclass(frozen=True)
class ConfigLayers:
    """The merged raw values and where each came from."""

    values: Mapping[str, str]
    sources: Mapping[str, Source]
    env_file: Path
    env_file_found: bool
    env_file_problems: tuple[Problem, ...] = ()

    def get(self, name: str) -> str:
        return self.values.get(name, DEFAULTS.get(name, ""))

    def source(self, name: str) -> Source:
        return self.sources.get(name, "default")


@dataclass(frozen=True)
class Settings:
    """Resolved, validated settings. Frozen: built once per command."""

    provider: Literal["soketi", "pusher"]
    app_id: str
    key: str
    secret: str
    cluster: str
    host: str
    port: int
    scheme: Literal["http", "https"]
    metrics_port: int
    metrics_enabled: bool
    client_messages: bool
    user_authentication: bool
    app_manager_driver: str
    encryption_master_key_base64: str | None
    monitor_token: str | None
    emit_token: str | None
    jwt_secret: str | None
    jwt_public_key: str | None
    jwt_algorithms: tuple[str, ...]
    cors_origins: tuple[str, ...]
    cors_headers: tuple[str, ...]
    auth_hook: str | None
    bot_id: str
    bot_name: str
    bot_avatar: str
    ca_bundle: str | None
    ssl_cert: str | None
    ssl_key: str | None
    env_file: Path
    sources: Mapping[str, Source] = field(default_factory=dict, compare=False)
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    webhook_urls: tuple[str, ...] = ()
    webhook_events: tuple[str, ...] = WebhookSettings.events
    webhook_channel_prefix: str | None = None
    webhook_channel_suffix: str | None = None
    webhook_batching: bool = False
    webhook_batching_ms: int = WebhookSettings.batching_ms
    webhook_max_age: float = WebhookSettings.max_age
    webhook_hook: str | None = None
    webhook_dedup_window: float = WebhookSettings.dedup_window
    soketi_webhooks: str | None = None  # what Soketi gets: composed from webhook_*, or hand-written

    @property
    def webhooks(self) -> WebhookSettings:
        return WebhookSettings(
            urls=self.webhook_urls,
            events=self.webhook_events,
            channel_prefix=self.webhook_channel_prefix,
            channel_suffix=self.webhook_channel_suffix,
            batching=self.webhook_batching,
            batching_ms=self.webhook_batching_ms,
            max_age=self.webhook_max_age,
            hook=self.webhook_hook,
            dedup_window=self.webhook_dedup_window,
            soketi_json=self.soketi_webhooks,
        )

    # Several nodes: how many, the adapter that joins them, and the drivers they share.
    nodes: int = 1
    adapter: str = "local"
    bus_port: int = 6379
    cluster_prefix: str = ""
    front_door_processes: int = 1
    front_door_maxconn: int | None = None
    cache_driver: str = "memory"
    rate_limiter_driver: str = "local"
    queue_driver: str = "sync"
    soketi_mode: str = "full"

    @property
    def is_cluster(self) -> bool:
        """More than one Soketi node behind a front door (Soketi provider only)."""
        return self.provider == "soketi" and self.nodes > 1

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def ws_host(self) -> str:
        return self.host if self.provider == "soketi" else _pusher_host("ws", self)

    @property
    def api_host(self) -> str:
        return self.host if self.provider == "soketi" else _pusher_host("api", self)

    @property
    def ws_url(self) -> str:
        """The socket URL a client connects to (``/app/<key>?protocol=7&...``, as pusher-js builds it)."""
        scheme = "wss" if self.tls else "ws"
        return (
            f"{scheme}://{_hostport(self.ws_host, self.port, self.tls)}/app/{self.key}"
            f"?protocol=7&client=rtctl-python&version={__version__}"
        )

    @property
    def api_base(self) -> str:
        return f"{self.scheme}://{_hostport(self.api_host, self.port, self.tls)}"

    @property
    def health_base(self) -> str | None:
        """Soketi's health routes (``/``, ``/ready``, ``/accept-traffic``); none on Pusher."""
        return self.api_base if self.provider == "soketi" else None

    @property
    def metrics_url(self) -> str | None:
        if self.provider != "soketi" or not self.metrics_enabled:
            return None
        return f"http://{_hostport(self.host, self.metrics_port, False)}/metrics"

    @property
    def master_key(self) -> bytes | None:
        if not self.encryption_master_key_base64:
            return None
        return base64.b64decode(self.encryption_master_key_base64)

    def public_dict(self, show_secrets: bool = False) -> dict[str, object]:
        """Every setting and derived URL, secrets masked unless asked."""
        secret_fields = {
            "secret",
            "encryption_master_key_base64",
            "monitor_token",
            "emit_token",
            "jwt_secret",
        }
        data: dict[str, object] = {}
        for name in self.__dataclass_fields__:
            if name == "sources":
                continue
            value = getattr(self, name)
            if isinstance(value, Path):
                value = str(value)
            if isinstance(value, tuple):
                value = list(value)
            if name in secret_fields and value and not show_secrets:
                value = mask(str(value))
            data[name] = value
        data.update(
            ws_url=self.ws_url,
            api_base=self.api_base,
            metrics_url=self.metrics_url,
            tls=self.tls,
        )
        return data


# Which variable each Settings field comes from, for "where did this come from" views.
FIELD_VARIABLES: dict[str, str] = {
    "provider": "REALTIME_PROVIDER",
    "app_id": "PUSHER_APP_ID",
    "key": "PUSHER_APP_KEY",
    "secret": "PUSHER_APP_SECRET",
    "cluster": "PUSHER_APP_CLUSTER",
    "host": "REALTIME_HOST",
    "port": "REALTIME_PORT",
    "scheme": "REALTIME_SCHEME",
    "metrics_port": "SOKETI_METRICS_SERVER_PORT",
    "metrics_enabled": "SOKETI_METRICS_ENABLED",
    "client_messages": "SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES",
    "user_authentication": "SOKETI_DEFAULT_APP_USER_AUTHENTICATION",
    "app_manager_driver": "SOKETI_APP_MANAGER_DRIVER",
    "encryption_master_key_base64": "PUSHER_ENCRYPTION_MASTER_KEY_BASE64",
    "monitor_token": "REALTIME_MONITOR_TOKEN",
    "emit_token": "REALTIME_EMIT_TOKEN",
    "jwt_secret": "REALTIME_JWT_SECRET",
    "jwt_public_key": "REALTIME_JWT_PUBLIC_KEY",
    "jwt_algorithms": "REALTIME_JWT_ALGORITHMS",
    "jwt_audience": "REALTIME_JWT_AUDIENCE",
    "jwt_issuer": "REALTIME_JWT_ISSUER",
    "cors_origins": "REALTIME_CORS_ORIGINS",
    "cors_headers": "REALTIME_CORS_HEADERS",
    "auth_hook": "REALTIME_AUTH_HOOK",
    "bot_id": "REALTIME_BOT_ID",
    "bot_name": "REALTIME_BOT_NAME",
    "bot_avatar": "REALTIME_BOT_AVATAR",
    "ca_bundle": "RTCTL_CA_BUNDLE",
    "ssl_cert": "SOKETI_SSL_CERT",
    "ssl_key": "SOKETI_SSL_KEY",
    "webhook_urls": webhook_settings.URL,
    "webhook_events": webhook_settings.EVENTS,
    "webhook_channel_prefix": webhook_settings.CHANNEL_PREFIX,
    "webhook_channel_suffix": webhook_settings.CHANNEL_SUFFIX,
    "webhook_batching": webhook_settings.BATCHING,
    "webhook_batching_ms": webhook_settings.BATCHING_MS,
    "webhook_max_age": webhook_settings.MAX_AGE,
    "webhook_hook": webhook_settings.HOOK,
    "webhook_dedup_window": webhook_settings.DEDUP_WINDOW,
    "soketi_webhooks": webhook_settings.SOKETI_WEBHOOKS,
    "nodes": "RTCTL_SOKETI_NODES",
    "adapter": "SOKETI_ADAPTER_DRIVER",
    "bus_port": "RTCTL_BUS_PORT",
    "cluster_prefix": "RTCTL_CLUSTER_PREFIX",
    "front_door_processes": "RTCTL_FRONT_DOOR_PROCESSES",
    "front_door_maxconn": "RTCTL_FRONT_DOOR_MAXCONN",
    "cache_driver": "SOKETI_CACHE_DRIVER",
    "rate_limiter_driver": "SOKETI_RATE_LIMITER_DRIVER",
    "queue_driver": "SOKETI_QUEUE_DRIVER",
    "soketi_mode": "SOKETI_MODE",
}


FIELD_NAMES = {variable: name for name, variable in FIELD_VARIABLES.items()}


def mask(value: str) -> str:
    """Show enough of a secret to recognise it, never enough to use it."""
    if len(value) <= 8:
        return "****"
    return f"{value[:3]}…{value[-2:]}"


def _hostport(host: str, port: int, tls: bool) -> str:
    default = 443 if tls else 80
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return shown if port == default else f"{shown}:{port}"


def _pusher_host(kind: str, settings: Settings) -> str:
    # On Pusher the host field is empty unless RTCTL_PUSHER_ENDPOINT named one (folded in at build
    # time); empty means the cluster's own host, ws-<cluster>.pusher.com / api-<cluster>.pusher.com.
    return settings.host if settings.host else f"{kind}-{settings.cluster}.pusher.com"


# --- reading the layers -------------------------------------------------------------------------


def read_env_file(path: Path) -> tuple[dict[str, str], tuple[Problem, ...], bool]:
    """Parse a .env file with python-dotenv. Returns (values, problems, found)."""
    from rtctl.envfile import EnvDocument, read_text

    if not path.exists() and not path.is_symlink():
        return {}, (), False
    document = EnvDocument(read_text(path))
    problems = tuple(
        Problem(
            variable=str(path),
            message=f"{path} line {entry.line} cannot be parsed: {entry.statement.strip()[:60]!r}",
            hint="write it as KEY=value (quote values with spaces or #)",
            kind=ProblemKind.ENV_FILE_UNPARSABLE,
        )
        for entry in document.errors()
    )
    return document.values(), problems, True


def read_layers(
    env_file: Path | None = None,
    overrides: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ConfigLayers:
    """Merge defaults < .env < process environment < flags, remembering each value's source."""
    path = env_file if env_file is not None else DEFAULT_ENV_FILE
    file_values, file_problems, found = read_env_file(path)
    if env_file is not None and not found:
        raise ConfigError(
            f"{path} does not exist",
            hint="create it with `rtctl init`, or pass --env-file with an existing file",
        )
    environ = os.environ if environ is None else environ
    values: dict[str, str] = {}
    sources: dict[str, Source] = {}
    for key, value in file_values.items():
        values[key] = value
        sources[key] = ".env"
    for key, value in environ.items():
        if key.startswith(PREFIXES):
            values[key] = value
            sources[key] = "env"
    for key, override in (overrides or {}).items():
        if override is not None:
            values[key] = override
            sources[key] = "flag"
    return ConfigLayers(values, sources, path, found, file_problems)


# --- checking ------------------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse_bool(layers: ConfigLayers, name: str, problems: list[Problem]) -> bool:
    raw = layers.get(name).strip().lower()
    if raw in _TRUE:
        return True
    if raw not in _FALSE:
        problems.append(
            Problem(
                name,
                f"{name}={raw!r} is not a boolean",
                f"set {name}=true or false",
                kind=ProblemKind.NOT_A_BOOLEAN,
            )
        )
    return False


def _parse_port(layers: ConfigLayers, name: str, default: int, problems: list[Problem]) -> int:
    raw = layers.get(name).strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        problems.append(
            Problem(
                name,
                f"{name}={raw!r} is not a port number",
                f"set {name} to 1-65535",
                kind=ProblemKind.NOT_A_PORT,
            )
        )
        return default
    return int(raw)


def _parse_count(
    layers: ConfigLayers, name: str, default: int, top: int, problems: list[Problem]
) -> int:
    raw = layers.get(name).strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= top:
        problems.append(
            Problem(name, f"{name}={raw!r} is not a count from 1 to {top}", f"set {name}=1..{top}")
        )
        return default
    return int(raw)


def adapter_of(layers: ConfigLayers, nodes: int) -> str:
    """The adapter: as set, else local for one node and redis (everything shared) for more."""
    raw = layers.get("SOKETI_ADAPTER_DRIVER").strip().lower()
    return raw or ("redis" if nodes > 1 else "local")


def shared_driver_defaults(adapter: str) -> dict[str, str]:
    """What each node gets unless .env says otherwise: Redis can share every driver; NATS and
    the local adapter have no shared cache, rate limiter or queue in Soketi 1.6."""
    shared = adapter == "redis"
    return {
        "SOKETI_CACHE_DRIVER": "redis" if shared else "memory",
        "SOKETI_RATE_LIMITER_DRIVER": "redis" if shared else "local",
        "SOKETI_QUEUE_DRIVER": "redis" if shared else "sync",
        "SOKETI_MODE": "full",
    }


def cluster_problems(layers: ConfigLayers) -> list[Problem]:
    """The node count, adapter, bus and front-door settings are well formed (not whether the
    combination makes a correct cluster: `rtctl doctor` judges that, with evidence)."""
    problems: list[Problem] = []
    nodes = _parse_count(layers, "RTCTL_SOKETI_NODES", 1, MAX_NODES, problems)
    adapter = adapter_of(layers, nodes)
    if adapter not in ADAPTERS:
        problems.append(
            Problem(
                "SOKETI_ADAPTER_DRIVER",
                f"SOKETI_ADAPTER_DRIVER={adapter!r} is not an adapter rtctl runs",
                "set SOKETI_ADAPTER_DRIVER=redis or nats (several nodes), or local (one node)",
            )
        )
    _parse_port(layers, "RTCTL_BUS_PORT", 0, problems)
    _parse_count(layers, "RTCTL_FRONT_DOOR_PROCESSES", 1, MAX_FRONT_DOOR_PROCESSES, problems)
    _parse_count(layers, "RTCTL_FRONT_DOOR_MAXCONN", 0, 10_000_000, problems)
    prefix = layers.get("RTCTL_CLUSTER_PREFIX").strip()
    if prefix and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", prefix):
        problems.append(
            Problem(
                "RTCTL_CLUSTER_PREFIX",
                f"RTCTL_CLUSTER_PREFIX={prefix!r} has characters other than letters, digits, - _ .",
                "use a short name such as rtctl-staging",
            )
        )
    for name, choices in DRIVER_CHOICES.items():
        value = layers.get(name).strip().lower()
        if value and value not in choices:
            problems.append(
                Problem(name, f"{name}={value!r} is not one of {', '.join(choices)}", f"set {name}")
            )
    return problems


def credential_problems(app_id: str, key: str, secret: str) -> list[Problem]:
    """The credential rules: present, numeric id (Python SDK), key/secret with letters (Soketi)."""
    problems: list[Problem] = []
    for name, value in (
        ("PUSHER_APP_ID", app_id),
        ("PUSHER_APP_KEY", key),
        ("PUSHER_APP_SECRET", secret),
    ):
        if not value:
            problems.append(
                Problem(
                    name,
                    f"{name} is not set",
                    "run `rtctl init` to write fresh credentials",
                    kind=ProblemKind.CREDENTIAL_MISSING,
                )
            )
    if app_id and not re.fullmatch(r"[0-9]+", app_id):
        problems.append(
            Problem(
                "PUSHER_APP_ID",
                f"PUSHER_APP_ID={app_id!r} is not numeric",
                "use digits only: the pusher Python SDK refuses other app ids",
                kind=ProblemKind.APP_ID_NOT_NUMERIC,
            )
        )
    for name, value in (("PUSHER_APP_KEY", key), ("PUSHER_APP_SECRET", secret)):
        if value and value.isdigit():
            problems.append(
                Problem(
                    name,
                    f"{name} is all digits",
                    "add letters: Soketi JSON-parses env values and crashes on a numeric secret",
                    kind=ProblemKind.KEY_OR_SECRET_ALL_DIGITS,
                )
            )
        if value and not re.fullmatch(r"[A-Za-z0-9_\-.]+", value):
            problems.append(
                Problem(
                    name,
                    f"{name} contains characters other than letters, digits, - _ .",
                    "regenerate it with `rtctl init --force`",
                    kind=ProblemKind.KEY_OR_SECRET_CHARACTERS,
                )
            )
    return problems


def diagnose(layers: ConfigLayers) -> list[Problem]:
    """Every problem visible in the configuration, without touching the network."""
    problems: list[Problem] = list(layers.env_file_problems)
    provider = layers.get("REALTIME_PROVIDER").strip().lower()
    if provider not in PROVIDERS:
        problems.append(
            Problem(
                "REALTIME_PROVIDER",
                f"REALTIME_PROVIDER={provider!r} is not a known provider",
                "set REALTIME_PROVIDER=soketi or pusher (or run `rtctl switch`)",
                kind=ProblemKind.UNKNOWN_PROVIDER,
            )
        )
    problems += credential_problems(
        layers.get("PUSHER_APP_ID"), layers.get("PUSHER_APP_KEY"), layers.get("PUSHER_APP_SECRET")
    )
    for soketi_name, pusher_name in MIRRORED_CREDENTIALS.items():
        mirrored = layers.values.get(soketi_name)
        if mirrored is not None and mirrored != layers.get(pusher_name):
            problems.append(
                Problem(
                    soketi_name,
                    f"{soketi_name} differs from {pusher_name}: Soketi and clients would use "
                    "different credentials",
                    f"delete {soketi_name} (rtctl passes {pusher_name} to Soketi) or make them equal",
                    kind=ProblemKind.CREDENTIAL_MIRROR_DIFFERS,
                )
            )
    driver = layers.get("SOKETI_APP_MANAGER_DRIVER").strip()
    if driver not in APP_MANAGER_DRIVERS:
        problems.append(
            Problem(
                "SOKETI_APP_MANAGER_DRIVER",
                f"SOKETI_APP_MANAGER_DRIVER={driver!r} is not an app manager driver "
                "(Soketi starts, then dies at the first connection)",
                "set SOKETI_APP_MANAGER_DRIVER=array ('local'/'redis' are adapter names)",
                kind=ProblemKind.UNKNOWN_APP_MANAGER_DRIVER,
            )
        )
    scheme = layers.get("REALTIME_SCHEME").strip().lower()
    if scheme and scheme not in SCHEMES:
        problems.append(
            Problem(
                "REALTIME_SCHEME",
                f"REALTIME_SCHEME={scheme!r} is not http or https",
                "set REALTIME_SCHEME=http or https",
                kind=ProblemKind.UNKNOWN_SCHEME,
            )
        )
    _parse_port(layers, "REALTIME_PORT", 0, problems)
    _parse_port(layers, "SOKETI_METRICS_SERVER_PORT", 0, problems)
    for flag in (
        "SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES",
        "SOKETI_DEFAULT_APP_USER_AUTHENTICATION",
        "SOKETI_METRICS_ENABLED",
    ):
        _parse_bool(layers, flag, problems)
    if provider == "pusher":
        if not layers.get("PUSHER_APP_CLUSTER").strip():
            problems.append(
                Problem(
                    "PUSHER_APP_CLUSTER",
                    "provider is pusher but PUSHER_APP_CLUSTER is empty",
                    "set PUSHER_APP_CLUSTER (e.g. eu, mt1, us2)",
                    kind=ProblemKind.PUSHER_WITHOUT_CLUSTER,
                )
            )
        if layers.values.get("REALTIME_HOST"):
            problems.append(
                Problem(
                    "REALTIME_HOST",
                    "provider is pusher but REALTIME_HOST is set (Pusher hosts come from the cluster)",
                    "remove REALTIME_HOST/REALTIME_PORT, or run `rtctl switch pusher`",
                    kind=ProblemKind.PUSHER_WITH_HOST,
                )
            )
        if scheme == "http":
            problems.append(
                Problem(
                    "REALTIME_SCHEME",
                    "provider is pusher but REALTIME_SCHEME=http",
                    "Pusher needs TLS: remove REALTIME_SCHEME or set https",
                    kind=ProblemKind.PUSHER_WITHOUT_TLS,
                )
            )
    host = layers.get("REALTIME_HOST").strip()
    if provider == "soketi" and not host:
        problems.append(
            Problem(
                "REALTIME_HOST",
                "provider is soketi but REALTIME_HOST is empty",
                "set REALTIME_HOST (127.0.0.1 for a local Soketi)",
                kind=ProblemKind.SOKETI_WITHOUT_HOST,
            )
        )
    elif provider == "soketi" and (problem := host_problem(host)) is not None:
        problems.append(
            Problem(
                "REALTIME_HOST",
                f"REALTIME_HOST={host!r} {problem}",
                "set REALTIME_HOST to a host name or an IP address, e.g. 127.0.0.1",
                kind=ProblemKind.NOT_A_HOST,
            )
        )
    if provider == "soketi" and _parse_bool(layers, "SOKETI_METRICS_ENABLED", []):
        port = _parse_port(layers, "REALTIME_PORT", 6001, [])
        metrics_port = _parse_port(layers, "SOKETI_METRICS_SERVER_PORT", 9601, [])
        if port == metrics_port:
            problems.append(
                Problem(
                    "SOKETI_METRICS_SERVER_PORT",
                    f"SOKETI_METRICS_SERVER_PORT and REALTIME_PORT are both {port}: Soketi would "
                    "share the port between its API and its metrics and drop connections",
                    "give the metrics their own port, e.g. SOKETI_METRICS_SERVER_PORT=9601",
                    kind=ProblemKind.PORTS_COLLIDE,
                )
            )
    port_raw = layers.get("REALTIME_PORT").strip()
    if port_raw.isdigit() and scheme:
        if scheme == "http" and port_raw == "443":
            problems.append(
                Problem(
                    "REALTIME_PORT",
                    "REALTIME_PORT=443 with REALTIME_SCHEME=http",
                    "443 is the TLS port: set REALTIME_SCHEME=https or another port",
                    "warning",
                    kind=ProblemKind.PORT_SCHEME_MISMATCH,
                )
            )
        if scheme == "https" and port_raw == "80":
            problems.append(
                Problem(
                    "REALTIME_PORT",
                    "REALTIME_PORT=80 with REALTIME_SCHEME=https",
                    "80 is the plain-HTTP port: set REALTIME_SCHEME=http or another port",
                    "warning",
                    kind=ProblemKind.PORT_SCHEME_MISMATCH,
                )
            )
    if scheme == "https" and provider == "soketi":
        cert, keyfile = layers.get("SOKETI_SSL_CERT"), layers.get("SOKETI_SSL_KEY")
        if bool(cert) != bool(keyfile):
            problems.append(
                Problem(
                    "SOKETI_SSL_CERT",
                    "only one of SOKETI_SSL_CERT / SOKETI_SSL_KEY is set",
                    "set both (a certificate and its key) for TLS",
                    kind=ProblemKind.TLS_HALF_CONFIGURED,
                )
            )
    master = layers.get("PUSHER_ENCRYPTION_MASTER_KEY_BASE64").strip()
    if master:
        try:
            if len(base64.b64decode(master, validate=True)) != 32:
                raise ValueError
        except (binascii.Error, ValueError):
            problems.append(
                Problem(
                    "PUSHER_ENCRYPTION_MASTER_KEY_BASE64",
                    "PUSHER_ENCRYPTION_MASTER_KEY_BASE64 is not base64 of exactly 32 bytes",
                    "generate one with `openssl rand -base64 32`",
                    kind=ProblemKind.BAD_MASTER_KEY,
                )
            )
    bot_id = layers.get("REALTIME_BOT_ID").strip()
    if not re.fullmatch(r"[-A-Za-z0-9=@,.;]+", bot_id):
        problems.append(
            Problem(
                "REALTIME_BOT_ID",
                "REALTIME_BOT_ID is empty"
                if not bot_id
                else f"REALTIME_BOT_ID={bot_id!r} cannot be part of a channel name",
                "set REALTIME_BOT_ID to the bot's user id (letters, digits, - = @ , . ; but no _: "
                "the bot channel is private-<user>_<bot>), e.g. REALTIME_BOT_ID=9000000",
                kind=ProblemKind.BAD_BOT_ID,
            )
        )
    problems += cluster_problems(layers)
    ca = layers.get("RTCTL_CA_BUNDLE").strip()
    if ca and not Path(ca).is_file():
        problems.append(
            Problem(
                "RTCTL_CA_BUNDLE",
                f"RTCTL_CA_BUNDLE={ca} is not a file",
                "point it at a PEM CA certificate",
                kind=ProblemKind.CA_BUNDLE_MISSING,
            )
        )
    problems += webhook_settings.problems(layers.get, provider, layers.values.__contains__)
    return problems


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def host_problem(host: str) -> str | None:
    """What is wrong with a host's spelling (None when it is an IP address or a valid name).
    Whether a name resolves is only known when it is used."""
    import ipaddress

    try:
        ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host)
        return None
    except ValueError:
        pass
    if re.fullmatch(r"[0-9.]+|\[?[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\]?", host):
        return "is not a valid IP address"
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return "is not a host name or an IP address"
    return None


def errors_only(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


# --- building -----------------------------------------------------------------------------------


def build_settings(layers: ConfigLayers, require_credentials: bool = True) -> Settings:
    """Validate the layers and freeze them into Settings. Raises ConfigError on the first error."""
    problems = errors_only(diagnose(layers))
    if not require_credentials:
        problems = [p for p in problems if p.kind is not ProblemKind.CREDENTIAL_MISSING]
    if problems:
        first = problems[0]
        where = "" if layers.env_file_found else f" (no {layers.env_file} found)"
        raise ConfigError(first.message + where, hint=first.hint)

    sink: list[Problem] = []
    provider = layers.get("REALTIME_PROVIDER").strip().lower()
    sources: dict[str, Source] = {name: layers.source(var) for name, var in FIELD_VARIABLES.items()}
    if provider == "pusher":
        scheme = "https"
        endpoint = layers.get("RTCTL_PUSHER_ENDPOINT").strip()
        host, _, port_text = endpoint.partition(":")
        port = int(port_text) if port_text.isdigit() else 443
        for name in ("scheme", "host", "port"):
            sources[name] = "derived"
    else:
        scheme = layers.get("REALTIME_SCHEME").strip().lower() or "http"
        host = layers.get("REALTIME_HOST").strip()
        port = _parse_port(layers, "REALTIME_PORT", 6001, sink)

    def optional(name: str) -> str | None:
        value = layers.get(name).strip()
        return value or None

    def listing(name: str) -> tuple[str, ...]:
        return tuple(item.strip() for item in layers.get(name).split(",") if item.strip())

    nodes = _parse_count(layers, "RTCTL_SOKETI_NODES", 1, MAX_NODES, sink)
    adapter = adapter_of(layers, nodes)
    drivers = shared_driver_defaults(adapter)
    for name, field_name in (
        ("SOKETI_ADAPTER_DRIVER", "adapter"),
        ("RTCTL_BUS_PORT", "bus_port"),
        ("RTCTL_CLUSTER_PREFIX", "cluster_prefix"),
        *((var, FIELD_NAMES[var]) for var in drivers),
    ):
        if not layers.get(name).strip():
            sources[field_name] = "derived"
    maxconn = layers.get("RTCTL_FRONT_DOOR_MAXCONN").strip()

    return Settings(
        provider=provider,  # type: ignore[arg-type]
        app_id=layers.get("PUSHER_APP_ID").strip(),
        key=layers.get("PUSHER_APP_KEY").strip(),
        secret=layers.get("PUSHER_APP_SECRET").strip(),
        cluster=layers.get("PUSHER_APP_CLUSTER").strip(),
        host=host,
        port=port,
        scheme=scheme,  # type: ignore[arg-type]
        metrics_port=_parse_port(layers, "SOKETI_METRICS_SERVER_PORT", 9601, sink),
        metrics_enabled=_parse_bool(layers, "SOKETI_METRICS_ENABLED", sink),
        client_messages=_parse_bool(layers, "SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES", sink),
        user_authentication=_parse_bool(layers, "SOKETI_DEFAULT_APP_USER_AUTHENTICATION", sink),
        app_manager_driver=layers.get("SOKETI_APP_MANAGER_DRIVER").strip(),
        encryption_master_key_base64=optional("PUSHER_ENCRYPTION_MASTER_KEY_BASE64"),
        monitor_token=optional("REALTIME_MONITOR_TOKEN"),
        emit_token=optional("REALTIME_EMIT_TOKEN"),
        jwt_secret=optional("REALTIME_JWT_SECRET"),
        jwt_public_key=optional("REALTIME_JWT_PUBLIC_KEY"),
        jwt_algorithms=listing("REALTIME_JWT_ALGORITHMS"),
        jwt_audience=optional("REALTIME_JWT_AUDIENCE"),
        jwt_issuer=optional("REALTIME_JWT_ISSUER"),
        cors_origins=listing("REALTIME_CORS_ORIGINS"),
        cors_headers=listing("REALTIME_CORS_HEADERS"),
        auth_hook=optional("REALTIME_AUTH_HOOK"),
        bot_id=layers.get("REALTIME_BOT_ID").strip(),
        bot_name=layers.get("REALTIME_BOT_NAME").strip(),
        bot_avatar=layers.get("REALTIME_BOT_AVATAR").strip(),
        ca_bundle=optional("RTCTL_CA_BUNDLE"),
        ssl_cert=optional("SOKETI_SSL_CERT"),
        ssl_key=optional("SOKETI_SSL_KEY"),
        env_file=layers.env_file,
        sources=sources,
        **_webhook_fields(layers, sources),
        nodes=nodes,
        adapter=adapter,
        bus_port=_parse_port(layers, "RTCTL_BUS_PORT", BUS_DEFAULT_PORTS.get(adapter, 6379), sink),
        cluster_prefix=layers.get("RTCTL_CLUSTER_PREFIX").strip()
        or f"rtctl-{layers.get('PUSHER_APP_ID').strip()}",
        front_door_processes=_parse_count(
            layers, "RTCTL_FRONT_DOOR_PROCESSES", 1, MAX_FRONT_DOOR_PROCESSES, sink
        ),
        front_door_maxconn=int(maxconn) if maxconn.isdigit() else None,
        cache_driver=layers.get("SOKETI_CACHE_DRIVER").strip().lower()
        or drivers["SOKETI_CACHE_DRIVER"],
        rate_limiter_driver=layers.get("SOKETI_RATE_LIMITER_DRIVER").strip().lower()
        or drivers["SOKETI_RATE_LIMITER_DRIVER"],
        queue_driver=layers.get("SOKETI_QUEUE_DRIVER").strip().lower()
        or drivers["SOKETI_QUEUE_DRIVER"],
        soketi_mode=layers.get("SOKETI_MODE").strip().lower() or drivers["SOKETI_MODE"],
    )


def _webhook_fields(layers: ConfigLayers, sources: dict[str, Source]) -> dict[str, Any]:
    webhooks = webhook_settings.from_layers(layers.get)
    if webhooks.urls:
        sources["soketi_webhooks"] = "derived"  # composed from REALTIME_WEBHOOK_*
    return {
        "webhook_urls": webhooks.urls,
        "webhook_events": webhooks.events,
        "webhook_channel_prefix": webhooks.channel_prefix,
        "webhook_channel_suffix": webhooks.channel_suffix,
        "webhook_batching": webhooks.batching,
        "webhook_batching_ms": webhooks.batching_ms,
        "webhook_max_age": webhooks.max_age,
        "webhook_hook": webhooks.hook,
        "webhook_dedup_window": webhooks.dedup_window,
        "soketi_webhooks": webhooks.soketi_json,
    }


def load_settings(
    env_file: Path | None = None,
    overrides: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
    require_credentials: bool = True,
) -> Settings:
    """Read the layers and build Settings in one call: the entry point for library users and
    tests. The CLI reads the layers once per run (``CliState``) and calls ``build_settings``."""
    return build_settings(read_layers(env_file, overrides, environ), require_credentials)
