#!/usr/bin/env python3
"""Benchmark 4: how much `rtctl bench` sustains here with 100 % delivery, and where the limit is.

Three parts, each run bounded in connections and seconds, all traffic to 127.0.0.1:
  1. library choice: 2,000 subscribers held by websocket-client (one thread per socket) against
     the same load through `rtctl bench` (asyncio `websockets`, one event loop);
  2. connections: the most subscribers `rtctl bench` holds at a moderate rate with 100 % delivery;
  3. fan-out: the highest publish rate 2,000 subscribers take with 100 % delivery.
For every step it prints rtctl's CPU (from the report), Soketi's CPU and RSS (from /proc).

Usage: scripts/bench_capacity.py --env-file FILE --soketi-pid PID [--quick] [--json-out FILE]
(scripts/benchmarks.sh starts the native Soketi and passes both.)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rtctl_bench(env_file: str, soketi_pid: int, args: list[str]) -> dict[str, Any]:
    """One `rtctl bench --json` run, with Soketi's CPU share and RSS over the same wall time."""
    cpu0, wall0 = proc_cpu_seconds(soketi_pid), time.monotonic()
    done = subprocess.run(
        [PYTHON, "-m", "rtctl", "--env-file", env_file, "bench", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    wall = time.monotonic() - wall0
    soketi_cpu = 100 * (proc_cpu_seconds(soketi_pid) - cpu0) / wall
    try:
        report = json.loads(done.stdout)
    except ValueError:
        return {"error": done.stderr.strip().splitlines()[-2:], "exit_code": done.returncode}
    if "error" in report:
        return {"error": report["error"]["message"], "exit_code": done.returncode}
    pub, dlv, conn, me = (
        report["publish"],
        report["delivery"],
        report["connections"],
        report["rtctl"],
    )
    return {
        "exit_code": done.returncode,
        "subscribed": conn["subscribed"],
        "failed": conn["failed"],
        "connect_p99_ms": conn["connect_ms"]["p99"],
        "sent": pub["sent"],
        "rate": pub["achieved_rate"],
        "expected": dlv["expected"],
        "received": dlv["received"],
        "delivery": dlv["rate"],
        "deliveries_per_s": round(dlv["received"] / max(pub["seconds"], 1e-9)),
        "p50_ms": dlv["latency_ms"]["p50"],
        "p95_ms": dlv["latency_ms"]["p95"],
        "p99_ms": dlv["latency_ms"]["p99"],
        "rtctl_cpu_pct": me["cpu_percent_publishing"],
        "publisher_cpu_pct": me["publisher_cpu_percent"],
        "rtctl_rss_mb": me["max_rss_mb"],
        "soketi_cpu_pct": round(soketi_cpu, 1),
        "soketi_rss_mb": round(proc_rss_mb(soketi_pid), 1),
        "wall_s": round(wall, 1),
    }


# --- part 1: websocket-client, one thread per socket --------------------------------------------


def websocket_client_trial(
    env_file: str, n: int, channels: int, rate: float, seconds: float
) -> dict[str, Any]:
    """Hold n websocket-client sockets (a thread each), publish like `rtctl bench`, count arrivals."""
    import websocket

    from rtctl.config import load_settings
    from rtctl.protocol.httpapi import ApiClient
    from rtctl.protocol.validation import Event

    settings = load_settings(env_file=Path(env_file))
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    threading.stack_size(256 * 1024)
    names = [f"wsc-trial-{os.getpid()}-{i}" for i in range(channels)]
    received = [0] * n
    latencies: list[float] = []
    ready = threading.Semaphore(0)
    failures: list[str] = []
    per_channel = [0] * channels  # subscribed sockets per channel
    stop = threading.Event()

    def subscriber(i: int) -> None:
        try:
            ws = websocket.create_connection(settings.ws_url, timeout=30)
            json.loads(ws.recv())  # connection_established
            ws.send(
                json.dumps({"event": "pusher:subscribe", "data": {"channel": names[i % channels]}})
            )
            json.loads(ws.recv())  # subscription_succeeded
        except Exception as error:
            failures.append(type(error).__name__)
            ready.release()
            return
        per_channel[i % channels] += 1
        ready.release()
        ws.settimeout(1)
        while not stop.is_set():
            try:
                frame = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception:
                return
            now = time.monotonic_ns()
            message = json.loads(frame)
            if message.get("event") == "wsc-trial":
                body = json.loads(message["data"])
                latencies.append((now - body["t"]) / 1e6)
                received[i] += 1
        ws.close()

    cpu0, wall0 = time.process_time(), time.monotonic()
    threads = [threading.Thread(target=subscriber, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + CONNECT_DEADLINE
    settled = 0
    while settled < n and ready.acquire(timeout=max(0.0, deadline - time.monotonic())):
        settled += 1
    connect_wall = time.monotonic() - wall0
    connect_cpu = time.process_time() - cpu0
    subscribed = settled - len(failures)  # sockets still connecting at the deadline count as failed
    failures.extend(["not connected within the deadline"] * (n - settled))
    sent = 0
    cpu1, start = time.process_time(), time.monotonic()
    with ApiClient(settings) as client:
        while (elapsed := time.monotonic() - start) < seconds:
            if sent > elapsed * rate:
                time.sleep(0.002)
                continue
            data = json.dumps({"s": sent, "t": time.monotonic_ns()})
            client.trigger(Event((names[sent % channels],), "wsc-trial", data))
            sent += 1
    deadline = time.monotonic() + 10
    expected = sum(per_channel) * (sent // channels) + sum(per_channel[: sent % channels])
    while sum(received) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    busy = time.monotonic() - start
    cpu_pct = 100 * (time.process_time() - cpu1) / busy
    stop.set()
    latencies.sort()
    return {
        "subscribed": subscribed,
        "failures": len(failures),
        "connect_all_s": round(connect_wall, 2),
        "connect_cpu_s": round(connect_cpu, 2),
        "sent": sent,
        "expected": expected,
        "received": sum(received),
        "delivery": round(sum(received) / expected, 6) if expected else 0,
        "p50_ms": round(latencies[len(latencies) // 2], 2) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99)], 2) if latencies else None,
        "cpu_pct_publishing": round(cpu_pct, 1),
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


LIBRARY_STEPS = [(2000, 20, 50), (2000, 20, 300), (4000, 40, 30)]
CONNECT_DEADLINE = 60.0  # seconds for the websocket-client trial to open all its sockets


def websocket_client_child(
    args: argparse.Namespace, n: int, channels: int, rate: int
) -> dict[str, Any]:
    """Part 1's websocket-client trial in its own process, so its RSS and CPU are its own."""
    cpu0, wall0 = proc_cpu_seconds(args.soketi_pid), time.monotonic()
    child = subprocess.run(
        [PYTHON, __file__, "--env-file", args.env_file, "--soketi-pid", str(args.soketi_pid)]
        + ["--wsc-trial", f"{n},{channels},{rate}"]
        + (["--quick"] if args.quick else []),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    try:
        result: dict[str, Any] = json.loads(child.stdout)
    except ValueError:
        return {"error": child.stderr.strip().splitlines()[-3:], "exit_code": child.returncode}
    wall = time.monotonic() - wall0
    result["soketi_cpu_pct"] = round(100 * (proc_cpu_seconds(args.soketi_pid) - cpu0) / wall, 1)
    return result


P95_LIMIT_MS = 100.0  # Soketi's own CI passes when message delay p95 < 100 ms


def sustained(row: dict[str, Any], rate: float) -> bool:
    """Every event delivered, the target rate achieved, and p95 under Soketi's CI bound."""
    return (
        row.get("delivery") == 1.0
        and row.get("rate", 0) >= 0.98 * rate
        and (row.get("p95_ms") or float("inf")) < P95_LIMIT_MS
    )


def summary(results: dict[str, Any]) -> dict[str, Any]:
    held = [r for r in results["connections"] if r.get("delivery") == 1.0 and not r.get("failed")]
    fanout = [r for r in results["fanout"] if r.get("sustained")]
    complete = [r for r in results["fanout"] if r.get("delivery") == 1.0]
    return {
        "most_connections_full_delivery": max((r["connections"] for r in held), default=0),
        "highest_sustained_rate": max((r["target_rate"] for r in fanout), default=0),
        "highest_sustained_deliveries_per_s": max(
            (r["deliveries_per_s"] for r in fanout), default=0
        ),
        "highest_full_delivery_deliveries_per_s": max(
            (r["deliveries_per_s"] for r in complete), default=0
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", required=True)
    parser.add_argument("--soketi-pid", type=int, required=True)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter steps")
    parser.add_argument("--json-out", help="also write the figures as JSON here")
    parser.add_argument("--wsc-trial", help=argparse.SUPPRESS)  # "N,C,RATE": part 1's child
    args = parser.parse_args()
    duration = "5" if args.quick else "10"

    if args.wsc_trial:  # the child process of part 1 (own RSS and CPU)
        n, c, rate = (int(v) for v in args.wsc_trial.split(","))
        print(json.dumps(websocket_client_trial(args.env_file, n, c, rate, float(duration))))
        return 0

    results: dict[str, Any] = {}
    print("== 4. bench capacity ==", flush=True)
    print("-- part 1: websocket-client threads vs rtctl bench (asyncio), same load")
    results["library"] = []
    for n, channels, rate in LIBRARY_STEPS:
        load = f"{n} subscribers / {channels} channels / {rate} ev/s"
        wsc = websocket_client_child(args, n, channels, rate)
        print(f"{load}: websocket-client threads: {json.dumps(wsc)}", flush=True)
        flags = ["-n", str(n), "-c", str(channels), "-r", str(rate), "-d", duration]
        asyncio_run = rtctl_bench(args.env_file, args.soketi_pid, [*flags, "--ramp", "1000"])
        print(f"{load}: rtctl bench (asyncio): {json.dumps(asyncio_run)}", flush=True)
        results["library"].append(
            {"load": load, "websocket_client_threads": wsc, "rtctl_bench_asyncio": asyncio_run}
        )

    print("-- part 2: connections (100 subscribers per channel, 20 ev/s)")
    # 19,000 stays under this machine's 20,000 open-files hard limit (rtctl and Soketi alike).
    steps = [2000, 4000, 8000] if args.quick else [2000, 4000, 8000, 12000, 16000, 19000]
    results["connections"] = []
    for n in steps:
        row = rtctl_bench(
            args.env_file,
            args.soketi_pid,
            ["-n", str(n), "-c", str(n // 100), "-r", "20", "-d", duration, "--ramp", "1000"],
        )
        row["connections"] = n
        results["connections"].append(row)
        print(json.dumps(row), flush=True)
        if row.get("delivery") != 1.0 or row.get("failed"):
            break

    print("-- part 3: fan-out (2,000 subscribers over 20 channels: 100 per event)")
    rates = [50, 100, 200, 400] if args.quick else [50, 100, 200, 300, 400, 500, 600, 800]
    results["fanout"] = []
    for rate in rates:
        row = rtctl_bench(
            args.env_file,
            args.soketi_pid,
            ["-n", "2000", "-c", "20", "-r", str(rate), "-d", duration],
        )
        row["target_rate"] = rate
        row["sustained"] = sustained(row, rate)
        results["fanout"].append(row)
        print(json.dumps(row), flush=True)
        if row.get("delivery") != 1.0 or row.get("rate", 0) < 0.9 * rate:
            break  # losing events, or the publisher no longer gets its rate out
    results["summary"] = summary(results)
    print(f"-- summary: {json.dumps(results['summary'])}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
