"""CLI commands: init, switch, config, client-config (thin: parse, call the core, render)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rtctl.cli import output
from rtctl.cli.common import PORT, JsonOption, json_mode, state
from rtctl.cli.output import is_interactive

ShowSecrets = Annotated[
    bool, typer.Option("--show-secrets", help="Print secrets in full instead of masked.")
]
Cluster = Annotated[
    str | None, typer.Option("--cluster", help="Pusher cluster (PUSHER_APP_CLUSTER), e.g. eu.")
]
AppId = Annotated[str | None, typer.Option("--app-id", help="App id (PUSHER_APP_ID), digits.")]
Key = Annotated[str | None, typer.Option("--key", help="App key (PUSHER_APP_KEY).")]
Secret = Annotated[str | None, typer.Option("--secret", help="App secret (PUSHER_APP_SECRET).")]

_PROMPTS = {
    "PUSHER_APP_CLUSTER": "Pusher cluster (e.g. mt1, eu, us2)",
    "PUSHER_APP_ID": "Pusher app id",
    "PUSHER_APP_KEY": "Pusher app key",
    "PUSHER_APP_SECRET": "Pusher app secret",
}


def _prompt_missing(values: dict[str, str | None], fields: list[str]) -> None:
    """Ask on a terminal for what flags did not give (the secret without echo)."""
    for name in fields:
        if not values.get(name):
            values[name] = typer.prompt(
                _PROMPTS[name], hide_input=name == "PUSHER_APP_SECRET", err=True
            ).strip()


def init(
    ctx: typer.Context,
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider", help="soketi (self-hosted, default) or pusher.", show_default=False
        ),
    ] = None,
    directory: Annotated[
        Path, typer.Option("--dir", help="Folder to write .env and compose.yaml into.")
    ] = Path("."),
    force: Annotated[
        bool, typer.Option("--force", help="Replace existing files (a backup is kept).")
    ] = False,
    port: Annotated[
        int | None,
        typer.Option("--port", parser=PORT, metavar="PORT", help="Soketi port (default 6001)."),
    ] = None,
    metrics_port: Annotated[
        int,
        typer.Option("--metrics-port", parser=PORT, metavar="PORT", help="Soketi metrics port."),
    ] = 9601,
    cluster: Cluster = None,
    app_id: AppId = None,
    key: Key = None,
    secret: Secret = None,
    as_json: JsonOption = False,
) -> None:
    """Write a working .env with fresh credentials (and compose.yaml for Soketi)."""
    from rtctl.ops.initialize import initialize

    json_mode(ctx, as_json)
    root = state(ctx)
    chosen = provider or root.overrides.get("REALTIME_PROVIDER")
    if chosen is None and is_interactive() and not as_json:
        chosen = typer.prompt("Provider (soketi or pusher)", default="soketi", err=True)
    chosen = (chosen or "soketi").strip().lower()
    credentials: dict[str, str | None] = {
        "PUSHER_APP_CLUSTER": cluster,
        "PUSHER_APP_ID": app_id,
        "PUSHER_APP_KEY": key,
        "PUSHER_APP_SECRET": secret,
    }
    if chosen == "pusher":
        _require(credentials, "init --provider pusher", as_json)
    root_port = root.overrides.get("REALTIME_PORT")
    result = initialize(
        directory,
        provider=chosen,
        force=force,
        pusher_credentials={k: v for k, v in credentials.items() if v is not None},
        port=port or (int(root_port) if root_port else 6001),
        metrics_port=metrics_port,
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


def _require(values: dict[str, str | None], command: str, as_json: bool) -> None:
    """Prompt for missing Pusher credentials on a terminal; off one, name the missing flags."""
    from rtctl.errors import UsageError
    from rtctl.ops.initialize import CREDENTIAL_FLAGS

    missing = [name for name in _PROMPTS if not values.get(name)]
    if not missing:
        return
    if is_interactive() and not as_json:
        _prompt_missing(values, missing)
        return
    flags = ", ".join(CREDENTIAL_FLAGS[name] for name in missing)
    raise UsageError(
        f"{command} needs {flags} (Pusher credentials)",
        hint="pass them from the Pusher dashboard (App Keys), or run on a terminal to be prompted",
    )


def switch(
    ctx: typer.Context,
    provider: Annotated[str, typer.Argument(help="pusher or soketi", show_default=False)],
    cluster: Cluster = None,
    app_id: AppId = None,
    key: Key = None,
    secret: Secret = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the .env diff; write nothing.")
    ] = False,
    show_secrets: ShowSecrets = False,
    as_json: JsonOption = False,
) -> None:
    """Flip the provider in .env; switching back restores the old settings exactly."""
    import os

    from rtctl.ops.clientconfig import render_changes, render_js
    from rtctl.ops.switch import MissingCredentials, stash_path
    from rtctl.ops.switch import switch as run_switch

    json_mode(ctx, as_json)
    env_path = state(ctx).env_path()
    given: dict[str, str | None] = {
        "PUSHER_APP_CLUSTER": cluster,
        "PUSHER_APP_ID": app_id,
        "PUSHER_APP_KEY": key,
        "PUSHER_APP_SECRET": secret,
    }
    try:
        plan = run_switch(env_path, provider, given, os.environ, dry_run)
    except MissingCredentials as missing:
        if as_json or not is_interactive():
            raise
        _prompt_missing(given, missing.variables)
        plan = run_switch(env_path, provider, given, os.environ, dry_run)
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
    from rtctl.config import FIELD_VARIABLES, diagnose

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
    warnings = [p for p in diagnose(layers) if p.severity == "warning" or _unset(p)]
    if as_json:
        output.data_json(
            {
                "env_file": str(settings.env_file),
                "env_file_found": layers.env_file_found,
                "settings": rows,
                "problems": [
                    {"variable": p.variable, "message": p.message, "hint": p.hint} for p in warnings
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


def _unset(problem: object) -> bool:
    return str(getattr(problem, "message", "")).endswith(" is not set")


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
