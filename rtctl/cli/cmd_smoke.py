"""CLI commands: `rtctl smoke`, end-to-end checks for CI (the core lives in rtctl.ops.smoke)."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rtctl.cli import output
from rtctl.cli.common import JsonOption, json_mode, state, timeout_option

if TYPE_CHECKING:
    from rtctl.ops.smoke import CheckResult, CheckSpec, SmokeReport

STATUS_LABEL = {"pass": "PASS", "fail": "FAIL", "skip": "skip"}
STATUS_STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow"}


def smoke(
    ctx: typer.Context,
    timeout: Annotated[
        float,
        timeout_option("Seconds each wait may take (handshake, subscription, delivery, cleanup)."),
    ] = 10.0,
    as_json: JsonOption = False,
    junit: Annotated[
        Path | None,
        typer.Option(
            "--junit",
            metavar="FILE",
            help="Also write a JUnit XML report to this file (its folder must exist).",
        ),
    ] = None,
    via_gateway: Annotated[
        str | None,
        typer.Option(
            "--via-gateway",
            metavar="URL",
            help="Gateway base URL: also subscribe through its /realtime/auth and emit through "
            "its /realtime/emit.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            metavar="JWT",
            envvar="RTCTL_SMOKE_TOKEN",
            help="A user's bearer token for the gateway's /realtime/auth (a JWT, or any session "
            "token with --token-kind opaque).",
            show_default=False,
        ),
    ] = None,
    token_kind: Annotated[
        str,
        typer.Option(
            "--token-kind",
            metavar="jwt|opaque",
            help="jwt: the channel private-{sub}_smoke… is derived from the token (rtctl's "
            "gateway rule); opaque: the token is only passed on, --gateway-channel names the "
            "channel.",
        ),
    ] = "jwt",
    gateway_channel: Annotated[
        str | None,
        typer.Option(
            "--gateway-channel",
            metavar="NAME",
            help="The private channel the token's user may join through the gateway, e.g. "
            "private-App.Models.User.42.",
            show_default=False,
        ),
    ] = None,
    emit_token: Annotated[
        str | None,
        typer.Option(
            "--emit-token",
            metavar="TOKEN",
            help="Service token for the gateway's /realtime/emit (default REALTIME_EMIT_TOKEN; "
            "none: emit without one).",
            show_default=False,
        ),
    ] = None,
    checks: Annotated[
        str | None,
        typer.Option(
            "--checks",
            metavar="LIST",
            help="Comma-separated subset to run (their prerequisites run too): config, health, "
            "connect, subscribe, deliver, client-event, cache, api-read, gateway, webhooks, "
            "cleanup; on a cluster also cluster-bus, cross-node, cross-node-client-event, "
            "cross-node-presence, cross-node-api, cross-node-terminate, failover.",
        ),
    ] = None,
    node: Annotated[
        list[str] | None,
        typer.Option(
            "--node",
            help="A cluster node's own HOST:PORT (repeat for each): adds the cross-node checks. "
            "Default: the nodes .env describes when RTCTL_SOKETI_NODES > 1.",
            show_default=False,
        ),
    ] = None,
    failover: Annotated[
        bool,
        typer.Option(
            "--failover",
            help="Also stop one node of the cluster rtctl started here (by PID), prove its "
            "clients reconnect through the front door and receive, then start it again.",
        ),
    ] = False,
) -> None:
    """Prove the deployment delivers end to end; exit 0 only if no check failed.

    Exit codes: 0 all passed (skips allowed), 3 config invalid, 4 unreachable, 5 auth rejected,
    6 no delivery in time, 1 any other failure; the first failed check decides.
    """
    from rtctl.errors import UsageError
    from rtctl.ops.smoke import SmokeOptions, run_smoke

    json_mode(ctx, as_json)
    if junit is not None:
        _check_writable(junit)
    from rtctl.ops.smoke_cluster import parse_node_addresses

    parse_node_addresses(node or [])  # a malformed --node is a usage error before any check
    options = SmokeOptions(
        timeout=timeout,
        checks=_parse_checks(checks),
        gateway_url=via_gateway,
        gateway_token=token,
        emit_token=emit_token,
        gateway_channel=gateway_channel,
        token_kind=token_kind,
        node_addresses=tuple(node or ()),
        failover=failover,
    )
    # An explicit --token without a gateway is a mistake; RTCTL_SMOKE_TOKEN set for a whole
    # pipeline is not.
    token_source = ctx.get_parameter_source("token")
    if token and not via_gateway and getattr(token_source, "name", "") == "COMMANDLINE":
        raise UsageError("--token is only used with --via-gateway URL", hint="add --via-gateway")
    cli_state = state(ctx)

    # A spinner naming the running check on a terminal; nothing extra off it (the table says all).
    with output.progress(
        "smoke: starting", enabled=output.stderr_is_terminal() and not as_json
    ) as update:

        def on_start(spec: "CheckSpec") -> None:
            update(f"smoke: {spec.name} ({spec.title})")

        report = run_smoke(cli_state.layers, options, on_start=on_start)

    if junit is not None:
        from rtctl.ops.junit import write_junit

        write_junit(report, junit)
    if as_json:
        output.data_json(report.to_dict())
    else:
        _render(report)
    failed = report.first_failure
    if failed is not None:
        from rtctl.errors import ReportPrinted

        raise ReportPrinted(
            f"smoke check {failed.name} failed: {failed.evidence}",
            hint=failed.hint,
            exit_code=report.exit_code,
        )


def _parse_checks(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _check_writable(path: Path) -> None:
    from rtctl.errors import UsageError

    if path.is_dir():
        raise UsageError(f"--junit {path} is a directory", hint="name a file, e.g. smoke.xml")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(
            f"--junit {path}: folder {folder} does not exist", hint=f"create it: mkdir -p {folder}"
        )


def _render(report: "SmokeReport") -> None:
    """The table is the report, so it goes to stdout; the failure summary goes to stderr."""
    from rich.table import Table

    table = Table(title=f"rtctl smoke {report.run_id}", title_justify="left", expand=False)
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("evidence", overflow="fold")
    for check in report.checks:
        table.add_row(
            check.name,
            f"[{STATUS_STYLE[check.status]}]{STATUS_LABEL[check.status]}[/]",
            f"{check.duration_ms:.0f} ms",
            _evidence_cell(check),
        )
    output.data_rich(table)
    counts = report.counts()
    target = f" against {report.target['api']}" if "api" in report.target else ""
    output.data(
        f"{report.verdict.upper()}: {counts['pass']} passed, {counts['fail']} failed, "
        f"{counts['skip']} skipped{target} in {report.duration_ms / 1000:.2f} s"
    )


def _evidence_cell(check: "CheckResult") -> str:
    from rich.markup import escape

    text = escape(output.printable(check.evidence))  # may quote what a server answered
    if check.status == "fail" and check.hint:
        text += f"\n[dim]hint: {escape(output.printable(check.hint))}[/]"
    return text


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("smoke")(smoke)
