#!/usr/bin/env python3
"""Benchmark 7: webhooks — the receiver's verified deliveries/s against a bare `http.server`
receiver, and the latency from a socket action to the verified line `rtctl webhooks listen` prints.

1. Throughput, side by side in one run. Each receiver runs in its own process on a free loopback
   port; the load comes from this process: C keep-alive connections (as Soketi's axios keeps them)
   sending N distinct, correctly signed deliveries as fast as the receiver answers.
   - bare: `http.server.ThreadingHTTPServer` with the same server settings (HTTP/1.1, backlog
     1024, TCP_NODELAY, the answer in one write) that reads each body and answers 200, verifying
     nothing;
   - rtctl library: `WebhookReceiver` (verify, queue) with a callback that counts;
   - rtctl CLI: `rtctl webhooks listen --json` printing every verified event to a file.
   Rate = N / (first request sent .. last answer read). No delivery may be lost: every answer must
   be 200 and every receiver must count N distinct deliveries. Target: rtctl >= 0.8 x bare.
   Rounds are interleaved (bare, library, CLI, bare, ...) and the median of each is reported.
2. Latency: a native Soketi started with REALTIME_WEBHOOK_URL pointing at `rtctl webhooks listen
   --json`; one socket subscribes to and leaves K public channels one after another; from just
   before each subscribe (channel_occupied) or unsubscribe (channel_vacated) to the line read
   from the CLI's stdout. p50 / p99 / max.

Usage: scripts/bench_webhooks.py [--quick] [--count N] [--connections C] [--rounds R]
                                 [--latency-samples K] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PYTHON = sys.executable

BARE = """
import sys, signal, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
count = 0
lock = threading.Lock()
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_POST(self):
        global count
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with lock:
            count += 1
        self.wfile.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
    def log_message(self, *args):
        pass
class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
server = Server(("127.0.0.1", int(sys.argv[1])), Handler)
def stop(*_):
    print(count, flush=True)
    raise SystemExit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
server.serve_forever()
"""

LIBRARY = """
import sys, signal, threading
sys.path.insert(0, sys.argv[4])
from rtctl.ops.webhook_receiver import WebhookReceiver
seen = set()
lock = threading.Lock()
def counted(received):
    with lock:
        for event in received.events:
            seen.add(event["data"])
receiver = WebhookReceiver(sys.argv[2], sys.argv[3], port=int(sys.argv[1]), max_age=0,
                           on_delivery=counted, keep=False, buffer=False).start()
def stop(*_):
    receiver.stop()
    print(len(seen), flush=True)
    raise SystemExit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
signal.pause()
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (less sensitive to a busy machine than rates)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def requests_for(key: str, secret: str, count: int, port: int) -> list[bytes]:
    from rtctl.protocol.webhooks import build_body, signed_headers

    raws = []
    for i in range(count):
        event = {
            "name": "client_event",
            "channel": "private-bench",
            "event": "client-bench",
            "data": f'{{"i":{i}}}',
            "socket_id": "1234.5678",
        }
        body = build_body([event])
        headers = signed_headers(key, secret, body, "soketi")
        head = f"POST /webhooks HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"Content-Length: {len(body)}\r\n\r\n"
        raws.append(head.encode() + body)
    return raws


async def load(port: int, raws: list[bytes], connections: int) -> tuple[float, dict[int, int]]:
    """Send every request over ``connections`` keep-alive connections; (seconds, statuses)."""
    statuses: dict[int, int] = {}
    shares = [raws[i::connections] for i in range(connections)]

    async def worker(share: list[bytes]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for raw in share:
            writer.write(raw)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            status = int(status_line.split()[1])
            statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(share) for share in shares))
    return time.perf_counter() - started, statuses


