"""Hermetic tests: no user config leaks in, each test runs in its own folder, real Soketi on
free ports with its own cache folder, every server stopped by PID at the end.

The servers come from rtctl's own pytest plugin (rtctl.testing): its fixtures (realtime_server,
realtime_listener, pusher_client, ...) are available to every test, and the fixtures below are
thin definitions on its LocalSoketi that also get its log attached to failing tests."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rtctl.runtime import native
from rtctl.testing.plugin import attach_log, detach_log
from tests.cluster_support import Cluster, make_cluster
from tests.console_support import browser  # noqa: F401  (the session's one Chromium)
from tests.helpers import (
    TEST_CACHE,
    PusherStandIn,
    SoketiServer,
    make_server,
    self_signed_certificate,
)

pytest_plugins = ["pytester"]  # the plugin's own tests run pytest in a subprocess

# Session servers start before the per-test `hermetic` fixture: they install from and run out of
# the tests' cache from the first one on.
os.environ["RTCTL_CACHE_DIR"] = str(TEST_CACHE)

CONFIG_PREFIXES = ("PUSHER_", "REALTIME_", "SOKETI_", "RTCTL_")
# A test that uses one of these runs a real Soketi; it is marked `soketi` by that alone
# (native_soketi: for tests that start their own, directly or in a pytest they run).
SOKETI_FIXTURES = {
    "soketi",
    "soketi_factory",
    "pusher_standin",
    "env_file",
    "realtime_server",
    "native_soketi",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SOKETI_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.soketi)


LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_real_getaddrinfo = socket.getaddrinfo


def _loopback_only_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Tests talk to loopback only: a name such as ws-eu.pusher.com is never even looked up."""
    if host is not None:
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            loopback = ipaddress.ip_address(name.strip("[]")).is_loopback
        except ValueError:
            loopback = name.lower() in LOOPBACK_NAMES
        if not loopback:
            raise socket.gaierror(socket.EAI_NONAME, f"tests resolve loopback only, not {name}")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    for key in list(os.environ):
        if key.startswith(CONFIG_PREFIXES):
            monkeypatch.delenv(key)
    monkeypatch.setattr(socket, "getaddrinfo", _loopback_only_getaddrinfo)
    monkeypatch.setenv("RTCTL_CACHE_DIR", str(TEST_CACHE))
    monkeypatch.setenv("RTCTL_STATE_DIR", str(tmp_path / ".rtctl"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.fixture(scope="session")
def soketi(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SoketiServer]:
    """One healthy real Soketi for the whole session (client messages on, Soketi's own limits:
    unlike realtime_server's, --allow-large payloads up to 100 KB pass)."""
    server = make_server(tmp_path_factory.mktemp("soketi-state"))
    server.start()
    attach_log(request.config, "soketi", server)
    try:
        yield server
    finally:
        detach_log(request.config, server)
        server.stop()


@pytest.fixture(scope="session")
def soketi_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., SoketiServer]]:
    """Start extra (often deliberately broken) real Soketis; all are stopped at session end."""
    started: list[SoketiServer] = []

    def factory(start: bool = True, **overrides: str) -> SoketiServer:
        server = make_server(tmp_path_factory.mktemp("soketi-extra"), **overrides)
        started.append(server)
        if start:
            server.start()
            attach_log(request.config, "soketi_factory", server)
        return server

    try:
        yield factory
    finally:
        for server in started:
            detach_log(request.config, server)
            server.stop()


@pytest.fixture(scope="session")
def pusher_standin(
    soketi_factory: Callable[..., SoketiServer], tmp_path_factory: pytest.TempPathFactory
) -> PusherStandIn:
    """Pusher cannot be reached from here: a local TLS Soketi stands in for its hosts."""
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("pusher-standin"))
    server = soketi_factory(
        REALTIME_SCHEME="https",
        SOKETI_SSL_CERT=str(cert),
        SOKETI_SSL_KEY=str(key),
        RTCTL_CA_BUNDLE=str(cert),
    )
    return PusherStandIn(server, cert)


@pytest.fixture
def native_soketi(hermetic: Path) -> Path:
    """The pinned native Soketi, installed: for tests that start a server of their own."""
    return native.ensure_installed()


@pytest.fixture
def env_file(tmp_path: Path, soketi: SoketiServer) -> Path:
    """A .env in the test folder pointing at the session Soketi."""
    return soketi.write_env(tmp_path / ".env")


# --- clusters: the bus, Soketi nodes and the front door, each started once per session ----------

AUTH_TIMEOUT = {"SOKETI_USER_AUTHENTICATION_TIMEOUT": "600000"}  # sockets without sign-in stay


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three healthy nodes on Redis behind one front door; sign-in on (terminate is tested);
    webhooks to ``webhook_url`` (a test that receives them writes ``webhook_env`` into its
    .env: ``use_cluster(redis_cluster, **redis_cluster.webhook_env)``)."""
    found = make_cluster(
        tmp_path_factory.mktemp("redis-cluster"),
        nodes=3,
        adapter="redis",
        node_overrides={f"node-{i}": AUTH_TIMEOUT for i in (1, 2, 3)},
        webhooks=True,
        SOKETI_DEFAULT_APP_USER_AUTHENTICATION="true",
    )
    found.start()
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture(scope="session")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two healthy nodes on NATS."""
    found = make_cluster(tmp_path_factory.mktemp("nats-cluster"), nodes=2, adapter="nats")
    found.start()
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture(scope="session")
def wrong_adapter_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A fault: three nodes on Redis, but node-3 was started on the local adapter."""
    found = make_cluster(
        tmp_path_factory.mktemp("wrong-adapter-cluster"),
        nodes=3,
        adapter="redis",
        node_overrides={"node-3": {"SOKETI_ADAPTER_DRIVER": "local"}},
    )
    found.start()
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture
def use_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[Cluster], Path]:
    """Point this test's .env and state folder at a running cluster (its PIDs count as ours)."""

    def use(found: Cluster, **changes: str) -> Path:
        monkeypatch.setenv("RTCTL_STATE_DIR", str(found.state))
        return found.write_env(tmp_path / ".env", **changes)

    return use
