"""The Typer root: global options, the one error boundary, and command registration.

Command modules are imported here only to register their commands; each keeps heavy imports
(pusher, rich tables, websockets, starlette) inside its command bodies so `rtctl --help` stays fast.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from rtctl import __version__
from rtctl.cli import (
    cmd_bench,
    cmd_config,
    cmd_events,
    cmd_gateway,
    cmd_listen,
    cmd_runtime,
    cmd_smoke,
    cmd_webhooks,
)
from rtctl.cli.common import CliState, print_ndjson
from rtctl.errors import ExitCode, RtctlError

DEBUG_ENV = "RTCTL_DEBUG"


def _wants_json(ctx: typer.Context) -> bool:
    obj = ctx.obj
    if isinstance(obj, CliState) and obj.json_mode:
        return True
    args = list(getattr(ctx, "protected_args", []) or []) + list(ctx.args or [])
    return "--json" in args


def report_error(error: RtctlError, as_json: bool) -> None:
    """One line naming what is wrong, then the hint, on stderr; JSON on stdout in --json mode."""
    if as_json:
        # One line, so it also ends an NDJSON stream (listen --json) as a parseable record.
        print_ndjson({"error": error.to_dict()})
    sys.stderr.write(f"error: {error.message}\n")
    if error.hint:
        sys.stderr.write(f"hint: {error.hint}\n")
    sys.stderr.flush()


class RtctlGroup(TyperGroup):
    """The error boundary: typed errors become a message and their exit code, never a traceback."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except RtctlError as error:
            if os.environ.get(DEBUG_ENV):
                traceback.print_exc()
            report_error(error, _wants_json(ctx))
            raise typer.Exit(int(error.exit_code)) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt, BrokenPipeError):
            raise  # a closed stdout (`rtctl config | head`) ends quietly in Typer's own handler
        except Exception as error:
            if getattr(error, "exit_code", None) is not None and type(error).__module__.startswith(
                "typer"
            ):
                raise  # Typer's/Click's own usage errors print themselves (exit 2)
            if os.environ.get(DEBUG_ENV):
                traceback.print_exc()
            internal = RtctlError(
                f"unexpected {type(error).__name__}: {error}",
                hint=f"this is a bug in rtctl; set {DEBUG_ENV}=1 to see the traceback and report it",
            )
            report_error(internal, _wants_json(ctx))
            raise typer.Exit(int(ExitCode.FAILED)) from None


app = typer.Typer(
    cls=RtctlGroup,
    name="rtctl",
    help="Operate and test Pusher-protocol realtime deployments: Soketi today, Pusher tomorrow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # locals would show secrets
    rich_markup_mode=None,  # plain help is ~60 ms faster
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"rtctl {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file",
            help="The .env file to read (default ./.env).",
            envvar="RTCTL_ENV_FILE",
            show_default=False,
            readable=False,  # the loader reports unreadable files itself (exit 3, with a hint)
            dir_okay=True,
        ),
    ] = None,
    provider: Annotated[
        str | None, typer.Option("--provider", help="Override REALTIME_PROVIDER (soketi|pusher).")
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="Override REALTIME_HOST.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Override REALTIME_PORT.")] = None,
    scheme: Annotated[
        str | None, typer.Option("--scheme", help="Override REALTIME_SCHEME (http|https).")
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Global options apply to every command: flags > environment > .env > defaults."""
    overrides: dict[str, str | None] = {
        "REALTIME_PROVIDER": provider,
        "REALTIME_HOST": host,
        "REALTIME_PORT": None if port is None else str(port),
        "REALTIME_SCHEME": scheme,
    }
    ctx.obj = CliState(env_file=env_file, overrides=overrides)


for module in (
    cmd_config,
    cmd_runtime,
    cmd_events,
    cmd_listen,
    cmd_webhooks,
    cmd_smoke,
    cmd_gateway,
    cmd_bench,
):
    module.register(app)


def main() -> int:
    """Console-script entry point."""
    try:
        app()
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return 0
