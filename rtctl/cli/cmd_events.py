"""CLI commands of the event path: auth, emit, send-to-user, bot say, channels, channel, users,
terminate.

Thin: parse options, call rtctl.protocol.signing / rtctl.ops.publish / rtctl.protocol.httpapi, render. Heavy modules
(pusher, requests, rich tables) are imported inside the command bodies.
"""

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rtctl.cli import output
from rtctl.cli.common import (
    COUNT,
    AllowLargeOption,
    DataOption,
    JsonOption,
    RawOption,
    json_mode,
    json_object_option,
    number,
    number_option,
    state,
)
from rtctl.errors import UsageError

if TYPE_CHECKING:
    from rtctl.config import Settings
    from rtctl.protocol.httpapi import ApiClient

HTTP_TIMEOUT = 10.0

bot_app = typer.Typer(
    name="bot",
    help="Speak as the bot user (the bot-user pattern's chat_message).",
    no_args_is_help=True,
)


def _client(settings: "Settings") -> "ApiClient":
    from rtctl.protocol.httpapi import ApiClient

    return ApiClient(settings, timeout=HTTP_TIMEOUT)


# --- auth ----------------------------------------------------------------------------------------


def auth(
    ctx: typer.Context,
    channel: Annotated[
        str | None,
        typer.Argument(
            metavar="CHANNEL",
            help="private-*, presence-* or private-encrypted-* channel.",
            show_default=False,
        ),
    ] = None,
    socket_id: Annotated[
        str,
        typer.Option(
            "--socket-id", metavar="ID", help="The connection's socket id (e.g. 1234.5678)."
        ),
    ] = "",
    user_id: Annotated[
        str | None,
        typer.Option("--user-id", metavar="ID", help="User id (presence channels, --user)."),
    ] = None,
    user_info: Annotated[
        str | None,
        typer.Option("--user-info", metavar="JSON", help="User info as a JSON object."),
    ] = None,
    user: Annotated[
        bool, typer.Option("--user", help="Sign a user sign-in (pusher:signin) instead.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Print the exact JSON an auth endpoint returns for CHANNEL (or a user sign-in with --user)."""
    json_mode(ctx, as_json)
    from rtctl.protocol.signing import (
        authenticate_user,
        authorize_channel,
        channel_kind,
        compact_json,
        presence_channel_data,
    )
    from rtctl.protocol.validation import validate_channel

    if not socket_id:
        raise UsageError(
            "--socket-id is required", hint="the socket id arrives in pusher:connection_established"
        )
    info_value = json_object_option(user_info, "--user-info") if user_info is not None else None
    settings = state(ctx).settings()
    if user:
        if channel is not None:
            raise UsageError(
                "--user signs a user, not a channel", hint="drop CHANNEL, or drop --user"
            )
        if not user_id:
            raise UsageError(
                "--user needs --user-id", hint="rtctl auth --user --socket-id ID --user-id 123"
            )
        user_data: dict[str, Any] = {"id": user_id}
        if info_value is not None:
            user_data["user_info"] = info_value
        response = authenticate_user(settings.key, settings.secret, socket_id, user_data)
    else:
        if channel is None:
            raise UsageError(
                "name the channel to authorize", hint="rtctl auth private-123 --socket-id 1234.5678"
            )
        validate_channel(channel)
        channel_data = None
        if channel_kind(channel) == "presence":
            if not user_id:
                raise UsageError(
                    f"presence channel {channel!r} needs --user-id",
                    hint="rtctl auth presence-room --socket-id ID --user-id 123 --user-info '{}'",
                )
            channel_data = presence_channel_data(user_id, info_value)
        elif user_id is not None or user_info is not None:
            raise UsageError(
                "--user-id/--user-info apply to presence channels and --user only",
                hint="drop them for a private channel",
            )
        response = authorize_channel(
            settings.key, settings.secret, socket_id, channel, channel_data, settings.master_key
        )
    output.data(compact_json(response))


# --- emit ----------------------------------------------------------------------------------------


def emit(
    ctx: typer.Context,
    channels: Annotated[
        str | None,
        typer.Argument(
            metavar="CHANNEL[,CHANNEL…]",
            help="One channel, or several separated by commas (up to 100).",
            show_default=False,
        ),
    ] = None,
    event: Annotated[
        str | None, typer.Argument(metavar="EVENT", help="Event name.", show_default=False)
    ] = None,
    data: DataOption = None,
    raw: RawOption = False,
    socket_id: Annotated[
        str | None,
        typer.Option("--socket-id", metavar="ID", help="Exclude this connection from delivery."),
    ] = None,
    batch: Annotated[
        str | None,
        typer.Option(
            "--batch",
            metavar="FILE",
            help="NDJSON file of {channel, event, data, socket_id} lines (- for stdin).",
        ),
    ] = None,
    count: Annotated[
        int,
        number_option(
            "--count", "-n", parser=COUNT, metavar="N", help="Send the event this many times."
        ),
    ] = 1,
    rate: Annotated[
        float | None,
        number_option(
            "--rate",
            parser=number(0, 1_000_000, above=True),
            metavar="RATE",
            help="Pace sending to this many events per second.",
        ),
    ] = None,
    allow_large: AllowLargeOption = False,
    no_payload_check: Annotated[
        bool,
        typer.Option(
            "--no-payload-check",
            help="Send a chat_message whose data is not the bot's shape (another app's payload).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Trigger EVENT on channels through the HTTP API (validated against Pusher's limits)."""
    json_mode(ctx, as_json)
    from rtctl.ops import publish
    from rtctl.protocol.validation import Event

    if batch is not None:
        if channels is not None or event is not None:
            raise UsageError(
                "--batch takes channels and events from the file",
                hint="rtctl emit --batch events.ndjson (without CHANNEL and EVENT)",
            )
        if count != 1 or data is not None or socket_id is not None:
            raise UsageError(
                "--batch cannot be combined with --count, --data or --socket-id",
                hint="put data and socket_id on each NDJSON line",
            )
    elif channels is None or event is None:
        raise UsageError(
            "name a channel and an event", hint="rtctl emit my-channel my-event --data '{}'"
        )
    settings = state(ctx).settings()
    one: Event | None = None
    if batch is not None:
        events = publish.read_batch_file(
            batch, allow_large, settings.master_key, check_payload=not no_payload_check
        )
        stream: Any = events
        total = len(events)
    else:
        one = publish.check_event(
            Event(
                channels=publish.split_channels(channels or ""),
                name=event or "",
                data=publish.read_data(data, raw),
                socket_id=socket_id,
            ),
            allow_large,
            settings.master_key,
            check_payload=not no_payload_check,
        )
        stream = publish.repeat(one, count)
        total = count
    progress = output.Counter("sent", total)
    with _client(settings) as client:
        try:
            result = publish.emit(client, stream, total, rate, progress)
        except KeyboardInterrupt:
            # a request cut short may still have reached the server: "confirmed", not "sent"
            output.say(
                f"interrupted: {progress.done} of {total} events were confirmed by the server"
            )
            raise
    if as_json:
        summary: dict[str, Any] = {"ok": True}
        if one is not None:
            summary.update(channels=list(one.channels), event=one.name)
        summary.update(result.to_dict())
        output.data_json(summary)
    elif one is not None and total == 1:
        output.say(f"sent {one.name} to {','.join(one.channels)}")
    else:
        output.say(
            f"sent {result.sent} events in {result.batches} requests, "
            f"{result.elapsed:.2f} s, {result.rate:.0f}/s"
        )


# --- send-to-user --------------------------------------------------------------------------------


def send_to_user(
    ctx: typer.Context,
    user_id: Annotated[
        str, typer.Argument(metavar="USER_ID", help="The signed-in user.", show_default=False)
    ],
    event: Annotated[str, typer.Argument(metavar="EVENT", help="Event name.", show_default=False)],
    data: DataOption = None,
    raw: RawOption = False,
    allow_large: AllowLargeOption = False,
    as_json: JsonOption = False,
) -> None:
    """Send EVENT to one user's signed-in connections (#server-to-user-USER_ID, pusher.user.bind)."""
    json_mode(ctx, as_json)
    from rtctl.ops import publish
    from rtctl.protocol.validation import Event, server_to_user_channel

    channel = server_to_user_channel(user_id)
    settings = state(ctx).settings()
    one = publish.check_event(
        Event(channels=(channel,), name=event, data=publish.read_data(data, raw)),
        allow_large,
        settings.master_key,
    )
    with _client(settings) as client:
        client.trigger(one)
    if as_json:
        output.data_json({"ok": True, "user_id": user_id, "channel": channel, "event": one.name})
    else:
        output.say(f"sent {one.name} to user {user_id} ({channel})")


# --- bot say -------------------------------------------------------------------------------------


@bot_app.command("say")
def bot_say(
    ctx: typer.Context,
    text: Annotated[
        str, typer.Argument(metavar="TEXT", help="What the bot says.", show_default=False)
    ],
    to: Annotated[
        str, typer.Option("--to", metavar="USER_ID", help="User id to message (required).")
    ] = "",
    audio_url: Annotated[
        str | None,
        typer.Option("--audio-url", metavar="URL", help="Audio for the message (audio_url)."),
    ] = None,
    allow_large: AllowLargeOption = False,
    as_json: JsonOption = False,
) -> None:
    """Publish a chat_message from the bot on private-{USER}_{BOT_ID}."""
    json_mode(ctx, as_json)
    from rtctl.ops import publish
    from rtctl.protocol.payloads import CHAT_EVENT, bot_message
    from rtctl.protocol.signing import compact_json
    from rtctl.protocol.validation import Event

    if not to:
        raise UsageError("--to is required", hint='rtctl bot say --to 123 "Great! Keep going."')
    settings = state(ctx).settings()
    message = bot_message(
        to, text, settings.bot_id, settings.bot_name, settings.bot_avatar, audio_url
    )
    payload = message.to_dict()
    event = publish.check_event(
        Event(channels=(message.channel,), name=CHAT_EVENT, data=compact_json(payload)),
        allow_large,
        settings.master_key,
    )
    with _client(settings) as client:
        client.trigger(event)
    if as_json:
        output.data_json(
            {"ok": True, "channel": message.channel, "event": CHAT_EVENT, "data": payload}
        )
    else:
        output.say(output.printable(f"{settings.bot_name} -> {message.channel}: {text}"))


# --- queries -------------------------------------------------------------------------------------


def _table(columns: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    table = Table(box=None, show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:  # names and ids come from the server (and whoever created them)
        table.add_row(*(output.printable(cell) for cell in row))
    output.data_rich(table)


def channels_cmd(
    ctx: typer.Context,
    prefix: Annotated[
        str | None,
        typer.Option(
            "--prefix",
            metavar="PREFIX",
            help="Only channels whose name starts with this (presence-: with user counts).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List occupied channels."""
    json_mode(ctx, as_json)
    settings = state(ctx).settings()
    with _client(settings) as client:
        found = client.channels(prefix)
    if as_json:
        output.data_json({"channels": found})
        return
    if not found:
        output.say("no occupied channels" + (f" starting with {prefix!r}" if prefix else ""))
        return
    rows = [
        [
            name,
            str(attrs.get("subscription_count", "")),
            str(attrs.get("user_count", "")),
        ]
        for name, attrs in sorted(found.items())
    ]
    _table(["CHANNEL", "SUBSCRIPTIONS", "USERS"], rows)


def channel_cmd(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="CHANNEL", help="Channel name.", show_default=False)
    ],
    as_json: JsonOption = False,
) -> None:
    """Show one channel: occupied, subscription count, user count (presence)."""
    json_mode(ctx, as_json)
    settings = state(ctx).settings()
    with _client(settings) as client:
        details = client.channel(name)
    if as_json:
        output.data_json({"channel": name, **details})
        return
    rows = [
        [key, json.dumps(value) if not isinstance(value, str) else value]
        for key, value in sorted(details.items())
    ]
    _table(["CHANNEL", name], rows)


def users_cmd(
    ctx: typer.Context,
    channel: Annotated[
        str,
        typer.Argument(metavar="PRESENCE_CHANNEL", help="presence-* channel.", show_default=False),
    ],
    as_json: JsonOption = False,
) -> None:
    """List the users on a presence channel."""
    json_mode(ctx, as_json)
    settings = state(ctx).settings()
    with _client(settings) as client:
        ids = client.users(channel)
    if as_json:
        output.data_json({"channel": channel, "users": [{"id": user_id} for user_id in ids]})
        return
    if not ids:
        output.say(f"no users on {channel}")
        return
    _table(["USER ID"], [[user_id] for user_id in ids])


def terminate_cmd(
    ctx: typer.Context,
    user_id: Annotated[
        str, typer.Argument(metavar="USER_ID", help="User id whose connections to close.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Close every signed-in connection of USER_ID (the user may reconnect)."""
    json_mode(ctx, as_json)
    from rtctl.protocol.validation import validate_user_id

    validate_user_id(user_id)
    settings = state(ctx).settings()
    with _client(settings) as client:
        client.terminate(user_id)
    if as_json:
        output.data_json({"ok": True, "user_id": user_id, "terminated": True})
    else:
        output.say(
            output.printable(
                f"asked the server to close the signed-in connections of user {user_id}"
            )
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("auth")(auth)
    app.command("emit")(emit)
    app.command("send-to-user")(send_to_user)
    app.add_typer(bot_app, name="bot")
    app.command("channels")(channels_cmd)
    app.command("channel")(channel_cmd)
    app.command("users")(users_cmd)
    app.command("terminate")(terminate_cmd)
