"""CLI commands: up, down, status, logs, doctor (a real Soketi, with Docker or natively).

Thin layer: options in, rtctl.runtime.service / rtctl.ops.doctor do the work, results rendered here.
Reports go to stdout (tables or --json); progress, notes and hints to stderr.
"""

import contextlib
import time
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rtctl.cli import output
from rtctl.cli.common import (
    MAX_COUNT,
    WHOLE_RUN,
    JsonOption,
    json_mode,
    number,
    number_option,
    state,
    timeout_option,
)
from rtctl.cli.output import say

if TYPE_CHECKING:
    from rich.table import Table

    from rtctl.ops.doctor import CheckResult


class RuntimeChoice(str, Enum):
    auto = "auto"
    docker = "docker"
    native = "native"


class AdapterChoice(str, Enum):
    redis = "redis"
    nats = "nats"
    local = "local"


MAX_NODES = 16  # rtctl.config.MAX_NODES (not imported: `rtctl --help` stays light)
NodesOption = Annotated[
    int | None,
    number_option(
        "--nodes",
        metavar="N",
        parser=number(1, MAX_NODES, integer=True),
        help="Soketi nodes behind one front door (RTCTL_SOKETI_NODES; 1 = a single Soketi).",
        show_default=False,
    ),
]
AdapterOption = Annotated[
    AdapterChoice | None,
    typer.Option(
        "--adapter",
        metavar="redis|nats",
        help="How nodes share channels (SOKETI_ADAPTER_DRIVER): redis or nats; local = one node.",
        show_default=False,
    ),
]


def topology_overrides(
    nodes: int | None, adapter: AdapterChoice | None, named: str = ""
) -> dict[str, str]:
    """--nodes/--adapter as settings; ``named`` is the adapter .env already names. A combination
    that cannot work is a usage error (exit 2)."""
    from rtctl.errors import UsageError

    if nodes is not None and nodes > 1 and adapter is AdapterChoice.local:
        raise UsageError(
            f"--adapter local cannot join {nodes} nodes: each would only see its own clients",
            hint="use --adapter redis (everything shared) or --adapter nats",
        )
    changes: dict[str, str] = {}
    if nodes is not None:
        changes["RTCTL_SOKETI_NODES"] = str(nodes)
        if nodes > 1 and adapter is None:
            # keep the adapter .env names; Redis (every driver shared) when it names none
            changes["SOKETI_ADAPTER_DRIVER"] = named if named in ("redis", "nats") else "redis"
    if adapter is not None:
        changes["SOKETI_ADAPTER_DRIVER"] = adapter.value
    return changes


SYMBOLS = {"pass": "✓", "fail": "✗", "warn": "!", "skip": "-"}


def up(
    ctx: typer.Context,
    runtime: Annotated[
        RuntimeChoice,
        typer.Option(
            "--runtime",
            metavar="auto|docker|native",
            help="auto: Docker when an engine answers, else native (Node 16/18/20).",
        ),
    ] = RuntimeChoice.auto,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until the server answers.")
    ] = True,
    timeout: Annotated[
        float,
        timeout_option(
            "Seconds to wait for readiness (a server not ready by then is stopped).",
            WHOLE_RUN,
        ),
    ] = 30.0,
    nodes: NodesOption = None,
    adapter: AdapterOption = None,
    json_: JsonOption = False,
) -> None:
    """Start a real Soketi (Docker Compose or native) and print its endpoints.

    With --nodes N (N > 1): the bus (redis-server or nats-server), N Soketi nodes and HAProxy as
    the one front door on REALTIME_HOST:REALTIME_PORT; --nodes and --adapter are written to .env
    once everything is up, so a plain `rtctl up` brings the same cluster back.
    """
    from rtctl.runtime import service

    json_mode(ctx, json_)
    root = state(ctx)
    changes = topology_overrides(nodes, adapter, _named_adapter(root) if nodes else "")
    root.overrides.update(changes)
    settings = root.settings()
    with output.progress("starting Soketi", enabled=not json_) as progress:
        result = service.up(settings, runtime.value, wait, timeout, progress)
    if changes:
        result.notes.append(service.remember(settings.env_file, changes))
    for note in result.notes:
        say(note)
    if json_:
        output.data_json(result.to_dict())
        return
    if result.components is not None:
        _cluster_up_lines(result, wait)
        return
    pid = f", pid {result.pid}" if result.pid else ""
    targets = [str(e.get("url") or e.get("lambda_function")) for e in settings.webhooks.entries()]
    if result.started and targets:
        say(f"webhooks go to {', '.join(targets)} (`rtctl webhooks listen` receives them)")
    if result.started:
        if wait:
            say(f"Soketi is ready ({result.runtime}{pid})")
        else:
            say(f"Soketi is starting ({result.runtime}{pid}); not waiting for it (--no-wait)")
    else:
        say(f"already running ({result.runtime}{pid}): nothing started")
    for name, url in result.endpoints.items():
        if url:
            output.data(f"{name:<11} {url}")
    if result.log_file:
        output.data(f"{'log':<11} {result.log_file}")


