"""CLI command: `rtctl compat`, where the deployment deviates from Pusher (core: rtctl.ops.compat)."""

from typing import TYPE_CHECKING, Annotated

import typer

from rtctl.cli import output
from rtctl.cli.common import JsonOption, json_mode, number, number_option, state, timeout_option

if TYPE_CHECKING:
    from rtctl.ops.compat import CompatReport

LABEL = {"same": "same", "deviates": "DEVIATES", "unknown": "unknown"}
STYLE = {"same": "green", "deviates": "bold yellow", "unknown": "dim"}
PROBES_HELP = (
    "payload-size, client-events-public, activity-timeout, error-status, long-channel-names, "
    "presence-members, webhooks, subscription-count, auth-timestamp"
)


def compat(
    ctx: typer.Context,
    require: Annotated[
        str | None,
        typer.Option(
            "--require",
            metavar="LIST",
            help="Comma-separated points the app relies on (or all): exit 1 if any of them "
            f"deviates or cannot be decided. Points: {PROBES_HELP}.",
        ),
    ] = None,
    probes: Annotated[
        str | None,
        typer.Option("--probes", metavar="LIST", help="Run only these probes (default: all)."),
    ] = None,
    timeout: Annotated[
        float,
        timeout_option("Seconds each connection or request may take."),
    ] = 10.0,
    webhook_listen: Annotated[
        str | None,
        typer.Option(
            "--webhook-listen",
            metavar="HOST:PORT",
            help="Receive the deployment's webhooks here (its webhook URL must point to this "
            "address) to probe their bodies, the vacate delay and retries.",
        ),
    ] = None,
    webhook_wait: Annotated[
        float,
        number_option(
            "--webhook-wait",
            parser=number(0.5, 3600),
            metavar="SECONDS",
            help="How long to wait for a webhook, and for a failed one to come again.",
        ),
    ] = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Probe the deployment for every known difference from Pusher, and what it means after
    `rtctl switch`; exit 0 unless a point given to --require deviates."""
    from rtctl.errors import ExitCode, ReportPrinted
    from rtctl.ops.compat import parse_names, run_compat

    json_mode(ctx, as_json)
    required = parse_names(require, "--require")
    chosen = parse_names(probes, "--probes")
    settings = state(ctx).settings()
    with output.progress(
        "compat: starting", enabled=output.stderr_is_terminal() and not as_json
    ) as update:
        report = run_compat(
            settings,
            chosen or None,
            required,
            timeout,
            on_start=lambda name: update(f"compat: probing {name}"),
            webhook_listen=webhook_listen,
            webhook_wait=webhook_wait,
        )
    if as_json:
        output.data_json(report.to_dict())
    else:
        _render(report)
    failed = report.failed_requirements
    if failed:
        names = ", ".join(f"{p.name} ({p.status})" for p in failed)
        raise ReportPrinted(
            f"required point{'s' if len(failed) > 1 else ''} not as on Pusher: {names}",
            hint="the report says, point by point, what an app relying on it sees after the switch",
            exit_code=ExitCode.FAILED,
        )


def _render(report: "CompatReport") -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=f"rtctl compat: {report.provider} at {report.target['api']} vs Pusher",
        title_justify="left",
    )
    table.add_column("point", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("observed here / on Pusher / after the switch", overflow="fold")
    for probe in report.probes:
        mark = " (required)" if probe.name in report.required else ""
        text = escape(probe.evidence)
        if probe.pusher:
            text += f"\n[dim]Pusher: {escape(probe.pusher)}[/]"
        if probe.impact:
            text += f"\n{escape(probe.impact)}"
        table.add_row(probe.name + mark, f"[{STYLE[probe.status]}]{LABEL[probe.status]}[/]", text)
    output.data_rich(table)
    counts = report.to_dict()["counts"]
    output.data(
        f"{counts['deviates']} deviate, {counts['same']} as on Pusher, "
        f"{counts['unknown']} undecided"
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("compat")(compat)
