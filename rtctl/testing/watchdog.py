"""Stops a test Soketi when the process that started it is gone.

Run as ``python -m rtctl.testing.watchdog STATE_FOLDER`` with a pipe on stdin whose write end only
the test process holds. Reading blocks until that process closes it or ends (however it ends);
then the Soketi recorded in STATE_FOLDER is stopped by its PID. A server already stopped by a
normal teardown is simply not found.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for pytest is not for us
    folder = Path(argv[1])
    while sys.stdin.buffer.read(4096):
        pass
    from rtctl.runtime import native

    native.stop(folder)


if __name__ == "__main__":
    main(sys.argv)
