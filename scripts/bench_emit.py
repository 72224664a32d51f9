#!/usr/bin/env python3
"""Benchmark 2: `rtctl emit CH EV --count N` against the plain `pusher` SDK loop, same Soketi.

The SDK loop is what a user would write: one `Pusher.trigger` per event, in a fresh process.
Both sides are timed as whole processes (start-up included), and for both a pusher-js receiver
(tests/js/emit_receiver.mjs) subscribed beforehand must count every event, or the run fails.
Target: rtctl at least 5x the SDK loop's events per second.

Usage: scripts/bench_emit.py --env-file FILE [--count 10000] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
JS_DIR = REPO / "tests" / "js"
PYTHON = sys.executable

SDK_LOOP = """
import sys
import pusher

app_id, key, secret, port, channel, count = sys.argv[1:7]
client = pusher.Pusher(app_id=app_id, key=key, secret=secret, host="127.0.0.1",
                       port=int(port), ssl=False)
for i in range(int(count)):
    client.trigger(channel, "sdk-loop", {"i": i})
"""


def receiver(settings, channel: str, count: int) -> subprocess.Popen[str]:
    """pusher-js subscribed to `channel`, exiting 0 after `count` events (prints only totals)."""
    config = {
        "host": settings.host,
        "port": settings.port,
        "key": settings.key,
        "channels": [channel],
        "count": count,
        "timeoutMs": 120_000,
        "quiet": True,
        "rtctl": [PYTHON, "-m", "rtctl"],
    }
    process = subprocess.Popen(
        ["node", str(JS_DIR / "emit_receiver.mjs"), json.dumps(config)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=JS_DIR,
    )
    assert process.stdout is not None
    line = json.loads(process.stdout.readline())
    if line.get("type") != "subscribed":
        raise SystemExit(f"receiver did not subscribe: {line}")
    return process


def verify(process: subprocess.Popen[str], count: int) -> int:
    assert process.stdout is not None
    out, _ = process.communicate(timeout=150)
    last = json.loads(out.strip().splitlines()[-1])
    return (
        int(last.get("received", 0)) if process.returncode == 0 else -int(last.get("received", 0))
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", required=True)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--json-out")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from rtctl.config import load_settings

    settings = load_settings(env_file=Path(args.env_file))
    run = secrets.token_hex(3)
    results = {}
    trials = {
        "rtctl emit --count": (
            f"bench-emit-{run}",
            lambda ch: (
                [
                    PYTHON,
                    "-m",
                    "rtctl",
                    "--env-file",
                    args.env_file,
                    "emit",
                    ch,
                    "ev",
                    "--data",
                    '{"i":0}',
                    "--count",
                    str(args.count),
                    "--json",
                ]
            ),
        ),
        "pusher SDK loop": (
            f"bench-sdk-{run}",
            lambda ch: (
                [
                    PYTHON,
                    "-c",
                    SDK_LOOP,
                    settings.app_id,
                    settings.key,
                    settings.secret,
                    str(settings.port),
                    ch,
                    str(args.count),
                ]
            ),
        ),
    }
    print(f"== 2. emit throughput ({args.count} events, one public channel) ==", flush=True)
    for name, (channel, command) in trials.items():
        watcher = receiver(settings, channel, args.count)
        started = time.perf_counter()
        done = subprocess.run(
            command(channel), capture_output=True, text=True, timeout=600, cwd=REPO
        )
        seconds = time.perf_counter() - started
        received = verify(watcher, args.count)
        if done.returncode != 0:
            print(f"{name}: exit {done.returncode}: {done.stderr.strip()[-300:]}")
        results[name] = {
            "seconds": round(seconds, 3),
            "events_per_s": round(args.count / seconds, 1),
            "received": received,
            "all_delivered": received == args.count,
        }
        print(
            f"{name:<20} {seconds:7.2f} s  {args.count / seconds:9.1f} ev/s  "
            f"received {received}/{args.count}",
            flush=True,
        )
    ratio = (
        results["rtctl emit --count"]["events_per_s"] / results["pusher SDK loop"]["events_per_s"]
    )
    ok = all(r["all_delivered"] for r in results.values())
    print(
        f"ratio rtctl/SDK loop: {ratio:.1f}x (target >= 5x) — "
        f"{'every event delivered' if ok else 'EVENTS LOST'}"
    )
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps(
                {"count": args.count, "results": results, "ratio": ratio, "all_delivered": ok},
                indent=2,
            )
        )
    return 0 if ok and ratio >= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
