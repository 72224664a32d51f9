"""The HAProxy front door of docs/gateway.md, as written there (ports aside), with a real HAProxy,
a real `rtctl gateway` and the real Soketi: WebSockets and auth through one address, the client's
real address reaching the gateway, and HAProxy's own limit on 401 answers."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from rtctl.config import load_settings
from rtctl.protocol import PusherSocket
from tests.gateway_support import DM, USER, GatewayProcess, bearer, gateway_env, token
from tests.helpers import REPO, free_port
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.soketi,
    pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed"),
]


def documented_config() -> str:
    text = (REPO / "docs" / "gateway.md").read_text()
    blocks = re.findall(r"```haproxy\n(.*?)```", text, re.DOTALL)
    assert len(blocks) == 1
    return blocks[0]


@pytest.fixture
def front_door(soketi, tmp_path):
    gateway = GatewayProcess(
        gateway_env(soketi),
        args=["--forwarded-allow-ips", "127.0.0.1", "--auth-failure-limit", "0"],
    ).start(tmp_path)
    front = free_port()
    config = documented_config()
    for documented, real in (
        ("127.0.0.1:16000", f"127.0.0.1:{front}"),
        ("127.0.0.1:8080", f"127.0.0.1:{gateway.port}"),  # both gateways: the one we run
        ("127.0.0.1:8081", f"127.0.0.1:{gateway.port}"),
        ("127.0.0.1:6001", f"127.0.0.1:{soketi.port}"),  # both nodes: the session Soketi
        ("127.0.0.1:6002", f"127.0.0.1:{soketi.port}"),
    ):
        assert documented in config
        config = config.replace(documented, real)
    path = tmp_path / "haproxy.cfg"
    path.write_text(config)
    checked = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    log = (tmp_path / "haproxy.log").open("w")
    haproxy = subprocess.Popen(
        ["haproxy", "-db", "-f", str(path)], stdout=log, stderr=subprocess.STDOUT
    )
    try:

        def answers() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{front}/realtime/health", timeout=1).is_success
            except httpx.HTTPError:
                return False

        wait_until(answers, 20, lambda: (tmp_path / "haproxy.log").read_text())
        yield front, gateway
    finally:
        haproxy.terminate()
        haproxy.wait(timeout=10)
        gateway.stop()


def from_address(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=10)


def test_websockets_and_auth_share_the_front_door(soketi, front_door) -> None:
    front, _ = front_door
    settings = load_settings(environ={**soketi.env, "REALTIME_PORT": str(front)})
    with PusherSocket(
        settings,
        auth_endpoint=f"http://127.0.0.1:{front}/realtime/auth",
        auth_headers=bearer(token(USER)),
    ) as sock:
        sock.connect(10)
        assert sock.subscribe(DM, timeout=10).subscribed
        assert list(sock.subscribe("presence-front-door", timeout=10).members or {}) == [USER]


def test_the_gateway_sees_the_real_client_and_haproxy_limits_401s(front_door) -> None:
    front, gateway = front_door
    url = f"http://127.0.0.1:{front}/realtime/auth"
    form = {"socket_id": "1.2", "channel_name": DM}
    wrong = {**bearer(token(key="x" * 64)), "X-Forwarded-For": "198.51.100.7"}  # a forged one
    with from_address("127.0.0.2") as guesser, from_address("127.0.0.3") as neighbour:
        statuses = [guesser.post(url, data=form, headers=wrong).status_code for _ in range(31)]
        assert statuses == [401] * 31
        refused = guesser.post(url, data=form, headers=bearer(token()))
        assert refused.status_code == 429  # HAProxy's own answer: 31 401s within a minute
        assert neighbour.post(url, data=form, headers=bearer(token())).status_code == 200

    def clients() -> list[str]:
        return [
            json.loads(line.split(": ", 1)[1])["client"]
            for line in gateway.log().splitlines()
            if "rtctl.gateway.access" in line and '"path":"/realtime/auth"' in line
        ]

    # the access line is written after the answer
    wait_until(lambda: len(clients()) >= 32, 10, lambda: f"access lines for {clients()}")
    # the gateway saw each real address, never the forged header nor HAProxy's own address
    assert clients() == ["127.0.0.2"] * 31 + ["127.0.0.3"]


def test_the_documented_config_is_the_one_tested() -> None:
    config = documented_config()
    assert "timeout http-request 10s" in config
    assert "http-request set-header X-Forwarded-For %[src]" in config
    assert "http-response sc-inc-gpc0(0) if { status 401 }" in config
    assert (
        Path(REPO / "docs" / "gateway.md").read_text().count("--forwarded-allow-ips 127.0.0.1") >= 2
    )


def test_the_systemd_units_command_line_serves(soketi, tmp_path) -> None:
    """The ExecStart of docs/gateway.md's unit, run for real (its port swapped for a free one)."""
    text = (REPO / "docs" / "gateway.md").read_text()
    unit = re.findall(r"```ini\n(.*?)```", text, re.DOTALL)[0]
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    words = exec_start.split("=", 1)[1].split()
    assert words[:2] == ["/srv/realtime/.venv/bin/rtctl", "gateway"]
    gateway = GatewayProcess(gateway_env(soketi))
    gateway.args = [word.replace("8080", str(gateway.port)) for word in words[2:]]
    gateway.start(tmp_path)
    try:
        response = httpx.post(
            f"{gateway.base}/auth",
            data={"socket_id": "1.2", "channel_name": DM},
            headers=bearer(token()),
            timeout=10,
        )
        assert response.status_code == 200
        assert "with 2 workers" in gateway.log()
    finally:
        assert gateway.stop() == 0
