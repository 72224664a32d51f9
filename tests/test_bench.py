"""`rtctl bench` against the real session Soketi: report fields, full delivery, gates, a dying server.

Small N and short runs; no timing assertions (the figures live in BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import pytest

from rtctl.ops.bench.report import percentiles
from rtctl.ops.bench.runner import event_data
from tests.helpers import free_port, run_cli, write_env

DYING_RUN = ["-n", "30", "-c", "3", "-r", "50", "-d", "6", "--drain", "2", "--json"]
SMALL = ["-n", "20", "-c", "4", "-r", "20", "-d", "1", "--drain", "5"]


def bench_json(env_file, *args):
    result = run_cli(["--env-file", str(env_file), "bench", *args, "--json"])
    return result, json.loads(result.stdout)


def test_report_has_every_field_and_full_delivery(env_file):
    result, report = bench_json(env_file, *SMALL)
    assert result.exit_code == 0, result.stderr
    conn, pub, dlv = report["connections"], report["publish"], report["delivery"]
    assert (conn["requested"], conn["connected"], conn["subscribed"], conn["failed"]) == (
        20,
        20,
        20,
        0,
    )
    assert conn["dropped"] == 0 and conn["failures"] == {}
    assert pub["mode"] == "http" and pub["sent"] > 0
    assert pub["accepted"] == pub["sent"] and pub["failed"] == 0
    # 20 subscribers over 4 channels: every event fans out to 5 of them.
    assert dlv["expected"] == pub["sent"] * 5
    assert dlv["received"] == dlv["expected"] and dlv["lost"] == 0 and dlv["rate"] == 1.0
    assert dlv["duplicates"] == 0 and dlv["out_of_order"] == 0
    for stats in (conn["connect_ms"], conn["subscribe_ms"], dlv["latency_ms"]):
        assert set(stats) == {"p50", "p90", "p95", "p99", "max", "mean"}
        assert 0 <= stats["p50"] <= stats["p90"] <= stats["p95"] <= stats["p99"] <= stats["max"]
    assert report["errors"] == {}
    assert set(report["rtctl"]) >= {"cpu_percent", "cpu_percent_publishing", "max_rss_mb"}
    assert report["verdict"] == {
        "passed": True,
        "reasons": [],
        "min_delivery": 1.0,
        "max_p99_ms": None,
    }
    assert report["options"]["connections"] == 20 and report["options"]["channel_type"] == "public"
    assert report["notes"] == []


@pytest.mark.parametrize("channel_type", ["private", "presence"])
def test_client_events_on_signed_channels_all_arrive(env_file, channel_type):
    result, report = bench_json(
        env_file, *SMALL, "--channel-type", channel_type, "--publish", "client"
    )
    assert result.exit_code == 0, result.stderr
    assert report["connections"]["subscribed"] == 20
    assert report["publish"]["mode"] == "client"
    delivery = report["delivery"]
    assert delivery["expected"] == report["publish"]["sent"] * 5 > 0
    assert delivery["received"] == delivery["expected"]


def test_client_events_over_pushers_limit_are_noted(env_file):
    result, report = bench_json(
        env_file,
        *SMALL[:4],
        "-r",
        "60",
        "-d",
        "1",
        "--channel-type",
        "private",
        "--publish",
        "client",
    )
    assert result.exit_code == 0, result.stderr
    assert report["delivery"]["rate"] == 1.0
    assert report["notes"][0] == (
        "client events at 15/s per publisher socket: Pusher allows 10/s per connection "
        "(error 4301); Soketi's default is unlimited"
    )


def test_subscribers_refused_by_a_full_presence_channel_fail_the_run(env_file):
    # 101 subscribers on one presence channel: Soketi admits 100 members by default.
    result, report = bench_json(
        env_file, "-n", "101", "-c", "1", "-r", "5", "-d", "1", "--channel-type", "presence"
    )
    assert result.exit_code == 1
    assert report["connections"]["subscribed"] == 100
    assert report["connections"]["failures"] == {"subscription_error_4100": 1}
    assert report["delivery"]["rate"] == 1.0  # the 100 members got everything
    reason = "1 of 101 subscribers could not connect or subscribe (subscription_error_4100 ×1)"
    assert report["verdict"]["reasons"] == [reason]
    assert report["notes"] == [
        "Soketi admits 100 members per presence channel by default "
        "(SOKETI_PRESENCE_MAX_MEMBERS); use more channels"
    ]
    assert f"error: {reason}\n" in result.stderr


def test_payload_is_padded_to_the_requested_size(env_file):
    result, report = bench_json(env_file, *SMALL, "--payload-size", "2000")
    assert result.exit_code == 0, result.stderr
    assert report["delivery"]["rate"] == 1.0
    assert len(event_data(7, 2000)) == 2000
    assert json.loads(event_data(7, 2000))["s"] == 7


def test_table_output_names_the_figures(env_file):
    result = run_cli(["--env-file", str(env_file), "bench", *SMALL])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("subscribed" in line and "20 / 20" in line for line in lines)
    assert any("delivery rate" in line and "100.00%" in line for line in lines)
    assert any("verdict" in line and "passed" in line for line in lines)
    assert "bench: publishing (20/20 subscribed, 0 failed)" in result.stderr


def test_p99_gate_fails_with_exit_1_and_one_json_document(env_file):
    result, report = bench_json(env_file, *SMALL, "--max-p99", "0")
    assert result.exit_code == 1
    p99 = report["delivery"]["latency_ms"]["p99"]
    reason = f"p99 latency {p99} ms is over --max-p99 0 ms"
    assert report["verdict"]["passed"] is False
    assert report["verdict"]["reasons"] == [reason]
    assert f"error: {reason}\n" in result.stderr


def test_soketi_stopped_mid_run_is_lost_deliveries_and_exit_1(soketi_factory, tmp_path):
    server = soketi_factory()
    env = server.write_env(tmp_path / "dying.env")
    process = subprocess.Popen(
        [sys.executable, "-m", "rtctl", "--env-file", str(env), "bench", *DYING_RUN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        assert process.stderr is not None
        # Stop the server once publishing has begun (the progress line says so off a TTY).
        first = process.stderr.readline()
        second = process.stderr.readline()
        assert "publishing" in first + second, first + second
        server.stop()
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1, stderr
    report = json.loads(stdout)
    delivery = report["delivery"]
    assert delivery["lost"] > 0 and delivery["rate"] < 1.0
    assert delivery["received"] + delivery["lost"] == delivery["expected"]
    assert report["publish"]["failed"] > 0  # triggers after the stop could not be sent
    assert report["connections"]["dropped"] == 30
    assert report["connections"]["closes"] == {"4200": 30}  # Soketi's "Server closed" code
    assert report["errors"] == {"4200": 30}
    assert report["verdict"]["passed"] is False
    reason = report["verdict"]["reasons"][0]
    assert reason.startswith("delivery ") and "is under --min-delivery 100%" in reason
    assert f"error: {reason}\n" in stderr


def test_more_connections_than_open_files_is_an_environment_problem(env_file):
    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    done = subprocess.run(
        [sys.executable, "-m", "rtctl", "--env-file", str(env_file), "bench", "-n", "300"],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=low_limit,
    )
    assert done.returncode == 8
    assert done.stderr.splitlines() == [
        "error: --connections 300 needs about 374 open files; this process may open 256",
        "hint: add --workers, raise the hard limit (`ulimit -Hn`, systemd LimitNOFILE) or use "
        "fewer connections",
    ]


def test_no_server_is_unreachable_exit_4(tmp_path):
    port = free_port()
    env = write_env(
        tmp_path / ".env",
        {
            "REALTIME_HOST": "127.0.0.1",
            "REALTIME_PORT": str(port),
            "PUSHER_APP_ID": "123456",
            "PUSHER_APP_KEY": "benchkey",
            "PUSHER_APP_SECRET": "benchsecret",
        },
    )
    result = run_cli(["--env-file", str(env), "bench", "-n", "3", "-c", "1", "-d", "1"])
    assert result.exit_code == 4
    assert result.stderr.splitlines()[-2:] == [
        f"error: no subscriber could connect to ws://127.0.0.1:{port}/app/benchkey (refused ×3)",
        "hint: is the server running? `rtctl status` shows it, `rtctl up` starts one",
    ]
    assert result.stdout == ""


def test_wrong_secret_on_private_channels_is_auth_rejected_exit_5(soketi, tmp_path):
    env = soketi.write_env(tmp_path / ".env", PUSHER_APP_SECRET="not-the-secret")
    result = run_cli(
        ["--env-file", str(env), "bench", "-n", "4", "-c", "2", "--channel-type", "private"]
    )
    assert result.exit_code == 5
    assert result.stderr.splitlines()[-2:] == [
        "error: every subscription was refused (subscription_error_401 ×4)",
        "hint: PUSHER_APP_KEY/PUSHER_APP_SECRET must match the server's app (`rtctl doctor`)",
    ]


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (
            ["--publish", "client"],
            "error: client events need private or presence channels",
            "hint: add --channel-type private (Pusher refuses client events on public channels)",
        ),
        (
            ["-n", "2", "-c", "5"],
            "error: --channels 5 is more than --connections 2",
            "hint: every channel needs at least one subscriber",
        ),
        (
            ["--channel-type", "secret"],
            "error: --channel-type must be one of public, private, presence, not 'secret'",
            "hint: public needs no auth; private and presence are signed locally with the secret",
        ),
    ],
)
def test_bad_options_are_usage_errors(env_file, args, message, hint):
    result = run_cli(["--env-file", str(env_file), "bench", *args])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [message, hint]
    assert result.stdout == ""


def test_bad_options_in_json_mode_are_one_json_error(env_file):
    result = run_cli(["--env-file", str(env_file), "bench", "--publish", "client", "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["code"] == "invalid_input"


def test_percentiles_nearest_rank():
    assert percentiles([float(v) for v in range(1, 101)]) == {
        "p50": 50.0,
        "p90": 90.0,
        "p95": 95.0,
        "p99": 99.0,
        "max": 100.0,
        "mean": 50.5,
    }
    assert percentiles([])["p99"] is None
