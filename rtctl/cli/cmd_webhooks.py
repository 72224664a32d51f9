"""CLI commands: `rtctl webhooks listen | trigger | verify | replay`.

Thin: options in, rtctl.ops.webhook_* and rtctl.protocol.webhooks do the work, results rendered
here. Data (events, answers, verdicts) to stdout; progress and refusals to stderr.
"""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rtctl.cli import output
from rtctl.cli.common import (
    COUNT,
    EACH_WAIT,
    LISTEN_PORT,
    MAX_COUNT,
    WHOLE_RUN,
    JsonOption,
    ListenHostOption,
    NdjsonOption,
    json_mode,
    number,
    number_option,
    state,
    timeout_option,
)
from rtctl.limits import MAX_WAIT_SECONDS

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rtctl.ops.webhook_sender import Sent

webhooks_app = typer.Typer(
    name="webhooks",
    help="Receive, verify, send and replay webhooks (Soketi and Pusher).",
    no_args_is_help=True,
)

EVENT_TYPES_HELP = (
    "channel_occupied, channel_vacated, member_added, member_removed, client_event, cache_miss, "
    "subscription_count"
)
Timeout = Annotated[
    float,
    timeout_option("Seconds to wait for the answer."),
]
# Verifying, whether as the receiver (listen) or after the fact (verify): the same window.
MaxAge = Annotated[
    float | None,
    number_option(
        "--max-age",
        parser=number(0, MAX_WAIT_SECONDS),
        metavar="SECONDS",
        help="Refuse deliveries whose time_ms is further than this from now (default "
        "REALTIME_WEBHOOK_MAX_AGE, 300; 0 = no limit).",
        show_default=False,
    ),
]
AppEndpoint = Annotated[
    str, typer.Option("--to", metavar="URL", help="Your app's webhook endpoint (required).")
]


# --- listen --------------------------------------------------------------------------------------


