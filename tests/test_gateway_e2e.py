"""End to end: `rtctl gateway` (real uvicorn process) + real Soketi + pusher-js 8.6.0 in Node.

pusher-js authorizes through the gateway exactly as a browser would (form-encoded POST with the
user's bearer token), subscribes, and receives what the backend posts to /realtime/emit.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from tests.gateway_support import (
    BOT,
    DM,
    EMIT_TOKEN,
    JWT_SECRET,
    OTHER_DM,
    USER,
    GatewayProcess,
    NodeClient,
    bearer,
    gateway_env,
    node_env,
    token,
)
from tests.helpers import run_rtctl

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None, reason="Node.js is required for pusher-js"
)

ENCRYPTED_DM = f"private-encrypted-{USER}_{BOT}"


@pytest.fixture
def gateway(soketi, tmp_path):
    process = GatewayProcess(gateway_env(soketi)).start(tmp_path)
    yield process
    process.stop()


def kind(item_type, channel=None):
    return lambda item: (
        item["type"] == item_type and (channel is None or item["channel"] == channel)
    )


def test_pusher_js_authorizes_subscribes_and_receives_through_the_gateway(soketi, gateway) -> None:
    user_token = token(USER, name="Ada", avatar="/ada.png")
    channels = ",".join([DM, "presence-lobby", OTHER_DM, ENCRYPTED_DM])
    node = NodeClient(node_env(soketi, gateway, user_token, CHANNELS=channels, EXPECT_EVENTS="2"))
    try:
        node.wait_for(kind("subscribed", DM))
        node.wait_for(kind("subscribed", ENCRYPTED_DM))
        members = node.wait_for(kind("members", "presence-lobby"))
        assert members["me"] == {"id": USER, "info": {"name": "Ada", "avatar": "/ada.png"}}
        refused = node.wait_for(kind("subscription_error", OTHER_DM))
        assert refused["status"] == 403

        message = {
            "channel": DM,
            "actor": {"id": int(BOT), "name": "Coach", "avatar": "/assets/bot.png"},
            "body": "Hello from the backend",
            "audio_url": None,
            "created_at": "2026-11-25T17:00:00.000Z",
        }
        for body in (
            {"channel": DM, "event": "chat_message", "data": message},
            {"channel": ENCRYPTED_DM, "event": "secret", "data": {"pin": 4321}},
        ):
            response = httpx.post(f"{gateway.base}/emit", json=body, headers=bearer(EMIT_TOKEN))
            assert response.status_code == 200, response.text

        received = node.wait_for(kind("event", DM))
        assert (received["event"], received["data"]) == ("chat_message", message)
        decrypted = node.wait_for(kind("event", ENCRYPTED_DM))
        assert (decrypted["event"], decrypted["data"]) == ("secret", {"pin": 4321})
        node.wait_for(kind("done"))
    finally:
        assert node.stop(grace=5) == 0, node.seen
    assert gateway.stop() == 0  # SIGTERM: graceful shutdown, clean exit

    log = gateway.log()
    access = [
        json.loads(line.split(": ", 1)[1])
        for line in log.splitlines()
        if "rtctl.gateway.access" in line
    ]
    auth_lines = [(a["path"], a["status"]) for a in access if a["path"].endswith("/auth")]
    assert sorted(auth_lines) == sorted([("/realtime/auth", 200)] * 3 + [("/realtime/auth", 403)])
    assert user_token not in log and EMIT_TOKEN not in log and JWT_SECRET not in log


def test_pusher_js_with_an_expired_token_is_refused_with_401(soketi, gateway) -> None:
    node = NodeClient(node_env(soketi, gateway, token(USER, expires_in=-120), CHANNELS=DM))
    try:
        refused = node.wait_for(kind("subscription_error", DM))
        assert refused["status"] == 401
    finally:
        node.stop()


def test_pusher_js_signin_goes_through_user_auth(soketi_factory, tmp_path) -> None:
    server = soketi_factory(SOKETI_DEFAULT_APP_USER_AUTHENTICATION="true")
    gateway = GatewayProcess(gateway_env(server)).start(tmp_path)
    try:
        node = NodeClient(node_env(server, gateway, token(USER, name="Ada"), SIGNIN="1"))
        try:
            signed_in = node.wait_for(kind("signin"))
            assert signed_in["user_data"] == '{"id":"123","user_info":{"name":"Ada"}}'
        finally:
            node.stop()
        node = NodeClient(node_env(server, gateway, "garbage", SIGNIN="1"))
        try:
            assert node.wait_for(kind("signin_error"))["status"] == 401
        finally:
            node.stop()
    finally:
        gateway.stop()


# --- the command ----------------------------------------------------------------------------------


def test_dev_user_header_mode_on_loopback(soketi, tmp_path) -> None:
    env = gateway_env(soketi, REALTIME_JWT_SECRET="")
    gateway = GatewayProcess(env, args=["--dev-user-header"]).start(tmp_path)
    try:
        form = {"socket_id": "1.2", "channel_name": DM}
        response = httpx.post(
            f"{gateway.base}/auth", data=form, headers={"X-Realtime-User-Id": USER}
        )
        assert response.status_code == 200
        other = httpx.post(f"{gateway.base}/auth", data=form, headers={"X-Realtime-User-Id": "124"})
        assert other.status_code == 403
    finally:
        assert gateway.stop() == 0
    assert (
        "WARNING rtctl.gateway: DEV MODE: trusting the X-Realtime-User-Id header" in gateway.log()
    )


def test_dev_user_header_is_refused_off_loopback(soketi, tmp_path) -> None:
    soketi.write_env(tmp_path / ".env", REALTIME_JWT_SECRET=JWT_SECRET)
    result = run_rtctl(["gateway", "--host", "0.0.0.0", "--dev-user-header"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "error: --dev-user-header is refused with --host 0.0.0.0: it trusts a plain header\n"
        "hint: use --host 127.0.0.1 for local development, or configure REALTIME_JWT_SECRET\n"
    )


def test_gateway_without_a_way_to_verify_users_exits_3(soketi, tmp_path) -> None:
    soketi.write_env(tmp_path / ".env")
    result = run_rtctl(["gateway", "--port", "1"], cwd=tmp_path)
    assert result.returncode == 3
    assert result.stderr.endswith(
        "error: the gateway has no way to verify users: no JWT secret or public key configured\n"
        "hint: set REALTIME_JWT_SECRET (openssl rand -hex 32) or REALTIME_JWT_PUBLIC_KEY\n"
    )


def test_gateway_on_a_busy_port_exits_9(soketi, tmp_path) -> None:
    soketi.write_env(tmp_path / ".env", REALTIME_JWT_SECRET=JWT_SECRET)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_rtctl(["gateway", "--port", str(port)], cwd=tmp_path)
    assert result.returncode == 9
    assert result.stderr == (
        f"error: 127.0.0.1:{port} is already in use\n"
        "hint: stop what listens there, or pick another port with --port\n"
    )


# --- rtctl listen through the gateway -------------------------------------------------------------


def test_rtctl_listen_auth_endpoint_goes_through_the_gateway(soketi, gateway, tmp_path) -> None:
    soketi.write_env(tmp_path / ".env")
    user_token = token(USER)
    listen = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rtctl",
            "listen",
            DM,
            "--auth-endpoint",
            f"{gateway.base}/auth",
            "--auth-header",
            f"Authorization: Bearer {user_token}",
            "--count",
            "1",
            "--json",
            "--timeout",
            "30",
        ],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert listen.stderr is not None
        first = listen.stderr.readline()  # printed once every channel is subscribed
        assert first.startswith(f"listening on {DM} "), first
        body = {"channel": DM, "event": "note", "data": {"text": "via the gateway"}}
        response = httpx.post(f"{gateway.base}/emit", json=body, headers=bearer(EMIT_TOKEN))
        assert response.status_code == 200
        stdout, stderr = listen.communicate(timeout=15)
    finally:
        if listen.poll() is None:
            listen.kill()
            listen.wait()
    assert listen.returncode == 0, stderr
    lines = stdout.splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert (line["channel"], line["event"], line["data"]) == (
        DM,
        "note",
        {"text": "via the gateway"},
    )
    assert user_token not in gateway.log()


def test_rtctl_listen_is_refused_on_another_users_channel(soketi, gateway, tmp_path) -> None:
    soketi.write_env(tmp_path / ".env")
    result = run_rtctl(
        [
            "listen",
            OTHER_DM,
            "--auth-endpoint",
            f"{gateway.base}/auth",
            "--auth-header",
            f"Authorization: Bearer {token(USER)}",
            "--count",
            "1",
            "--timeout",
            "10",
        ],
        cwd=tmp_path,
    )
    assert (result.returncode, result.stdout) == (5, "")
    assert result.stderr == (
        "error: the auth endpoint refused 'private-124_9000000' with HTTP 403: "
        '{"error":{"code":"forbidden_channel","message":"user 123 is not a member of '
        'private-124_9000000"}}\n'
        "hint: check the --auth-header credentials (e.g. a bearer token)\n"
    )


def test_ctrl_c_stops_the_gateway_cleanly(soketi, tmp_path) -> None:
    gateway = GatewayProcess(gateway_env(soketi)).start(tmp_path)
    assert gateway.process is not None
    gateway.process.send_signal(signal.SIGINT)
    assert gateway.process.wait(timeout=15) == 0
    assert gateway.log().endswith("INFO rtctl.gateway: stopped cleanly (signal 2)\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--log-level", "loud"],
            "error: --log-level 'loud' is not one of debug, info, warning, error\n",
        ),
        (["--prefix", "realtime"], "error: --prefix 'realtime' must start with /\n"),
    ],
)
def test_bad_options_exit_2(soketi, tmp_path, args, message) -> None:
    soketi.write_env(tmp_path / ".env", REALTIME_JWT_SECRET=JWT_SECRET)
    result = run_rtctl(["gateway", *args], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
