"""`rtctl switch pusher|soketi`: flip the provider in .env without losing anything.

The provider-specific variables (SWITCHED) of the provider being left are stashed in a sidecar
file next to the .env (``.env.rtctl-stash``, mode 0600): the exact .env text, the text the switch
wrote, and the values. Switching back restores them:

- if the .env is still exactly what the switch wrote, the saved text comes back byte for byte;
- otherwise (someone edited it since), the saved values are put back key by key in place, so the
  edits survive too.

A sidecar rather than marked comments inside the .env: only a sidecar lets the round trip
soketi -> pusher -> soketi give back the identical file while still remembering the Pusher
credentials for the next `switch pusher`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rtctl.config import PROVIDERS, SECRET_VARIABLES, mask
from rtctl.envfile import Entry, EnvDocument, atomic_write, locked, read_text, replaceable
from rtctl.errors import ConfigError, Conflict, RtctlError, UsageError
from rtctl.ops.clientconfig import ClientConfig, client_config, option_changes
from rtctl.ops.initialize import (
    PUSHER_CREDENTIALS,
    check_credentials,
    generate_credentials,
    require_pusher_credentials,
    settings_of,
)

STASH_SUFFIX = ".rtctl-stash"
STASH_FORMAT = 1

# Everything that differs between a Soketi and a Pusher set-up. Unrelated keys (bot identity,
# gateway tokens, the encryption master key, SOKETI_* server settings) are never touched.
SWITCHED = (
    "REALTIME_PROVIDER",
    "REALTIME_HOST",
    "REALTIME_PORT",
    "REALTIME_SCHEME",
    "PUSHER_APP_ID",
    "PUSHER_APP_KEY",
    "PUSHER_APP_SECRET",
    "PUSHER_APP_CLUSTER",
    "SOKETI_DEFAULT_APP_ID",
    "SOKETI_DEFAULT_APP_KEY",
    "SOKETI_DEFAULT_APP_SECRET",
)
# What the switch itself sets or removes: never taken from the environment when judging its file.
DECIDED_BY_SWITCH = ("REALTIME_PROVIDER", "REALTIME_HOST", "REALTIME_PORT", "REALTIME_SCHEME")
SOKETI_DEFAULTS = {"REALTIME_HOST": "127.0.0.1", "REALTIME_PORT": "6001"}


def stash_path(env_path: Path) -> Path:
    return env_path.with_name(env_path.name + STASH_SUFFIX)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_stash(env_path: Path) -> dict[str, Any]:
    """The stashed providers ({} if none). A damaged stash is an error, never silently dropped."""
    path = stash_path(env_path)
    if not path.exists():
        return {}
    try:
        data = json.loads(read_text(path))
        stashes = data["stashes"]
        if data.get("format") != STASH_FORMAT or not isinstance(stashes, dict):
            raise ValueError
        for entry in stashes.values():
            if not isinstance(entry["text"], str) or not isinstance(entry["values"], dict):
                raise ValueError
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path} is not a stash written by rtctl switch",
            hint="move it away (it may hold the other provider's credentials), then retry",
        ) from exc
    return dict(stashes)


def _write_stash(env_path: Path, stashes: Mapping[str, Any]) -> None:
    path = stash_path(env_path)
    if not stashes:
        path.unlink(missing_ok=True)
        return
    document = {
        "format": STASH_FORMAT,
        "note": "written by `rtctl switch`: the settings of the provider not in use in "
        f"{env_path.name}; `rtctl switch <provider>` puts them back. Keep private.",
        "stashes": dict(stashes),
    }
    atomic_write(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")


@dataclass
class SwitchPlan:
    env_path: Path
    current: str
    target: str
    old_text: str
    new_text: str
    restored: str  # "exact" | "values" | "fresh"
    stashes: dict[str, Any] = field(default_factory=dict)
    client_before: ClientConfig | None = None
    client_after: ClientConfig | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def noop(self) -> bool:
        return self.current == self.target

    @property
    def changed_keys(self) -> list[str]:
        old, new = EnvDocument(self.old_text).values(), EnvDocument(self.new_text).values()
        return [key for key in dict.fromkeys([*old, *new]) if old.get(key) != new.get(key)]

    def diff(self, show_secrets: bool = False) -> str:
        """A unified diff of the .env, secret values masked."""
        lines = difflib.unified_diff(
            self.old_text.splitlines(keepends=True),
            self.new_text.splitlines(keepends=True),
            fromfile=f"{self.env_path} (now)",
            tofile=f"{self.env_path} (after switch {self.target})",
        )
        text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
        return text if show_secrets else mask_secrets(text, [self.old_text, self.new_text])

    def client_changes(self) -> dict[str, Any]:
        assert self.client_after is not None
        return option_changes(self.client_before, self.client_after)

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_file": str(self.env_path),
            "from": self.current,
            "to": self.target,
            "changed": not self.noop,
            "restored": self.restored,
            "changed_keys": self.changed_keys,
            "stash_file": str(stash_path(self.env_path)),
            "client": None
            if self.client_after is None
            else {
                "before": self.client_before.to_dict() if self.client_before else None,
                "after": self.client_after.to_dict(),
                "changes": self.client_changes(),
            },
            "warnings": self.warnings,
        }


def mask_secrets(text: str, sources: list[str]) -> str:
    """Replace every secret value found in ``sources`` by its masked form."""
    found: set[str] = set()
    for source in sources:
        values = EnvDocument(source).values()
        found |= {values[name] for name in SECRET_VARIABLES if values.get(name)}
    for secret in sorted(found, key=len, reverse=True):
        text = text.replace(secret, mask(secret))
    return text


def _client(text: str, path: Path) -> ClientConfig | None:
    try:
        return client_config(settings_of(text, path))
    except RtctlError:
        return None


def plan_switch(
    env_path: Path,
    target: str,
    given: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> SwitchPlan:
    """Work out the new .env for ``target`` without writing anything.

    ``given`` maps PUSHER_APP_ID/KEY/SECRET/CLUSTER to values from flags or prompts (None = not
    given). Raises MissingCredentials naming the flags when Pusher credentials are needed.
    """
    target = target.strip().lower()
    if target not in PROVIDERS:
        raise UsageError(
            f"unknown provider {target!r}",
            hint="use `rtctl switch soketi` or `rtctl switch pusher`",
        )
    old_text = read_text(env_path)
    document = EnvDocument(old_text)
    if document.errors():
        bad = document.errors()[0]
        raise ConfigError(
            f"{env_path} line {bad.line} cannot be parsed: {bad.statement.strip()[:60]!r}",
            hint="fix that line first (KEY=value); switch only edits a .env it fully understands",
        )
    current = (document.get("REALTIME_PROVIDER") or "soketi").strip().lower()
    if current not in PROVIDERS:
        raise ConfigError(
            f"REALTIME_PROVIDER={current!r} in {env_path} is not a known provider",
            hint="set REALTIME_PROVIDER=soketi or pusher in it, then switch",
        )
    plan = SwitchPlan(env_path, current, target, old_text, old_text, "none")
    environ = environ if environ is not None else {}
    shadowing = [name for name in SWITCHED if name in environ]
    if shadowing:
        plan.warnings.append(
            f"{', '.join(shadowing)} set in the environment override{'s' if len(shadowing) == 1 else ''} "
            f"{env_path.name}: unset {'it' if len(shadowing) == 1 else 'them'} to use the switched file"
        )
    given_values = {name: value for name, value in (given or {}).items() if value is not None}
    if plan.noop:
        differing = [name for name, value in given_values.items() if document.get(name) != value]
        if differing:  # never report "nothing to do" while dropping what the caller asked for
            raise Conflict(
                f"{env_path} already uses {target} with other values for "
                f"{', '.join(differing)}; nothing was written",
                hint=f"edit {env_path.name} to change them, or switch to the other provider "
                "and back",
            )
        return plan

    stashes = read_stash(env_path)
    saved = stashes.get(target)
    left = {name: document.get(name) for name in SWITCHED}

    if saved is not None and not given_values and _sha(old_text) == saved.get("written_sha256"):
        new_text, plan.restored = saved["text"], "exact"
    else:
        new_document = EnvDocument(old_text)
        if saved is not None:
            values: dict[str, str | None] = dict(saved["values"])
            plan.restored = "values"
        else:
            values = _fresh_values(target, document, given_values)
            plan.restored = "fresh"
        values.update(given_values)
        if target == "pusher" or given_values:
            check_credentials({name: values.get(name) or "" for name in PUSHER_CREDENTIALS})
        _apply_values(new_document, values, saved["text"] if saved else None, given_values)
        new_text = new_document.text

    # Judge the file being written: the environment may fill what the file leaves to it (CI keeps
    # credentials there), but never the provider and connection settings the switch decides. With
    # `set -a; . .env` those are exported, and the warning above says they override the file.
    fallback = {name: value for name, value in environ.items() if name not in DECIDED_BY_SWITCH}
    try:
        settings_of(new_text, env_path, fallback=fallback)
    except ConfigError as error:
        if plan.restored == "exact":  # the user's own earlier file: give it back, and say so
            plan.warnings.append(f"the restored {env_path.name} does not load: {error.message}")
        else:
            raise ConfigError(
                f"switching to {target} would leave {env_path} invalid: {error.message}",
                hint=error.hint,
            ) from error

    plan.new_text = new_text
    stashes.pop(target, None)
    stashes[current] = {
        "saved_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "text": old_text,
        "written_sha256": _sha(new_text),
        "values": left,
    }
    plan.stashes = stashes
    plan.client_before = _client(old_text, env_path)
    plan.client_after = _client(new_text, env_path)
    return plan


def _apply_values(
    document: EnvDocument,
    values: Mapping[str, str | None],
    saved_text: str | None,
    given: Mapping[str, str],
) -> None:
    """Set or delete each switched key. Keys coming back from a stash get their saved line
    verbatim, next to the key that preceded them when they were saved."""
    saved_entries: dict[str, Entry] = {}
    anchors: dict[str, str | None] = {}
    if saved_text is not None:
        previous: str | None = None
        for entry in EnvDocument(saved_text).entries:
            if entry.key is not None:
                saved_entries[entry.key], anchors[entry.key] = entry, previous
                previous = entry.key
    ordered = [name for name in saved_entries if name in SWITCHED]
    ordered += [name for name in SWITCHED if name not in saved_entries]
    for name in ordered:
        value = values.get(name)
        saved = saved_entries.get(name)
        if value is None:
            document.delete(name)
        elif saved is not None and name not in given and saved.value == value:
            document.place(name, value, saved.statement, after=anchors[name])
        else:
            document.set(name, value)


def _fresh_values(
    target: str, document: EnvDocument, given: Mapping[str, str]
) -> dict[str, str | None]:
    """Values for a provider never seen in this .env (no stash)."""
    values: dict[str, str | None] = dict.fromkeys(SWITCHED)
    values["REALTIME_PROVIDER"] = target
    if target == "pusher":
        require_pusher_credentials(given, "switch pusher")
        return values
    # Soketi accepts any credentials: fresh ones unless given; keep the cluster clients know.
    values.update(SOKETI_DEFAULTS)
    values.update(generate_credentials())
    values["PUSHER_APP_CLUSTER"] = document.get("PUSHER_APP_CLUSTER") or "mt1"
    return values


def switch(
    env_path: Path,
    target: str,
    given: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
    dry_run: bool = False,
) -> SwitchPlan:
    """Plan and (unless ``dry_run``) write the switch as one step: the .env is read and written
    under its lock, so two switches at once take turns and neither loses the other's update."""
    if dry_run:
        return plan_switch(env_path, target, given, environ)
    with locked(env_path):
        plan = plan_switch(env_path, target, given, environ)
        apply_switch(plan)
    return plan


def apply_switch(plan: SwitchPlan) -> None:
    """Write the plan: stash first (so nothing is lost if we die), then .env, then tidy the stash.

    No .bak file: the stash entry of the provider being left holds the old .env text verbatim.
    A .env that changed since the plan was made is refused, never overwritten.
    """
    if plan.noop:
        return
    replaceable(plan.env_path)  # before the stash is written next to it
    with locked(plan.env_path):
        if read_text(plan.env_path) != plan.old_text:
            raise Conflict(
                f"{plan.env_path} changed while the switch was being prepared; nothing was written",
                hint=f"run `rtctl switch {plan.target}` again",
            )
        _write_switch(plan)


def _write_switch(plan: SwitchPlan) -> None:
    interim = dict(read_stash(plan.env_path))
    interim.update(plan.stashes)
    _write_stash(plan.env_path, interim)
    atomic_write(plan.env_path, plan.new_text)
    _write_stash(plan.env_path, plan.stashes)