@webhooks_app.command("listen")
def listen_command(
    ctx: typer.Context,
    host: ListenHostOption = "127.0.0.1",
    port: Annotated[
        int | None,
        number_option(
            "--port",
            metavar="PORT",
            parser=LISTEN_PORT,
            help="Port (default: REALTIME_WEBHOOK_URL's, else 6080; 0 picks a free one).",
            show_default=False,
        ),
    ] = None,
    path: Annotated[
        str | None,
        typer.Option(
            "--path",
            metavar="PATH",
            help="Path to receive on (default: REALTIME_WEBHOOK_URL's, else /webhooks).",
            show_default=False,
        ),
    ] = None,
    as_json: NdjsonOption = False,
    count: Annotated[
        int | None,
        number_option("--count", parser=COUNT, metavar="N", help="Exit 0 after this many events."),
    ] = None,
    timeout: Annotated[
        float | None,
        timeout_option(
            "Give up after this many seconds (exit 6 if --count events, or none at all, "
            "arrived by then).",
            WHOLE_RUN,
        ),
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option(
            "--record",
            metavar="FILE",
            help="Append every request (headers and raw body, refused ones too) as NDJSON.",
        ),
    ] = None,
    forward_to: Annotated[
        str | None,
        typer.Option(
            "--forward-to",
            metavar="URL",
            help="Re-post each verified delivery, bytes and headers unchanged, to your app.",
        ),
    ] = None,
    forward_timeout: Annotated[
        float,
        number_option(
            "--forward-timeout",
            metavar="SECONDS",
            parser=EACH_WAIT,
            help="Seconds to wait for your app.",
        ),
    ] = 10.0,
    max_age: MaxAge = None,
    max_body: Annotated[
        int,
        number_option(
            "--max-body",
            parser=number(1, 1024**3, integer=True),
            metavar="BYTES",
            help="Refuse larger bodies (413).",
        ),
    ] = 1024 * 1024,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="TYPE",
            help="Show only this event type (repeatable).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Receive webhooks, verify each (key, signature, time_ms) and print it; refusals go to stderr.

    Answers 200 to a verified delivery; 401 unsigned, other key, bad signature or stale
    time_ms; 400 not a webhook or truncated; 411 no length; 413 too large; 415 not JSON.
    """
    from rtctl.ops.webhook_listen import ListenOptions, listen
    from rtctl.ops.webhook_sender import check_url

    json_mode(ctx, as_json)
    options = ListenOptions(
        host=host,
        port=port,
        path=path,
        json=as_json,
        count=count,
        timeout=timeout,
        record=record,
        forward_to=None if forward_to is None else check_url(forward_to, "--forward-to"),
        forward_timeout=forward_timeout,
        max_age=max_age,
        max_body=max_body,
        events=frozenset(_event_types(only or [], "--only")),
    )
    settings = state(ctx).settings()
    # Ctrl-C ends with 130 and a closed stdout (`| head -1`) quietly with 0, at the boundary.
    listen(settings, options, sys.stdout, output.say)


def _event_types(names: list[str], option: str) -> list[str]:
    from rtctl.errors import UsageError
    from rtctl.protocol.webhooks import EVENT_TYPES

    for name in names:
        if name not in EVENT_TYPES:
            raise UsageError(
                f"{option} {name!r} is not a webhook event type",
                hint="choose from: " + ", ".join(EVENT_TYPES),
            )
    return names


# --- trigger -------------------------------------------------------------------------------------


@webhooks_app.command("trigger")
def trigger_command(
    ctx: typer.Context,
    event_types: Annotated[
        list[str],
        typer.Argument(
            metavar="EVENT", help=f"Event types: {EVENT_TYPES_HELP}.", show_default=False
        ),
    ],
    channel: Annotated[
        str,
        typer.Option(
            "--channel", metavar="CHANNEL", help="Channel name (required).", show_default=False
        ),
    ] = "",
    to: AppEndpoint = "",
    user_id: Annotated[
        str,
        typer.Option(
            "--user-id", metavar="ID", help="user_id of member and presence client events."
        ),
    ] = "1",
    event: Annotated[
        str, typer.Option("--event", metavar="NAME", help="Client event name (client_event).")
    ] = "client-event",
    data: Annotated[
        str,
        typer.Option("--data", metavar="JSON", help="Client event data (client_event), JSON text."),
    ] = '{"hello":"world"}',
    socket_id: Annotated[
        str, typer.Option("--socket-id", metavar="ID", help="Sender socket id (client_event).")
    ] = "123.456",
    subscription_count: Annotated[
        int,
        number_option(
            "--subscription-count",
            metavar="N",
            parser=number(0, MAX_COUNT, integer=True),
            help="For subscription_count.",
        ),
    ] = 1,
    soketi: Annotated[
        bool,
        typer.Option(
            "--soketi", help="Soketi 1.6.1's variant (client event data as an object, its headers)."
        ),
    ] = False,
    batch: Annotated[
        bool, typer.Option("--batch", help="All events in one delivery (Pusher's batch webhooks).")
    ] = False,
    bad_signature: Annotated[
        bool,
        typer.Option(
            "--bad-signature",
            help="Send a forged signature: exit 0 only if your app refuses it (4xx).",
        ),
    ] = False,
    timeout: Timeout = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Send correctly signed sample webhooks to your app and show its answer.

    Exit 0 when the app answered 2xx (with --bad-signature: 4xx), 4 when it cannot be reached,
    7 when it refused a valid delivery, 1 when it accepted a forged one, 2 for bad options.
    """
    from rtctl.errors import UsageError
    from rtctl.ops.webhook_sender import check_url, trigger
    from rtctl.protocol.webhooks import Flavour, sample_event

    json_mode(ctx, as_json)
    if not channel:
        raise UsageError("--channel is required", hint="e.g. --channel presence-room")
    if not to:
        raise UsageError("--to is required", hint="e.g. --to http://127.0.0.1:3000/pusher/webhooks")
    check_url(to, "--to")
    flavour: Flavour = "soketi" if soketi else "pusher"
    events = [
        sample_event(
            name,
            channel,
            user_id=user_id,
            client_event=event,
            data=data,
            socket_id=socket_id,
            subscription_count=subscription_count,
            flavour=flavour,
        )
        for name in _event_types(event_types, "EVENT")
    ]
    settings = state(ctx).settings()
    sent = _send_all(
        trigger(
            settings.key,
            settings.secret,
            events,
            to,
            batch=batch,
            flavour=flavour,
            bad_signature=bad_signature,
            timeout=timeout,
            ca_bundle=settings.ca_bundle,
        ),
        as_json,
    )
    _verdict(sent, bad_signature)


def _send_all(deliveries: "Iterator[Sent]", as_json: bool) -> "list[Sent]":
    """Send each delivery, showing its answer at once (a later unreachable target still leaves
    the earlier answers on screen); with --json, one document at the end."""
    from rtctl.protocol.webhooks import describe_event

    sent = []
    for item in deliveries:
        sent.append(item)
        if as_json:
            continue
        answer = item.answer
        what = "; ".join(describe_event(event) for event in item.events)
        forged = " (forged signature)" if item.forged else ""
        output.data(f"{answer.status} {answer.reason}  {answer.ms:.1f} ms  {what}{forged}")
        if not answer.ok and answer.body.strip():
            output.data(f"  {answer.body.strip()[:300]}")
    if as_json:
        output.data_json({"deliveries": [item.to_dict() for item in sent]})
    return sent


def _verdict(sent: "list[Sent]", forged: bool) -> None:
    """Exit status of a trigger or replay run, after its answers were shown (they are the data;
    the boundary adds the verdict)."""
    from rtctl.errors import ExitCode, ReportPrinted

    if forged:
        accepted = [item for item in sent if not 400 <= item.answer.status < 500]
        if accepted:
            status = accepted[0].answer.status
            raise ReportPrinted(
                f"the app answered {status} to a forged webhook"
                + (": it accepted it" if status < 300 else ", not a refusal (4xx)"),
                hint="verify X-Pusher-Signature (HMAC-SHA256 of the raw body with the app "
                "secret) and answer 401",
                exit_code=ExitCode.FAILED,
            )
        return
    refused = [item for item in sent if not item.answer.ok]
    if refused:
        answer = refused[0].answer
        raise ReportPrinted(
            f"{answer.url} answered {answer.status} {answer.reason} to {len(refused)} of "
            f"{len(sent)} deliveries",
            hint="the answer body above says why; does the app use this app's secret?",
            exit_code=ExitCode.REJECTED,
        )


# --- verify --------------------------------------------------------------------------------------


@webhooks_app.command("verify")
def verify_command(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(
            metavar="FILE",
            help="A `listen --record` file, a raw HTTP request, or with --signature the raw "
            "body; - reads stdin.",
        ),
    ] = "-",
    signature: Annotated[
        str | None,
        typer.Option(
            "--signature",
            metavar="SIGNATURE",
            help="X-Pusher-Signature of a raw body.",
            show_default=False,
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            metavar="KEY",
            help="X-Pusher-Key of a raw body (default: this app's key).",
            show_default=False,
        ),
    ] = None,
    max_age: MaxAge = None,
    as_json: JsonOption = False,
) -> None:
    """Check recorded deliveries against this app's key and secret; say why one does not verify.

    Exit 0 when every delivery verifies, 1 when one does not (as `rtctl verify`), 2 for
    unreadable input.
    """
    from rtctl.errors import ExitCode, ReportPrinted, UsageError
    from rtctl.ops.webhook_records import Recorded, load_deliveries, verify_deliveries
    from rtctl.protocol.webhooks import KEY_HEADER, SIGNATURE_HEADER

    json_mode(ctx, as_json)
    data, label = _read_input(source)
    settings = state(ctx).settings()
    if signature is not None:
        headers = {KEY_HEADER: key or settings.key, SIGNATURE_HEADER: signature}
        deliveries = [Recorded(label, headers, data)]
    elif key is not None:
        raise UsageError("--key is only used with --signature", hint="add --signature")
    else:
        deliveries = load_deliveries(data, label)
    verdicts = verify_deliveries(
        deliveries,
        settings,
        max_age=settings.webhook_max_age if max_age is None else max_age,
        require_content_type=signature is None,  # a bare body has no Content-Type to check
    )
    failed = [v for v in verdicts if not v["verified"]]
    if as_json:
        output.data_json({"verified": not failed, "deliveries": verdicts})
    else:
        _render_verdicts(verdicts)
    if failed:
        first = failed[0]["findings"][0]
        raise ReportPrinted(
            f"{len(failed)} of {len(verdicts)} deliveries do not verify: {first['message']}",
            hint=first["hint"],
            exit_code=ExitCode.FAILED,  # as `rtctl verify`: the report names what differs
        )


