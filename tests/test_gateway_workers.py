"""`rtctl gateway --workers N`: real worker processes on one port, replaced when they die, sharing
the failed-authentication limit through one SQLite file.

Which worker accepts a connection is the kernel's choice; where a test needs a given worker, it
pauses the other with SIGSTOP for a moment (well below the supervisor's 5 s health check).
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rtctl.gateway.serve import max_workers, usable_cpus
from rtctl.gateway.shared import LocalStore, SqliteStore, open_store
from tests.gateway_support import DM, GatewayProcess, bearer, gateway_env, token
from tests.helpers import run_cli
from tests.waiting import wait_until

SOCKET = "1234.5678"


def worker_pids(parent: int) -> list[int]:
    """The spawned workers (not multiprocessing's resource tracker) of the gateway process."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    workers = []
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            workers.append(int(child))
    return sorted(workers)


def auth(base: str, user_token: str) -> httpx.Response:
    # a new connection per request, so the kernel picks a worker each time
    return httpx.post(
        f"{base}/auth",
        data={"socket_id": SOCKET, "channel_name": DM},
        headers={**bearer(user_token), "Connection": "close"},
        timeout=10,
    )


@pytest.fixture
def two_workers(soketi, tmp_path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(
        gateway_env(soketi), args=["--workers", "2", "--auth-failure-limit", "3"]
    ).start(tmp_path)
    assert process.process is not None
    wait_until(lambda: len(worker_pids(process.process.pid)) == 2, 20, "two workers")
    pids = worker_pids(process.process.pid)
    for pid in pids:  # both serving (their app built), not only spawned
        wait_until(
            lambda pid=pid: f"[{pid}] uvicorn.error: Application startup complete" in process.log(),
            20,
            f"worker {pid} never served:\n{process.log()}",
        )
    yield process
    process.stop()


# --- bad counts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["0", "-1", "1000000"])
def test_worker_counts_out_of_any_range_are_usage_errors(workers) -> None:
    result = run_cli(["gateway", "--workers", workers])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: Invalid value for '--workers': {workers} is out of range: use a number from 1 "
        "to 1024\nhint: see `rtctl gateway --help`\n"
    )


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_header_timeout_that_is_not_finite_is_a_usage_error(value) -> None:
    result = run_cli(["gateway", "--header-timeout", value])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: Invalid value for '--header-timeout': {value} is not a finite number\n"
        "hint: see `rtctl gateway --help`\n"
    )


@pytest.mark.parametrize("workers", [str(max_workers() + 1)])
def test_more_workers_than_this_machine_holds_are_usage_errors(workers) -> None:
    result = run_cli(["gateway", "--workers", workers])
    ceiling = max_workers()
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: --workers {workers} is not possible here: give 1 to {ceiling} "
        f"({usable_cpus()} CPUs, at most 2 workers per CPU + 1)\n"
        f"hint: workers beyond the CPUs add no throughput; e.g. --workers "
        f"{min(usable_cpus(), ceiling)}\n"
    )


# --- the shared store across real processes -------------------------------------------------------


def _hammer(path: str, count: int) -> list[bool]:
    store = SqliteStore(path)
    seen = []
    for i in range(count):
        store.hit("failures", 60)
        seen.append(store.seen(f"event-{i}", 60))
    store.close()
    return seen


def test_sqlite_store_counts_and_deduplicates_exactly_across_processes(tmp_path) -> None:
    path = str(tmp_path / "shared.sqlite")
    open_store(path).close()
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        results = pool.starmap(_hammer, [(path, 300)] * 4)
    store = SqliteStore(path)
    assert store.count("failures")[0] == 1200  # no lost update
    for i in range(300):  # each event was new to exactly one process
        assert sum(1 for seen in results if not seen[i]) == 1
    store.close()


@pytest.mark.parametrize("make", [LocalStore, lambda: SqliteStore(":memory:")])
def test_store_windows_start_at_the_first_event_and_expire(make) -> None:
    store = make()
    assert store.count("k") == (0, 0.0)
    assert store.hit("k", 0.3)[0] == 1
    count, left = store.hit("k", 0.3)
    assert count == 2 and 0 < left <= 0.3
    assert store.seen("e", 0.3) is False
    assert store.seen("e", 0.3) is True
    time.sleep(0.35)
    assert store.count("k") == (0, 0.0)
    assert store.hit("k", 0.3)[0] == 1  # a new window
    assert store.seen("e", 0.3) is False  # recorded again after its window
    store.forget("e")  # a delivery whose handling failed may come again
    assert store.seen("e", 0.3) is False
    store.close()


