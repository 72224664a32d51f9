"""CLI commands: `rtctl verify auth|api` explain why a signature does or does not verify.

The explanation is built by rtctl.protocol.explain (pure, no I/O); this module reads the options, renders the
report on stdout and maps the verdict to the exit code (0 verifies, 1 does not, 2 malformed input).
"""

import json
import time
from typing import TYPE_CHECKING, Annotated

import typer

from rtctl.cli import output
from rtctl.cli.common import JsonOption, json_mode, number, number_option, state

if TYPE_CHECKING:
    from rtctl.protocol.explain import Explanation

verify_app = typer.Typer(
    name="verify",
    help="Explain why a channel auth, sign-in or HTTP API signature does (not) verify.",
    no_args_is_help=True,
)


def render(explanation: "Explanation") -> list[str]:
    """The human report: verdict, the string to sign (quoted, so escapes and newlines show), the
    expected and received signatures, and one line per finding."""
    quoted = json.dumps(explanation.string_to_sign, ensure_ascii=False)
    lines = [
        "✓ verifies" if explanation.verifies else "✗ does not verify",
        f"  string to sign  {quoted}",
        f"  expected        {explanation.expected}",
        f"  received        {explanation.received}",
    ]
    signed = explanation.signed_string
    if signed is not None and signed != explanation.string_to_sign:
        lines.append(f"  signed instead  {json.dumps(signed, ensure_ascii=False)}")
    if "body_md5" in explanation.facts:
        lines.append(f"  body md5        {explanation.facts['body_md5']}")
    if "timestamp_skew_seconds" in explanation.facts:
        lines.append(f"  timestamp skew  {explanation.facts['timestamp_skew_seconds']} s")
    for finding in explanation.findings:
        mark = "✗" if finding.blocking else "i"
        lines.append(f"  {mark} {finding.part}: {finding.message}")
    return lines


def report(explanation: "Explanation", as_json: bool) -> None:
    """The report is the data (one JSON document with --json); when the signature does not
    verify, the boundary ends it with the verdict on stderr and exit 1, in every mode."""
    from rtctl.errors import ReportPrinted

    if as_json:
        output.data_json(explanation.to_dict())
    else:
        # each line may quote what was sent: shown, never obeyed by the terminal
        output.data("\n".join(output.printable(line) for line in render(explanation)))
    if not explanation.verifies:
        parts = sorted({f.part for f in explanation.findings if f.blocking})
        raise ReportPrinted(
            f"the signature does not verify ({', '.join(parts)})",
            hint="the findings marked ✗ name what differs and how to fix it"
            if not as_json
            else 'the findings with "blocking": true name what differs and how to fix it',
        )


@verify_app.command("auth")
def verify_auth(
    ctx: typer.Context,
    socket_id: Annotated[
        str,
        typer.Option("--socket-id", metavar="ID", help="The socket id the signature was sent for."),
    ],
    auth: Annotated[
        str,
        typer.Option(
            "--auth",
            metavar="KEY:SIGNATURE",
            help="The auth value as the auth endpoint returned it.",
        ),
    ],
    channel: Annotated[
        str | None,
        typer.Option("--channel", metavar="CHANNEL", help="The private/presence channel."),
    ] = None,
    channel_data: Annotated[
        str | None,
        typer.Option(
            "--channel-data",
            metavar="JSON",
            help="Presence: the channel_data string exactly as sent in the subscribe frame.",
        ),
    ] = None,
    user_data: Annotated[
        str | None,
        typer.Option(
            "--user-data",
            metavar="JSON",
            help="User sign-in (instead of --channel): the user_data string exactly as sent.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Rebuild the string to sign with the configured key and secret and say what differs.

    Channel: --socket-id, --channel, --auth [--channel-data]. Sign-in: --socket-id, --user-data,
    --auth. Exit 0 when it verifies, 1 when it does not, 2 for malformed input.
    """
    from rtctl.protocol.explain import explain_auth, parse_auth
    from rtctl.protocol.signing import check_socket_id

    json_mode(ctx, as_json)
    # Malformed input is refused before the configuration is even read.

    check_socket_id(socket_id)
    parse_auth(auth)
    settings = state(ctx).settings()
    explanation = explain_auth(
        settings.key,
        settings.secret,
        socket_id=socket_id,
        auth=auth,
        channel=channel,
        channel_data=channel_data,
        user_data=user_data,
    )
    report(explanation, as_json)


@verify_app.command("api")
def verify_api(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Option(
            "--path",
            metavar="PATH?QUERY",
            help="The request's path and query string as the server received it (or a full URL).",
        ),
    ],
    method: Annotated[
        str, typer.Option("--method", metavar="METHOD", help="The HTTP method.")
    ] = "POST",
    body: Annotated[
        str | None,
        typer.Option(
            "--body",
            metavar="TEXT|@FILE|-",
            help="The exact request body (text, @file, or - for stdin); none for GET.",
        ),
    ] = None,
    at: Annotated[
        float | None,
        number_option(
            "--at",
            parser=number(0, 100_000_000_000),
            metavar="UNIX_SECONDS",
            help="Check the timestamp window against this time (e.g. when the server received "
            "it) instead of now.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Explain an HTTP API request's auth_signature: the string to sign, body_md5, the 600 s
    timestamp window, a path rewritten by a proxy. Exit 0 verifies, 1 does not, 2 malformed."""
    from rtctl.ops.publish import TextSource, read_text
    from rtctl.protocol.explain import explain_api, parse_api_request

    json_mode(ctx, as_json)
    parse_api_request(method, target)  # malformed input first, before the configuration
    source = TextSource("--body", "body", "request-body.json", "an HTTP API body is JSON text")
    text = "" if body is None else read_text(body, source)
    settings = state(ctx).settings()
    explanation = explain_api(
        settings.key,
        settings.secret,
        method=method,
        target=target,
        body=text,
        now=time.time() if at is None else at,
        provider=settings.provider,
    )
    report(explanation, as_json)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(verify_app, name="verify")
