"""`rtctl init`: a working .env (and compose.yaml) with fresh credentials.

Credentials follow what the two consumers accept: the pusher Python SDK wants a numeric app id;
Soketi JSON-parses its env values, so a key or secret that parses as a number crashes it. Keys and
secrets here always start with a letter, so they can never parse as JSON numbers.
"""

from __future__ import annotations

import base64
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from rtctl.config import (
    PREFIXES,
    PROVIDERS,
    ConfigLayers,
    Settings,
    Source,
    build_settings,
    credential_problems,
)
from rtctl.envfile import EnvDocument, atomic_write, locked
from rtctl.errors import ConfigError, Conflict, UsageError, filesystem_problem
from rtctl.runtime.docker import COMPOSE_FILE, compose_template

ENV_NAME = ".env"
_LOWER = string.ascii_lowercase
_ALNUM = string.ascii_lowercase + string.digits

# Which flag fills which variable, so errors name what the user typed.
CREDENTIAL_FLAGS = {
    "PUSHER_APP_ID": "--app-id",
    "PUSHER_APP_KEY": "--key",
    "PUSHER_APP_SECRET": "--secret",
    "PUSHER_APP_CLUSTER": "--cluster",
}
# What a Pusher set-up needs from the dashboard, in the order people are asked for it.
PUSHER_CREDENTIALS = ("PUSHER_APP_CLUSTER", "PUSHER_APP_ID", "PUSHER_APP_KEY", "PUSHER_APP_SECRET")


class MissingCredentials(UsageError):
    """Pusher credentials that no flag (or stash) provides; the CLI asks for ``variables`` on a
    terminal and tries again, and off a terminal this is the error."""

    def __init__(self, command: str, variables: list[str]) -> None:
        self.variables = variables
        flags = ", ".join(CREDENTIAL_FLAGS[name] for name in variables)
        super().__init__(
            f"{command} needs {flags} (Pusher credentials)",
            hint="pass them from the Pusher dashboard (App Keys), or run on a terminal to be "
            "prompted",
        )


def require_pusher_credentials(values: Mapping[str, str | None], command: str) -> None:
    missing = [name for name in PUSHER_CREDENTIALS if not values.get(name)]
    if missing:
        raise MissingCredentials(command, missing)


def random_token(length: int) -> str:
    """Lowercase letters and digits, first character a letter (never a JSON number)."""
    return secrets.choice(_LOWER) + "".join(secrets.choice(_ALNUM) for _ in range(length - 1))


def generate_credentials() -> dict[str, str]:
    """A 6-digit app id, a 20-character key, a 32-character secret (Reverb's shape, longer)."""
    return {
        "PUSHER_APP_ID": str(100000 + secrets.randbelow(900000)),
        "PUSHER_APP_KEY": random_token(20),
        "PUSHER_APP_SECRET": random_token(32),
    }


def generate_master_key() -> str:
    """32 random bytes, base64: the encrypted-channel master key."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def check_credentials(values: Mapping[str, str]) -> None:
    """Refuse credentials given on the command line that Soketi or the SDK would refuse."""
    cluster = values.get("PUSHER_APP_CLUSTER", "")
    if not cluster or not all(ch in _ALNUM + "-" for ch in cluster):
        raise UsageError(
            f"--cluster {cluster!r} is not a cluster name",
            hint="use your app's cluster from the Pusher dashboard, e.g. mt1, eu, us2, ap1",
        )
    problems = credential_problems(
        values.get("PUSHER_APP_ID", ""),
        values.get("PUSHER_APP_KEY", ""),
        values.get("PUSHER_APP_SECRET", ""),
    )
    if problems:
        first = problems[0]
        flag = CREDENTIAL_FLAGS[first.variable]
        raise UsageError(f"{flag}: {first.message}", hint=first.hint)


def webhook_section(url: str) -> str:
    return f"""
