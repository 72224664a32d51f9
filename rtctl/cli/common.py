"""What every command shares: the per-run state (settings built once) and shared options.
All output goes through rtctl.cli.output."""

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rtctl.limits import MAX_WAIT_SECONDS

if TYPE_CHECKING:
    from rtctl.config import ConfigLayers, Settings


@dataclass
class CliState:
    """Built by the root callback; commands ask it for settings (loaded once, lazily)."""

    env_file: Path | None
    overrides: dict[str, str | None] = field(default_factory=dict)
    json_mode: bool = False
    _cache: "dict[bool, Settings]" = field(default_factory=dict)

    def layers(self) -> "ConfigLayers":
        from rtctl.config import read_layers

        return read_layers(self.env_file, self.overrides)

    def settings(self, require_credentials: bool = True) -> "Settings":
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


# --- numbers in options -------------------------------------------------------------------------

MAX_COUNT = 1_000_000_000


@dataclass(frozen=True)
class Number:
    """The one parser for numeric options: a finite number (a whole one with ``integer``) from
    ``low`` (excluded with ``above``) to ``high``. ``inf``, ``nan`` and out-of-range values are
    usage errors (exit 2) naming the option, before any command runs. Declare such options with
    ``number_option``, which also shows the range in --help."""

    low: float
    high: float
    integer: bool = False
    above: bool = False

    def __call__(self, text: Any) -> float | int:
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            value: float | int = text  # a default, already a number
        else:
            try:
                value = int(str(text).strip()) if self.integer else float(str(text).strip())
            except ValueError:
                kind = "a whole number" if self.integer else "a number"
                raise typer.BadParameter(f"{str(text)!r} is not {kind}") from None
        if not math.isfinite(value):
            raise typer.BadParameter(f"{text} is not a finite number")
        if value < self.low or (self.above and value == self.low) or value > self.high:
            low = f"above {_shown(self.low)} up" if self.above else f"from {_shown(self.low)}"
            raise typer.BadParameter(
                f"{text} is out of range: use a number {low} to {_shown(self.high)}"
            )
        return value


def number(low: float, high: float, *, integer: bool = False, above: bool = False) -> Number:
    return Number(low, high, integer, above)


def number_option(*names: str, parser: Number, **options: Any) -> Any:
    """``typer.Option`` for a number: parsed by ``parser``, its range shown in --help."""
    return typer.Option(
        *names,
        parser=parser,
        min=None if parser.above else parser.low,
        max=parser.high,
        **options,
    )


def _shown(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


SECONDS = number(0, MAX_WAIT_SECONDS, above=True)
EACH_WAIT = number(0.1, 3600)  # a --timeout on each wait (a connection, a request): up to an hour
WHOLE_RUN = number(0.1, MAX_WAIT_SECONDS)  # a --timeout on a whole run (listen, follow, start)
PORT = number(1, 65535, integer=True)
LISTEN_PORT = number(0, 65535, integer=True)  # a port a server of rtctl's serves on: 0 picks one
COUNT = number(1, MAX_COUNT, integer=True)


def timeout_option(help: str, parser: Number = EACH_WAIT) -> Any:
    """``--timeout SECONDS``: every command says in ``help`` what exactly it bounds."""
    return number_option("--timeout", parser=parser, metavar="SECONDS", help=help)


# Shared option types, declared once: the same option with the same meaning wherever it appears.
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
NdjsonOption = Annotated[
    bool, typer.Option("--json", help="One JSON object per event (NDJSON), flushed at once.")
]
# What `emit` and `send-to-user` publish (rtctl.ops.publish.read_data reads it).
DataOption = Annotated[
    str | None,
    typer.Option(
        "--data",
        "-d",
        metavar="JSON|@FILE|-",
        help="JSON data: inline, @file, or - for stdin (default {}); sent verbatim.",
    ),
]
RawOption = Annotated[
    bool, typer.Option("--raw", help="Send --data as is, without checking it is JSON.")
]
AllowLargeOption = Annotated[
    bool,
    typer.Option("--allow-large", help="Allow data up to 100 KB (Soketi), not Pusher's 10 KB."),
]
# The address a server rtctl runs (the gateway, the webhook receiver) listens on.
ListenHostOption = Annotated[
    str,
    typer.Option("--host", metavar="HOST", help="Address to listen on (loopback by default)."),
]
