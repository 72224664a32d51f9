"""CLI command: `rtctl gateway` serves the auth/emit/channels gateway with uvicorn.

Starlette, uvicorn and PyJWT are imported inside the command body (startup stays fast).
"""

from typing import Annotated, Any

import typer

from rtctl.cli.common import PORT, ListenHostOption, number, number_option, state
from rtctl.errors import Conflict, UsageError

LOG_LEVELS = ("debug", "info", "warning", "error")
# What the machine can hold is checked when the gateway starts (rtctl.gateway.serve.check_workers).
WORKERS = number(1, 1024, integer=True)
FAILURE_LIMIT = number(0, 1_000_000, integer=True)
HEADER_TIMEOUT = number(0.1, 300)


def log_config(level: str, workers: int = 1) -> dict[str, Any]:
    """Everything to stderr, one format. uvicorn's own access log stays off: it prints query
    strings; the gateway's structured access log (logger rtctl.gateway.access) never does.
    With several workers each line names the process that wrote it."""
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    if workers > 1:
        fmt = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": fmt}},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "rtctl.gateway": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
        },
    }


def gateway(
    ctx: typer.Context,
    host: ListenHostOption = "127.0.0.1",
    port: Annotated[
        int, number_option("--port", parser=PORT, metavar="PORT", help="Port to listen on.")
    ] = 8080,
    workers: Annotated[
        int,
        number_option(
            "--workers",
            parser=WORKERS,
            metavar="N",
            help="Worker processes sharing the port: 1 to 2 x CPUs + 1, fewer when memory cannot "
            "hold 100 MB each. A worker that dies is replaced; the failed-authentication limit "
            "is shared by all.",
        ),
    ] = 1,
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
    auth_failure_limit: Annotated[
        int,
        number_option(
            "--auth-failure-limit",
            parser=FAILURE_LIMIT,
            metavar="N",
            help="Failed authentications per client address per minute before 429 (0: off).",
        ),
    ] = 30,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            metavar="ADDRS",
            help="Comma list of proxy addresses whose X-Forwarded-For names the client "
            "(default: none; the header is ignored).",
        ),
    ] = None,
    header_timeout: Annotated[
        float,
        number_option(
            "--header-timeout",
            parser=HEADER_TIMEOUT,
            metavar="SECONDS",
            help="Seconds a connection has to send complete request headers.",
        ),
    ] = 10.0,
    log_level: Annotated[
        str,
        typer.Option("--log-level", metavar="LEVEL", help="debug, info, warning or error."),
    ] = "info",
) -> None:
    """Serve POST /realtime/auth, /realtime/user-auth, /realtime/emit and GET /realtime/channels.

    Identity comes from a bearer JWT (REALTIME_JWT_SECRET or REALTIME_JWT_PUBLIC_KEY); emit needs
    REALTIME_EMIT_TOKEN, the channel monitor REALTIME_MONITOR_TOKEN. Stops cleanly on Ctrl-C/SIGTERM.
    """
    import logging
    import logging.config

    from rtctl.hosts import is_loopback

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
    from rtctl.gateway.serve import check_workers

    check_workers(workers)
    settings = state(ctx).settings()

    from rtctl.runtime.native import require_free_port

    busy = Conflict(
        f"{host}:{port} is already in use",
        hint="stop what listens there, or pick another port with --port",
    )
    require_free_port(host, port, busy, "--host")

    config = log_config(log_level, workers)
    logging.config.dictConfig(config)
    from rtctl.gateway.serve import AppSpec, serve

    spec = AppSpec(
        settings,
        prefix=prefix,
        dev_user_header=dev_user_header,
        audience=jwt_audience,
        issuer=jwt_issuer,
        auth_failure_limit=auth_failure_limit,
    )
    serve(
        spec,
        host=host,
        port=port,
        workers=workers,
        log_config=config,
        header_timeout=header_timeout,
        forwarded_allow_ips=forwarded_allow_ips,
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("gateway")(gateway)
