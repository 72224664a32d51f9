#!/usr/bin/env python3
"""Benchmark 10: a reconnect storm through `rtctl gateway`.

N WebSocket clients, each subscribed to two private channels (`private-<id>_9000000` and
`private-<id>_9000001`) that it authorizes through the gateway's `/realtime/auth` with its own JWT,
exactly as pusher-js does (form POST with socket_id and channel_name, then pusher:subscribe with
the signature). When every client is subscribed, Soketi is restarted. Like pusher-js, a client
whose server closes it (4200 "Server closed. Please reconnect shortly.") reconnects at once;
while the server refuses, one probe per client process stands in for the clients' retries and,
once it gets through, releases them over a random 0-1 s; after each reconnect a client authorizes
its channels again for its new socket id. The figure: the time from Soketi answering again until every
client is subscribed again, with every auth request answered and no client failed.

The clients are Node processes (scripts/bench/storm-client: `ws` for the sockets, one undici pool
of --pool keep-alive connections to the gateway per process, as a front proxy would keep): a
client costs about a quarter of the CPU there that it did in Python's asyncio, so the load
generator is no longer what the storm waits for (BENCHMARKS.md, section 10). A client process
holds at most 10,000 clients, so it stays under the 20,000 open-files limit; above 15,000 clients
the load is spread over several Soketi nodes (a node holds one socket per client and has the same
limit). All traffic is loopback.

Usage: scripts/bench_storm.py [--clients 2000] [--workers 2] [--client-processes P] [--nodes K]
                              [--pool 64] [--timeout 180] [--json-out FILE]
Needs: .venv, Node, `npm ci` in scripts/bench/storm-client (scripts/test.sh and
scripts/benchmarks.sh do it) and the pinned native Soketi (scripts/test.sh).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rtctl.testing.server import free_port  # noqa: E402  (the one that never repeats a port)

PYTHON = sys.executable
CLIENT_DIR = REPO / "scripts" / "bench" / "storm-client"
TICKS = os.sysconf("SC_CLK_TCK")
BOTS = ("9000000", "9000001")
CLIENTS_PER_NODE = 15_000
CLIENTS_PER_PROCESS = 10_000
INITIAL_CONNECTS = 200  # connections opened at once per process while the clients first come up


# --- the parent: servers, phases, figures ---------------------------------------------------------


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            todo += [int(child) for child in children]
    return pids


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, for the machine's busy fraction over a phase."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values) - values[3] - values[4], sum(values)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)]


class Storm:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.credentials = {
            "PUSHER_APP_ID": str(100000 + secrets.randbelow(899999)),
            "PUSHER_APP_KEY": "storm" + secrets.token_hex(8),
            "PUSHER_APP_SECRET": "s" + secrets.token_hex(16),
        }
        self.jwt_secret = secrets.token_hex(32)
        self.nodes: list[tuple[Any, Path]] = []  # (settings, state folder)
        self.gateway: subprocess.Popen[bytes] | None = None
        self.clients: list[subprocess.Popen[str]] = []

    # servers
    def start_nodes(self) -> None:
        from rtctl.config import load_settings
        from rtctl.runtime import native

        for k in range(self.args.nodes):
            env = {
                "REALTIME_PROVIDER": "soketi",
                "REALTIME_HOST": "127.0.0.1",
                "REALTIME_PORT": str(free_port()),
                "SOKETI_METRICS_SERVER_PORT": str(free_port()),
                **self.credentials,
            }
            settings = load_settings(environ=env)
            state = self.work / f"soketi-{k}"
            native.start(settings, state, timeout=60)
            self.nodes.append((settings, state))

    def soketi_pids(self) -> list[int]:
        from rtctl.runtime import native

        return [r.pid for _, state in self.nodes if (r := native.read_running(state)) is not None]

    def restart_nodes(self) -> tuple[float, float]:
        """Stop every node, start them again; (when the stop began, when all answer again)."""
        from rtctl.runtime import native

        stopped_at = time.monotonic()
        for _, state in self.nodes:
            native.stop(state)
        for settings, state in self.nodes:
            native.start(settings, state, timeout=60)
        return stopped_at, time.monotonic()

    def start_gateway(self) -> str:
        import urllib.request

        port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PUSHER_", "REALTIME_", "SOKETI_"))
        }
        settings = self.nodes[0][0]
        env.update(self.credentials, REALTIME_JWT_SECRET=self.jwt_secret,
                   REALTIME_HOST="127.0.0.1", REALTIME_PORT=str(settings.port))  # fmt: skip
        log = (self.work / "gateway.log").open("wb")
        command = [PYTHON, "-m", "rtctl", "gateway", "--port", str(port)]
        command += ["--workers", str(self.args.workers), "--log-level", "warning"]
        self.gateway = subprocess.Popen(
            command,
            cwd=self.work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        base = f"http://127.0.0.1:{port}/realtime"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.gateway.poll() is not None:
                raise SystemExit(
                    f"the gateway exited:\n{(self.work / 'gateway.log').read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=1):
                    return f"{base}/auth"
            except OSError:
                time.sleep(0.2)
        raise SystemExit("the gateway did not answer within 60 s")

    def start_clients(self, auth_url: str) -> None:
        import jwt

        urls = [
            f"ws://127.0.0.1:{settings.port}/app/{settings.key}?protocol=7&client=rtctl-storm&version=1"
            for settings, _ in self.nodes
        ]
        per = math.ceil(self.args.clients / self.args.client_processes)
        first = 100_000
        expires = int(time.time()) + 3600
        for p in range(self.args.client_processes):
            count = min(per, self.args.clients - p * per)
            if count <= 0:
                break
            specs = []
            for user in range(first + p * per, first + p * per + count):
                claims = {"sub": str(user), "exp": expires}
                token = jwt.encode(claims, self.jwt_secret, algorithm="HS256")
                specs.append({"user": str(user), "token": token, "node": user % len(urls)})
            plan = {
                "nodes": urls,
                "auth_url": auth_url,
                "pool": self.args.pool,
                "bots": list(BOTS),
                "initial_connects": INITIAL_CONNECTS,
                "clients": specs,
            }
            plan_file = self.work / f"clients-{p}.json"
            plan_file.write_text(json.dumps(plan))
            log = (self.work / f"clients-{p}.log").open("w")
            process = subprocess.Popen(
                ["node", str(CLIENT_DIR / "client.mjs"), str(plan_file)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,  # a Ctrl-C reaches the parent, which stops them
            )
            self.clients.append(process)

    def ask(self, command: str) -> list[Any]:
        """Send one command to every client process and read each one's JSON answer."""
        for process in self.clients:
            assert process.stdin is not None
            process.stdin.write(command + "\n")
            process.stdin.flush()
        return [self._answer(process) for process in self.clients]

    def _answer(self, process: subprocess.Popen[str], timeout: float = 30) -> Any:
        stdout: IO[str] | None = process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if ready else ""
        if not line:
            index = self.clients.index(process)
            log = (self.work / f"clients-{index}.log").read_text()[-2000:]
            raise SystemExit(f"client process {index} did not answer:\n{log}")
        return json.loads(line)

    def status(self, generation: int) -> list[dict[str, Any]]:
        return self.ask(f"count {generation}")

    def wait_for(
        self, generation: int, timeout: float, label: str
    ) -> tuple[bool, list[dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        last = -1
        while True:
            states = self.status(generation)
            done = sum(s["at_least"] for s in states)
            if done != last:
                print(f"  {label}: {done:,} / {self.args.clients:,}", file=sys.stderr)
                last = done
            if (
                done >= self.args.clients
                or sum(s["failed_clients"] for s in states) + done >= self.args.clients
            ):
                return done >= self.args.clients, states
            if time.monotonic() > deadline:
                return False, states
            time.sleep(0.25)

    def stop_all(self) -> None:
        from rtctl.runtime import native

        for process in self.clients:
            with contextlib.suppress(OSError, ValueError, SystemExit):
                assert process.stdin is not None
                process.stdin.write("stop\n")
                process.stdin.flush()
                self._answer(process)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self.gateway is not None and self.gateway.poll() is None:
            self.gateway.send_signal(signal.SIGTERM)
            try:
                self.gateway.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.gateway.kill()
                self.gateway.wait(timeout=5)
        for _, state in self.nodes:
            native.stop(state)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2, help="gateway worker processes")
    parser.add_argument(
        "--client-processes",
        type=int,
        help=f"default: 1 per {CLIENTS_PER_PROCESS:,} clients, at least 2",
    )
    parser.add_argument(
        "--nodes", type=int, help=f"Soketi nodes (default: 1 per {CLIENTS_PER_NODE:,} clients)"
    )
    parser.add_argument(
        "--pool", type=int, default=64, help="gateway connections per client process"
    )
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="seconds allowed for each phase"
    )
    parser.add_argument("--json-out", help="also write the figures as JSON here")
    args = parser.parse_args()
    if args.clients < 1:
        raise SystemExit("--clients must be at least 1")
    if shutil.which("node") is None or not (CLIENT_DIR / "node_modules" / "ws").is_dir():
        raise SystemExit(
            f"the storm's clients need Node and their packages: (cd {CLIENT_DIR} && npm ci)"
        )
    args.client_processes = args.client_processes or max(
        2, math.ceil(args.clients / CLIENTS_PER_PROCESS)
    )
    args.nodes = args.nodes or math.ceil(args.clients / CLIENTS_PER_NODE)
    os.environ.setdefault("RTCTL_CACHE_DIR", str(REPO / ".cache" / "rtctl-test"))
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # Soketi inherits it

    work = Path(tempfile.mkdtemp(prefix="rtctl-bench-storm-"))
    storm = Storm(args, work)
    report: dict[str, Any] = {
        "clients": args.clients, "channels_per_client": len(BOTS), "soketi_nodes": args.nodes,
        "gateway_workers": args.workers, "client_processes": args.client_processes,
    }  # fmt: skip
    try:
        storm.start_nodes()
        auth_url = storm.start_gateway()
        started = time.monotonic()
        storm.start_clients(auth_url)
        ok, states = storm.wait_for(1, args.timeout, "subscribed")
        report["initial_seconds"] = round(time.monotonic() - started, 1)
        if not ok:
            report["error"] = "not every client subscribed in the first place"
        else:
            assert storm.gateway is not None
            groups = {
                "gateway": lambda: process_tree(storm.gateway.pid),  # type: ignore[union-attr]
                "soketi": storm.soketi_pids,
                "clients": lambda: [process.pid for process in storm.clients],
            }
            stopped_at, answering_at = storm.restart_nodes()
            cpu_before = {name: cpu_seconds(pids()) for name, pids in groups.items()}
            gateway_pids = process_tree(storm.gateway.pid)
            per_process_before = [cpu_seconds([pid]) for pid in gateway_pids]
            busy_before, total_before = machine_ticks()
            ok, states = storm.wait_for(2, args.timeout, "resubscribed")
            finished = time.monotonic()
            busy_after, total_after = machine_ticks()
            cpu = {
                name: round(cpu_seconds(pids()) - cpu_before[name], 1)
                for name, pids in groups.items()
            }
            # how the load spread over the gateway's processes (supervisor, tracker, workers)
            per_process = [
                round(cpu_seconds([pid]) - before, 2)
                for pid, before in zip(gateway_pids, per_process_before, strict=True)
            ]
            times = storm.ask("times")
            second = [t - answering_at for s in times for t in s["second_at"]]
            opened = [t - answering_at for s in times for t in s["second_opened_at"]]
            auth_wait = [
                a - o
                for s in times
                for o, a in zip(s["second_opened_at"], s["second_authorized_at"], strict=True)
            ]
            report.update(
                restart_seconds=round(answering_at - stopped_at, 2),
                resubscribed=sum(s["at_least"] for s in states),
                storm_seconds=round(max(second), 2) if second else None,
                storm_p50_seconds=round(percentile(second, 50), 2),
                storm_p99_seconds=round(percentile(second, 99), 2),
                wall_seconds=round(finished - answering_at, 1),
                gateway_cpu_per_process=per_process,
                machine_busy=round(
                    (busy_after - busy_before) / max(1, total_after - total_before), 2
                ),
                # where the time went: sockets open again, then auth (both channels) per client
                reopened_p50_seconds=round(percentile(opened, 50), 2),
                reopened_p99_seconds=round(percentile(opened, 99), 2),
                auth_p50_ms=round(percentile(auth_wait, 50) * 1000, 1),
                auth_p99_ms=round(percentile(auth_wait, 99) * 1000, 1),
                cpu_seconds_during_storm=cpu,
            )
        report.update(
            auth_sent=sum(s["auth_sent"] for s in states),
            auth_ok=sum(s["auth_ok"] for s in states),
            auth_failed=sum(s["auth_failed"] for s in states),
            auth_errors=[e for s in states for e in s["auth_errors"]][:5],
            subscription_errors=sum(s["subscription_errors"] for s in states),
            failed_clients=sum(s["failed_clients"] for s in states),
            reconnects=sum(s["reconnects"] for s in states),
        )
    finally:
        storm.stop_all()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n== reconnect storm: {args.clients:,} clients x {len(BOTS)} private channels, "
          f"{args.nodes} Soketi node(s), gateway {args.workers} worker(s), "
          f"{args.client_processes} client processes ==")  # fmt: skip
    print(f"initial subscribe: {args.clients:,} clients in {report['initial_seconds']} s")
    if "storm_seconds" in report:
        print(f"Soketi restarted: answering again {report['restart_seconds']} s after the stop")
        print(f"resubscribed: {report['resubscribed']:,} / {args.clients:,} clients, the last "
              f"{report['storm_seconds']} s after Soketi answered "
              f"(p50 {report['storm_p50_seconds']} s, p99 {report['storm_p99_seconds']} s)")  # fmt: skip
        print(f"  sockets open again: p50 {report['reopened_p50_seconds']} s, p99 "
              f"{report['reopened_p99_seconds']} s after Soketi answered; both auth answers per "
              f"client: p50 {report['auth_p50_ms']} ms, p99 {report['auth_p99_ms']} ms")  # fmt: skip
        cpu = report["cpu_seconds_during_storm"]
        print(f"CPU seconds in the storm ({report['wall_seconds']} s): gateway {cpu['gateway']} "
              f"(per process {report['gateway_cpu_per_process']}), Soketi {cpu['soketi']}, "
              f"clients {cpu['clients']}; machine busy {report['machine_busy']:.0%}")  # fmt: skip
    print(f"auth requests: {report['auth_sent']:,} sent, {report['auth_ok']:,} answered 200, "
          f"{report['auth_failed']} failed; subscription errors {report['subscription_errors']}; "
          f"clients failed {report['failed_clients']}")  # fmt: skip
    for error in report["auth_errors"]:
        print(f"  auth error: {error}")
    if "error" in report:
        print(f"error: {report['error']}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    good = (
        "error" not in report
        and report.get("resubscribed") == args.clients
        and report["auth_failed"] == 0
        and report["failed_clients"] == 0
        and report["auth_sent"] == report["auth_ok"]
    )
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
