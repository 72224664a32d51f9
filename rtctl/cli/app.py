"""The Typer root: global options, the one error boundary, and command registration.

Command modules are imported here only to register their commands; each keeps heavy imports
(pusher, rich tables, websockets, starlette) inside its command bodies so `rtctl --help` stays fast.
"""

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

# Typer vendors Click (the version is pinned in pyproject.toml): its usage errors are Click's.
from typer._click.exceptions import ClickException, NoArgsIsHelpError
from typer.core import TyperGroup

from rtctl import __version__
from rtctl.cli import (
    cmd_bench,
    cmd_compat,
    cmd_config,
    cmd_console,
    cmd_events,
    cmd_gateway,
    cmd_listen,
    cmd_runtime,
    cmd_smoke,
    cmd_verify,
    cmd_webhooks,
    output,
)
from rtctl.cli.common import PORT, CliState, number_option
from rtctl.errors import (
    DEBUG_ENV,
    ExitCode,
    Interrupted,
    ReportPrinted,
    RtctlError,
    UsageError,
    filesystem_problem,
    internal_error,
)

ARGV_KEY = "rtctl.argv"


def _json_on_command_line(args: list[str]) -> bool:
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def _wants_json(ctx: typer.Context) -> bool:
    """--json was asked for: recorded by the command, or (for errors raised before the command
    ran, e.g. while reading its options) seen on the command line."""
    obj = ctx.obj
    if isinstance(obj, CliState) and obj.json_mode:
        return True
    return _json_on_command_line(ctx.meta.get(ARGV_KEY, []))


def _never_fail_on_encoding() -> None:
    """Whatever text reaches stdout or stderr, printing it never raises: what the stream's
    encoding cannot carry (a lone surrogate, or "€" on a Latin-1 terminal) is written as its
    backslash escape."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def _end_quietly_on_closed_stdout() -> None:
    """The reader went away (`rtctl listen --json | head -1`): keep Python from complaining
    about flushing the dead pipe at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


class RtctlGroup(TyperGroup):
    """The one error boundary: every way out of a command passes here and leaves with a code
    from ExitCode; typed errors become their message and code, never a traceback."""

    def main(  # type: ignore[override]
        self, args: list[str] | None = None, standalone_mode: bool = True, **extra: Any
    ) -> Any:
        """Also the boundary for what happens before a command runs: Click's usage errors
        (unknown option, bad value, missing argument) become the one error format, with the JSON
        line in --json mode, and exit 2."""
        _never_fail_on_encoding()
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode:
            return super().main(args=argv, standalone_mode=False, **extra)
        try:
            result = super().main(args=argv, standalone_mode=False, **extra)
        except NoArgsIsHelpError as error:  # `rtctl`, `rtctl bot`: what to type, not an error line
            output.say(error.format_message())
            sys.exit(ExitCode.USAGE)
        except ClickException as error:
            context = getattr(error, "ctx", None)
            where = context.command_path if context is not None else "rtctl"
            problem = UsageError(error.format_message().rstrip("."), hint=f"see `{where} --help`")
            output.error(problem, _json_on_command_line(argv))
            sys.exit(ExitCode.USAGE)
        except typer.Abort:  # a prompt ended by Ctrl-C or end of input
            output.error(Interrupted("aborted: nothing was changed"), False)
            sys.exit(ExitCode.INTERRUPTED)
        sys.exit(result if isinstance(result, int) else ExitCode.OK)

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        ctx.meta[ARGV_KEY] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except RtctlError as error:
            self._fail(ctx, error)
        except KeyboardInterrupt:
            raise typer.Exit(ExitCode.INTERRUPTED) from None
        except BrokenPipeError:
            _end_quietly_on_closed_stdout()
            raise typer.Exit(ExitCode.OK) from None
        except (typer.Exit, typer.Abort, ClickException):
            raise  # usage errors are reported by main(), with the same format
        except OSError as error:
            if error.filename is None:
                self._fail(ctx, internal_error(error))
            # a file or folder rtctl needs cannot be used: say which and why (exit 8)
            self._fail(ctx, filesystem_problem(error))
        except Exception as error:
            self._fail(ctx, internal_error(error))

    @staticmethod
    def _fail(ctx: typer.Context, error: RtctlError) -> None:
        if os.environ.get(DEBUG_ENV) and error.__traceback__ is not None:
            import traceback

            traceback.print_exception(error)
        if isinstance(error, ReportPrinted):
            output.verdict(error.message, error.hint)  # the report is the data, JSON included
        else:
            output.error(error, _wants_json(ctx))
        raise typer.Exit(ExitCode(error.exit_code)) from None


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
        output.data(f"rtctl {__version__}")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def root(
    ctx: typer.Context,
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file",
            metavar="PATH",
            help="The .env file to read (default ./.env).",
            envvar="RTCTL_ENV_FILE",
            show_default=False,
            readable=False,  # the loader reports unreadable files itself (exit 3, with a hint)
            dir_okay=True,
        ),
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider", metavar="soketi|pusher", help="Override REALTIME_PROVIDER for this run."
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option("--host", metavar="HOST", help="Override REALTIME_HOST for this run."),
    ] = None,
    port: Annotated[
        int | None,
        number_option(
            "--port", parser=PORT, metavar="PORT", help="Override REALTIME_PORT for this run."
        ),
    ] = None,
    scheme: Annotated[
        str | None,
        typer.Option(
            "--scheme", metavar="http|https", help="Override REALTIME_SCHEME for this run."
        ),
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
    cmd_compat,
    cmd_verify,
    cmd_gateway,
    cmd_console,
    cmd_bench,
):
    module.register(app)


def main() -> int:
    """Console-script entry point."""
    try:
        app(prog_name="rtctl")  # also under `python -m rtctl`: help and hints name the command
    except SystemExit as exit_:
        code = exit_.code
        return (
            int(code)
            if isinstance(code, int)
            else (ExitCode.OK if code is None else ExitCode.FAILED)
        )
    return ExitCode.OK
