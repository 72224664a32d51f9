#!/usr/bin/env python3
"""Benchmark 8: a 3-node Soketi cluster (Redis) behind the front door, side by side with one node.

Four parts, every size an option, all traffic on 127.0.0.0/8; the script starts one native
Soketi and one cluster on free ports (temporary state folders) and stops both by PID:
  1. latency: the same load on one node, across nodes (publisher on node-1, subscribers straight
     on node-2 and node-3) and through the front door: p50/p95/p99 side by side;
  2. held: N subscribers through the front door with worker processes and front-door processes
     sized for N (each process carries ~19,000 sockets, each HAProxy ~9,900 connections);
  3. fan-out: the highest rate sustained (100 % delivery, target rate reached, p95 < 100 ms) by
     one node with one worker, one node with W workers, the cluster with W workers; each ramp
     stops at the first unsustained step and names the process that limited it;
  4. smoke: `rtctl smoke` (failover excluded) on the cluster and on one node, wall time.

Usage: scripts/bench_cluster.py [--subscribers 8000] [--workers W] [--front-doors K]
       [--fanout-subscribers 2000] [--fanout-rates 100,200,300,400,600,800] [--parts ...]
       [--duration 10] [--quick] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
P95_LIMIT_MS = 100.0  # Soketi's own CI bound, as in bench_capacity.py
PER_WORKER = 15_000  # sockets per bench worker (the open-files limit is 20,000 per process)
PER_FRONT_DOOR = 9_000  # connections per HAProxy process (two descriptors each)


def free_run(count: int) -> int:
    """The first of ``count`` consecutive free ports below the ephemeral range."""
    for _ in range(500):
        base = random.randrange(20000, 32000 - count)
        ok = True
        for port in range(base, base + count):
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free ports")


def write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def credentials() -> dict[str, str]:
    return {
        "PUSHER_APP_ID": str(100000 + secrets.randbelow(899999)),
        "PUSHER_APP_KEY": "bench" + secrets.token_hex(8),
        "PUSHER_APP_SECRET": "sec" + secrets.token_hex(12),
    }


class Deployment:
    """One native Soketi or one cluster, started from a .env in its own folder, by PID."""

    def __init__(self, work: Path, nodes: int, front_doors: int = 1) -> None:
        self.folder = work / (f"cluster-{nodes}" if nodes > 1 else "single")
        self.folder.mkdir(parents=True)
        self.nodes = nodes
        env = {
            "REALTIME_HOST": "127.0.0.1",
            "REALTIME_PORT": str(free_run(nodes + 1)),
            "SOKETI_METRICS_SERVER_PORT": str(free_run(nodes)),
            "SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES": "true",
            "SOKETI_DEFAULT_APP_USER_AUTHENTICATION": "true",  # smoke's terminate check runs
            **credentials(),
        }
        if nodes > 1:
            env.update(
                RTCTL_SOKETI_NODES=str(nodes),
                SOKETI_ADAPTER_DRIVER="redis",
                RTCTL_BUS_PORT=str(free_run(1)),
                RTCTL_FRONT_DOOR_PROCESSES=str(front_doors),
            )
        self.env = env
        self.env_file = write_env(self.folder / ".env", env)
        self.state = self.folder / ".rtctl"

    @property
    def port(self) -> int:
        return int(self.env["REALTIME_PORT"])

    def environ(self) -> dict[str, str]:
        return {**os.environ, "RTCTL_STATE_DIR": str(self.state)}

    def rtctl(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, "-m", "rtctl", "--env-file", str(self.env_file), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
            env=self.environ(),
        )

    def up(self) -> None:
        done = self.rtctl("up", "--runtime", "native", "--timeout", "120")
        if done.returncode != 0:
            raise SystemExit(f"rtctl up failed ({done.returncode}): {done.stderr.strip()}")

    def down(self) -> None:
        self.rtctl("down", timeout=120)

    def bench(self, args: list[str]) -> dict[str, Any]:
        wall0 = time.monotonic()
        done = self.rtctl("bench", *args, "--json")
        try:
            report = json.loads(done.stdout)
        except ValueError:
            return {"error": done.stderr.strip().splitlines()[-2:], "exit_code": done.returncode}
        if "error" in report:
            return {"error": report["error"]["message"], "exit_code": done.returncode}
        return figures(report, time.monotonic() - wall0)


def figures(report: dict[str, Any], wall: float) -> dict[str, Any]:
    conn, pub, dlv = report["connections"], report["publish"], report["delivery"]
    latency = dlv["latency_ms"]
    return {
        "subscribed": conn["subscribed"],
        "requested": conn["requested"],
        "failed": conn["failed"],
        "connect_p99_ms": conn["connect_ms"]["p99"],
        "rate": pub["achieved_rate"],
        "expected": dlv["expected"],
        "received": dlv["received"],
        "delivery": dlv["rate"],
        "deliveries_per_s": round(dlv["received"] / max(pub["seconds"], 1e-9)),
        "p50_ms": latency["p50"],
        "p95_ms": latency["p95"],
        "p99_ms": latency["p99"],
        "workers": report["rtctl"]["workers"],
        "busiest_worker_cpu": report["rtctl"]["cpu_percent_publishing"],
        "limit": report["limit"]["reason"],
        "limit_process": report["limit"]["process"],
        "processes": {
            p["name"]: {
                k: p[k] for k in ("cpu_percent", "rss_mb", "connections") if p[k] is not None
            }
            for p in report["processes"]
        },
        "targets": [
            {k: t[k] for k in ("name", "subscribers", "rate", "latency_ms")}
            for t in report["targets"]
        ],
        "wall_s": round(wall, 1),
    }


def sustained(row: dict[str, Any], rate: float) -> bool:
    return (
        row.get("delivery") == 1.0
        and row.get("rate", 0) >= 0.98 * rate
        and (row.get("p95_ms") or math.inf) < P95_LIMIT_MS
    )


def show(label: str, row: dict[str, Any]) -> None:
    if "error" in row:
        print(f"  {label:<34} ERROR {row['error']}", flush=True)
        return
    print(
        f"  {label:<34} {row['subscribed']:>6}/{row['requested']:<6} delivery "
        f"{row['delivery'] * 100:7.3f}%  {row['deliveries_per_s']:>7} deliveries/s  "
        f"p50/p95/p99 {row['p50_ms']}/{row['p95_ms']}/{row['p99_ms']} ms  "
        f"[{row['limit_process'] or 'no limit reached'}]",
        flush=True,
    )


# --- the parts -----------------------------------------------------------------------------------


def part_latency(
    args: argparse.Namespace, single: Deployment, cluster: Deployment
) -> dict[str, Any]:
    """The same load: one node; across nodes (publisher node-1, subscribers node-2, node-3);
    through the front door."""
    n, c, rate = args.latency_subscribers, args.latency_channels, args.latency_rate
    common = [
        "-n",
        str(n),
        "-c",
        str(c),
        "-r",
        str(rate),
        "-d",
        str(args.duration),
        "--ramp",
        "1000",
    ]
    print(f"-- 1. latency: {n} subscribers over {c} channels, {rate} ev/s, HTTP publishing")
    rows = {"single_node": single.bench(common)}
    show("one node", rows["single_node"])
    rows["cross_node"] = cross_node(cluster, args, n, c, rate)
    show("across nodes (pub node-1, subs 2+3)", rows["cross_node"])
    rows["front_door"] = cluster.bench(common)
    show("through the front door", rows["front_door"])
    return rows


def cross_node(
    cluster: Deployment, args: argparse.Namespace, n: int, c: int, rate: float
) -> dict[str, Any]:
    """Library call: subscribers on node-2 and node-3 directly, the publisher on node-1."""
    code = f"""
