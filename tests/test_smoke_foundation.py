"""The foundation: the entry points answer, the session Soketi fixture is real."""

from __future__ import annotations

import urllib.request

from rtctl import __version__
from tests.helpers import SoketiServer, run_cli, run_rtctl


def test_version_in_process() -> None:
    result = run_cli(["--version"])
    assert (result.exit_code, result.stdout, result.stderr) == (0, f"rtctl {__version__}\n", "")


def test_python_dash_m_entry_point() -> None:
    proc = run_rtctl(["--version"])
    assert (proc.returncode, proc.stdout) == (0, f"rtctl {__version__}\n")


def test_session_soketi_is_real(soketi: SoketiServer) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{soketi.port}/", timeout=5) as response:
        assert response.read() == b"OK"