def _render_verdicts(verdicts: list[dict[str, Any]]) -> None:
    import time

    from rtctl.protocol.webhooks import describe_age, describe_event

    for verdict in verdicts:
        if verdict["verified"]:
            age = describe_age(time.time() * 1000 - verdict["time_ms"])
            events = "; ".join(describe_event(e) for e in verdict["events"])
            output.data(f"✓ {verdict['source']}: verifies (time_ms {age}): {events}")
            continue
        output.data(f"✗ {verdict['source']}: does not verify")
        for finding in verdict["findings"]:
            output.data(f"  - {finding['message']}")
            if finding["hint"]:
                output.data(f"    fix: {finding['hint']}")


def _read_input(source: str) -> tuple[bytes, str]:
    from rtctl.errors import UsageError

    if source == "-":
        if sys.stdin.isatty():
            raise UsageError(
                "nothing to read: pass a FILE or pipe the delivery in",
                hint="rtctl webhooks verify hooks.ndjson",
            )
        return sys.stdin.buffer.read(), "stdin"
    path = Path(source)
    try:
        return path.read_bytes(), str(path)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", hint="check the path") from None


# --- replay --------------------------------------------------------------------------------------


@webhooks_app.command("replay")
def replay_command(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(
            metavar="FILE", help="A `listen --record` file (- reads stdin).", show_default=False
        ),
    ],
    to: AppEndpoint = "",
    timeout: Timeout = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Re-send recorded deliveries, re-signed with this app's secret and a fresh time_ms.

    Deliveries the receiver refused when they were recorded are left out (and listed).
    Exit 0 when the app answered 2xx to all, 4 when it cannot be reached, 7 when it refused one.
    """
    from rtctl.errors import UsageError
    from rtctl.ops.webhook_records import read_records
    from rtctl.ops.webhook_sender import check_url, plan_replay, replay

    json_mode(ctx, as_json)
    if not to:
        raise UsageError("--to is required", hint="e.g. --to http://127.0.0.1:3000/pusher/webhooks")
    check_url(to, "--to")
    data, label = _read_input(source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{label} is not UTF-8 text") from None
    plan = plan_replay(read_records(text, label))
    for reason in plan.skipped:
        output.say(f"skipped {reason}")
    if not plan.bodies:
        raise UsageError(
            f"{label} holds no verified delivery to replay",
            hint="record some with `rtctl webhooks listen --record FILE`",
        )
    settings = state(ctx).settings()
    sent = _send_all(
        replay(
            settings.key, settings.secret, plan, to, timeout=timeout, ca_bundle=settings.ca_bundle
        ),
        as_json,
    )
    _verdict(sent, False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(webhooks_app, name="webhooks")
