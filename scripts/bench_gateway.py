#!/usr/bin/env python3
"""Benchmark 9: `/realtime/auth` of `rtctl gateway` (1 worker and N workers) against the Node
reference gateway (Express + the official `pusher` package, scripts/bench/node-gateway), side by
side in one run, for private and presence channels.

Load: wrk (one thread, keep-alive connections) replaying pusher-js' form POSTs with a bearer JWT.
Each of --users users has its own token and private channel (`private-<id>_9000000`), so every
rtctl request verifies a JWT and applies the pair-channel rule; presence signs the token's user
and name. rtctl remembers a verified token until it expires (as in a reconnect storm, where each
browser re-authorizes every channel with the token it already has); the extra "private, new
token" case sends a never-seen token every time, so each request pays the full JWT check. The
Node reference checks no identity at all. One server runs at a time; all share this machine's
CPUs with wrk.

For each run the CPU time of the server's processes and of wrk is read from /proc, and the
script names the limit: the server (its workers busy), the load generator, or the machine.

Usage: scripts/bench_gateway.py [--workers 2] [--duration 10] [--connections 20] [--users 1000]
                                [--quick] [--json-out FILE]
Needs: .venv, wrk, Node and `npm ci` in scripts/bench/node-gateway (scripts/benchmarks.sh does it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rtctl.testing.server import free_port  # noqa: E402  (the one that never repeats a port)

NODE_GATEWAY = REPO / "scripts" / "bench" / "node-gateway"
PYTHON = sys.executable
BOT = "9000000"
TICKS = os.sysconf("SC_CLK_TCK")

WRK_SCRIPT = r"""
-- Replays prepared pusher-js auth requests, one line of the file per request: body TAB token.
local requests = {}
local count = 0
local next_index = 0

function init(args)
  for line in io.lines(args[1]) do
    local tab = string.find(line, "\t", 1, true)
    count = count + 1
    requests[count] = wrk.format("POST", args[2], {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Authorization"] = "Bearer " .. string.sub(line, tab + 1),
    }, string.sub(line, 1, tab - 1))
  end
end

