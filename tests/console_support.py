"""Shared by the console tests: `rtctl console` as a real process, and one headless Chromium
(Debian's package, driven by Selenium through Debian's chromedriver) shared by the session."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import SoketiServer
from tests.listen_support import MASTER_KEY
from tests.waiting import wait_until

CHROMIUM = os.environ.get("RTCTL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("RTCTL_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
# Screenshots of each view land here when set (docs/img for the docs), else in the test's folder.
# Resolved at import, before the tests move into their own folders.
SCREENSHOT_DIR = (
    Path(os.environ["RTCTL_SCREENSHOT_DIR"]).resolve()
    if os.environ.get("RTCTL_SCREENSHOT_DIR")
    else None
)


@dataclass
class Console:
    process: subprocess.Popen[str]
    url: str  # with the token
    folder: Path
    stderr: list[str]

    @property
    def base(self) -> str:
        return self.url.split("/?", 1)[0]

    @property
    def token(self) -> str:
        return self.url.split("token=", 1)[1]


@contextlib.contextmanager
def running_console(
    server: SoketiServer | Mapping[str, str], folder: Path, *args: str, **env: str
) -> Iterator[Console]:
    """`rtctl console --port 0` for ``server`` (or these settings); yields once the URL is
    printed; SIGTERM at the end, and the process must then exit 0 within seconds (open event
    streams included)."""
    settings = server.env if isinstance(server, SoketiServer) else dict(server)
    values = {k: v for k, v in os.environ.items() if not k.startswith(("PUSHER_", "REALTIME_"))}
    values.update(settings, PUSHER_ENCRYPTION_MASTER_KEY_BASE64=MASTER_KEY, **env)
    process = subprocess.Popen(
        [sys.executable, "-m", "rtctl", "console", "--port", "0", *args],
        cwd=folder,
        env=values,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    errors: list[str] = []
    assert process.stdout is not None and process.stderr is not None
    threading.Thread(
        target=lambda: [lines.put(line) for line in process.stdout], daemon=True
    ).start()  # type: ignore[union-attr]
    threading.Thread(target=lambda: errors.extend(process.stderr), daemon=True).start()  # type: ignore[arg-type]
    try:
        try:
            url = lines.get(timeout=30).strip()
        except queue.Empty:
            raise AssertionError(f"rtctl console printed no URL: {''.join(errors)}") from None
        yield Console(process, url, folder, errors)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
                raise AssertionError("rtctl console did not stop within 15 s of SIGTERM") from None
            assert code == 0, "".join(errors)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole session. Missing browser = a failure, never a skip:
    these tests are part of the suite CI runs (scripts/test.sh installs the packages)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        pytest.fail(
            f"the console's browser tests need Chromium and its driver, missing: "
            f"{', '.join(missing)}; install them with `apt-get install chromium chromium-driver` "
            "(scripts/test.sh does)",
            pytrace=False,
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in CI
        "--disable-dev-shm-usage",
        "--window-size=1280,860",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(
    driver: Any, condition: Callable[[Any], Any], timeout: float = 15, what: str = ""
) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)
    except TimeoutException:
        logs = "\n".join(str(entry) for entry in driver.get_log("browser"))
        raise AssertionError(
            f"timed out waiting for {what or condition}\nbrowser log:\n{logs}"
        ) from None


def text_of(driver: Any, element_id: str) -> str:
    return str(driver.execute_script(f"return document.getElementById('{element_id}').innerText"))


def screenshot(driver: Any, name: str, fallback: Path) -> Path:
    folder = SCREENSHOT_DIR or fallback
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"console-{name}.png"
    assert driver.save_screenshot(str(path))
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000, path
    return path


def browser_errors(driver: Any) -> list[str]:
    """Errors the page logged (script errors, refused resources, CSP violations)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def poll(check: Callable[[], Any], timeout: float = 15, step: float = 0.05) -> Any:
    return wait_until(check, timeout, f"timed out waiting for {check}", step)
