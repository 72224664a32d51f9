"""What every command shares: the per-run state (settings built once) and shared options.
All output goes through rtctl.cli.output."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rtctl.config import ConfigLayers, Settings


@dataclass
class CliState:
    """Built by the root callback; commands ask it for settings (loaded once, lazily)."""

    env_file: Path | None
    overrides: dict[str, str | None] = field(default_factory=dict)
    json_mode: bool = False
    _cache: dict[bool, Settings] = field(default_factory=dict)

    def layers(self) -> ConfigLayers:
        from rtctl.config import read_layers

        return read_layers(self.env_file, self.overrides)

    def settings(self, require_credentials: bool = True) -> Settings:
        if require_credentials not in self._cache:
            from rtctl.config import build_settings

            self._cache[require_credentials] = build_settings(self.layers(), require_credentials)
        return self._cache[require_credentials]

    def env_path(self) -> Path:
        from rtctl.config import DEFAULT_ENV_FILE

        return self.env_file if self.env_file is not None else DEFAULT_ENV_FILE


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):  # invoked without the root callback (library use)
        root.obj = CliState(env_file=None)
    return root.obj


def json_mode(ctx: typer.Context, enabled: bool) -> bool:
    """Record that this run reports JSON, so errors are reported as JSON too."""
    if enabled:
        state(ctx).json_mode = True
    return enabled


def json_object_option(text: str, option: str) -> dict[str, Any]:
    """An option that takes a JSON object (e.g. --user-info), or a clear InvalidInput."""
    from rtctl.errors import InvalidInput

    example = f'{option} takes a JSON object, e.g. {option} \'{{"name":"Ann"}}\''
    from rtctl.protocol import strictjson

    try:
        value = strictjson.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{option} is not JSON ({exc}): {text[:60]!r}", hint=example) from None
    if not isinstance(value, dict):
        raise InvalidInput(
            f"{option} must be a JSON object, got {type(value).__name__}", hint=example
        )
    return value


# Shared option types, declared once.
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
