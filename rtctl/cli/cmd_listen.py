"""CLI command: listen (tail channels over the Pusher protocol). The loop lives in rtctl.ops.listen."""

import sys
from typing import Annotated

import typer

from rtctl.cli.common import (
    COUNT,
    WHOLE_RUN,
    NdjsonOption,
    json_mode,
    json_object_option,
    number_option,
    state,
    timeout_option,
)
from rtctl.cli.output import say

CHANNELS_HELP = (
    "Channels to listen on: public, private-*, private-encrypted-*, presence-*, and the cache-* "
    "forms of each."
)


def listen_command(
    ctx: typer.Context,
    channels: Annotated[
        list[str] | None,
        typer.Argument(metavar="CHANNEL", help=CHANNELS_HELP, show_default=False),
    ] = None,
    as_json: NdjsonOption = False,
    count: Annotated[
        int | None,
        number_option(
            "--count",
            parser=COUNT,
            metavar="N",
            help="Exit 0 after this many events were printed (after --event filtering).",
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        timeout_option(
            "Give up after this many seconds: exit 6 if fewer than --count events arrived "
            "(without --count: if none did), else exit 0. Also bounds reconnect attempts.",
            WHOLE_RUN,
        ),
    ] = None,
    events: Annotated[
        list[str] | None,
        typer.Option(
            "--event",
            metavar="NAME",
            help="Print only this event name; repeatable. Filtered events do not count.",
            show_default=False,
        ),
    ] = None,
    as_user: Annotated[
        str | None,
        typer.Option(
            "--as-user",
            metavar="ID",
            help="User id to sign for: presence-* channels (channel_data user_id; needed unless "
            "--auth-endpoint picks the user), and --signin.",
        ),
    ] = None,
    user_info: Annotated[
        str | None,
        typer.Option(
            "--user-info",
            metavar="JSON",
            help="The presence user_info, a JSON object (needs --as-user).",
        ),
    ] = None,
    auth_endpoint: Annotated[
        str | None,
        typer.Option(
            "--auth-endpoint",
            metavar="URL",
            help="Authorize through this endpoint as pusher-js does (form POST of socket_id and "
            "channel_name) instead of signing with the local secret.",
        ),
    ] = None,
    auth_headers: Annotated[
        list[str] | None,
        typer.Option(
            "--auth-header",
            metavar="'NAME: VALUE'",
            help="Extra header for the auth endpoint, e.g. 'Authorization: Bearer …'; repeatable.",
            show_default=False,
        ),
    ] = None,
    signin: Annotated[
        bool,
        typer.Option(
            "--signin",
            help="Sign in as the user (pusher:signin) and also show events sent to that user "
            "(#server-to-user-ID), as pusher-js' pusher.user.bind receives them.",
        ),
    ] = False,
    user_auth_endpoint: Annotated[
        str | None,
        typer.Option(
            "--user-auth-endpoint",
            metavar="URL",
            help="With --signin: get the sign-in from this URL like pusher-js' userAuthentication "
            "(form POST socket_id; --auth-header applies) instead of signing locally.",
        ),
    ] = None,
) -> None:
    """Tail channels: print every event (human lines, or NDJSON with --json) until Ctrl-C."""
    from rtctl.ops.listen import ListenOptions, check_options, listen, parse_headers

    json_mode(ctx, as_json)
    options = ListenOptions(
        channels=tuple(channels or ()),
        json=as_json,
        count=count,
        timeout=timeout,
        events=frozenset(events or ()),
        user_id=as_user,
        user_info=None if user_info is None else json_object_option(user_info, "--user-info"),
        auth_endpoint=auth_endpoint,
        auth_headers=parse_headers(auth_headers or ()),
        signin=signin,
        user_auth_endpoint=user_auth_endpoint,
    )
    check_options(options)  # usage errors before the config is even read
    settings = state(ctx).settings()
    # Ctrl-C ends with 130 and a closed stdout (`| head -1`) quietly with 0, at the boundary.
    listen(settings, options, sys.stdout, say)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("listen", no_args_is_help=True)(listen_command)
