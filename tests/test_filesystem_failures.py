"""A file or folder rtctl needs cannot be used: one line naming the path and the reason, exit 8,
and nothing started or half-written. Real failures of a real `python -m rtctl`: paths of the
wrong kind, a file-size limit standing in for a full disk, and an unprivileged user in a
read-only folder."""

from __future__ import annotations

import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers import (
    free_port,
    fresh_credentials,
    run_rtctl,
    run_unprivileged,
    unprivileged_runner,
    write_env,
)
from tests.test_races import servers_running_in

HINT = (
    "hint: check that the path is a writable folder (or file) and that the disk has space; "
    "RTCTL_STATE_DIR and RTCTL_CACHE_DIR choose other folders\n"
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_env(
        tmp_path / ".env",
        {
            **fresh_credentials(),
            "REALTIME_PORT": str(free_port()),
            "SOKETI_METRICS_SERVER_PORT": str(free_port()),
        },
    )
    return tmp_path


def test_state_folder_that_is_a_file(project: Path) -> None:
    state = project / "state"
    state.write_text("not a folder\n")
    env = {"RTCTL_STATE_DIR": str(state)}
    for command in (["up"], ["down"]):
        proc = run_rtctl(command, cwd=project, env=env)
        assert (proc.returncode, proc.stdout) == (8, ""), proc.stderr
        assert proc.stderr == (
            f"error: cannot create the folder {state}: something else already exists there\n" + HINT
        )
    status = run_rtctl(["status"], cwd=project, env=env)
    assert status.returncode == 8
    assert status.stderr.startswith(f"error: cannot use {state}/")  # the first record it reads
    assert status.stderr.endswith(": a part of the path is a file, not a folder\n" + HINT)
    assert status.stderr.count("\n") == 2
    assert state.read_text() == "not a folder\n"


def test_pid_file_path_that_is_a_folder(project: Path) -> None:
    pid_path = project / ".rtctl" / "soketi.pid.json"
    pid_path.mkdir(parents=True)
    proc = run_rtctl(["up"], cwd=project, env={"RTCTL_STATE_DIR": str(project / ".rtctl")})
    assert (proc.returncode, proc.stdout) == (8, "")
    assert proc.stderr == f"error: cannot use {pid_path}: it is a folder, not a file\n" + HINT


def test_log_path_that_is_a_folder_starts_nothing(project: Path) -> None:
    state = project / ".rtctl"
    (state / "soketi.log").mkdir(parents=True)
    env = {"RTCTL_STATE_DIR": str(state)}
    proc = run_rtctl(["up", "--runtime", "native"], cwd=project, env=env)
    assert (proc.returncode, proc.stdout) == (8, "")
    assert (
        proc.stderr == f"error: cannot use {state}/soketi.log: it is a folder, not a file\n" + HINT
    )
    assert servers_running_in(state) == []
    logs = run_rtctl(["logs"], cwd=project, env=env)
    assert (logs.returncode, logs.stdout) == (8, "")
    assert (
        logs.stderr == f"error: cannot use {state}/soketi.log: it is a folder, not a file\n" + HINT
    )


def test_cache_folder_that_is_a_file(project: Path) -> None:
    cache = project / "cache"
    cache.write_text("")
    proc = run_rtctl(
        ["up", "--runtime", "native"],
        cwd=project,
        env={"RTCTL_CACHE_DIR": str(cache), "RTCTL_STATE_DIR": str(project / ".rtctl")},
    )
    assert (proc.returncode, proc.stdout) == (8, "")
    assert proc.stderr.startswith(f"error: cannot use {cache}/soketi-"), proc.stderr
    assert proc.stderr.endswith(": a part of the path is a file, not a folder\n" + HINT)


def _limit_file_size() -> None:
    """In the child: files may not grow past 64 bytes (as a full disk refuses writes); the
    signal that would kill the process is ignored, so the write fails with EFBIG instead."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))


def test_a_write_refused_by_the_disk_leaves_nothing_half_written(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rtctl", "init"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        preexec_fn=_limit_file_size,
    )
    assert (proc.returncode, proc.stdout) == (8, "")
    assert proc.stderr == (
        "error: cannot write .env: the file is larger than this process may write\n" + HINT
    )
    assert list(tmp_path.iterdir()) == []  # no .env, no temp file, no compose.yaml


def test_read_only_folder_for_an_unprivileged_user() -> None:
    runner = unprivileged_runner()
    if runner is None:
        pytest.skip("running as root and no unprivileged user/setpriv to drop to")
    folder = Path(
        tempfile.mkdtemp(prefix="rtctl-ro-")
    )  # root's, readable by all, writable by none else
    try:
        folder.chmod(0o755)
        env_path = write_env(folder / ".env", {**fresh_credentials(), "REALTIME_PORT": "6001"})
        env_path.chmod(0o644)
        before = env_path.read_text()

        switch = run_unprivileged(
            runner,
            [
                "switch",
                "pusher",
                "--cluster",
                "eu",
                "--app-id",
                "1",
                "--key",
                "k1",
                "--secret",
                "s1",
            ],
            cwd=folder,
        )
        assert (switch.returncode, switch.stdout) == (8, "")
        assert switch.stderr == "error: cannot write in .: permission denied\n" + HINT
        assert env_path.read_text() == before

        state = folder / ".rtctl"
        up = run_unprivileged(runner, ["up"], cwd=folder, env={"RTCTL_STATE_DIR": str(state)})
        assert (up.returncode, up.stdout) == (8, "")
        assert up.stderr == f"error: cannot create the folder {state}: permission denied\n" + HINT

        init = run_unprivileged(runner, ["init", "--dir", "sub"], cwd=folder)
        assert (init.returncode, init.stdout) == (8, "")
        assert init.stderr == "error: cannot create the folder sub: permission denied\n" + HINT
        assert sorted(path.name for path in folder.iterdir()) == [".env"]
    finally:
        shutil.rmtree(folder)