def wait_ready(process: subprocess.Popen[str], stream: Any, word: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if word in line:
            return
        if process.poll() is not None:
            break
    raise SystemExit(f"receiver did not start: {process.args}")


def run_receiver(
    kind: str, key: str, secret: str, raws_for: Any, count: int, connections: int, folder: Path
) -> dict[str, Any]:
    from rtctl.testing.server import free_port

    port = free_port()
    raws = raws_for(port)
    out_path = folder / f"{kind}-{port}.ndjson"
    if kind == "bare":
        process = subprocess.Popen(
            [PYTHON, "-c", BARE, str(port)], stdout=subprocess.PIPE, text=True
        )
        wait_ready(process, process.stdout, "ready")
    elif kind == "library":
        process = subprocess.Popen(
            [PYTHON, "-c", LIBRARY, str(port), key, secret, str(REPO)],
            stdout=subprocess.PIPE,
            text=True,
        )
        wait_ready(process, process.stdout, "ready")
    else:
        env_file = folder / ".env"
        env_file.write_text(
            f"REALTIME_PROVIDER=soketi\nPUSHER_APP_ID=1\nPUSHER_APP_KEY={key}\nPUSHER_APP_SECRET={secret}\n"
        )
        handle = out_path.open("w")
        process = subprocess.Popen(
            [PYTHON, "-m", "rtctl", "--env-file", str(env_file), "webhooks", "listen", "--json",
             "--port", str(port), "--max-age", "0"],
            stdout=handle, stderr=subprocess.PIPE, text=True, cwd=REPO,
        )  # fmt: skip
        wait_ready(process, process.stderr, "listening on")
    cpu_before = cpu_seconds(process.pid)
    seconds, statuses = asyncio.run(load(port, raws, connections))
    if kind == "cli":
        time.sleep(0.5)  # the consumer prints what is queued
    cpu = cpu_seconds(process.pid) - cpu_before
    process.terminate()
    output, _ = process.communicate(timeout=30)
    if kind == "cli":
        handle.close()
        lines = [json.loads(line) for line in out_path.read_text().splitlines()]
        counted = len({line["event"]["data"] for line in lines})
    else:
        counted = int(output.strip().splitlines()[-1])
    return {
        "receiver": kind,
        "seconds": round(seconds, 3),
        "per_second": round(count / seconds, 1),
        "cpu_us_per_delivery": round(cpu / count * 1e6, 1),
        "answers": statuses,
        "counted": counted,
        "lost": count - min(counted, statuses.get(200, 0)),
    }


def throughput(count: int, connections: int, rounds: int) -> dict[str, Any]:
    key, secret = "bench" + secrets.token_hex(6), "sec" + secrets.token_hex(12)
    kinds = ("bare", "library", "cli")
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory(prefix="rtctl-bench-webhooks.") as tmp:
        folder = Path(tmp)
        for _ in range(rounds):
            for kind in kinds:
                result = run_receiver(
                    kind, key, secret, lambda port: requests_for(key, secret, count, port),
                    count, connections, folder,
                )  # fmt: skip
                runs[kind].append(result)
                print(
                    f"  {kind:<8} {result['per_second']:>9,.0f} deliveries/s  "
                    f"{result['cpu_us_per_delivery']:>6.0f} us CPU each  "
                    f"({result['seconds']:.2f} s, answers {result['answers']}, counted "
                    f"{result['counted']}, lost {result['lost']})",
                    flush=True,
                )
    medians = {kind: statistics.median(r["per_second"] for r in runs[kind]) for kind in kinds}
    cpu = {kind: statistics.median(r["cpu_us_per_delivery"] for r in runs[kind]) for kind in kinds}
    lost = {kind: max(r["lost"] for r in runs[kind]) for kind in kinds}
    return {
        "count": count,
        "connections": connections,
        "rounds": rounds,
        "runs": runs,
        "median_per_second": medians,
        "median_cpu_us_per_delivery": cpu,
        "lost": lost,
        "ratio_library": round(medians["library"] / medians["bare"], 3),
        "ratio_cli": round(medians["cli"] / medians["bare"], 3),
    }


def latency(samples: int) -> dict[str, Any]:
    from rtctl.config import load_settings
    from rtctl.protocol import PusherSocket
    from rtctl.runtime import native
    from rtctl.testing.server import free_port, local_env, write_env

    work = Path(tempfile.mkdtemp(prefix="rtctl-bench-webhooks."))
    hook_port = free_port()
    env = local_env(
        REALTIME_WEBHOOK_URL=f"http://127.0.0.1:{hook_port}/webhooks",
        REALTIME_WEBHOOK_EVENTS="channel_occupied,channel_vacated",
    )
    env_file = write_env(work / ".env", env)
    settings = load_settings(env_file=env_file, environ={})
    native.start(settings, work / "state", timeout=30)
    listen = subprocess.Popen(
        [PYTHON, "-m", "rtctl", "--env-file", str(env_file), "webhooks", "listen", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    arrived: dict[tuple[str, str], float] = {}
    cond = threading.Condition()

    def pump() -> None:
        assert listen.stdout is not None
        for line in listen.stdout:
            now = time.perf_counter()
            event = json.loads(line)["event"]
            with cond:
                arrived[(event["name"], event["channel"])] = now
                cond.notify_all()

    try:
        wait_ready(listen, listen.stderr, "listening on")
        threading.Thread(target=pump, daemon=True).start()
        results: list[float] = []
        with PusherSocket(settings) as sock:
            sock.connect(10)
            for i in range(samples):
                channel = f"bench-{i}"
                for name, action in (
                    ("channel_occupied", lambda c=channel: sock.subscribe(c, 10)),
                    ("channel_vacated", lambda c=channel: sock.unsubscribe(c)),
                ):
                    started = time.perf_counter()
                    action()
                    with cond:
                        if not cond.wait_for(lambda n=name, c=channel: (n, c) in arrived, 10):
                            raise SystemExit(f"{name} for {channel} never arrived")
                        results.append((arrived[(name, channel)] - started) * 1000)
    finally:
        listen.terminate()
        listen.wait(timeout=10)
        native.stop(work / "state")
    ordered = sorted(results)
    return {
        "samples": len(results),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "max_ms": round(ordered[-1], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (a check that it runs)")
    parser.add_argument("--count", type=int, default=None, help="deliveries per throughput run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--latency-samples", type=int, default=None)
    parser.add_argument("--json-out")
    args = parser.parse_args()
    count = args.count or (2000 if args.quick else 20000)
    rounds = args.rounds or (1 if args.quick else 3)
    samples = args.latency_samples or (30 if args.quick else 300)
    os.environ.setdefault("RTCTL_CACHE_DIR", str(REPO / ".cache" / "rtctl-test"))

    print(
        f"== webhooks: throughput, {count} signed deliveries over {args.connections} keep-alive connections =="
    )
    through = throughput(count, args.connections, rounds)
    medians = through["median_per_second"]
    cpu = through["median_cpu_us_per_delivery"]
    print(
        f"median CPU per delivery: bare {cpu['bare']:.0f} us, rtctl library {cpu['library']:.0f} us, "
        f"rtctl CLI {cpu['cli']:.0f} us"
    )
    print(
        f"median deliveries/s: bare {medians['bare']:,.0f}, rtctl library {medians['library']:,.0f} "
        f"({through['ratio_library']:.2f}x), rtctl CLI {medians['cli']:,.0f} ({through['ratio_cli']:.2f}x); "
        f"lost: {through['lost']}"
    )
    print(
        f"== webhooks: latency, socket action -> verified line of `rtctl webhooks listen --json` ({samples} x 2) =="
    )
    lat = latency(samples)
    print(
        f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms over {lat['samples']} webhooks"
    )
    ok = min(through["ratio_library"], through["ratio_cli"]) >= 0.8 and not any(
        through["lost"].values()
    )
    print(f"target (rtctl >= 0.8x bare, nothing lost): {'met' if ok else 'NOT met'}")
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps({"throughput": through, "latency": lat}, indent=2)
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