def _named_adapter(root: Any) -> str:
    from rtctl.errors import ConfigError

    try:
        return str(root.layers().get("SOKETI_ADAPTER_DRIVER")).strip().lower()
    except ConfigError:
        return ""


def _cluster_up_lines(result: Any, wait: bool) -> None:
    """Human output of a cluster `up`: one line on stderr, endpoints and every process on stdout."""
    nodes = sum(1 for c in result.components if c["kind"] == "node")
    what = f"{nodes} nodes on {result.adapter} behind the front door"
    if result.started:
        say(f"cluster is {'ready' if wait else 'starting'} ({result.runtime}, {what})")
    else:
        say(f"already running ({result.runtime}, {what}): nothing started")
    for name, url in result.endpoints.items():
        if url:
            output.data(f"{name:<12} {url}")
    for component in result.components:
        pid = (
            f"pid {component['pid']}"
            if component["pid"]
            else "shared"
            if component.get("shared")
            else "-"
        )
        log = component.get("log_file") or ""
        output.data(f"{component['name']:<12} {pid:<11} {component['address']:<21} {log}".rstrip())


def down(
    ctx: typer.Context,
    json_: JsonOption = False,
) -> None:
    """Stop the Soketi that `rtctl up` started here (idempotent)."""
    from rtctl.runtime import service

    json_mode(ctx, json_)
    settings = state(ctx).settings(require_credentials=False)
    with output.progress("stopping Soketi", enabled=not json_) as progress:
        result = service.down(settings, progress=progress)
    if json_:
        output.data_json(result.to_dict())
    elif result.components is not None:
        names = ", ".join(f"{c['name']} pid {c['pid']}" for c in result.components)
        say(f"stopped the cluster ({result.runtime}: {names})")
    elif result.stopped:
        pid = f", pid {result.pid}" if result.pid else ""
        say(f"stopped Soketi ({result.runtime}{pid})")
    else:
        say("nothing to stop: no Soketi started by rtctl runs here")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def status_table(data: dict[str, Any]) -> "Table":
    """The status report as a two-column table (also the --watch view)."""
    from rich.table import Table

    if "components" in data:
        return cluster_table(data)

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    if not data["running"]:
        state_text = "not running"
    else:
        state_text = "running, healthy" if data["healthy"] else "running, UNHEALTHY"
    who = []
    if data["runtime"]:
        who.append(data["runtime"])
    if data["pid"]:
        who.append(f"pid {data['pid']}")
    if data.get("container"):
        who.append(f"container {data['container']}")
    if data["running"] and not data["managed"]:
        who.append("not started by rtctl here")
    table.add_row("soketi", state_text + (f" ({', '.join(who)})" if who else ""))
    if data["running"]:
        table.add_row("uptime", _duration(data["uptime_seconds"]))
    for name, url in data["endpoints"].items():
        if url:
            table.add_row(name, url)
    probes = data["health"]
    memory = probes.get("memory_percent")
    table.add_row(
        "health",
        "  ".join(f"{route} {code or '-'}" for route, code in probes.items() if route[0] == "/")
        + (f"  (memory {memory:.1f} %)" if memory is not None else ""),
    )
    metrics = data["metrics"]
    if metrics is not None:
        table.add_row(
            "metrics",
            f"{metrics['connections']} connections  {metrics['messages_in']} messages in  "
            f"{metrics['messages_out']} messages out  {metrics['http_calls']} API calls",
        )
    elif data["metrics_error"]:
        table.add_row("metrics", f"unavailable: {data['metrics_error']}")
    return table


