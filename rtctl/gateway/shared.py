"""State the gateway's worker processes share: windowed counters (the failed-authentication limit)
and a "seen within a window" check (de-duplication, e.g. of webhooks).

- One process: ``LocalStore``, dictionaries in memory behind a lock. Nothing to set up.
- Several processes (``rtctl gateway --workers N``, or another server's workers): ``SqliteStore``,
  one SQLite file in a private folder that every worker opens. SQLite gives atomic
  read-modify-write across processes without a server to run; WAL mode lets readers go on while
  one process writes. The content is throwaway (a crash may lose the last counts), so the file is
  never synced to disk.

Both have the same operations; every window is in seconds and starts at the first event.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol

from rtctl.errors import EnvironmentProblem

PRUNE_EVERY = 1000  # writes between sweeps of expired entries
BUSY_TIMEOUT_S = 5.0  # how long a writer waits for another process's write to finish


class SharedStore(Protocol):
    def hit(self, key: str, window_s: float) -> tuple[int, float]:
        """Count one event for ``key``: (events in its current window, seconds left in it)."""
        ...

    def count(self, key: str) -> tuple[int, float]:
        """Events for ``key`` in its current window and the seconds left; (0, 0.0) when none."""
        ...

    def seen(self, key: str, window_s: float) -> bool:
        """True when ``key`` was recorded within the last ``window_s`` seconds; otherwise record
        it now and return False. Atomic: of concurrent callers, exactly one gets False."""
        ...

    def forget(self, key: str) -> None:
        """Drop ``key`` from the seen set (a delivery whose handling failed may come again)."""
        ...

    def close(self) -> None: ...


class LocalStore:
    """The in-process store: for one worker, or the tests."""

    def __init__(self) -> None:
        self._counters: dict[str, tuple[int, float]] = {}
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._writes = 0

    def hit(self, key: str, window_s: float) -> tuple[int, float]:
        now = time.time()
        with self._lock:
            self._maybe_prune(now)
            count, expires = self._counters.get(key, (0, 0.0))
            if expires <= now:
                count, expires = 0, now + window_s
            self._counters[key] = (count + 1, expires)
            return count + 1, expires - now

    def count(self, key: str) -> tuple[int, float]:
        now = time.time()
        count, expires = self._counters.get(key, (0, 0.0))
        return (count, expires - now) if expires > now else (0, 0.0)

    def seen(self, key: str, window_s: float) -> bool:
        now = time.time()
        with self._lock:
            self._maybe_prune(now)
            if self._seen.get(key, 0.0) > now:
                return True
            self._seen[key] = now + window_s
            return False

    def forget(self, key: str) -> None:
        with self._lock:
            self._seen.pop(key, None)

    def _maybe_prune(self, now: float) -> None:
        self._writes += 1
        if self._writes % PRUNE_EVERY:
            return
        self._counters = {k: v for k, v in self._counters.items() if v[1] > now}
        self._seen = {k: v for k, v in self._seen.items() if v > now}

    def close(self) -> None:
        pass


class SqliteStore:
    """The cross-process store: one SQLite file, one connection per thread of each process."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS counters "
        "(key TEXT PRIMARY KEY, count INTEGER NOT NULL, expires REAL NOT NULL) WITHOUT ROWID",
        "CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, expires REAL NOT NULL) WITHOUT ROWID",
    )

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writes = 0
        self._connection()  # fail at start, not at the first failed login

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            deadline = time.monotonic() + BUSY_TIMEOUT_S
            while True:  # the first workers may set the file up at the same moment
                try:
                    connection.execute("PRAGMA journal_mode=WAL")
                    connection.execute("PRAGMA synchronous=OFF")
                    for statement in self.SCHEMA:
                        connection.execute(statement)
                    break
                except sqlite3.OperationalError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def hit(self, key: str, window_s: float) -> tuple[int, float]:
        now = time.time()
        self._maybe_prune(now)
        row = (
            self._connection()
            .execute(
                "INSERT INTO counters (key, count, expires) VALUES (?1, 1, ?2 + ?3) "
                "ON CONFLICT (key) DO UPDATE SET "
                "count = CASE WHEN expires <= ?2 THEN 1 ELSE count + 1 END, "
                "expires = CASE WHEN expires <= ?2 THEN ?2 + ?3 ELSE expires END "
                "RETURNING count, expires",
                (key, now, window_s),
            )
            .fetchone()
        )
        return int(row[0]), float(row[1]) - now

    def count(self, key: str) -> tuple[int, float]:
        now = time.time()
        row = (
            self._connection()
            .execute(
                "SELECT count, expires FROM counters WHERE key = ? AND expires > ?", (key, now)
            )
            .fetchone()
        )
        return (int(row[0]), float(row[1]) - now) if row else (0, 0.0)

    def seen(self, key: str, window_s: float) -> bool:
        now = time.time()
        self._maybe_prune(now)
        recorded = (
            self._connection()
            .execute(
                "INSERT INTO seen (key, expires) VALUES (?1, ?2 + ?3) "
                "ON CONFLICT (key) DO UPDATE SET expires = excluded.expires "
                "WHERE seen.expires <= ?2 RETURNING 1",
                (key, now, window_s),
            )
            .fetchone()
        )
        return recorded is None

    def forget(self, key: str) -> None:
        self._connection().execute("DELETE FROM seen WHERE key = ?", (key,))

    def _maybe_prune(self, now: float) -> None:
        self._writes += 1
        if self._writes % PRUNE_EVERY:
            return
        connection = self._connection()
        connection.execute("DELETE FROM counters WHERE expires <= ?", (now,))
        connection.execute("DELETE FROM seen WHERE expires <= ?", (now,))

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()


def open_store(path: str | Path | None) -> SharedStore:
    """The SQLite store at ``path`` (created if missing), or the in-process store for None."""
    if path is None:
        return LocalStore()
    try:
        return SqliteStore(path)
    except sqlite3.Error as exc:
        raise EnvironmentProblem(
            f"cannot use {path} as the gateway's shared state: {exc}",
            hint="give a writable file path on a local disk (one per gateway, shared by its workers)",
        ) from exc