import json, sys
from dataclasses import replace
from rtctl.config import load_settings
from rtctl.ops.bench.report import BenchOptions
from rtctl.ops.bench.runner import run_bench
from rtctl.runtime import cluster
from pathlib import Path
settings = load_settings(Path({str(cluster.env_file)!r}))
nodes = cluster.plan(settings).nodes
node = lambda i: cluster.node_settings(settings, nodes[i])
options = BenchOptions(connections={n}, channels={c}, rate={rate}, duration={args.duration}, ramp=1000)
report = run_bench(settings, options, targets=[("node-2", node(1)), ("node-3", node(2))],
                   publisher=node(0), thresholds={{"min_delivery": 1.0}})
print(json.dumps(report))
"""
    wall0 = time.monotonic()
    done = subprocess.run(
        [PYTHON, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=cluster.environ(),
        timeout=1800,
    )
    try:
        return figures(json.loads(done.stdout), time.monotonic() - wall0)
    except ValueError:
        return {"error": done.stderr.strip().splitlines()[-3:]}


def part_held(args: argparse.Namespace, single: Deployment, cluster: Deployment) -> dict[str, Any]:
    n = args.subscribers
    workers = args.workers or max(1, math.ceil(n / PER_WORKER))
    flags = [
        "-n",
        str(n),
        "-c",
        str(max(1, n // 100)),
        "-r",
        "20",
        "-d",
        str(args.duration),
        "--ramp",
        str(args.ramp),
        "--timeout",
        "30",
    ]
    print(
        f"-- 2. held: {n} subscribers (100 per channel, 20 ev/s: 2,000 deliveries/s), "
        f"{workers} workers, {cluster.env['RTCTL_FRONT_DOOR_PROCESSES']} front-door processes"
    )
    rows: dict[str, Any] = {}
    if n <= 19000:
        rows["single_node_one_worker"] = single.bench(flags)
        show("one node, one worker", rows["single_node_one_worker"])
    else:
        print("  one node, one worker               (not run: over one process's 19,000 sockets)")
    rows["cluster_front_door"] = cluster.bench([*flags, "--workers", str(workers)])
    show(f"3 nodes, front door, {workers} workers", rows["cluster_front_door"])
    return rows


def ramp(
    deployment: Deployment, label: str, args: argparse.Namespace, workers: int
) -> dict[str, Any]:
    n = args.fanout_subscribers
    steps = []
    for rate in args.fanout_rates:
        row = deployment.bench(
            [
                "-n",
                str(n),
                "-c",
                str(max(1, n // 100)),
                "-r",
                str(rate),
                "-d",
                str(args.duration),
                "--ramp",
                "1000",
                "--workers",
                str(workers),
            ]
        )
        row["target_rate"] = rate
        row["sustained"] = sustained(row, rate)
        steps.append(row)
        show(f"{label} @ {rate} ev/s", row)
        if not row["sustained"]:
            break
    best = max((r["deliveries_per_s"] for r in steps if r.get("sustained")), default=0)
    first_miss = next((r for r in steps if not r.get("sustained")), None)
    return {
        "steps": steps,
        "sustained_deliveries_per_s": best,
        "limit_at_first_unsustained": first_miss.get("limit") if first_miss else None,
    }


def part_fanout(
    args: argparse.Namespace, single: Deployment, cluster: Deployment
) -> dict[str, Any]:
    w = args.fanout_workers
    print(
        f"-- 3. fan-out: {args.fanout_subscribers} subscribers, 100 per event; sustained = 100 % "
        "delivery, target rate, p95 < 100 ms"
    )
    rows = {
        "single_node_1_worker": ramp(single, "one node, 1 worker", args, 1),
        f"single_node_{w}_workers": ramp(single, f"one node, {w} workers", args, w),
        f"cluster_{w}_workers": ramp(cluster, f"3 nodes, {w} workers", args, w),
    }
    for name, row in rows.items():
        print(
            f"  {name}: sustained {row['sustained_deliveries_per_s']} deliveries/s; limit: "
            f"{row['limit_at_first_unsustained'] or 'not reached'}"
        )
    return rows


def part_smoke(args: argparse.Namespace, single: Deployment, cluster: Deployment) -> dict[str, Any]:
    print(f"-- 4. smoke (failover excluded), {args.smoke_runs} runs each")
    rows = {}
    for name, deployment in (("single_node", single), ("cluster_3_nodes", cluster)):
        walls, checks, verdicts = [], [], []
        for _ in range(args.smoke_runs):
            wall0 = time.monotonic()
            done = deployment.rtctl("smoke", "--json", timeout=300)
            walls.append(time.monotonic() - wall0)
            report = json.loads(done.stdout)
            checks.append(report["duration_ms"] / 1000)
            verdicts.append(report["verdict"])
        rows[name] = {
            "verdicts": verdicts,
            "checks": len(report["checks"]),
            "checks_s_median": round(statistics.median(checks), 2),
            "wall_s_median": round(statistics.median(walls), 2),
        }
        print(
            f"  {name:<16} {verdicts.count('pass')}/{len(verdicts)} pass, {rows[name]['checks']} "
            f"checks, checks {rows[name]['checks_s_median']} s, whole command "
            f"{rows[name]['wall_s_median']} s (median)"
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=8000, help="part 2 (held)")
    parser.add_argument("--workers", type=int, default=0, help="part 2 (default: N / 15,000)")
    parser.add_argument("--front-doors", type=int, default=0, help="HAProxy processes (N / 9,000)")
    parser.add_argument("--ramp", type=float, default=1000, help="new connections per second")
    parser.add_argument("--latency-subscribers", type=int, default=2000)
    parser.add_argument("--latency-channels", type=int, default=20)
    parser.add_argument("--latency-rate", type=float, default=50)
    parser.add_argument("--fanout-subscribers", type=int, default=2000)
    parser.add_argument("--fanout-rates", default="100,200,300,400,600,800")
    parser.add_argument("--fanout-workers", type=int, default=2)
    parser.add_argument("--smoke-runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--parts", default="latency,held,fanout,smoke")
    parser.add_argument("--quick", action="store_true", help="short steps, small sizes")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    if args.quick:
        args.duration = 3
        args.subscribers = min(args.subscribers, 3000)
        args.latency_subscribers = min(args.latency_subscribers, 600)
        args.fanout_subscribers = min(args.fanout_subscribers, 600)
        args.fanout_rates = "100,300"
        args.smoke_runs = 1
    args.fanout_rates = [float(r) for r in args.fanout_rates.split(",") if r]
    parts = args.parts.split(",")
    front_doors = args.front_doors or max(1, math.ceil(args.subscribers / PER_FRONT_DOOR))
    # Sockets of every bench process would be dropped by sign-in enforcement otherwise.
    os.environ.setdefault("SOKETI_USER_AUTHENTICATION_TIMEOUT", "3600000")
    os.environ.setdefault("RTCTL_CACHE_DIR", str(REPO / ".cache" / "rtctl-test"))

    print("== 8. cluster: 3 nodes on Redis behind the front door, vs one node ==", flush=True)
    results: dict[str, Any] = {"options": {k: v for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory(prefix="rtctl-bench-cluster.") as temp:
        work = Path(temp)
        single = Deployment(work, 1)
        cluster = Deployment(work, 3, front_doors)
        try:
            single.up()
            cluster.up()
            print(
                f"one node on 127.0.0.1:{single.port}; cluster front door on "
                f"127.0.0.1:{cluster.port} ({front_doors} HAProxy process{'es' if front_doors > 1 else ''})",
                flush=True,
            )
            for name, part in (
                ("latency", part_latency),
                ("held", part_held),
                ("fanout", part_fanout),
                ("smoke", part_smoke),
            ):
                if name in parts:
                    results[name] = part(args, single, cluster)
        finally:
            cluster.down()
            single.down()
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
