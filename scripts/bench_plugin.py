#!/usr/bin/env python3
"""Benchmark 5: what the pytest plugin (rtctl.testing) costs.

1. start-up: `python -m pytest` on one trivial test in an empty folder, with the plugin and with
   `-p no:rtctl`, RUNS times each, interleaved; medians and their difference (gate: < 20 ms).
   Also the plugin module's own import time after `import pytest`, in a fresh interpreter.
2. session start: the realtime_server fixture's work (a native Soketi on free ports, installed
   already, plus its watchdog) until it answers; median of STARTS (gate: <= 2 s). Stop timed too.
3. wait_for: trigger-to-receive latency over the HTTP API, read raw from a PusherSocket in this
   thread vs. through Listener.wait_for, EVENTS each, interleaved on one server; difference of the
   medians (gate: < 5 ms).

Usage: scripts/bench_plugin.py [--runs 21] [--starts 5] [--events 200] [--json-out FILE]
Needs Soketi installed (RTCTL_CACHE_DIR as for the tests; scripts/test.sh installs it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

STARTUP_GATE_MS = 20.0
SESSION_GATE_S = 2.0
WAIT_FOR_GATE_MS = 5.0

IMPORT_PROBE = (
    "import time, pytest; t = time.perf_counter(); import rtctl.testing.plugin; "
    "print(time.perf_counter() - t)"
)


# As after `pip install` (which compiles every module): the timed processes may write and read
# .pyc files even where PYTHONDONTWRITEBYTECODE is set; the warm-up run writes them.
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def timed(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        argv, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    return time.perf_counter() - started


def bench_startup(runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "test_plain.py").write_text("def test_plain():\n    pass\n")
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_plain.py"]
        commands = {"with the plugin": base, "-p no:rtctl": [*base, "-p", "no:rtctl"]}
        for argv in commands.values():  # warm the page cache and .pyc files
            timed(argv, work)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, argv in commands.items():
                samples[name].append(timed(argv, work))
    probe = [sys.executable, "-c", IMPORT_PROBE]
    imports = [
        float(subprocess.run(probe, env=ENV, capture_output=True, text=True, check=True).stdout)
        for _ in range(runs + 1)
    ][1:]  # the first run writes the .pyc files
    medians = {name: statistics.median(values) for name, values in samples.items()}
    added = medians["with the plugin"] - medians["-p no:rtctl"]
    return {
        "runs": runs,
        "pytest_with_plugin_ms": ms(medians["with the plugin"]),
        "pytest_without_plugin_ms": ms(medians["-p no:rtctl"]),
        "added_ms": ms(added),
        "plugin_import_ms": ms(statistics.median(imports)),
        "gate_ms": STARTUP_GATE_MS,
        "ok": added < STARTUP_GATE_MS / 1000,
    }


def bench_session_start(starts: int) -> dict[str, Any]:
    from rtctl.runtime import native
    from rtctl.testing.server import start_local

    native.ensure_installed()  # installed already on a prepared machine; not what is measured
    start_times, stop_times = [], []
    for _ in range(starts):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            server = start_local(Path(folder))
            start_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            server.stop()
            stop_times.append(time.perf_counter() - started)
    median = statistics.median(start_times)
    return {
        "starts": starts,
        "start_median_s": round(median, 3),
        "start_max_s": round(max(start_times), 3),
        "stop_median_s": round(statistics.median(stop_times), 3),
        "gate_s": SESSION_GATE_S,
        "ok": median <= SESSION_GATE_S,
    }


def bench_wait_for(events: int) -> dict[str, Any]:
    from rtctl.protocol import PusherSocket
    from rtctl.testing.client import pusher_client
    from rtctl.testing.listener import Listener
    from rtctl.testing.server import start_local

    with tempfile.TemporaryDirectory() as folder:
        server = start_local(Path(folder))
        try:
            settings = server.settings
            client = pusher_client(settings)
            raw = PusherSocket(settings)
            raw.connect(10)
            raw.subscribe("private-bench-raw", 10)
            listener = Listener(settings).connect().subscribe("private-bench-listener")
            raw_latency, listener_latency = [], []
            for number in range(events):
                started = time.perf_counter()
                client.trigger("private-bench-raw", "ping", {"n": number})
                while True:
                    message = raw.recv(5)
                    if message is None:
                        raise SystemExit(f"raw socket: event {number} did not arrive in 5 s")
                    if message.event == "ping":
                        break
                raw_latency.append(time.perf_counter() - started)

                started = time.perf_counter()
                client.trigger("private-bench-listener", "ping", {"n": number})
                listener.wait_for(event="ping", data={"n": number})
                listener_latency.append(time.perf_counter() - started)
            raw.close()
            listener.close()
        finally:
            server.stop()
    raw_median = statistics.median(raw_latency)
    listener_median = statistics.median(listener_latency)
    return {
        "events": events,
        "raw_median_ms": ms(raw_median),
        "raw_p95_ms": ms(statistics.quantiles(raw_latency, n=20)[-1]),
        "wait_for_median_ms": ms(listener_median),
        "wait_for_p95_ms": ms(statistics.quantiles(listener_latency, n=20)[-1]),
        "added_ms": ms(listener_median - raw_median),
        "gate_ms": WAIT_FOR_GATE_MS,
        "ok": listener_median - raw_median < WAIT_FOR_GATE_MS / 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--json-out")
    args = parser.parse_args()

    print("== pytest plugin ==")
    startup = bench_startup(args.runs)
    print(
        f"pytest start-up (median of {args.runs}): {startup['pytest_with_plugin_ms']} ms with the "
        f"plugin, {startup['pytest_without_plugin_ms']} ms with -p no:rtctl: "
        f"{startup['added_ms']:+} ms (gate < {STARTUP_GATE_MS:g} ms: "
        f"{'ok' if startup['ok'] else 'OVER'}); plugin import alone {startup['plugin_import_ms']} ms"
    )
    session = bench_session_start(args.starts)
    print(
        f"session start (median of {args.starts}): {session['start_median_s']} s, max "
        f"{session['start_max_s']} s (gate <= {SESSION_GATE_S:g} s: "
        f"{'ok' if session['ok'] else 'OVER'}); stop {session['stop_median_s']} s"
    )
    wait_for = bench_wait_for(args.events)
    print(
        f"trigger to receive (median of {args.events}): raw PusherSocket "
        f"{wait_for['raw_median_ms']} ms (p95 {wait_for['raw_p95_ms']}), Listener.wait_for "
        f"{wait_for['wait_for_median_ms']} ms (p95 {wait_for['wait_for_p95_ms']}): "
        f"{wait_for['added_ms']:+} ms (gate < {WAIT_FOR_GATE_MS:g} ms: "
        f"{'ok' if wait_for['ok'] else 'OVER'})"
    )
    figures = {"startup": startup, "session_start": session, "wait_for": wait_for}
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if all(part["ok"] for part in figures.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
