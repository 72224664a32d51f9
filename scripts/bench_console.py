#!/usr/bin/env python3
"""Benchmark 6: `rtctl console` in a real browser (Debian's Chromium, headless, via Selenium).

1. Latency: one event at a time is triggered over the HTTP API with the sender's wall-clock time
   in its data; inside the browser a MutationObserver sees the row inserted (the page inserts rows
   in an animation-frame callback, so the row is painted at the end of that frame) and the
   trigger -> row visible time is computed on the one machine clock; the start of the next frame
   is reported as an upper bound. Side by side: the same events read by a bare Pusher socket
   (rtctl's protocol client) in this process, i.e. what the server itself takes.
   Target: p95 under 100 ms on loopback.
2. Flood: RATE events/s (batch_events, 10 per request, four senders) on one watched channel for
   DURATION s. Measured: the console process's CPU (from /proc, in cores; target < 1) and
   Chromium's, the page's responsiveness idle versus flooded (the worst gap between animation
   frames, the worst lateness of a 50 ms timer, the longest main-thread task, inside the page;
   the WebDriver round trip through the page, from outside), and the live log's bound (500 rows
   kept, the oldest dropped, and the page saying so).

Usage: scripts/bench_console.py --env-file FILE [--samples 200] [--rate 1000] [--duration 10]
                                [--json-out FILE] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

OBSERVER_JS = """
window.__bench = {latency: {}, frames: 0, maxFrameGap: 0, maxTimerLate: 0, probing: false};
const bench = window.__bench;
const body = document.getElementById('log-rows');
new MutationObserver((mutations) => {
  const seen = performance.timeOrigin + performance.now();
  const found = [];
  for (const m of mutations) for (const row of m.addedNodes) {
    if (!row.children || row.children[3].textContent !== 'lat') continue;
    const data = JSON.parse(row.children[4].textContent);
    found.push(data);
  }
  if (!found.length) return;
  requestAnimationFrame(() => {
    const painted = performance.timeOrigin + performance.now();
    for (const data of found) bench.latency[data.i] = {inserted: seen - data.t, painted: painted - data.t};
  });
}).observe(body, {childList: true});
"""

PROBE_JS = """
const bench = window.__bench;
bench.probing = true; bench.maxFrameGap = 0; bench.maxTimerLate = 0; bench.frames = 0;
let lastFrame = performance.now();
const frame = (now) => {
  bench.maxFrameGap = Math.max(bench.maxFrameGap, now - lastFrame); lastFrame = now; bench.frames++;
  if (bench.probing) requestAnimationFrame(frame);
};
requestAnimationFrame(frame);
bench.longTasks = []; bench.longTaskMs = 0;
if (!bench.observer) {
  bench.observer = new PerformanceObserver((list) => {
    for (const task of list.getEntries()) if (bench.probing) {
      bench.longTasks.push(task.duration); bench.longTaskMs += task.duration;
    }
  });
  bench.observer.observe({type: 'longtask'});
}
let expected = performance.now() + 50;
bench.timer = setInterval(() => {
  const now = performance.now();
  bench.maxTimerLate = Math.max(bench.maxTimerLate, now - expected); expected = now + 50;
}, 50);
"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def chromium_cpu_seconds() -> float:
    """CPU time of every Chromium process of this user (the browser, its renderer, its GPU
    process): the page's own cost, whatever the scheduler did to its wall-clock timings."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if "chromium" not in (entry / "comm").read_text():
                continue
            total += cpu_seconds(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return total


def start_console(env_file: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "rtctl", "--env-file", str(env_file), "console", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()  # type: ignore[union-attr]
    url = lines.get(timeout=30).strip()
    if not url.startswith("http://"):
        raise SystemExit(f"rtctl console printed no URL: {url!r}")
    return process, url


def start_browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_script_timeout(30)
    return driver


def wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--quick", action="store_true", help="20 samples, 2 s of flood")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.duration = 20, 2.0

    from rtctl.config import load_settings
    from rtctl.protocol import PusherSocket
    from rtctl.protocol.httpapi import ApiClient
    from rtctl.protocol.validation import Event

    settings = load_settings(env_file=args.env_file)
    channel = f"bench-console-{secrets.token_hex(4)}"
    process, url = start_console(args.env_file)
    token = url.split("token=", 1)[1]
    driver = start_browser()
    results: dict[str, Any] = {
        "samples": args.samples,
        "rate": args.rate,
        "duration": args.duration,
    }
    try:
        driver.get(url.replace("/?", "/?", 1) + "#log")
        wait(
            lambda: driver.execute_script("return !!document.getElementById('log-rows')"),
            10,
            "page",
        )
        import httpx

        httpx.post(
            url.split("/?")[0] + "/api/watch",
            json={"channel": channel},
            headers={"X-Rtctl-Token": token},
            timeout=10,
        ).raise_for_status()
        wait(
            lambda: (
                f"subscribed to {channel} "
                in driver.execute_script("return document.getElementById('log').innerText")
            ),
            15,
            "the console's subscription",
        )
        driver.execute_script(OBSERVER_JS)

        # --- 1. latency, with a bare socket side by side ----------------------------------------
        socket_ms: dict[int, float] = {}
        witness = PusherSocket(settings)
        witness.connect(10)
        witness.subscribe(channel, 10)
        stop = threading.Event()

        def read_witness() -> None:
            while not stop.is_set():
                message = witness.recv(0.2)
                if message is not None and message.event == "lat":
                    socket_ms[message.data["i"]] = message.received_at * 1000 - message.data["t"]

        reader = threading.Thread(target=read_witness, daemon=True)
        reader.start()
        with ApiClient(settings, timeout=10) as api:
            for i in range(args.samples):
                sent = time.time() * 1000
                api.trigger(Event((channel,), "lat", json.dumps({"i": i, "t": sent})))
                time.sleep(0.05)  # one at a time: each row is its own sample
        got = wait(
            lambda: (
                (lat := driver.execute_script("return window.__bench.latency"))
                and len(lat) >= args.samples
                and lat
            ),
            30,
            "every latency sample in the page",
        )
        stop.set()
        reader.join(timeout=2)
        witness.close()
        painted = [float(v["painted"]) for v in got.values()]
        inserted = [float(v["inserted"]) for v in got.values()]
        results["latency_ms"] = {
            # The row is inserted inside an animation-frame callback and painted at the end of
            # that frame; the next frame's start bounds it from above.
            "next_frame": {
                "p50": percentile(painted, 0.5),
                "p95": percentile(painted, 0.95),
                "max": max(painted),
            },
            "row_visible": {
                "p50": percentile(inserted, 0.5),
                "p95": percentile(inserted, 0.95),
            },
            "bare_socket": {
                "p50": percentile(list(socket_ms.values()), 0.5),
                "p95": percentile(list(socket_ms.values()), 0.95),
            }
            if socket_ms
            else None,
        }

        # --- 2. flood, after the same probes on the idle page ----------------------------------
        def probe_page(seconds: float) -> dict[str, Any]:
            driver.execute_script(PROBE_JS)
            trips: list[float] = []
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                began = time.monotonic()
                driver.execute_script(
                    "return document.getElementById('log-rows').childElementCount"
                )
                trips.append((time.monotonic() - began) * 1000)
                time.sleep(0.2)
            found = driver.execute_script(
                "const b = window.__bench; b.probing = false; clearInterval(b.timer); return b;"
            )
            return {"found": found, "trips": trips}

        idle = probe_page(2.0)
        results["idle_page"] = {
            "page_max_frame_gap_ms": round(idle["found"]["maxFrameGap"], 1),
            "page_max_timer_late_ms": round(idle["found"]["maxTimerLate"], 1),
            "page_longest_task_ms": round(max(idle["found"]["longTasks"], default=0.0), 1),
            "webdriver_roundtrip_ms": {
                "p95": round(percentile(idle["trips"], 0.95), 1),
                "max": round(max(idle["trips"]), 1),
            },
        }
        driver.execute_script(PROBE_JS)
        total = int(args.rate * args.duration)
        senders = 4  # HTTP triggers: Soketi closes every connection, one thread cannot keep up
        sent = [0] * senders
        roundtrips: list[float] = []

        def flood(index: int) -> None:
            per_request = 10  # Pusher's batch limit
            rate = args.rate / senders
            mine = range(index * per_request, total, senders * per_request)
            started = time.monotonic()
            with ApiClient(settings, timeout=10) as api:
                for k, start in enumerate(mine):
                    batch = [
                        Event((channel,), "tick", f'{{"n":{n}}}')
                        for n in range(start, min(total, start + per_request))
                    ]
                    api.trigger_batch(batch)
                    sent[index] += len(batch)
                    delay = started + (k + 1) * per_request / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)

        cpu_before, wall_before = cpu_seconds(process.pid), time.monotonic()
        browser_before = chromium_cpu_seconds()
        threads = [threading.Thread(target=flood, args=(i,), daemon=True) for i in range(senders)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            began = time.monotonic()
            driver.execute_script("return document.getElementById('log-rows').childElementCount")
            roundtrips.append((time.monotonic() - began) * 1000)
            time.sleep(0.2)
        flood_wall = time.monotonic() - wall_before
        time.sleep(1.0)  # the tail of the stream reaches the page
        elapsed = time.monotonic() - wall_before
        cpu = (cpu_seconds(process.pid) - cpu_before) / elapsed
        browser_cpu = (chromium_cpu_seconds() - browser_before) / elapsed
        probe = driver.execute_script(
            "const b = window.__bench; b.probing = false; clearInterval(b.timer); return b;"
        )
        page = driver.execute_script(
            """return {rows: document.getElementById('log-rows').childElementCount,
                       notice: document.getElementById('dropped').innerText,
                       counts: document.getElementById('log-counts').innerText,
                       ticks: [...document.getElementById('log-rows').children].filter(
                         r => r.children[3].textContent === 'tick').length};"""
        )
        results["flood"] = {
            "events_sent": sum(sent),
            "achieved_rate": round(sum(sent) / flood_wall, 1),
            "console_cpu_cores": round(cpu, 3),
            "chromium_cpu_cores": round(browser_cpu, 3),
            "page_max_frame_gap_ms": round(probe["maxFrameGap"], 1),
            "page_max_timer_late_ms": round(probe["maxTimerLate"], 1),
            "page_frames": probe["frames"],
            "page_long_tasks": len(probe["longTasks"]),
            "page_longest_task_ms": round(max(probe["longTasks"], default=0.0), 1),
            "webdriver_roundtrip_ms": {
                "p95": round(percentile(roundtrips, 0.95), 1),
                "max": round(max(roundtrips), 1),
            },
            "rows_kept": page["rows"],
            "dropped_notice": page["notice"],
        }
    finally:
        driver.quit()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()

    lat, flood_result = results["latency_ms"], results["flood"]
    bare = lat["bare_socket"] or {"p50": float("nan"), "p95": float("nan")}
    print(
        f"== console: trigger -> row visible in the page ({args.samples} events, one at a time) =="
    )
    print(f"{'':28}{'p50 ms':>10}{'p95 ms':>10}")
    print(
        f"{'row in the page (its frame)':28}{lat['row_visible']['p50']:>10.1f}{lat['row_visible']['p95']:>10.1f}"
    )
    print(
        f"{'next frame (upper bound)':28}{lat['next_frame']['p50']:>10.1f}{lat['next_frame']['p95']:>10.1f}"
    )
    print(f"{'bare socket (same events)':28}{bare['p50']:>10.1f}{bare['p95']:>10.1f}")
    print(f"== console: {args.rate} events/s for {args.duration:g} s into the live log ==")
    print(
        f"sent {flood_result['events_sent']} at {flood_result['achieved_rate']}/s; console CPU "
        f"{flood_result['console_cpu_cores']} cores; Chromium CPU {flood_result['chromium_cpu_cores']} cores"
    )
    idle_result = results["idle_page"]
    print(f"{'page, while':28}{'idle':>12}{'flooded':>12}")
    print(
        f"{'worst frame gap ms':28}{idle_result['page_max_frame_gap_ms']:>12}{flood_result['page_max_frame_gap_ms']:>12}"
    )
    print(
        f"{'worst 50 ms timer late ms':28}{idle_result['page_max_timer_late_ms']:>12}{flood_result['page_max_timer_late_ms']:>12}"
    )
    print(
        f"{'longest main-thread task ms':28}{idle_result['page_longest_task_ms']:>12}"
        f"{flood_result['page_longest_task_ms']:>12}"
    )
    print(
        f"{'WebDriver round trip p95 ms':28}{idle_result['webdriver_roundtrip_ms']['p95']:>12}"
        f"{flood_result['webdriver_roundtrip_ms']['p95']:>12}"
    )
    print(
        f"page: worst frame gap {flood_result['page_max_frame_gap_ms']} ms, worst 50 ms timer lateness "
        f"{flood_result['page_max_timer_late_ms']} ms, WebDriver round trip p95 "
        f"{flood_result['webdriver_roundtrip_ms']['p95']} ms (max {flood_result['webdriver_roundtrip_ms']['max']})"
    )
    print(f"log: {flood_result['rows_kept']} rows kept; notice: {flood_result['dropped_notice']!r}")
    gates = {
        "latency p95 < 100 ms": lat["row_visible"]["p95"] < 100,
        "console CPU < 1 core": flood_result["console_cpu_cores"] < 1.0,
        "rows bounded to 500": flood_result["rows_kept"] <= 500,
        "drop announced": "dropped" in flood_result["dropped_notice"]
        or flood_result["events_sent"] < 500,
    }
    results["gates"] = gates
    print(
        "gates: " + ", ".join(f"{name}: {'ok' if ok else 'FAILED'}" for name, ok in gates.items())
    )
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))
    return 0 if all(gates.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
