"""Ctrl-C (a real SIGINT to a real `python -m rtctl`) ends the long-running commands through the
error boundary with exit 130, without a traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

from tests.helpers import SoketiServer, free_port, fresh_credentials, write_env


def _interrupt_after_first_line(
    args: list[str], cwd: Path, env: dict[str, str], stream: str
) -> tuple[int, str]:
    """Start rtctl, wait until it has printed a line on ``stream`` (so it is running its loop),
    send SIGINT, and return (exit code, stderr)."""
    import os

    process = subprocess.Popen(
        [sys.executable, "-m", "rtctl", *args],
        cwd=cwd,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        watched: IO[str] | None = process.stdout if stream == "stdout" else process.stderr
        assert watched is not None
        first = watched.readline()
        assert first, "rtctl ended before printing anything"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, first + err if stream == "stderr" else err


def test_ctrl_c_ends_status_watch_with_130(tmp_path: Path) -> None:
    write_env(
        tmp_path / ".env",
        {
            **fresh_credentials(),
            "REALTIME_PORT": str(free_port()),
            "SOKETI_METRICS_SERVER_PORT": str(free_port()),
        },
    )
    code, err = _interrupt_after_first_line(
        ["status", "--watch", "--interval", "0.2"], tmp_path, {}, "stderr"
    )
    assert code == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def test_ctrl_c_ends_status_watch_json_with_130(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", {**fresh_credentials(), "REALTIME_PORT": str(free_port())})
    code, err = _interrupt_after_first_line(
        ["status", "--watch", "--json", "--interval", "0.2"], tmp_path, {}, "stdout"
    )
    assert (code, err) == (130, "")


def test_ctrl_c_ends_logs_follow_with_130(tmp_path: Path, soketi: SoketiServer) -> None:
    """`logs -f` follows the log of a running server until Ctrl-C."""
    soketi.write_env(tmp_path / ".env")
    code, err = _interrupt_after_first_line(
        ["logs", "-f", "-n", "5"], tmp_path, {"RTCTL_STATE_DIR": str(soketi.state)}, "stdout"
    )
    assert (code, err) == (130, "")