def cluster_table(data: dict[str, Any]) -> "Table":
    """A cluster's status: one row per component (front door, each node, bus)."""
    from rich.table import Table

    info = data["cluster"]
    if not data["running"]:
        state_text = "not running"
    else:
        state_text = "running, healthy" if data["healthy"] else "running, UNHEALTHY"
    who = [data["runtime"]] if data["runtime"] else []
    if data["running"] and not data["managed"]:
        who.append("not started by rtctl here")
    title = (
        f"cluster {state_text}: {info['nodes']} nodes on {info['adapter']}, "
        f"{info['connections']} connections"
        + (f" ({', '.join(who)})" if who else "")
        + (f", up {_duration(data['uptime_seconds'])}" if data["uptime_seconds"] else "")
    )
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    for column in ("component", "state", "pid", "address", "conns", "msgs in/out"):
        table.add_column(column, no_wrap=True)
    table.add_column("evidence", overflow="fold")
    for c in data["components"]:
        state_cell = ("down", "UNHEALTHY", "healthy")[c["running"] + c["healthy"] * c["running"]]
        messages = (
            f"{c['messages_in']}/{c['messages_out']}" if c.get("messages_in") is not None else "-"
        )
        table.add_row(
            c["name"],
            state_cell,
            str(c["pid"] or "-"),
            c["address"],
            "-" if c["connections"] is None else str(c["connections"]),
            messages,
            c["evidence"],
        )
    return table


def status(
    ctx: typer.Context,
    json_: JsonOption = False,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Refresh a live view on stderr until Ctrl-C.")
    ] = False,
    interval: Annotated[
        float,
        number_option(
            "--interval",
            parser=number(0.2, 3600),
            metavar="SECONDS",
            help="Seconds between refreshes (--watch).",
        ),
    ] = 2.0,
    count: Annotated[
        int,
        number_option(
            "--count",
            parser=number(0, MAX_COUNT, integer=True),
            metavar="N",
            help="Stop --watch after this many reports (0: never).",
        ),
    ] = 0,
) -> None:
    """Running or not, health, uptime, endpoints and the key /metrics figures.

    Exit code: 0 healthy, 1 running but unhealthy, 4 not running.
    """
    from rtctl.errors import ExitCode, ReportPrinted
    from rtctl.runtime import service

    json_mode(ctx, json_)
    settings = state(ctx).settings(require_credentials=False)
    if watch:
        report = _watch(settings, interval, count, json_)
    else:
        report = service.status(settings)
        if json_:
            output.data_json(report.to_dict())
        else:
            output.data_rich(status_table(report.to_dict()))
    code = report.exit_code
    if code == ExitCode.OK:
        return
    if hasattr(report, "components"):  # a cluster
        if code == ExitCode.UNREACHABLE:
            raise ReportPrinted(
                f"no part of the cluster answers (front door {settings.api_base})",
                hint="start it with `rtctl up`",
                exit_code=code,
            )
        bad = [c.name for c in report.components if not c.healthy]
        raise ReportPrinted(
            f"the cluster at {settings.api_base} is running but not healthy: {', '.join(bad)}",
            hint="see `rtctl logs --component NAME` and `rtctl doctor`",
            exit_code=code,
        )
    if code == ExitCode.UNREACHABLE:
        raise ReportPrinted(
            f"no Soketi answers at {settings.api_base}",
            hint="start one with `rtctl up`",
            exit_code=code,
        )
    raise ReportPrinted(
        f"Soketi at {settings.api_base} is running but not healthy",
        hint="see `rtctl logs` and `rtctl doctor`",
        exit_code=code,
    )


def _watch(settings: Any, interval: float, count: int, as_json: bool) -> Any:
    """Refresh until Ctrl-C (exit 130) or `count` reports. A live view on a terminal; off a
    terminal each report is printed in turn (NDJSON on stdout with --json)."""
    from rtctl.runtime import service

    report = None
    shown = 0
    with output.live(enabled=not as_json) as live:
        while count == 0 or shown < count:
            if shown:
                time.sleep(interval)
            report = service.status(settings)
            shown += 1
            if live is not None:
                live.update(status_table(report.to_dict()), refresh=True)
            elif as_json:
                output.data_ndjson(report.to_dict())
            else:
                output.show(status_table(report.to_dict()))
                output.say("")
    return report if report is not None else service.status(settings)


