"""CLI command: `rtctl console` serves the local debug console (rtctl.console) with uvicorn.

It binds the socket itself before anything else, so a busy port is refused at once (exit 9) and
`--port 0` picks a free one; the URL with the access token is the one line on stdout.
"""

import socket
from typing import Annotated, Any

import typer

from rtctl.cli import output
from rtctl.cli.common import LISTEN_PORT, json_mode, number_option, state
from rtctl.errors import Conflict

DEFAULT_PORT = 8090


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or Conflict (port busy) / UsageError (not an address of this host)."""

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT only, not a listener
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        from rtctl.runtime.native import listen_error

        sock.close()
        busy = Conflict(
            f"{host}:{port} is already in use",
            hint="stop what listens there, or pick another port with --port (0 picks a free one)",
        )
        raise listen_error(exc, host, port, busy, "--host") from None
    sock.set_inheritable(True)
    return sock


def _server_class(uvicorn: Any, on_exit: Any) -> Any:
    """uvicorn's server, told to end the page's event streams as soon as it is asked to stop
    (an open stream would otherwise hold the graceful shutdown), and to exit 0 after a signal."""
    from contextlib import contextmanager

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            on_exit()
            super().handle_exit(sig, frame)

        @contextmanager
        def capture_signals(self) -> Any:
            with super().capture_signals():
                yield
                self._captured_signals.clear()

    return Server


def console(
    ctx: typer.Context,
    port: Annotated[
        int,
        number_option(
            "--port",
            parser=LISTEN_PORT,
            metavar="PORT",
            help="Port to serve on (0 picks a free one).",
        ),
    ] = DEFAULT_PORT,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            metavar="ADDRESS",
            help="Address to serve on. Loopback by default; any other address must be asked for "
            "explicitly and is still token-guarded.",
        ),
    ] = "127.0.0.1",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the URL as one JSON object on stdout.")
    ] = False,
) -> None:
    """Serve the debug console: Overview, Channels, Live log, Event Creator, Signature explainer.

    Prints the URL with a fresh access token (required for the page, its API and its event
    stream) and serves until Ctrl-C. Exit 9 when the port is in use.
    """
    import secrets

    from rtctl.hosts import is_loopback

    json_mode(ctx, as_json)
    settings = state(ctx).settings()
    loopback = is_loopback(host)
    sock = bind(host, port)
    actual = sock.getsockname()[1]
    where = f"[{host}]" if ":" in host else host
    token = secrets.token_urlsafe(24)
    url = f"http://{where}:{actual}/?token={token}"
    import logging
    import logging.config

    import uvicorn

    from rtctl.cli.cmd_gateway import log_config
    from rtctl.console.app import create_app

    logging.config.dictConfig(log_config("warning"))
    log = logging.getLogger("rtctl.console")
    app, state_ = create_app(settings, token, host=host)
    if as_json:
        output.data_ndjson(
            {"url": url, "host": host, "port": actual, "provider": settings.provider}
        )
    else:
        output.data(url)
    output.say(
        f"console for {settings.provider} at {settings.api_base}: open the URL above "
        "(it carries the access token); Ctrl-C stops it"
    )
    if not loopback:
        output.say(
            f"warning: serving on {host}, reachable from other machines; anyone with the URL "
            "can use this app's secret through the console"
        )
    webhooks = state_.webhooks
    webhooks.start()
    if webhooks.receiving:
        output.say(f"receiving webhooks at {webhooks.url}: they appear in the live log")
    elif webhooks.error is not None:
        output.say(
            f"warning: webhooks are not shown: cannot receive at {webhooks.url}: {webhooks.error}"
        )
        output.say(f"hint: {webhooks.hint}")
    config = uvicorn.Config(
        app,
        log_config=None,  # configured above
        access_log=False,  # the access log would print the token
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=5,
        lifespan="on",
    )
    server = _server_class(uvicorn, state_.feed.close)(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        webhooks.stop()  # started above, before the server (whose shutdown stops it too)
    if not server.started:
        log.error("the console did not start")
        raise Conflict(
            f"the console could not start on {host}:{actual}",
            hint="see the log lines above",
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("console")(console)
