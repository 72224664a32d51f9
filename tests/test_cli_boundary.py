"""The one error boundary, seen from a real `python -m rtctl` process: one line, a hint, the
documented exit code; a traceback only with RTCTL_DEBUG; JSON errors on stdout in --json mode."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import run_rtctl, write_env

MISSING = (
    "error: nowhere.env does not exist\n"
    "hint: create it with `rtctl init`, or pass --env-file with an existing file\n"
)


def test_expected_failure_has_no_traceback(tmp_path: Path) -> None:
    proc = run_rtctl(["--env-file", "nowhere.env", "config"], cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "", MISSING)


def test_rtctl_debug_shows_the_traceback_then_the_same_message(tmp_path: Path) -> None:
    proc = run_rtctl(
        ["--env-file", "nowhere.env", "config"], cwd=tmp_path, env={"RTCTL_DEBUG": "1"}
    )
    assert proc.returncode == 3
    assert proc.stderr.startswith("Traceback (most recent call last):\n")
    assert "rtctl.errors.ConfigError: nowhere.env does not exist\n" in proc.stderr
    assert proc.stderr.endswith(MISSING)


def test_json_mode_reports_the_error_as_json_on_stdout(tmp_path: Path) -> None:
    proc = run_rtctl(["--env-file", "nowhere.env", "config", "--json"], cwd=tmp_path)
    assert proc.returncode == 3
    assert proc.stdout.count("\n") == 1  # one line: it can close an NDJSON stream too
    assert json.loads(proc.stdout) == {
        "error": {
            "code": "config",
            "message": "nowhere.env does not exist",
            "hint": "create it with `rtctl init`, or pass --env-file with an existing file",
            "exit_code": 3,
        }
    }
    assert proc.stderr == MISSING


def test_usage_error_exit_2(tmp_path: Path) -> None:
    write_env(
        tmp_path / ".env", {"PUSHER_APP_ID": "1", "PUSHER_APP_KEY": "k1", "PUSHER_APP_SECRET": "s1"}
    )
    proc = run_rtctl(["switch", "ably"], cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        2,
        "",
        "error: unknown provider 'ably'\nhint: use `rtctl switch soketi` or `rtctl switch pusher`\n",
    )


def test_typer_usage_errors_keep_exit_2(tmp_path: Path) -> None:
    proc = run_rtctl(["switch"], cwd=tmp_path)
    assert proc.returncode == 2
    assert "Error: Missing argument 'provider'.\n" in proc.stderr and "Traceback" not in proc.stderr


def test_conflict_exit_9_as_json(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("KEEP=1\n")
    proc = run_rtctl(["init", "--json"], cwd=tmp_path)
    assert proc.returncode == 9
    assert json.loads(proc.stdout)["error"]["code"] == "conflict"
    assert proc.stderr.startswith("error: .env already exists; nothing was written\n")
    assert (tmp_path / ".env").read_text() == "KEEP=1\n"


def test_no_colour_and_no_prompt_off_a_tty(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("REALTIME_PROVIDER=soketi\nPUSHER_APP_ID=1\n")
    proc = run_rtctl(["switch", "pusher"], cwd=tmp_path, env={"NO_COLOR": "1"})
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        "error: switch pusher needs --cluster, --app-id, --key, --secret (Pusher credentials)\n"
        "hint: pass them from the Pusher dashboard (App Keys), or run on a terminal to be "
        "prompted\n"
    )
    assert "\x1b[" not in proc.stderr