def logs(
    ctx: typer.Context,
    lines: Annotated[
        int,
        number_option(
            "--lines",
            "-n",
            parser=number(0, 10_000_000, integer=True),
            metavar="N",
            help="Show the last N lines.",
        ),
    ] = 50,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing new lines until the server stops."),
    ] = False,
    timeout: Annotated[
        float | None,
        timeout_option(
            "Stop following after this many seconds.",
            WHOLE_RUN,
        ),
    ] = None,
    component: Annotated[
        str | None,
        typer.Option(
            "--component",
            metavar="NAME",
            help="A cluster's process: front-door-1, node-1, ..., bus (default: all of them).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Soketi's log: the last lines, or follow it (-f) until it stops or Ctrl-C."""
    import subprocess

    from rtctl.runtime import docker, native, service
    from rtctl.runtime.native import strip_colours

    settings = state(ctx).settings(require_credentials=False)
    folder = native.state_dir(settings)
    logs_of_cluster = service.cluster_logs(settings)
    if logs_of_cluster is not None or component is not None:
        _cluster_logs(settings, logs_of_cluster or {}, component, lines, follow, timeout)
        return
    path = service.log_path(settings)
    if not path.exists() and docker.read_marker(folder) is not None:
        docker.require_engine()
        command = docker.logs_command(settings, lines, follow)
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(command, timeout=timeout, check=False)
        return
    if not path.exists():
        say(f"no Soketi log here yet ({path}): start one with `rtctl up`")
        return
    source = (
        service.follow(settings, lines, stop_after=timeout)
        if follow
        else iter(service.tail_lines(path, lines))
    )
    for line in source:  # Soketi's colours dropped, anything else a client made it log escaped
        output.data(output.printable(strip_colours(line)))


def _cluster_logs(
    settings: Any,
    paths: dict[str, Any],
    component: str | None,
    lines: int,
    follow: bool,
    timeout: float | None,
) -> None:
    """One component's log (-f follows it), or the last lines of each, prefixed by its name."""
    from rtctl.errors import UsageError
    from rtctl.runtime import service
    from rtctl.runtime.native import strip_colours

    if not paths:
        say("no cluster log here yet: start one with `rtctl up --nodes N`")
        return
    if component is not None and component not in paths:
        raise UsageError(
            f"--component {component!r} is not part of this cluster",
            hint="choose from: " + ", ".join(paths),
        )
    if component is None and follow:
        raise UsageError(
            "-f follows one process of a cluster", hint="add --component " + next(iter(paths))
        )
    chosen = [component] if component is not None else list(paths)
    for name in chosen:
        path = paths[name]
        source = (
            service.follow_file(path, lines, stop_after=timeout)
            if follow
            else iter(service.tail_lines(path, lines))
        )
        prefix = "" if component is not None else f"[{name}] "
        for line in source:  # as for one node: colours dropped, what a client made it log escaped
            output.data(prefix + output.printable(strip_colours(line)))


def doctor_lines(results: "list[CheckResult]") -> list[str]:
    """Human view: one line per check, the fix indented under anything not passing."""
    width = max((len(result.name) for result in results), default=0)
    out = []
    for result in results:
        evidence = output.printable(result.evidence)  # may quote what a server answered
        out.append(f"{SYMBOLS[result.status]} {result.name:<{width}}  {evidence}")
        if result.fix and result.status in ("fail", "warn"):
            out.append(f"  {'':<{width}}  fix: {output.printable(result.fix)}")
    return out


def doctor(
    ctx: typer.Context,
    json_: JsonOption = False,
    timeout: Annotated[
        float,
        timeout_option("Seconds each network check may take."),
    ] = 3.0,
    strict: Annotated[
        bool, typer.Option("--strict", help="Warnings fail too (exit 1 on any warning).")
    ] = False,
) -> None:
    """Check the configuration, this machine and the server; each check with evidence and fix.

    Exit code: 0 when no check failed (warnings allowed unless --strict), 1 otherwise.
    """
    from rtctl.errors import ConfigError, ReportPrinted
    from rtctl.ops.doctor import (
        RUNTIME_CHECKS,
        SERVER_CHECKS,
        WEBHOOK_CHECKS,
        CheckResult,
        run_doctor,
        summary,
    )

    json_mode(ctx, json_)
    try:
        layers = state(ctx).layers()
    except ConfigError as error:
        results = [CheckResult("env-file", "fail", error.message, error.hint)] + [
            CheckResult(name, "skip", "the configuration cannot be read")
            for name in (*RUNTIME_CHECKS, *SERVER_CHECKS, *WEBHOOK_CHECKS)
        ]
    else:
        results = run_doctor(layers, timeout=timeout)
    counts = summary(results)
    bad = [r.name for r in results if r.status == "fail" or (strict and r.status == "warn")]
    if json_:
        output.data_json(
            {"ok": not bad, "summary": counts, "checks": [r.to_dict() for r in results]}
        )
    else:
        output.data("\n".join(doctor_lines(results)))
        say(
            f"{counts['pass']} passed, {counts['fail']} failed, {counts['warn']} warnings, "
            f"{counts['skip']} skipped"
        )
    if bad:
        raise ReportPrinted(
            f"{len(bad)} check{'s' if len(bad) > 1 else ''} failed: {', '.join(bad)}",
            hint="apply the fixes shown under ✗ (or !), then run `rtctl doctor` again",
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)
    app.command("logs")(logs)
    app.command("doctor")(doctor)
