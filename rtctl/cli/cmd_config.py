"""CLI commands: init, switch, config, client-config (thin: parse, call the core, render)."""

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from rtctl.cli import output
from rtctl.cli.cmd_runtime import AdapterOption, NodesOption
from rtctl.cli.common import PORT, JsonOption, json_mode, number_option, state
from rtctl.cli.output import is_interactive

ShowSecrets = Annotated[
    bool, typer.Option("--show-secrets", help="Print secrets in full instead of masked.")
]
Cluster = Annotated[
    str | None,
    typer.Option(
        "--cluster", metavar="CLUSTER", help="Pusher cluster (PUSHER_APP_CLUSTER), e.g. eu."
    ),
]
AppId = Annotated[
    str | None, typer.Option("--app-id", metavar="ID", help="App id (PUSHER_APP_ID), digits.")
]
Key = Annotated[str | None, typer.Option("--key", metavar="KEY", help="App key (PUSHER_APP_KEY).")]
Secret = Annotated[
    str | None,
    typer.Option(
        "--secret",
        metavar="SECRET",
        help="App secret (PUSHER_APP_SECRET); prompted without echo on a terminal.",
    ),
]

_PROMPTS = {
    "PUSHER_APP_CLUSTER": "Pusher cluster (e.g. mt1, eu, us2)",
    "PUSHER_APP_ID": "Pusher app id",
    "PUSHER_APP_KEY": "Pusher app key",
    "PUSHER_APP_SECRET": "Pusher app secret",
}
T = TypeVar("T")


def _credentials(
    cluster: str | None, app_id: str | None, key: str | None, secret: str | None
) -> dict[str, str | None]:
    return {
        "PUSHER_APP_CLUSTER": cluster,
        "PUSHER_APP_ID": app_id,
        "PUSHER_APP_KEY": key,
        "PUSHER_APP_SECRET": secret,
    }


def _asking_for_missing(given: dict[str, str | None], as_json: bool, attempt: Callable[[], T]) -> T:
    """Run ``attempt``; when it needs Pusher credentials no flag gave, ask for them on a terminal
    (the secret without echo) and run it again. Off a terminal, or with --json, the error stands."""
    from rtctl.ops.initialize import MissingCredentials

    try:
        return attempt()
    except MissingCredentials as missing:
        if as_json or not is_interactive():
            raise
        for name in missing.variables:
            given[name] = typer.prompt(
                _PROMPTS[name], hide_input=name == "PUSHER_APP_SECRET", err=True
            ).strip()
        return attempt()