def test_an_unusable_shared_state_path_is_an_environment_problem(tmp_path) -> None:
    from rtctl.errors import EnvironmentProblem

    (tmp_path / "a-file").write_text("")
    with pytest.raises(EnvironmentProblem) as problem:
        open_store(tmp_path / "a-file" / "shared.sqlite")
    assert problem.value.message.startswith(
        f"cannot use {tmp_path / 'a-file' / 'shared.sqlite'} as the gateway's shared state: "
    )


# --- real workers ---------------------------------------------------------------------------------


def test_workers_share_the_port_and_the_failure_limit(two_workers) -> None:
    assert two_workers.process is not None
    first, second = worker_pids(two_workers.process.pid)
    wrong = token(key="x" * 64)
    os.kill(second, signal.SIGSTOP)
    try:  # only the first worker accepts now
        for _ in range(3):
            assert auth(two_workers.base, wrong).status_code == 401
    finally:
        os.kill(second, signal.SIGCONT)
    os.kill(first, signal.SIGSTOP)
    try:  # only the second, which has seen no failure itself
        refused = auth(two_workers.base, token())
    finally:
        os.kill(first, signal.SIGCONT)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_failures"
    # the access line is written after the answer has gone out
    limited = rf"INFO \[{second}\] rtctl\.gateway\.access: .*\"too_many_failures\""
    wait_until(
        lambda: re.search(limited, two_workers.log()),
        10,
        lambda: f"no too_many_failures access line from worker {second}:\n{two_workers.log()}",
    )
    log = two_workers.log()
    assert not re.search(rf"\[{second}\] rtctl\.gateway\.access: .*\"invalid_token\"", log)


def test_a_killed_worker_is_replaced_and_logged_and_the_port_stays_served(two_workers) -> None:
    assert two_workers.process is not None
    parent = two_workers.process.pid
    victim, survivor = worker_pids(parent)
    state_files = [
        os.readlink(f"/proc/{victim}/fd/{fd}")
        for fd in os.listdir(f"/proc/{victim}/fd")
        if os.readlink(f"/proc/{victim}/fd/{fd}").endswith("shared.sqlite")
    ]
    assert state_files and Path(state_files[0]).parent.name.startswith("rtctl-gateway-")
    os.kill(victim, signal.SIGKILL)
    # every request after the kill is answered, by the survivor until the replacement is up
    for _ in range(30):
        assert auth(two_workers.base, token()).status_code == 200
    line = wait_until(
        lambda: re.search(
            rf"WARNING \[{parent}\] rtctl\.gateway: worker {victim} died \(killed by signal 9\); "
            r"worker (\d+) replaces it",
            two_workers.log(),
        ),
        20,
        lambda: f"no replacement log line:\n{two_workers.log()}",
    )
    replacement = int(line.group(1))
    wait_until(
        lambda: worker_pids(parent) == sorted([survivor, replacement]),
        20,
        lambda: f"workers {worker_pids(parent)}, not {survivor} and {replacement}",
    )
    for _ in range(30):
        assert auth(two_workers.base, token()).status_code == 200
    assert two_workers.stop() == 0
    assert not Path(state_files[0]).parent.exists()  # the private folder is removed
    for pid in (survivor, replacement):
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_apps_built_on_one_shared_state_file_share_the_limit(soketi, tmp_path) -> None:
    """What `create_app(shared_state=...)` gives workers of any server: one limit for all."""
    from starlette.testclient import TestClient

    from rtctl.gateway import create_app
    from tests.gateway_support import gateway_settings

    path = tmp_path / "shared.sqlite"
    first, second = (
        create_app(gateway_settings(soketi), shared_state=path, auth_failure_limit=2)
        for _ in range(2)
    )
    form = {"socket_id": SOCKET, "channel_name": DM}
    wrong = bearer(token(key="x" * 64))
    with TestClient(first) as one, TestClient(second) as other:
        assert one.post("/realtime/auth", data=form, headers=wrong).status_code == 401
        assert other.post("/realtime/auth", data=form, headers=wrong).status_code == 401
        assert one.post("/realtime/auth", data=form, headers=bearer(token())).status_code == 429
        assert other.post("/realtime/auth", data=form, headers=bearer(token())).status_code == 429
    assert first.state.shared.seen("webhook-1", 60) is False
    assert second.state.shared.seen("webhook-1", 60) is True  # the de-duplication window too
