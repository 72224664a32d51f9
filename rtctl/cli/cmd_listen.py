"""CLI command: listen (tail channels over the Pusher protocol). The loop lives in rtctl.ops.listen."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from rtctl.cli.common import COUNT, MAX_SECONDS, json_mode, json_object_option, number, state
from rtctl.cli.output import say

CHANNELS_HELP = "Channels to listen on: public, private-*, private-encrypted-*, presence-*."


def listen_command(
    ctx: typer.Context,
    channels: Annotated[
        list[str], typer.Argument(metavar="CHANNEL", help=CHANNELS_HELP, show_default=False)
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per event (NDJSON), flushed at once.")
    ] = False,
    count: Annotated[
        int | None,
        typer.Option("--count", parser=COUNT, metavar="N", help="Exit 0 after this many events."),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            parser=number(0.1, MAX_SECONDS),
            metavar="SECONDS",
            help="Give up after this many seconds (exit 6 if --count events, or none at all, "
            "arrived by then).",
        ),
    ] = None,
    events: Annotated[
        list[str] | None,
        typer.Option(
            "--event",
            metavar="NAME",
            help="Only show this event name (repeatable).",
            show_default=False,
        ),
    ] = None,
    as_user: Annotated[
        str | None,
        typer.Option(
            "--as-user", metavar="ID", help="Presence user id to sign for (needed for presence-*)."
        ),
    ] = None,
    user_info: Annotated[
        str | None,
        typer.Option("--user-info", metavar="JSON", help="Presence user_info as a JSON object."),
    ] = None,
    auth_endpoint: Annotated[
        str | None,
        typer.Option(
            "--auth-endpoint",
            metavar="URL",
            help="Authorize through this URL like pusher-js (form POST socket_id, channel_name) "
            "instead of signing with the local secret.",
        ),
    ] = None,
    auth_headers: Annotated[
        list[str] | None,
        typer.Option(
            "--auth-header",
            metavar="'NAME: VALUE'",
            help="Header for the auth endpoint, 'Name: value' (repeatable).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Tail channels: print every event (human lines, or NDJSON with --json) until Ctrl-C."""
    from rtctl.ops.listen import ListenOptions, check_options, listen, parse_headers

    json_mode(ctx, as_json)
    options = ListenOptions(
        channels=tuple(channels),
        json=as_json,
        count=count,
        timeout=timeout,
        events=frozenset(events or ()),
        user_id=as_user,
        user_info=None if user_info is None else json_object_option(user_info, "--user-info"),
        auth_endpoint=auth_endpoint,
        auth_headers=parse_headers(auth_headers or ()),
    )
    check_options(options)  # usage errors before the config is even read
    settings = state(ctx).settings()
    # Ctrl-C ends with 130 and a closed stdout (`| head -1`) quietly with 0, at the boundary.
    listen(settings, options, sys.stdout, say)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("listen", no_args_is_help=True)(listen_command)
