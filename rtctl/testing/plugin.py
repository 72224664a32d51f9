"""pytest plugin (entry point ``pytest11: rtctl``): a real Pusher-protocol server for a test
session and fixtures to publish to it and assert on what subscribers receive. See docs/testing.md.

Nothing heavy is imported here: rtctl's runtime, protocol client and the pusher SDK are imported
by the fixtures that need them, so a test run that uses none of them pays only for this module.
Disable the plugin with ``-p no:rtctl``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    import pusher

    from rtctl.config import Settings
    from rtctl.errors import RtctlError
    from rtctl.testing.listener import Listener
    from rtctl.testing.server import LocalSoketi, RealtimeServer
    from rtctl.testing.webhooks import Webhooks

ENV_FILE_VARIABLE = "RTCTL_ENV_FILE"
DEFAULT_TIMEOUT = "5"
NOTHING_LOGGED = (
    "(nothing logged during this test; run with SOKETI_DEBUG=1 in the environment to log every "
    "connection and message)"
)

_LOGS = pytest.StashKey[list[tuple[str, "LocalSoketi"]]]()
_LOG_OFFSETS = pytest.StashKey[dict[int, int]]()
_CHANNELS = pytest.StashKey[set[str]]()  # the names unique_channel made for a test


# --- options -------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rtctl", "rtctl: a real Pusher-protocol server for tests")
    group.addoption(
        "--rtctl-runtime",
        choices=("native", "docker"),
        default=None,
        help="how the session's Soketi runs: native (Node, the default) or docker",
    )
    group.addoption(
        "--rtctl-env-file",
        default=None,
        metavar="PATH",
        help=f"use the running deployment this .env describes instead of starting a Soketi "
        f"(also {ENV_FILE_VARIABLE})",
    )
    group.addoption(
        "--rtctl-timeout",
        default=None,
        metavar="SECONDS",
        help=f"default bound for connecting, subscribing and wait_for (default {DEFAULT_TIMEOUT})",
    )
    parser.addini("rtctl_runtime", "default for --rtctl-runtime", default="native")
    parser.addini("rtctl_timeout", "default for --rtctl-timeout", default=DEFAULT_TIMEOUT)


def _timeout(config: pytest.Config) -> float:
    raw = config.getoption("rtctl_timeout") or config.getini("rtctl_timeout")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = 0.0
    if not value > 0:
        raise pytest.UsageError(
            f"--rtctl-timeout (or the rtctl_timeout ini option) must be a number of seconds "
            f"above 0, not {raw!r}"
        )
    from rtctl.limits import MAX_WAIT_SECONDS

    if not value <= MAX_WAIT_SECONDS:  # inf and the like would overflow the timers in every test
        raise pytest.UsageError(
            f"--rtctl-timeout (or the rtctl_timeout ini option) must be at most "
            f"{MAX_WAIT_SECONDS:.0f} seconds (30 days), not {raw!r}"
        )
    return value


def _runtime(config: pytest.Config) -> str:
    runtime = str(config.getoption("rtctl_runtime") or config.getini("rtctl_runtime"))
    if runtime not in ("native", "docker"):
        raise pytest.UsageError(f"rtctl_runtime must be native or docker, not {runtime!r}")
    return runtime


def pytest_configure(config: pytest.Config) -> None:
    _timeout(config)  # a bad bound is a usage error at once, before any test runs
    _runtime(config)
    config.stash[_LOGS] = []


def _env_file(config: pytest.Config) -> Path | None:
    raw = config.getoption("rtctl_env_file") or os.environ.get(ENV_FILE_VARIABLE)
    if not raw:
        return None
    return Path(config.invocation_params.dir, raw).resolve()


def _fail(error: RtctlError, context: str = "") -> NoReturn:
    text = f"{context}{error.message}"
    if error.hint:
        text += f"\nhint: {error.hint}"
    pytest.fail(text, pytrace=False)


# --- the server's log on failing tests -----------------------------------------------------------


def attach_log(config: pytest.Config, fixture_name: str, soketi: LocalSoketi) -> None:
    """Attach what ``soketi`` logs during a test to the report of every failing test that uses
    the fixture ``fixture_name``."""
    config.stash.setdefault(_LOGS, []).append((fixture_name, soketi))


def detach_log(config: pytest.Config, soketi: LocalSoketi) -> None:
    logs = config.stash.get(_LOGS, [])
    logs[:] = [(name, s) for name, s in logs if s is not soketi]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    outcome: Any = yield
    logs = item.config.stash.get(_LOGS, None)
    if not logs:
        return
    names = set(getattr(item, "fixturenames", ()))
    used = [(name, soketi) for name, soketi in logs if name in names]
    if not used:
        return
    report = outcome.get_result()
    if call.when == "setup" and report.passed:  # what the test itself makes Soketi log
        item.stash[_LOG_OFFSETS] = {id(soketi): soketi.log_size() for _, soketi in used}
        return
    if not report.failed:
        return
    offsets = item.stash.get(_LOG_OFFSETS, {})
    for name, soketi in used:
        text = soketi.log_since(offsets.get(id(soketi), 0)) or NOTHING_LOGGED
        if soketi.running is not None and not soketi.alive():
            text += f"\n(the server, pid {soketi.running.pid}, is no longer running)"
        report.sections.append((f"rtctl: {name} Soketi log ({soketi.log_path})", text))


# --- the session's server ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def realtime_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealtimeServer]:
    """The session's server: a native Soketi on free loopback ports started at first use (once
    per pytest-xdist worker), or the deployment named by --rtctl-env-file / RTCTL_ENV_FILE."""
    from rtctl.errors import RtctlError
    from rtctl.testing import server as servers

    config = request.config
    env_file = _env_file(config)
    timeout = _timeout(config)
    problem: RtctlError | None = None
    try:
        if env_file is not None:
            found = servers.existing(env_file, timeout)
        elif _runtime(config) == "docker":
            found = servers.start_docker(tmp_path_factory.mktemp("rtctl-docker"))
        else:
            found = servers.start_local(tmp_path_factory.mktemp("rtctl-soketi"))
    except RtctlError as error:
        problem = error
    if problem is not None:  # failed outside the except block: one message, no chained traceback
        _fail(problem, "rtctl could not provide a server for the tests: ")
    if found.soketi is not None:
        attach_log(config, "realtime_server", found.soketi)
    try:
        yield found
    finally:
        if found.soketi is not None:
            detach_log(config, found.soketi)
        found.stop()


@pytest.fixture
def realtime_settings(realtime_server: RealtimeServer) -> Settings:
    """rtctl's settings for the session's server (``rtctl.config.Settings``)."""
    return realtime_server.settings


@pytest.fixture
def realtime_env(realtime_server: RealtimeServer) -> dict[str, str]:
    """The variables an app under test reads (``PUSHER_APP_ID``, ``PUSHER_HOST``, ...,
    ``REALTIME_*``), a fresh dict per test: inject them with ``monkeypatch.setenv``."""
    return dict(realtime_server.env)


@pytest.fixture
def pusher_client(realtime_settings: Settings, request: pytest.FixtureRequest) -> pusher.Pusher:
    """A ``pusher.Pusher`` for the session's server that raises on refusals as against Pusher."""
    from rtctl.testing.client import pusher_client as make_client

    return make_client(realtime_settings, timeout=max(10.0, _timeout(request.config)))


