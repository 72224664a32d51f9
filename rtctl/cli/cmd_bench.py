"""CLI command: bench (load and latency against the configured server). Core: rtctl/ops/bench/."""

import contextlib
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rtctl.cli import output
from rtctl.cli.common import JsonOption, json_mode, number, number_option, state, timeout_option
from rtctl.errors import ReportPrinted

if TYPE_CHECKING:
    from rich.console import RenderableType

FAILED_HINT = "the report above shows where deliveries were lost or slow; see docs/bench.md"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("bench", no_args_is_help=False)(bench)


def bench(
    ctx: typer.Context,
    connections: Annotated[
        int,
        number_option(
            "--connections",
            "-n",
            parser=number(1, 50_000, integer=True),
            metavar="N",
            help="Subscriber sockets.",
        ),
    ] = 100,
    channels: Annotated[
        int,
        number_option(
            "--channels",
            "-c",
            parser=number(1, 50_000, integer=True),
            metavar="N",
            help="Channels the subscribers spread over: subscriber i joins channel i mod N "
            "(N ≤ --connections).",
        ),
    ] = 10,
    channel_type: Annotated[
        str,
        typer.Option(
            "--channel-type",
            metavar="public|private|presence",
            help="Channel kind; private and presence are signed locally (presence user id "
            "bench-user-<i>).",
        ),
    ] = "public",
    rate: Annotated[
        float,
        number_option(
            "--rate",
            "-r",
            parser=number(0.1, 1_000_000),
            metavar="RATE",
            help="Events per second, all channels together, round-robin over the channels.",
        ),
    ] = 100.0,
    duration: Annotated[
        float,
        number_option(
            "--duration",
            "-d",
            parser=number(0.1, 3600),
            metavar="SECONDS",
            help="Seconds of publishing.",
        ),
    ] = 10.0,
    payload_size: Annotated[
        int,
        number_option(
            "--payload-size",
            parser=number(0, 100 * 1024, integer=True),
            metavar="BYTES",
            help="Bytes of each event's data string (Soketi's limit is the maximum; Pusher's is "
            "10 KB).",
        ),
    ] = 100,
    publish: Annotated[
        str,
        typer.Option(
            "--publish",
            metavar="http|client",
            help="http: the REST API, batches of up to 10 when more than one event is due; "
            "client: one publisher socket per channel sending client-rtctl-bench events.",
        ),
    ] = "http",
    ramp: Annotated[
        float,
        number_option(
            "--ramp",
            parser=number(1, 1_000_000),
            metavar="RATE",
            help="New connections per second while ramping (at most 200 handshakes in flight).",
        ),
    ] = 500.0,
    drain: Annotated[
        float,
        number_option(
            "--drain",
            parser=number(0, 600),
            metavar="SECONDS",
            help="Seconds to wait after the last publish for late deliveries.",
        ),
    ] = 5.0,
    timeout: Annotated[
        float,
        timeout_option("Seconds each connection may take to connect and subscribe."),
    ] = 10.0,
    min_delivery: Annotated[
        float,
        number_option(
            "--min-delivery",
            parser=number(0, 1),
            metavar="FRACTION",
            help="Fail (exit 1) when received ÷ expected is under this fraction.",
        ),
    ] = 1.0,
    max_p99: Annotated[
        float | None,
        number_option(
            "--max-p99",
            parser=number(0, 3_600_000),
            metavar="MS",
            help="Fail (exit 1) when delivery p99 exceeds this many milliseconds.",
        ),
    ] = None,
    workers: Annotated[
        int,
        number_option(
            "--workers",
            "-w",
            metavar="N",
            parser=number(1, 32, integer=True),
            help="Processes holding the subscribers (one report); each opens up to ~19,000.",
        ),
    ] = 1,
    direct: Annotated[
        bool,
        typer.Option(
            "--direct",
            help="On a cluster: connect subscribers straight to the nodes, evenly, instead of "
            "through the front door (per-node delivery and latency).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Open N subscribers over C channels, publish at a fixed rate, report delivery and latency.

    Exits 1 when a subscriber could not connect or subscribe, when delivery is under
    --min-delivery (default: every event), or when p99 is over --max-p99.
    """
    json_mode(ctx, as_json)
    from rtctl.ops.bench.report import BenchOptions, check_options
    from rtctl.ops.bench.runner import run_bench

    options = BenchOptions(
        connections=connections,
        channels=channels,
        channel_type=channel_type,
        rate=rate,
        duration=duration,
        payload_size=payload_size,
        publish=publish,
        ramp=ramp,
        drain=drain,
        connect_timeout=timeout,
        workers=workers,
        direct=direct,
    )
    check_options(options)
    settings = state(ctx).settings()
    thresholds = {"min_delivery": min_delivery, "max_p99_ms": max_p99}
    with _Progress() as progress:
        report = run_bench(settings, options, progress.update, thresholds)
    if as_json:
        output.data_json(report)
    else:
        output.data_rich(render_report(report))
    failed = report["verdict"]["reasons"]
    if failed:
        raise ReportPrinted("; ".join(failed), hint=FAILED_HINT)


class _Progress:
    """A live status line on a terminal (redrawn at most 4 times a second); one line per phase
    otherwise."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self.live: Any = None
        self.phase = ""
        self._drawn = 0.0

    def __enter__(self) -> "_Progress":
        self.live = self._stack.enter_context(output.live(transient=True))
        return self

    def __exit__(self, *_: object) -> None:
        self._stack.close()

    def update(self, snap: dict[str, Any]) -> None:
        if self.live is not None:
            now = time.monotonic()
            if now - self._drawn >= 0.25:
                self._drawn = now
                self.live.update(_status(snap), refresh=True)
        elif snap["phase"] != self.phase:
            self.phase = snap["phase"]
            output.say(
                f"bench: {snap['phase']} ({snap['subscribed']}/{snap['connections']} subscribed, "
                f"{snap['failed']} failed)"
            )


def _status(snap: dict[str, Any]) -> "RenderableType":
    from rich.text import Text

    expected = snap["expected"]
    share = f"{100 * snap['received'] / expected:.1f}%" if expected else "-"
    return Text(
        f"{snap['phase']:<10} {snap['subscribed']}/{snap['connections']} subscribed"
        f" · received {snap['received']}/{expected} ({share}) · sent {snap['sent']}"
        f" · open {snap['open']} · failed {snap['failed']} · errors {snap['errors']}"
    )


def _ms(stats: dict[str, Any]) -> str:
    if stats["p50"] is None:
        return "-"
    return " / ".join(f"{stats[k]:.1f}" for k in ("p50", "p90", "p95", "p99", "max"))


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} ×{value}" for key, value in counts.items()) or "none"


def render_report(report: dict[str, Any]) -> "RenderableType":
    """The final report as one two-column table (the same numbers as --json)."""
    from rich.table import Table

    conn, pub, dlv, cpu = (
        report["connections"],
        report["publish"],
        report["delivery"],
        report["rtctl"],
    )
    opts = report["options"]
    verdict = report["verdict"]
    table = Table(
        title=f"rtctl bench → {report['target']}", show_header=False, title_justify="left"
    )
    table.add_column("measure", style="bold")
    table.add_column("value")
    rows = [
        (
            "setup",
            f"{opts['connections']} × {opts['channel_type']} over {opts['channels']} channels, "
            f"{opts['rate']:g} ev/s for {opts['duration']:g} s via {opts['publish']}, "
            f"{opts['payload_size']} B",
        ),
        ("subscribed", f"{conn['subscribed']} / {conn['requested']}"),
        ("connect failures", _counts(conn["failures"])),
        ("dropped mid-run", f"{conn['dropped']} (closes: {_counts(conn['closes'])})"),
        ("connect ms p50/90/95/99/max", _ms(conn["connect_ms"])),
        ("subscribe ms p50/90/95/99/max", _ms(conn["subscribe_ms"])),
        ("events sent", f"{pub['sent']} ({pub['accepted']} accepted, {pub['failed']} failed)"),
        ("publish failures", _counts(pub["failures"])),
        ("publish rate", f"{pub['achieved_rate']:g} ev/s (target {pub['target_rate']:g})"),
        ("expected deliveries", str(dlv["expected"])),
        ("received", f"{dlv['received']} ({dlv['lost']} lost)"),
        ("delivery rate", f"{dlv['rate'] * 100:.2f}%"),
        ("duplicates / out of order", f"{dlv['duplicates']} / {dlv['out_of_order']}"),
        ("latency ms p50/90/95/99/max", _ms(dlv["latency_ms"])),
        ("pusher:error codes", _counts(report["errors"])),
        (
            "rtctl CPU",
            f"{cpu['cpu_percent_publishing']:g}% while publishing, {cpu['cpu_percent']:g}% overall"
            f"{' (saturated: figures are a floor)' if cpu['saturated'] else ''}, "
            f"max RSS {cpu['max_rss_mb']:g} MB"
            + (f" (busiest of {cpu['workers']} workers)" if cpu["workers"] > 1 else ""),
        ),
        *_target_rows(report),
        *_process_rows(report),
        ("limit", report["limit"]["reason"]),
        ("verdict", "passed" if verdict["passed"] else "FAILED: " + "; ".join(verdict["reasons"])),
    ]
    rows[-1:-1] = [("note", text) for text in report["notes"]]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _target_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """With --direct: delivery and latency per node."""
    if len(report["targets"]) < 2:
        return []
    rows = []
    for row in report["targets"]:
        latency = row["latency_ms"]
        p50 = "-" if latency["p50"] is None else f"{latency['p50']:.1f}"
        p99 = "-" if latency["p99"] is None else f"{latency['p99']:.1f}"
        rows.append(
            (
                f"on {row['name']}",
                f"{row['subscribers']} subscribers, {row['received']}/{row['expected']} "
                f"({row['rate'] * 100:.2f}%), latency p50 {p50} / p99 {p99} ms",
            )
        )
    return rows


def _process_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The cluster's processes while publishing: CPU (of one core), connections, messages out."""
    rows = []
    for proc in report["processes"]:
        if proc["kind"] in ("worker", "publisher") and report["options"]["workers"] == 1:
            continue
        parts = []
        if proc["cpu_percent"] is not None:
            parts.append(f"CPU {proc['cpu_percent']:g}%")
        if proc["connections"] is not None:
            parts.append(f"{proc['connections']} connections")
        if proc["messages_out"] is not None:
            parts.append(f"{proc['messages_out']} messages out")
        if proc["rss_mb"] is not None:
            parts.append(f"RSS {proc['rss_mb']:g} MB")
        if parts:
            rows.append((proc["name"], ", ".join(parts)))
    machine = report["machine"]
    if machine["cpu_percent"] is not None and rows:
        rows.append(("machine", f"CPU {machine['cpu_percent']:g}% of {machine['cores']} cores"))
    return rows