# Webhooks: Soketi posts them here (`rtctl webhooks listen` receives at this URL by default);
# rtctl composes Soketi's SOKETI_DEFAULT_APP_WEBHOOKS from it. Every event type unless
# REALTIME_WEBHOOK_EVENTS lists some.
REALTIME_WEBHOOK_URL={url}
"""


def topology_lines(nodes: int, adapter: str | None) -> str:
    """The .env block that says how many nodes `rtctl up` runs, and on which adapter."""
    if nodes <= 1:
        return (
            "# One Soketi. `rtctl up --nodes 3 --adapter redis` runs a cluster instead: the bus,\n"
            "# three nodes and one front door on REALTIME_PORT (docs/cluster.md).\n"
            "# RTCTL_SOKETI_NODES=1\n"
        )
    return (
        f"# {nodes} Soketi nodes joined by {adapter}, behind one front door (HAProxy) on\n"
        "# REALTIME_HOST:REALTIME_PORT. Node i listens on 127.0.0.1:REALTIME_PORT+i, its metrics on\n"
        "# SOKETI_METRICS_SERVER_PORT+i-1; the bus on RTCTL_BUS_PORT (docs/cluster.md).\n"
        f"RTCTL_SOKETI_NODES={nodes}\n"
        f"SOKETI_ADAPTER_DRIVER={adapter}\n"
    )


def soketi_env(
    credentials: Mapping[str, str],
    port: int,
    metrics_port: int,
    cluster: str = "mt1",
    webhook_url: str | None = None,
    nodes: int = 1,
    adapter: str | None = None,
) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    webhooks = webhook_section(webhook_url) if webhook_url else ""
    return f"""\
# Written by `rtctl init` ({now}). Every variable is explained in .env.example.
# Keep this file private (mode 0600): it holds the app secret.

# Where clients and rtctl connect: a local Soketi.
REALTIME_PROVIDER=soketi
REALTIME_HOST=127.0.0.1
REALTIME_PORT={port}
REALTIME_SCHEME=http

# App credentials: the one source of truth. Soketi gets them as SOKETI_DEFAULT_APP_* from these
# (compose.yaml interpolates them; the native runtime passes them), so the two cannot drift.
PUSHER_APP_ID={credentials["PUSHER_APP_ID"]}
PUSHER_APP_KEY={credentials["PUSHER_APP_KEY"]}
PUSHER_APP_SECRET={credentials["PUSHER_APP_SECRET"]}
PUSHER_APP_CLUSTER={cluster}
PUSHER_ENCRYPTION_MASTER_KEY_BASE64={generate_master_key()}

# Soketi: the array app manager (no database), client events on, Prometheus metrics on.
SOKETI_APP_MANAGER_DRIVER=array
SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES=true
SOKETI_DEFAULT_APP_USER_AUTHENTICATION=false
SOKETI_METRICS_ENABLED=true
SOKETI_METRICS_SERVER_PORT={metrics_port}
{webhooks}

{topology_lines(nodes, adapter)}
# The bot user that answers in DM channels (private-<user>_<bot>).
REALTIME_BOT_ID=9000000
REALTIME_BOT_NAME=Coach
REALTIME_BOT_AVATAR=/assets/bot.png
"""


def pusher_env(credentials: Mapping[str, str]) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"""\
# Written by `rtctl init --provider pusher` ({now}). Every variable is explained in .env.example.
# Keep this file private (mode 0600): it holds the app secret.

# Pusher Channels: hosts come from the cluster (ws-<cluster>.pusher.com, api-<cluster>...), TLS on.
REALTIME_PROVIDER=pusher

# App credentials from the Pusher dashboard (App Keys).
PUSHER_APP_ID={credentials["PUSHER_APP_ID"]}
PUSHER_APP_KEY={credentials["PUSHER_APP_KEY"]}
PUSHER_APP_SECRET={credentials["PUSHER_APP_SECRET"]}
PUSHER_APP_CLUSTER={credentials["PUSHER_APP_CLUSTER"]}