function request()
  next_index = next_index % count + 1
  return requests[next_index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass
class Result:
    server: str
    case: str
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    requests: int
    server_cpu: float  # cores used on average by the server's processes
    wrk_cpu: float
    machine_busy: float  # fraction of all CPUs busy (everything on the machine)
    limit: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


# --- processes and CPU accounting -----------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        with contextlib.suppress(OSError):
            todo += [
                int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()
            ]
    return pids


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def machine_ticks() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def wait_healthy(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60
) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited early:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:g}s:\n{log.read_text()[-2000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


# --- the servers ----------------------------------------------------------------------------------


def credentials() -> dict[str, str]:
    return {
        "PUSHER_APP_ID": str(100000 + secrets.randbelow(899999)),
        "PUSHER_APP_KEY": "bench" + secrets.token_hex(8),
        "PUSHER_APP_SECRET": "s" + secrets.token_hex(16),
        # no Soketi is needed: /realtime/auth signs locally
        "REALTIME_HOST": "127.0.0.1",
        "REALTIME_PORT": str(free_port()),
    }


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PUSHER_", "REALTIME_", "SOKETI_"))
    }
    env.update(extra)
    return env


def start_rtctl(
    work: Path, env: dict[str, str], workers: int
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = work / f"rtctl-{workers}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [PYTHON, "-m", "rtctl", "gateway", "--port", str(port), "--workers", str(workers)],
            cwd=work,
            env=clean_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    base = f"http://127.0.0.1:{port}/realtime"
    wait_healthy(f"{base}/health", process, log)
    return process, base


def start_node(work: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = work / "node.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["node", str(NODE_GATEWAY / "server.mjs")],
            cwd=NODE_GATEWAY,
            env=clean_env({**env, "PORT": str(port)}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    base = f"http://127.0.0.1:{port}/realtime"
    wait_healthy(f"{base}/health", process, log)
    return process, base


# --- load -----------------------------------------------------------------------------------------


def write_requests(path: Path, jwt_secret: str, users: int, presence: bool, fresh: int = 0) -> None:
    """One line per request: the form body, a TAB, the user's token."""
    import jwt

    expires = int(time.time()) + 3600
    lines = []
    count = fresh or users
    for i in range(count):
        user = str(1000 + i % users)
        claims: dict[str, Any] = {"sub": user, "exp": expires, "iat": int(time.time())}
        if fresh:
            claims["jti"] = secrets.token_hex(8)  # a token never seen before
        if presence:
            claims["name"] = "Ada"
            channel = "presence-bench"
        else:
            channel = f"private-{user}_{BOT}"
        body = f"socket_id={100000 + i}.{200000 + i}&channel_name={channel}"
        lines.append(f"{body}\t{jwt.encode(claims, jwt_secret, algorithm='HS256')}")
    path.write_text("\n".join(lines) + "\n")


def run_wrk(
    script: Path, requests: Path, base: str, duration: float, connections: int, server_pid: int
) -> tuple[dict[str, Any], float, float]:
    """wrk's figures, the server's CPU (cores, on average) and the machine's busy fraction."""
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "5s",
        "-s", str(script), f"{base}/auth", "--", str(requests), "/realtime/auth",
    ]  # fmt: skip
    server_pids = process_tree(server_pid)
    server_before = cpu_seconds(server_pids)
    busy_before, total_before = machine_ticks()
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    busy_after, total_after = machine_ticks()
    server_after = cpu_seconds(server_pids)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr.strip()[:500]}")
    figures = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    seconds = figures["duration_us"] / 1e6
    machine = (busy_after - busy_before) / max(1, total_after - total_before)
    return figures, (server_after - server_before) / seconds, machine


def verdict(result: Result, workers: int) -> str:
    if result.server_cpu / workers >= 0.85:
        return "server (its processes were busy)"
    if result.wrk_cpu >= 0.85:
        return "load generator (wrk)"
    if result.machine_busy >= 0.9:
        return "the machine's CPUs (server, wrk and everything else running)"
    return "none saturated: latency-bound (try more --connections)"


def measure(
    server: str,
    case: str,
    workers: int,
    pid: int,
    base: str,
    requests: Path,
    script: Path,
    args: argparse.Namespace,
) -> Result:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures, server_cpu, machine = run_wrk(
        script, requests, base, args.duration, args.connections, pid
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = figures["duration_us"] / 1e6
    wrk_cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / seconds
    errors = sum(figures[k] for k in ("connect", "read", "write", "status", "timeout"))
    result = Result(
        server=server,
        case=case,
        requests_per_s=round(figures["requests"] / seconds, 1),
        p50_ms=figures["p50_us"] / 1000,
        p90_ms=figures["p90_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        errors=errors,
        requests=figures["requests"],
        server_cpu=round(server_cpu, 2),
        wrk_cpu=round(wrk_cpu, 2),
        machine_busy=round(machine, 2),
        raw=figures,
    )
    result.limit = verdict(result, workers)
    return result


def print_table(results: list[Result]) -> None:
    header = f"{'server':<18} {'case':<20} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}  {'server CPU':>10} {'wrk CPU':>7}  limit"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.server:<18} {r.case:<20} {r.requests_per_s:>8,.0f} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f} "
            f"{r.errors:>6}  {r.server_cpu:>9.2f}c {r.wrk_cpu:>6.2f}c  {r.limit}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workers", type=int, default=2, help="rtctl's multi-worker run (default 2)"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument(
        "--connections", type=int, default=20, help="concurrent keep-alive connections"
    )
    parser.add_argument(
        "--users", type=int, default=1000, help="distinct users (tokens, DM channels)"
    )
    parser.add_argument("--quick", action="store_true", help="3 s runs (a check that it works)")
    parser.add_argument("--json-out", help="also write the figures as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.duration = 3.0
    if shutil.which("wrk") is None:
        raise SystemExit(
            "wrk is not installed: apt-get install -y wrk (scripts/benchmarks.sh does it)"
        )
    if not (NODE_GATEWAY / "node_modules" / "pusher").is_dir():
        raise SystemExit(
            f"the Node reference is not installed: cd {NODE_GATEWAY} && npm ci --ignore-scripts"
        )

    work = Path(tempfile.mkdtemp(prefix="rtctl-bench-gateway-"))
    jwt_secret = secrets.token_hex(32)
    env = {**credentials(), "REALTIME_JWT_SECRET": jwt_secret}
    script = work / "auth.lua"
    script.write_text(WRK_SCRIPT)
    files = {
        "private": work / "private.txt",
        "presence": work / "presence.txt",
        "private, new token": work / "fresh.txt",
    }
    write_requests(files["private"], jwt_secret, args.users, presence=False)
    write_requests(files["presence"], jwt_secret, args.users, presence=True)
    write_requests(
        files["private, new token"],
        jwt_secret,
        args.users,
        presence=False,
        fresh=max(20_000, int(args.duration * 8000)),
    )

    plan: list[tuple[str, int, list[str]]] = [
        ("rtctl 1 worker", 1, ["private", "presence", "private, new token"]),
        (
            f"rtctl {args.workers} workers",
            args.workers,
            ["private", "presence", "private, new token"],
        ),
        ("node reference", 1, ["private", "presence"]),
    ]
    results: list[Result] = []
    try:
        for server, workers, cases in plan:
            process, base = (
                start_node(work, env)
                if server.startswith("node")
                else start_rtctl(work, env, workers)
            )
            try:
                # warm-up: imports, JIT, the verified-token cache of every user
                run_wrk(script, files["private"], base, 2, args.connections, process.pid)
                run_wrk(script, files["presence"], base, 1, args.connections, process.pid)
                for case in cases:
                    result = measure(
                        server, case, workers, process.pid, base, files[case], script, args
                    )
                    results.append(result)
                    print(
                        f"  {server}, {case}: {result.requests_per_s:,.0f} req/s", file=sys.stderr
                    )
            finally:
                stop(process)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"\n== gateway /realtime/auth: {args.connections} connections, {args.duration:g} s per run, {os.cpu_count()} CPUs =="
    )
    print_table(results)
    by = {(r.server, r.case): r for r in results}
    multi = f"rtctl {args.workers} workers"
    print()
    for case in ("private", "presence"):
        node = by[("node reference", case)].requests_per_s
        for server in ("rtctl 1 worker", multi):
            print(
                f"{server} / node reference, {case}: {by[(server, case)].requests_per_s / node:.2f}x"
            )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0 if all(r.errors == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
