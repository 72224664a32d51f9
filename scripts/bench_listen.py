#!/usr/bin/env python3
"""Benchmark 3: events per second `rtctl listen --json` takes and prints to a pipe, vs pusher-js.

A raw `ws` sender (scripts/flood_sender.mjs) floods one private channel with N client
events as fast as it can. The receiver under test is subscribed first and prints one JSON line
per event to a pipe this script reads: `rtctl listen --json CH --count N` or a pusher-js 8.6.0
receiver in Node (written below) that prints the same kind of line. Rate = N / (last line - first
line). Every event's index is checked: a lost event fails the run (Soketi drops frames silently
past 1 MiB of backpressure per socket). The receiver's RSS is sampled every 20 ms.
Target: rtctl at least half of pusher-js's rate, no loss.

Usage: scripts/bench_listen.py --env-file FILE [--count 30000] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
JS_DIR = REPO / "tests" / "js"
PYTHON = sys.executable

RECEIVER_JS = """
import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
const require = createRequire(%(package)s);
const Pusher = require('pusher-js');
const opts = JSON.parse(process.argv[2]);
let received = 0;
const pusher = new Pusher(opts.key, {
  cluster: 'mt1', wsHost: opts.host, wsPort: opts.port, forceTLS: false,
  enabledTransports: ['ws'], disableStats: true,
  channelAuthorization: { customHandler: ({ socketId, channelName }, callback) => {
    const sig = createHmac('sha256', opts.secret).update(`${socketId}:${channelName}`).digest('hex');
    callback(null, { auth: `${opts.key}:${sig}` });
  } },
});
const channel = pusher.subscribe(opts.channel);
channel.bind('pusher:subscription_succeeded', () => process.stderr.write('subscribed\\n'));
channel.bind_global((event, data) => {
  if (event.startsWith('pusher')) return;
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), channel: opts.channel, event, data }) + '\\n');
  received += 1;
  if (received >= opts.count) { pusher.disconnect(); process.stdout.write('', () => process.exit(0)); }
});
setTimeout(() => process.exit(6), opts.timeout * 1000);
"""


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def trial(name: str, command: list[str], settings: Any, channel: str, count: int) -> dict[str, Any]:
    receiver = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, bufsize=1 << 16
    )
    assert receiver.stdout is not None and receiver.stderr is not None
    ready = receiver.stderr.readline().decode()  # "listening on ..." / "subscribed"
    if receiver.poll() is not None or not ready:
        raise SystemExit(f"{name}: receiver did not start: {receiver.stderr.read().decode()}")
    arrivals: list[float] = []
    lines: list[bytes] = []

    def read() -> None:
        assert receiver.stdout is not None
        for line in receiver.stdout:
            arrivals.append(time.monotonic())
            lines.append(line)

    rss: list[float] = []

    def sample() -> None:
        while receiver.poll() is None:
            rss.append(rss_mb(receiver.pid))
            time.sleep(0.02)

    reader = threading.Thread(target=read, daemon=True)
    sampler = threading.Thread(target=sample, daemon=True)
    baseline = rss_mb(receiver.pid)
    reader.start()
    sampler.start()
    sender_options = {
        "host": settings.host,
        "port": settings.port,
        "key": settings.key,
        "secret": settings.secret,
        "channel": channel,
        "event": "client-flood",
        "count": count,
        "timeout": 120,
    }
    sender = subprocess.run(
        ["node", str(REPO / "scripts" / "flood_sender.mjs"), json.dumps(sender_options)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=JS_DIR,
    )
    try:
        receiver.wait(timeout=120)
    except subprocess.TimeoutExpired:
        receiver.kill()
        receiver.wait()
    reader.join(timeout=10)
    seen = set()
    for line in lines:
        data = json.loads(line)["data"]
        if isinstance(data, str):
            data = json.loads(data)
        seen.add(data["i"])
    lost = count - len(seen & set(range(count)))
    span = (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else float("nan")
    return {
        "receiver": name,
        "sent": count if sender.returncode == 0 else sender.stderr.strip()[-200:],
        "printed": len(lines),
        "lost": lost,
        "events_per_s": round(len(lines) / span, 1) if span == span and span > 0 else None,
        "rss_before_mb": round(baseline, 1),
        "rss_peak_mb": round(max(rss or [baseline]), 1),
        "exit_code": receiver.returncode,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", required=True)
    parser.add_argument("--count", type=int, default=30_000)
    parser.add_argument("--json-out")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from rtctl.config import load_settings

    settings = load_settings(env_file=Path(args.env_file))
    print(f"== 3. listen throughput ({args.count} client events, raw ws flood) ==", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        receiver_js = Path(folder) / "flood_receiver.mjs"
        receiver_js.write_text(RECEIVER_JS % {"package": json.dumps(str(JS_DIR / "package.json"))})
        for name in ("pusher-js (Node)", "rtctl listen --json"):
            channel = f"private-flood-{secrets.token_hex(3)}"
            if name.startswith("rtctl"):
                command = [
                    PYTHON,
                    "-m",
                    "rtctl",
                    "--env-file",
                    args.env_file,
                    "listen",
                    "--json",
                    channel,
                    "--count",
                    str(args.count),
                    "--timeout",
                    "120",
                ]
            else:
                options = {
                    "host": settings.host,
                    "port": settings.port,
                    "key": settings.key,
                    "secret": settings.secret,
                    "channel": channel,
                    "count": args.count,
                    "timeout": 120,
                }
                command = ["node", str(receiver_js), json.dumps(options)]
            row = trial(name, command, settings, channel, args.count)
            results.append(row)
            print(json.dumps(row), flush=True)
    node, rtctl = results
    ratio = (rtctl["events_per_s"] or 0) / (node["events_per_s"] or float("inf"))
    ok = rtctl["lost"] == 0 and node["lost"] == 0
    print(
        f"ratio rtctl/pusher-js: {ratio:.2f} (target >= 0.5) — "
        f"{'no event lost' if ok else 'EVENTS LOST (a failure, not a slower figure)'}"
    )
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps(
                {"count": args.count, "results": results, "ratio": ratio, "no_loss": ok}, indent=2
            )
        )
    return 0 if ok and ratio >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