# The bot user that answers in DM channels (private-<user>_<bot>).
REALTIME_BOT_ID=9000000
REALTIME_BOT_NAME=Coach
REALTIME_BOT_AVATAR=/assets/bot.png
"""


def settings_of(text: str, path: Path, fallback: Mapping[str, str] | None = None) -> Settings:
    """Load a .env text as rtctl will, raising if it is not valid.

    ``fallback`` (the process environment) only fills variables the text lacks, so the text's
    own values are what is checked, while credentials kept in the environment still count.
    """
    values = EnvDocument(text).values()
    sources: dict[str, Source] = dict.fromkeys(values, ".env")
    for name, value in (fallback or {}).items():
        if name.startswith(PREFIXES) and name not in values:
            values[name], sources[name] = value, "env"
    return build_settings(ConfigLayers(values, sources, path, True))


@dataclass
class InitResult:
    provider: str
    directory: Path
    written: list[Path] = field(default_factory=list)
    backups: list[Path] = field(default_factory=list)
    settings: Settings | None = None


def initialize(
    directory: Path,
    provider: str = "soketi",
    force: bool = False,
    pusher_credentials: Mapping[str, str] | None = None,
    port: int = 6001,
    metrics_port: int = 9601,
    webhook_url: str | None = None,
    nodes: int = 1,
    adapter: str | None = None,
) -> InitResult:
    """Write .env (and compose.yaml for soketi) into ``directory``. Nothing is written on error.

    ``webhook_url``: where Soketi posts webhooks (REALTIME_WEBHOOK_URL); Soketi only.
    With ``nodes`` > 1 the .env names the node count and adapter, and compose.yaml describes
    the whole cluster (bus, nodes, front door)."""
    provider = provider.strip().lower()
    if provider not in PROVIDERS:
        raise UsageError(
            f"--provider {provider!r} is not a known provider",
            hint="use --provider soketi (self-hosted, the default) or --provider pusher",
        )
    if webhook_url is not None:
        if provider == "pusher":
            raise UsageError(
                "with Pusher, webhooks are set in its dashboard (your app > Webhooks), not in .env",
                hint="add the URL there; `rtctl webhooks listen` verifies what arrives",
            )
        from rtctl.webhook_settings import URL, url_problem

        problem = url_problem(webhook_url, "--webhook-url")
        if problem:
            raise UsageError(
                problem, hint=f"e.g. --webhook-url http://127.0.0.1:6080/webhooks ({URL})"
            )
    if directory.exists() and not directory.is_dir():
        raise Conflict(f"{directory} is not a folder", hint="pass --dir with a folder path")
    env_path, compose_path = directory / ENV_NAME, directory / COMPOSE_FILE
    files: dict[Path, str] = {}
    if provider == "soketi":
        if nodes > 1:
            adapter = adapter or "redis"
        files[env_path] = soketi_env(
            generate_credentials(),
            port,
            metrics_port,
            webhook_url=webhook_url,
            nodes=nodes,
            adapter=adapter,
        )
        if nodes > 1:
            from rtctl.runtime.docker import render_cluster

            files[compose_path] = render_cluster(settings_of(files[env_path], env_path))
        else:
            files[compose_path] = compose_template()
    else:
        values = dict(pusher_credentials or {})
        require_pusher_credentials(values, "init --provider pusher")
        check_credentials(values)
        files[env_path] = pusher_env(values)

    result = InitResult(provider, directory)
    result.settings = _loadable(files[env_path], env_path)  # refuse to write what cannot load
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise filesystem_problem(exc, "create the folder") from None
    # Checked and written under the .env's lock: two `init` at once never both write.
    with locked(env_path):
        _refuse_existing(files, force)
        for path, text in files.items():
            saved = atomic_write(path, text, backup=True)
            result.written.append(path)
            if saved is not None:
                result.backups.append(saved)
    return result


def _loadable(text: str, env_path: Path) -> Settings:
    """The settings of the file about to be written; a problem in it comes from the options."""
    try:
        return settings_of(text, env_path)
    except ConfigError as error:
        raise UsageError(f"{error.message}; nothing was written", hint=error.hint) from None


def _refuse_existing(files: dict[Path, str], force: bool) -> None:
    """Drop files already identical (compose.yaml); refuse others unless ``force``."""
    for path, text in list(files.items()):  # an identical file (compose.yaml) is no conflict
        if path.is_file() and path.read_bytes() == text.encode("utf-8"):
            del files[path]
    existing = [path for path in files if path.exists() or path.is_symlink()]
    if existing and not force:
        names = " and ".join(str(path) for path in existing)
        raise Conflict(
            f"{names} already exist{'s' if len(existing) == 1 else ''}; nothing was written",
            hint="pass --force to replace (the old files are kept as *.bak-<time>), "
            "or --dir to write elsewhere",
        )
    for path in existing:
        if path.is_dir():
            raise Conflict(f"{path} is a directory", hint="remove it or pass --dir elsewhere")