def init(
    ctx: typer.Context,
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            metavar="soketi|pusher",
            help="soketi (self-hosted, the default) or pusher; asked on a terminal. "
            "The global --provider works too.",
            show_default=False,
        ),
    ] = None,
    directory: Annotated[
        Path,
        typer.Option(
            "--dir",
            metavar="DIR",
            help="Folder to write .env and compose.yaml into (created if missing).",
        ),
    ] = Path("."),
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace existing files; each old one is first copied to "
            "NAME.bak-<UTC time> (mode 0600).",
        ),
    ] = False,
    port: Annotated[
        int | None,
        number_option(
            "--port",
            parser=PORT,
            metavar="PORT",
            help="Soketi port written to REALTIME_PORT (default 6001, or the global --port).",
        ),
    ] = None,
    metrics_port: Annotated[
        int,
        number_option(
            "--metrics-port",
            parser=PORT,
            metavar="PORT",
            help="Soketi metrics port written to SOKETI_METRICS_SERVER_PORT.",
        ),
    ] = 9601,
    cluster: Cluster = None,
    app_id: AppId = None,
    key: Key = None,
    secret: Secret = None,
    webhooks: Annotated[
        bool,
        typer.Option(
            "--webhooks",
            help="Send webhooks to `rtctl webhooks listen` (REALTIME_WEBHOOK_URL="
            "http://127.0.0.1:6080/webhooks).",
        ),
    ] = False,
    webhook_url: Annotated[
        str | None,
        typer.Option("--webhook-url", metavar="URL", help="Send webhooks to this URL instead."),
    ] = None,
    nodes: NodesOption = None,
    adapter: AdapterOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write a working .env with fresh credentials (and compose.yaml for Soketi).

    --nodes N --adapter redis|nats: a cluster (N Soketi nodes behind one front door), written to
    .env and to compose.yaml, so `rtctl up` starts it.
    """
    from rtctl.cli.cmd_runtime import topology_overrides
    from rtctl.ops.initialize import initialize
    from rtctl.webhook_settings import DEFAULT_LISTEN_URL

    json_mode(ctx, as_json)
    root = state(ctx)
    chosen = provider or root.overrides.get("REALTIME_PROVIDER")
    if chosen is None and is_interactive() and not as_json:
        chosen = typer.prompt("Provider (soketi or pusher)", default="soketi", err=True)
    chosen = (chosen or "soketi").strip().lower()
    given = _credentials(cluster, app_id, key, secret)
    root_port = root.overrides.get("REALTIME_PORT")
    topology = topology_overrides(nodes, adapter)
    result = _asking_for_missing(
        given,
        as_json,
        lambda: initialize(
            directory,
            provider=chosen,
            force=force,
            pusher_credentials={k: v for k, v in given.items() if v is not None},
            port=port or (int(root_port) if root_port else 6001),
            metrics_port=metrics_port,
            webhook_url=webhook_url or (DEFAULT_LISTEN_URL if webhooks else None),
            nodes=int(topology.get("RTCTL_SOKETI_NODES", "1")),
            adapter=topology.get("SOKETI_ADAPTER_DRIVER"),
        ),
    )
    if as_json:
        output.data_json(
            {
                "provider": result.provider,
                "written": [str(path) for path in result.written],
                "backups": [str(path) for path in result.backups],
                "settings": result.settings.public_dict() if result.settings else None,
            }
        )
        return
    for saved in result.backups:
        output.say(f"kept the old file as {saved}")
    for path in result.written:
        output.data(str(path))
    if result.provider == "soketi":
        output.say("wrote fresh credentials; next: `rtctl up` starts Soketi with them")
    else:
        output.say("wrote your Pusher credentials; next: `rtctl doctor` checks they work")


def switch(
    ctx: typer.Context,
    provider: Annotated[
        str,
        typer.Argument(help="The provider to switch to: pusher or soketi.", show_default=False),
    ],
    cluster: Cluster = None,
    app_id: AppId = None,
    key: Key = None,
    secret: Secret = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the unified diff of .env (secrets masked); write nothing, no stash either.",
        ),
    ] = False,
    show_secrets: ShowSecrets = False,
    as_json: JsonOption = False,
) -> None:
    """Flip the provider in .env; switching back restores the old settings exactly."""
    import os

    from rtctl.ops.clientconfig import render_changes, render_js
    from rtctl.ops.switch import stash_path
    from rtctl.ops.switch import switch as run_switch

    json_mode(ctx, as_json)
    env_path = state(ctx).env_path()
    given = _credentials(cluster, app_id, key, secret)
    # planned and written in one step under the .env's lock (see rtctl.ops.switch.switch)
    plan = _asking_for_missing(
        given, as_json, lambda: run_switch(env_path, provider, given, os.environ, dry_run)
    )
    for warning in plan.warnings:
        output.say(f"warning: {warning}")
    if plan.noop:
        if as_json:
            output.data_json({**plan.to_dict(), "dry_run": dry_run})
        output.say(f"{env_path} already uses {plan.target}: nothing to do")
        return
    if dry_run:
        if as_json:
            output.data_json(
                {**plan.to_dict(), "dry_run": True, "diff": plan.diff(show_secrets=show_secrets)}
            )
        else:
            output.data_raw(plan.diff(show_secrets=show_secrets))
            output.say(f"dry run: {env_path} was not changed")
        return
    if as_json:
        output.data_json({**plan.to_dict(), "dry_run": False})
        return
    how = {
        "exact": f"restored the {plan.target} settings saved when you left it",
        "values": f"restored the saved {plan.target} values (the file was edited since)",
        "fresh": f"set up {plan.target}",
    }[plan.restored]
    output.say(f"{env_path}: switched from {plan.current} to {plan.target} ({how})")
    output.say(
        f"the {plan.current} settings are kept in {stash_path(env_path)}; "
        f"`rtctl switch {plan.current}` restores them"
    )
    if plan.client_after is not None:
        output.say(f"client side (pusher-js): {render_changes(plan.client_changes())}")
        output.data_raw(render_js(plan.client_after))


def config(
    ctx: typer.Context, show_secrets: ShowSecrets = False, as_json: JsonOption = False
) -> None:
    """Show the resolved settings and where each value came from."""
    from rtctl.config import FIELD_VARIABLES, ProblemKind, diagnose

    json_mode(ctx, as_json)
    root = state(ctx)
    settings = root.settings(require_credentials=False)
    values = settings.public_dict(show_secrets=show_secrets)
    rows: dict[str, dict[str, object]] = {}
    for name, value in values.items():
        variable = FIELD_VARIABLES.get(name)
        source = settings.sources.get(name, "derived" if variable is None else "default")
        if name == "env_file":
            source = "flag" if root.env_file is not None else "default"
        rows[name] = {"value": value, "variable": variable, "source": source}
    layers = root.layers()  # found: any readable file, /dev/null (no settings) included
    warnings = [
        p
        for p in diagnose(layers)
        if p.severity == "warning" or p.kind is ProblemKind.CREDENTIAL_MISSING
    ]
    if as_json:
        output.data_json(
            {
                "env_file": str(settings.env_file),
                "env_file_found": layers.env_file_found,
                "settings": rows,
                "problems": [
                    {
                        "variable": p.variable,
                        "kind": p.kind.value,
                        "message": p.message,
                        "hint": p.hint,
                    }
                    for p in warnings
                ],
            }
        )
        return
    table = [
        (name, str(row["source"]), str(row["variable"] or "-"), _plain(row["value"]))
        for name, row in rows.items()
    ]
    widths = [max(len(line[column]) for line in table) for column in range(3)]
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        output.data("  ".join([*cells, line[3]]))
    if not layers.env_file_found:
        output.say(f"note: {settings.env_file} not found; showing defaults and environment")
    for problem in warnings:
        output.say(f"warning: {problem.message} ({problem.hint})")


def _plain(value: object) -> str:
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return output.printable(",".join(str(item) for item in value))
    return output.printable(str(value))


def client_config(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Print the pusher-js options for the current provider (a JS snippet, or --json)."""
    from rtctl.ops.clientconfig import client_config as build
    from rtctl.ops.clientconfig import render_js

    json_mode(ctx, as_json)
    result = build(state(ctx).settings())
    if as_json:
        output.data_json(result.to_dict())
    else:
        output.data_raw(render_js(result))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("init")(init)
    app.command("switch")(switch)
    app.command("config")(config)
    app.command("client-config")(client_config)
