"""One way to keep two rtctl processes from changing the same thing at once: an exclusive
``flock`` on the folder that holds it.

- `rtctl up`/`down` lock the state folder (PID file, log), so a second `up` waits for the first
  and then finds the server it started, instead of starting another on the same port;
- writers of a .env (`switch`, `init`) lock the folder that holds it around their whole
  read-modify-write, so two at once never lose one caller's update.

Locking the folder itself leaves no lock file behind in a project. The kernel releases the lock
when the process ends, however it ends, so a crash never leaves a stale lock. Descriptors are
opened close-on-exec: a server started under the lock does not inherit it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from rtctl.errors import Conflict, filesystem_problem

POLL_SECONDS = 0.05

# folder -> depth for this thread, so a holder may re-enter (a second flock on a new descriptor
# would wait for itself); other threads take the lock like other processes.
_local = threading.local()


def _held() -> dict[str, int]:
    if not hasattr(_local, "held"):
        _local.held = {}
    held: dict[str, int] = _local.held
    return held


def _silent(_: str) -> None:
    pass


@contextlib.contextmanager
def folder_lock(
    folder: Path,
    purpose: str,
    wait: float,
    on_wait: Callable[[str], None] = _silent,
    create: bool = True,
) -> Iterator[None]:
    """Hold the exclusive lock of ``folder`` for the ``with`` block. A missing folder is created,
    or with ``create=False`` there is nothing in it to protect and the block runs unlocked.

    When another process holds it, ``on_wait`` is told once and the call waits up to ``wait``
    seconds, then raises Conflict naming ``purpose`` (what the other process is doing)."""
    if not create and not folder.is_dir():
        yield
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        key = str(folder.resolve())
    except OSError as exc:
        raise filesystem_problem(exc, "create the folder") from None
    held = _held()
    if key in held:
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    try:
        fd = os.open(key, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise filesystem_problem(exc, "open the folder") from None
    try:
        _acquire(fd, key, purpose, wait, on_wait)
        held[key] = 1
        try:
            yield
        finally:
            del held[key]
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _acquire(
    fd: int, folder: str, purpose: str, wait: float, on_wait: Callable[[str], None]
) -> None:
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno in (errno.ENOLCK, errno.EBADF, errno.EINVAL, errno.ENOTSUP):
                return  # a file system without locks (some network mounts): go on unlocked
            raise filesystem_problem(exc, "lock the folder", folder) from None
        if not told:
            on_wait(f"waiting: another rtctl is {purpose} in {folder}")
            told = True
        if time.monotonic() >= deadline:
            raise Conflict(
                f"another rtctl is still {purpose} in {folder} (waited {wait:g}s)",
                hint="let it finish (or stop it with Ctrl-C), then run the command again",
            )
        time.sleep(POLL_SECONDS)