@pytest.fixture
def unique_channel(request: pytest.FixtureRequest) -> Callable[..., str]:
    """``unique_channel("private-orders")`` -> ``"private-orders-1a2b3c4d-1"``: a new name per
    call, unique to this test, checked against Pusher's channel-name rules."""
    import secrets

    from rtctl.errors import InvalidInput
    from rtctl.protocol.validation import validate_channel

    token = secrets.token_hex(4)
    counter = itertools.count(1)
    made = request.node.stash.setdefault(_CHANNELS, set())  # realtime_webhooks reads them

    def make(prefix: str = "test") -> str:
        name = f"{prefix}-{token}-{next(counter)}"
        problem: InvalidInput | None = None
        try:
            validate_channel(name)
        except InvalidInput as error:
            problem = error
        if problem is not None:
            _fail(problem, f"unique_channel({prefix!r}) gives {name!r}, which Pusher refuses: ")
        made.add(name)
        return name

    return make


@pytest.fixture
def realtime_webhooks(realtime_server: RealtimeServer, request: pytest.FixtureRequest) -> Webhooks:
    """The webhooks the session's Soketi sent during this test, verified (key, signature,
    time_ms), on this test's own channels (those ``unique_channel`` made): ``wait_for(name=…,
    channel=…, user_id=…, timeout=…)``, ``assert_nothing(…)``, ``received``."""
    from rtctl.testing.webhooks import Webhooks

    inbox = realtime_server.webhooks
    if inbox is None:
        pytest.fail(
            f"realtime_webhooks: the session's server is {realtime_server.description}, which "
            "sends its webhooks where it is configured, not to this test process; only the "
            "native Soketi the plugin starts sends them here\nhint: run these tests without "
            "--rtctl-env-file / RTCTL_ENV_FILE and without --rtctl-runtime docker, or receive "
            "that deployment's webhooks with `rtctl webhooks listen`",
            pytrace=False,
        )
    stash = request.node.stash
    return Webhooks(inbox, lambda: stash.get(_CHANNELS, set()), timeout=_timeout(request.config))


@pytest.fixture
def realtime_listener(
    realtime_settings: Settings, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Listener]]:
    """``realtime_listener(*channels, user_id=None, user_info=None, auth_endpoint=None,
    auth_headers=None)``: a connected listener subscribed to ``channels`` (closed after the
    test). Without ``auth_endpoint`` it signs private, presence and encrypted channels itself."""
    from rtctl.errors import RtctlError
    from rtctl.testing.listener import Listener

    timeout = _timeout(request.config)
    opened: list[Listener] = []

    def listen(
        *channels: str,
        user_id: str | None = None,
        user_info: dict[str, Any] | None = None,
        auth_endpoint: str | None = None,
        auth_headers: dict[str, str] | None = None,
    ) -> Listener:
        if user_id is None and auth_endpoint is None:
            user_id = f"listener-{len(opened) + 1}"  # presence channels need a member id
        listener = Listener(
            realtime_settings,
            user_id=user_id,
            user_info=user_info,
            auth_endpoint=auth_endpoint,
            auth_headers=auth_headers,
            timeout=timeout,
        )
        opened.append(listener)
        problem: RtctlError | None = None
        try:
            listener.connect().subscribe(*channels)
        except RtctlError as error:
            problem = error
        if problem is not None:
            _fail(problem, "realtime_listener: ")
        return listener

    try:
        yield listen
    finally:
        for listener in opened:
            listener.close()
