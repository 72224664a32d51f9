"""One way for tests to wait: for a condition, never for a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float,
    message: str | Callable[[], str],
    interval: float = 0.05,
) -> T:
    """Call ``predicate`` until it returns something truthy, and return that.

    After ``timeout`` seconds the test fails with ``message`` (a callable is asked only then, so it
    can show what was seen by that time). ``interval`` is the pause between calls; 0 suits a
    predicate that waits by itself (a blocking read with a short timeout).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(message() if callable(message) else message)
        if interval:
            time.sleep(interval)
