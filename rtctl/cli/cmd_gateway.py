"""CLI command: `rtctl gateway` serves the auth/emit/channels gateway with uvicorn.

Starlette, uvicorn and PyJWT are imported inside the command body (startup stays fast).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer

from rtctl.cli.common import PORT, number_option, state
from rtctl.errors import Conflict, UsageError

LOG_LEVELS = ("debug", "info", "warning", "error")


def log_config(level: str) -> dict[str, Any]:
    """Everything to stderr, one format. uvicorn's own access log stays off: it prints query
    strings; the gateway's structured access log (logger rtctl.gateway.access) never does."""
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "rtctl.gateway": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
        },
    }


def _quiet_signal_server(uvicorn: Any) -> Any:
    """uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, so the process would die by
    the signal; a gateway that drained its requests and stopped cleanly exits 0 instead."""
    from contextlib import contextmanager

    class Server(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Any:
            with super().capture_signals():
                yield
                stopped_by = list(getattr(self, "_captured_signals", []))
                if stopped_by:
                    self._captured_signals.clear()
                    logging.getLogger("rtctl.gateway").info(
                        "stopped cleanly (signal %d)", stopped_by[-1]
                    )

    return Server


def gateway(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option("--host", metavar="HOST", help="Address to listen on (loopback by default)."),
    ] = "127.0.0.1",
    port: Annotated[
        int, number_option("--port", parser=PORT, metavar="PORT", help="Port to listen on.")
    ] = 8080,
    prefix: Annotated[
        str,
        typer.Option(
            "--prefix", metavar="PATH", help="Path prefix of the routes (e.g. /realtime/auth)."
        ),
    ] = "/realtime",
    dev_user_header: Annotated[
        bool,
        typer.Option(
            "--dev-user-header",
            help="DEVELOPMENT ONLY: trust an X-Realtime-User-Id header from loopback clients "
            "instead of a JWT. Refused unless --host is a loopback address.",
        ),
    ] = False,
    jwt_audience: Annotated[
        str | None,
        typer.Option("--jwt-audience", metavar="AUD", help="Require this 'aud' claim in tokens."),
    ] = None,
    jwt_issuer: Annotated[
        str | None,
        typer.Option("--jwt-issuer", metavar="ISS", help="Require this 'iss' claim in tokens."),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option("--log-level", metavar="LEVEL", help="debug, info, warning or error."),
    ] = "info",
) -> None:
    """Serve POST /realtime/auth, /realtime/user-auth, /realtime/emit and GET /realtime/channels.

    Identity comes from a bearer JWT (REALTIME_JWT_SECRET or REALTIME_JWT_PUBLIC_KEY); emit needs
    REALTIME_EMIT_TOKEN, the channel monitor REALTIME_MONITOR_TOKEN. Stops cleanly on Ctrl-C/SIGTERM.
    """
    import logging.config

    from rtctl.gateway.identity import is_loopback

    if log_level not in LOG_LEVELS:
        raise UsageError(
            f"--log-level {log_level!r} is not one of {', '.join(LOG_LEVELS)}",
            hint="e.g. --log-level info",
        )
    if dev_user_header and not is_loopback(host):
        raise UsageError(
            f"--dev-user-header is refused with --host {host}: it trusts a plain header",
            hint="use --host 127.0.0.1 for local development, or configure REALTIME_JWT_SECRET",
        )
    if prefix and not prefix.startswith("/"):
        raise UsageError(f"--prefix {prefix!r} must start with /", hint="e.g. --prefix /realtime")
    settings = state(ctx).settings()

    from rtctl.runtime.native import require_free_port

    busy = Conflict(
        f"{host}:{port} is already in use",
        hint="stop what listens there, or pick another port with --port",
    )
    require_free_port(host, port, busy, "--host")

    logging.config.dictConfig(log_config(log_level))
    import uvicorn

    from rtctl.gateway.app import create_app

    app = create_app(
        settings,
        prefix=prefix,
        dev_user_header=dev_user_header,
        audience=jwt_audience,
        issuer=jwt_issuer,
    )
    where = f"[{host}]" if ":" in host else host
    logging.getLogger("rtctl.gateway").info(
        "serving http://%s:%d%s/auth for %s at %s",
        where,
        port,
        prefix.rstrip("/"),
        settings.provider,
        settings.api_base,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # configured above
        access_log=False,
        proxy_headers=False,  # never let X-Forwarded-For make a remote client look local
        server_header=False,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )
    server = _quiet_signal_server(uvicorn)(config)
    server.run()
    if not server.started:
        raise Conflict(
            f"the gateway could not start on {host}:{port}",
            hint="see the log lines above; another process may have taken the port",
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("gateway")(gateway)
