"""The same command twice at once, as real concurrent `python -m rtctl` processes: a second `up`
waits and reports the server the first started; two `switch`/`init` take turns on the .env."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rtctl.runtime import native
from tests.helpers import make_server, run_rtctl, write_env

TRIES = 10


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rtctl", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def _two_at_once(args_a: list[str], args_b: list[str], cwd: Path) -> list[tuple[int, str, str]]:
    first, second = _start(args_a, cwd), _start(args_b, cwd)
    return [_finish(first), _finish(second)]


def servers_running_in(state: Path) -> list[int]:
    """PIDs of every process working in the state folder's run directory (native Soketi runs
    there), whether or not a PID file names it."""
    run = str(state / "run")
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd") == run and native.start_ticks(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_two_ups_at_once_start_one_server_and_down_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / ".rtctl"
    env = make_server(state).env
    write_env(tmp_path / ".env", env)
    try:
        for attempt in range(TRIES):
            results = _two_at_once(["up"], ["up"], tmp_path)
            running = native.read_running(state)
            assert running is not None, (attempt, results)
            assert [code for code, _, _ in results] == [0, 0], (attempt, results)
            waiting = f"waiting: another rtctl is starting or stopping Soketi in {state}\n"
            messages = sorted(err.replace(waiting, "") for _, _, err in results)
            assert messages == sorted(
                [
                    f"Soketi is ready (native, pid {running.pid})\n",
                    f"already running (native, pid {running.pid}): nothing started\n",
                ]
            ), (attempt, results)
            assert servers_running_in(state) == [running.pid], attempt

            down = run_rtctl(["down"], cwd=tmp_path)
            assert (down.returncode, down.stderr) == (
                0,
                f"stopped Soketi (native, pid {running.pid})\n",
            )
            assert servers_running_in(state) == [], attempt
            assert native.read_running(state) is None
            assert native.port_is_free("127.0.0.1", int(env["REALTIME_PORT"]))
    finally:
        native.stop(state)


def test_down_during_up_waits_and_stops_what_up_started(tmp_path: Path) -> None:
    state = tmp_path / ".rtctl"
    write_env(tmp_path / ".env", make_server(state).env)
    try:
        (up_code, _, up_err), (down_code, _, down_err) = _two_at_once(["up"], ["down"], tmp_path)
        assert (up_code, down_code) == (0, 0), (up_err, down_err)
        # Either down came first (nothing to stop, and up's server runs) or after (it stopped it):
        # never a server that no PID file names.
        running = native.read_running(state)
        down_err = down_err.replace(
            f"waiting: another rtctl is starting or stopping Soketi in {state}\n", ""
        )
        if down_err.startswith("stopped Soketi"):
            assert running is None and servers_running_in(state) == []
        else:
            assert down_err == "nothing to stop: no Soketi started by rtctl runs here\n"
            assert running is not None and servers_running_in(state) == [running.pid]
    finally:
        native.stop(state)


SOKETI_ENV = (
    "REALTIME_PROVIDER=soketi\nREALTIME_HOST=127.0.0.1\nREALTIME_PORT=6001\n"
    "PUSHER_APP_ID=123456\nPUSHER_APP_KEY=localkey1\nPUSHER_APP_SECRET=localsecret1\n"
    "PUSHER_APP_CLUSTER=mt1\n"
)


def _pusher(app_id: str) -> list[str]:
    return ["switch", "pusher", "--cluster", "eu", "--app-id", app_id]


def test_two_switches_at_once_never_both_switch(tmp_path: Path) -> None:
    env_path = tmp_path / ".env"
    for attempt in range(8):
        env_path.write_text(SOKETI_ENV)
        stash = tmp_path / ".env.rtctl-stash"
        stash.unlink(missing_ok=True)
        args = [
            [*_pusher(app_id), "--key", f"key{app_id}", "--secret", f"secret{app_id}"]
            for app_id in ("111", "222")
        ]
        results = _two_at_once(args[0], args[1], tmp_path)
        switched = [index for index, (code, _, _) in enumerate(results) if code == 0]
        refused = [index for index, (code, _, _) in enumerate(results) if code == 9]
        assert len(switched) == 1 and len(refused) == 1, (attempt, results)
        winner = ("111", "222")[switched[0]]
        text = env_path.read_text()
        assert f"PUSHER_APP_ID={winner}\n" in text and f"PUSHER_APP_KEY=key{winner}\n" in text
        assert results[refused[0]][2] == (
            "error: .env already uses pusher with other values for PUSHER_APP_ID, "
            "PUSHER_APP_KEY, PUSHER_APP_SECRET; nothing was written\n"
            "hint: edit .env to change them, or switch to the other provider and back\n"
        )
        # Nothing of the original was lost: switching back restores it byte for byte.
        back = run_rtctl(["switch", "soketi"], cwd=tmp_path)
        assert back.returncode == 0, back.stderr
        assert env_path.read_text() == SOKETI_ENV, attempt


def test_two_inits_at_once_write_once_and_refuse_once(tmp_path: Path) -> None:
    for attempt in range(2):
        folder = tmp_path / f"try{attempt}"
        results = _two_at_once(
            ["init", "--dir", str(folder)], ["init", "--dir", str(folder)], tmp_path
        )
        codes = sorted(code for code, _, _ in results)
        assert codes == [0, 9], (attempt, results)
        written = next(out for code, out, _ in results if code == 0)
        env_text = (folder / ".env").read_text()
        assert written.splitlines()[0] == str(folder / ".env")
        assert "PUSHER_APP_SECRET=" in env_text
        assert sorted(path.name for path in folder.iterdir()) == [".env", "compose.yaml"]


def test_two_forced_inits_keep_both_old_files(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ORIGINAL=1\n")
    results = _two_at_once(["init", "--force"], ["init", "--force"], tmp_path)
    assert [code for code, _, _ in results] == [0, 0], results
    backups = sorted(tmp_path.glob(".env.bak-*"))
    assert len(backups) == 2  # one per init: the original, then the first init's file
    contents = sorted(path.read_text() for path in backups)
    assert "ORIGINAL=1\n" in contents
    assert any("PUSHER_APP_SECRET=" in text for text in contents)


def test_a_lock_held_elsewhere_is_waited_for_then_reported(tmp_path: Path) -> None:
    """Another holder (a thread here, like another process) keeps the folder: the waiter is told
    once, then gets a Conflict naming what the other one does."""
    import threading

    import pytest

    from rtctl.errors import Conflict
    from rtctl.locks import folder_lock

    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with folder_lock(tmp_path, "editing .env", wait=5):
            taken.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(10)
        told: list[str] = []
        with (
            pytest.raises(Conflict) as raised,
            folder_lock(tmp_path, "editing .env", 0.3, told.append),
        ):
            pass
        assert told == [f"waiting: another rtctl is editing .env in {tmp_path}"]
        assert raised.value.message == (
            f"another rtctl is still editing .env in {tmp_path} (waited 0.3s)"
        )
    finally:
        release.set()
        holder.join()
    with folder_lock(tmp_path, "editing .env", wait=0.3):  # free again once the holder is done
        pass


def test_up_writes_nodes_into_env_only_under_its_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up --nodes` writes .env like `switch` and `init` do: while another rtctl edits the file,
    it waits its turn (here: gives up after the wait) instead of writing over that edit."""
    import threading

    from rtctl import envfile
    from rtctl.errors import Conflict
    from rtctl.runtime import service

    env_path = tmp_path / ".env"
    env_path.write_text(SOKETI_ENV)
    monkeypatch.setattr(envfile, "EDIT_LOCK_WAIT", 0.3)
    taken, release = threading.Event(), threading.Event()

    def edit() -> None:
        with envfile.locked(env_path):
            taken.set()
            release.wait(10)

    editor = threading.Thread(target=edit)
    editor.start()
    try:
        assert taken.wait(10)
        with pytest.raises(Conflict) as raised:
            service.remember(env_path, {"RTCTL_SOKETI_NODES": "2"})
        assert raised.value.message == (
            f"another rtctl is still editing .env in {tmp_path} (waited 0.3s)"
        )
        assert env_path.read_text() == SOKETI_ENV
    finally:
        release.set()
        editor.join()
    assert service.remember(env_path, {"RTCTL_SOKETI_NODES": "2"}) == (
        f"wrote RTCTL_SOKETI_NODES=2 to {env_path}"
    )
    assert env_path.read_text() == SOKETI_ENV + "RTCTL_SOKETI_NODES=2\n"


def test_a_cluster_start_or_stop_waits_for_the_same_lock_as_up_and_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cluster's own start and stop take the state folder's lock that `up` and `down` hold:
    while another rtctl starts or stops Soketi there, they wait, say why, and give up in time."""
    import threading

    from rtctl.errors import Conflict
    from rtctl.locks import folder_lock
    from rtctl.runtime import cluster

    state = tmp_path / ".rtctl"
    (state / "cluster" / "node-1").mkdir(parents=True)
    monkeypatch.setattr(native, "STATE_LOCK_WAIT", 0.3, raising=False)
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:  # what `up` and `down` hold
        with folder_lock(state, "starting or stopping Soketi", wait=5):
            taken.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(10)
        with pytest.raises(Conflict) as raised:
            cluster.stop(state, grace=1.0)
        assert raised.value.message == (
            f"another rtctl is still starting or stopping Soketi in {state} (waited 0.3s)"
        )
    finally:
        release.set()
        holder.join()
    assert cluster.stop(state, grace=1.0) is not None  # its turn now: nothing ran, nothing left
    assert sorted(path.name for path in (state / "cluster").iterdir()) == ["node-1"]
