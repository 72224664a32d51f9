"""`rtctl auth`: the exact JSON an auth endpoint returns, accepted by a real Soketi."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from tests.events_support import RawSocket
from tests.helpers import SoketiServer, run_cli, run_rtctl, write_env

DOC = {
    "PUSHER_APP_ID": "3",
    "PUSHER_APP_KEY": "278d425bdf160c739803",
    "PUSHER_APP_SECRET": "7ad3773142a6692b25b8",
}
V10_MASTER = "OHRXNUZRTG5pUTFzQlFGd3J3N3Q2VFZFc0paZDEweVk="


@pytest.fixture
def doc_env(tmp_path: Path) -> Path:
    return write_env(tmp_path / ".env", DOC)


def test_private_is_golden_vector_v1(doc_env: Path) -> None:
    result = run_cli(["auth", "private-foobar", "--socket-id", "1234.1234"])
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        '{"auth":"278d425bdf160c739803:'
        '58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"}\n'
    )


def test_user_signin_is_golden_vector_v2(doc_env: Path) -> None:
    result = run_cli(["auth", "--user", "--socket-id", "1234.1234", "--user-id", "12345"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "auth": "278d425bdf160c739803:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba",
        "user_data": '{"id":"12345"}',
    }


def test_presence_carries_channel_data(tmp_path: Path) -> None:
    write_env(
        tmp_path / ".env",
        {"PUSHER_APP_ID": "1", "PUSHER_APP_KEY": "foo", "PUSHER_APP_SECRET": "bar"},
    )
    result = run_cli(
        [
            "auth",
            "presence-channel",
            "--socket-id",
            "345.43245",
            "--user-id",
            "fred",
            "--user-info",
            '{"key": "value"}',
        ]
    )
    assert result.exit_code == 0
    # golden vector V8: compact channel_data, signed byte for byte
    assert json.loads(result.stdout) == {
        "auth": "foo:e80ba6439492c2113022c39297a87a948de14061cc67b5788e045645a68b8ccd",
        "channel_data": '{"user_id":"fred","user_info":{"key":"value"}}',
    }


def test_encrypted_is_golden_vector_v10(tmp_path: Path) -> None:
    write_env(
        tmp_path / ".env",
        {
            "PUSHER_APP_ID": "1",
            "PUSHER_APP_KEY": "foo",
            "PUSHER_APP_SECRET": "bar",
            "PUSHER_ENCRYPTION_MASTER_KEY_BASE64": V10_MASTER,
        },
    )
    result = run_cli(["auth", "private-encrypted-channel", "--socket-id", "345.23", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "auth": "foo:fff0503dfe4929f5162efe4d1dacbce524b0d8e7e1331117a8651c0e74d369e3",
        "shared_secret": "VmIsNZtCSteh8kazd2toc+ofhohBtUouQRSDtRvuyVI=",
    }


@pytest.mark.parametrize(
    ("args", "code", "message", "hint"),
    [
        (
            ["private-x"],
            2,
            "--socket-id is required",
            "the socket id arrives in pusher:connection_established",
        ),
        (
            ["private-x", "--socket-id", "12"],
            2,
            "socket id '12' is malformed",
            "a socket id is two numbers joined by a dot, e.g. 1234.5678",
        ),
        (
            ["orders", "--socket-id", "1.2"],
            2,
            "'orders' is a public channel: it needs no authorization",
            "authorize private-*, private-encrypted-* or presence-* channels",
        ),
        (
            ["presence-room", "--socket-id", "1.2"],
            2,
            "presence channel 'presence-room' needs --user-id",
            "rtctl auth presence-room --socket-id ID --user-id 123 --user-info '{}'",
        ),
        (
            ["presence-room", "--socket-id", "1.2", "--user-id", "1", "--user-info", "{bad"],
            2,
            "--user-info is not JSON (Expecting property name enclosed in double quotes at line 1 "
            "column 2): '{bad'",
            '--user-info takes a JSON object, e.g. --user-info \'{"name":"Ann"}\'',
        ),
        (
            ["presence-room", "--socket-id", "1.2", "--user-id", "1", "--user-info", "[1]"],
            2,
            "--user-info must be a JSON object, got list",
            '--user-info takes a JSON object, e.g. --user-info \'{"name":"Ann"}\'',
        ),
        (
            ["private-encrypted-x", "--socket-id", "1.2"],
            2,
            "'private-encrypted-x' is an encrypted channel and no master key is configured",
            "set PUSHER_ENCRYPTION_MASTER_KEY_BASE64 (openssl rand -base64 32)",
        ),
        (
            ["private-x", "--socket-id", "1.2", "--user"],
            2,
            "--user signs a user, not a channel",
            "drop CHANNEL, or drop --user",
        ),
        (
            ["--user", "--socket-id", "1.2"],
            2,
            "--user needs --user-id",
            "rtctl auth --user --socket-id ID --user-id 123",
        ),
        (
            ["--socket-id", "1.2"],
            2,
            "name the channel to authorize",
            "rtctl auth private-123 --socket-id 1234.5678",
        ),
        (
            ["private-x", "--socket-id", "1.2", "--user-id", "7"],
            2,
            "--user-id/--user-info apply to presence channels and --user only",
            "drop them for a private channel",
        ),
        (
            ["private-bad name", "--socket-id", "1.2"],
            2,
            "channel name 'private-bad name' contains characters Pusher refuses: ' '",
            "use only letters, digits and - _ = @ , . ;",
        ),
    ],
)
def test_refusals(doc_env: Path, args, code, message, hint) -> None:
    result = run_cli(["auth", *args])
    assert (result.exit_code, result.stdout) == (code, "")
    assert result.stderr == f"error: {message}\nhint: {hint}\n"


def test_missing_credentials_is_a_config_error(tmp_path: Path) -> None:
    result = run_cli(["auth", "private-x", "--socket-id", "1.2"])
    assert result.exit_code == 3
    assert result.stderr == (
        "error: PUSHER_APP_ID is not set (no .env found)\n"
        "hint: run `rtctl init` to write fresh credentials\n"
    )


def test_json_mode_reports_errors_as_json(doc_env: Path) -> None:
    result = run_cli(["auth", "orders", "--socket-id", "1.2", "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["code"] == "invalid_input"


# --- a real Soketi accepts what rtctl auth prints ----------------------------------------------


def test_soketi_accepts_private_and_presence_auth(env_file: Path, soketi: SoketiServer) -> None:
    sock = RawSocket(soketi)
    try:
        out = run_rtctl(["auth", "private-auth-check", "--socket-id", sock.socket_id])
        assert out.returncode == 0, out.stderr
        answer = sock.subscribe_with({"channel": "private-auth-check", **json.loads(out.stdout)})
        assert answer["event"] == "pusher_internal:subscription_succeeded"

        out = run_rtctl(
            [
                "auth",
                "presence-auth-check",
                "--socket-id",
                sock.socket_id,
                "--user-id",
                "77",
                "--user-info",
                '{"name":"Ann"}',
            ]
        )
        answer = sock.subscribe_with({"channel": "presence-auth-check", **json.loads(out.stdout)})
        assert answer["event"] == "pusher_internal:subscription_succeeded"
        assert json.loads(answer["data"])["presence"]["hash"] == {"77": {"name": "Ann"}}
    finally:
        sock.close()


def test_soketi_refuses_an_auth_for_another_socket(env_file: Path, soketi: SoketiServer) -> None:
    sock = RawSocket(soketi)
    try:
        out = run_cli(["auth", "private-auth-check", "--socket-id", "1.1"])
        answer = sock.subscribe_with({"channel": "private-auth-check", **json.loads(out.stdout)})
        assert answer["event"] == "pusher:subscription_error"
        assert answer["data"]["status"] == 401
    finally:
        sock.close()


def test_encrypted_auth_shared_secret_matches_the_master_key(tmp_path: Path, soketi) -> None:
    master = base64.b64encode(b"z" * 32).decode()
    soketi.write_env(tmp_path / ".env", PUSHER_ENCRYPTION_MASTER_KEY_BASE64=master)
    sock = RawSocket(soketi)
    try:
        out = run_cli(["auth", "private-encrypted-a", "--socket-id", sock.socket_id])
        response = json.loads(out.stdout)
        digest = hashlib.sha256(b"private-encrypted-a" + b"z" * 32).digest()
        assert response["shared_secret"] == base64.b64encode(digest).decode()
        # the server is never shown the shared secret; only auth is sent
        answer = sock.subscribe_with({"channel": "private-encrypted-a", "auth": response["auth"]})
        assert answer["event"] == "pusher_internal:subscription_succeeded"
    finally:
        sock.close()
