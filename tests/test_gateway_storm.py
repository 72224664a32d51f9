"""The reconnect storm in CI form: scripts/bench_storm.py with 2,000 real WebSocket clients (two
private channels each, authorized through a 2-worker `rtctl gateway`), its own real Soketi
restarted under them. Every client must come back, every auth request must be answered, none may
fail. Timings are printed, never asserted (the machine is shared); the 20,000-client figure is
recorded in BENCHMARKS.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.soketi

CLIENTS = 2000


def test_every_client_of_a_2000_client_storm_resubscribes_through_the_gateway(
    tmp_path: Path,
) -> None:
    out = tmp_path / "storm.json"
    command = [sys.executable, str(REPO / "scripts" / "bench_storm.py"), "--clients", str(CLIENTS)]
    command += ["--timeout", "240", "--json-out", str(out)]
    done = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=900,
    )
    print(done.stdout)
    assert out.exists(), done.stdout + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert (report["clients"], report["channels_per_client"]) == (CLIENTS, 2)
    assert report["resubscribed"] == CLIENTS, report
    assert (report["failed_clients"], report["auth_failed"], report["subscription_errors"]) == (
        0,
        0,
        0,
    ), report
    # every auth request answered: both channels of every client, before and after the restart
    assert report["auth_sent"] == report["auth_ok"] >= 2 * CLIENTS * 2
    assert done.returncode == 0
    assert f"resubscribed: {CLIENTS:,} / {CLIENTS:,} clients" in done.stdout
