"""`rtctl channels`, `channel`, `users`, `terminate` against real Soketis."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.events_support import JsUser, RawSocket
from tests.helpers import SoketiServer, free_port, run_cli, write_env


@pytest.fixture
def sockets(soketi: SoketiServer):
    opened: list[RawSocket] = []

    def open_(server: SoketiServer = soketi) -> RawSocket:
        sock = RawSocket(server)
        opened.append(sock)
        return sock

    yield open_
    for sock in opened:
        sock.close()


def test_channels_with_prefix_json_and_table(env_file: Path, sockets) -> None:
    prefix = f"q{secrets.token_hex(3)}-"
    one, two = sockets(), sockets()
    one.subscribe(f"{prefix}a")
    two.subscribe(f"{prefix}a")
    two.subscribe(f"{prefix}b")
    result = run_cli(["channels", "--prefix", prefix, "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "channels": {
            f"{prefix}a": {"subscription_count": 2, "occupied": True},
            f"{prefix}b": {"subscription_count": 1, "occupied": True},
        }
    }
    table = run_cli(["channels", "--prefix", prefix])
    assert table.exit_code == 0
    assert [line.split() for line in table.stdout.splitlines()] == [
        ["CHANNEL", "SUBSCRIPTIONS", "USERS"],
        [f"{prefix}a", "2"],
        [f"{prefix}b", "1"],
    ]


def test_no_channels_is_said_on_stderr(env_file: Path) -> None:
    result = run_cli(["channels", "--prefix", "nothing-here-"])
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "no occupied channels starting with 'nothing-here-'\n"


def test_channel_details(env_file: Path, sockets) -> None:
    name = f"presence-q{secrets.token_hex(3)}"
    sockets().subscribe(name, user_id="1")
    sockets().subscribe(name, user_id="2")
    sockets().subscribe(name, user_id="2")  # a second tab of user 2
    result = run_cli(["channel", name, "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "channel": name,
        "occupied": True,
        "subscription_count": 3,
        "user_count": 2,
    }
    table = run_cli(["channel", name])
    assert [line.split() for line in table.stdout.splitlines()] == [
        ["CHANNEL", name],
        ["occupied", "true"],
        ["subscription_count", "3"],
        ["user_count", "2"],
    ]


def test_unoccupied_channel(env_file: Path) -> None:
    result = run_cli(["channel", "nobody-here", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "channel": "nobody-here",
        "occupied": False,
        "subscription_count": 0,
    }


def test_presence_users(env_file: Path, sockets) -> None:
    name = f"presence-u{secrets.token_hex(3)}"
    sockets().subscribe(name, user_id="ann", user_info={"name": "Ann"})
    sockets().subscribe(name, user_id="bob")
    result = run_cli(["users", name, "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["channel"] == name
    assert sorted(data["users"], key=lambda u: u["id"]) == [{"id": "ann"}, {"id": "bob"}]
    table = run_cli(["users", name])
    lines = table.stdout.splitlines()
    assert (lines[0], sorted(line.strip() for line in lines[1:])) == ("USER ID", ["ann", "bob"])


def test_names_with_pusher_punctuation_are_sent_raw(env_file: Path, sockets) -> None:
    # Every character Pusher allows (= @ , ; .) is legal in a URL path and Soketi does not decode
    # the path: a percent-encoded name would be looked up as another, empty channel.
    name = f"presence-a=b@c,d;e.f{secrets.token_hex(3)}"
    sockets().subscribe(name, user_id="9")
    details = run_cli(["channel", name, "--json"])
    assert details.exit_code == 0, details.stderr
    assert json.loads(details.stdout) == {
        "channel": name,
        "occupied": True,
        "subscription_count": 1,
        "user_count": 1,
    }
    users = run_cli(["users", name, "--json"])
    assert json.loads(users.stdout) == {"channel": name, "users": [{"id": "9"}]}


def test_user_ids_outside_pushers_characters_are_refused_before_sending(env_file: Path) -> None:
    result = run_cli(["terminate", "ada lovelace"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: user id 'ada lovelace' contains characters Pusher refuses: ' '\n"
        "hint: user ids use only letters, digits and - _ = @ , . ;\n"
    )


def test_users_of_an_empty_presence_channel(env_file: Path) -> None:
    result = run_cli(["users", "presence-empty-room"])
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "no users on presence-empty-room\n"


def test_users_refuses_a_non_presence_channel_locally(env_file: Path) -> None:
    result = run_cli(["users", "private-room"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: 'private-room' is not a presence channel: only presence channels have users\n"
        "hint: presence channel names start with presence-\n"
    )


def test_queries_with_a_wrong_secret(soketi: SoketiServer, tmp_path: Path) -> None:
    soketi.write_env(tmp_path / ".env", PUSHER_APP_SECRET="sec" + "3" * 24)
    for args in (["channels"], ["channel", "x"], ["users", "presence-x"], ["terminate", "1"]):
        result = run_cli([*args, "--json"])
        assert result.exit_code == 5, args
        assert json.loads(result.stdout)["error"]["message"] == (
            "the server refused our credentials (401): The secret authentication failed"
        )


def test_queries_with_the_server_down(soketi: SoketiServer, tmp_path: Path) -> None:
    port = free_port()
    soketi.write_env(tmp_path / ".env", REALTIME_PORT=str(port))
    for args in (["channels"], ["channel", "x"], ["users", "presence-x"], ["terminate", "1"]):
        result = run_cli(args)
        assert result.exit_code == 4, args
        assert result.stderr.splitlines()[0] == (
            f"error: cannot reach the HTTP API at http://127.0.0.1:{port}: Connection refused"
        )


# --- terminate: needs user authentication on, and a signed-in socket ------------------------------


@pytest.fixture(scope="module")
def user_auth_soketi(soketi_factory) -> SoketiServer:
    return soketi_factory(SOKETI_DEFAULT_APP_USER_AUTHENTICATION="true")


def test_terminate_closes_the_users_signed_in_socket(
    user_auth_soketi: SoketiServer, tmp_path: Path, sockets
) -> None:
    user_auth_soketi.write_env(tmp_path / ".env")
    target, bystander = sockets(user_auth_soketi), sockets(user_auth_soketi)
    assert target.signin("u-target")["event"] == "pusher:signin_success"
    bystander.signin("u-other")
    bystander.subscribe("after-terminate")
    target.start()
    bystander.start()
    result = run_cli(["terminate", "u-target", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"ok": True, "user_id": "u-target", "terminated": True}
    assert target.wait_closed() == 4009
    error = [json.loads(f) for f in target.frames if '"pusher:error"' in f]
    assert error[-1]["data"] == {"code": 4009, "message": "You got disconnected by the app."}
    # the other user is still connected and still receives events
    assert run_cli(["emit", "after-terminate", "still-here"]).exit_code == 0
    assert [f["event"] for f in bystander.wait_events(1)] == ["still-here"]
    assert bystander.close_code is None


def test_terminate_a_pusher_js_user_whose_id_is_an_email(
    user_auth_soketi: SoketiServer, tmp_path: Path
) -> None:
    env_file = user_auth_soketi.write_env(tmp_path / ".env")
    user = JsUser(user_auth_soketi, "ada@example.com", env_file, timeout=30)
    try:
        signed_in = user.wait_for("signed_in")
        assert json.loads(signed_in["user_data"]) == {"id": "ada@example.com"}
        result = run_cli(["terminate", "ada@example.com", "--json"])
        assert result.exit_code == 0, result.stderr
        assert user.wait_for("closed")["code"] == 4009
    finally:
        user.stop()


def test_terminate_human_output(user_auth_soketi: SoketiServer, tmp_path: Path) -> None:
    user_auth_soketi.write_env(tmp_path / ".env")
    result = run_cli(["terminate", "nobody"])
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "asked the server to close the signed-in connections of user nobody\n"


# --- the HTTP API over TLS, as after `rtctl switch pusher` -----------------------------------------


def test_pusher_provider_over_tls_trusts_rtctl_ca_bundle(
    pusher_standin, tmp_path: Path, monkeypatch
) -> None:
    # REQUESTS_CA_BUNDLE is set on many machines (this one too); RTCTL_CA_BUNDLE must still win.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    server = pusher_standin.server
    write_env(tmp_path / ".env", pusher_standin.env())
    assert run_cli(["emit", "tls-orders", "created"]).exit_code == 0
    result = run_cli(["channel", "tls-orders", "--json"])
    assert (result.exit_code, json.loads(result.stdout)["occupied"]) == (0, False)

    write_env(tmp_path / ".env", pusher_standin.env(trust=False))  # without the CA: refused
    refused = run_cli(["emit", "tls-orders", "created"])
    assert refused.exit_code == 4
    assert refused.stderr == (
        f"error: TLS handshake with https://127.0.0.1:{server.port} failed: certificate verify failed\n"
        "hint: for a self-signed server set RTCTL_CA_BUNDLE to its CA certificate\n"
    )


def test_gateway_monitor_finds_names_with_pusher_punctuation(soketi: SoketiServer, sockets) -> None:
    from starlette.testclient import TestClient

    from rtctl.gateway import create_app
    from tests.gateway_support import MONITOR_TOKEN, bearer, gateway_settings

    name = f"presence-a=b@c,d;e.f{secrets.token_hex(3)}"
    sockets().subscribe(name, user_id="9")
    with TestClient(create_app(gateway_settings(soketi))) as client:
        answer = client.get(
            "/realtime/channels", params={"prefix": name[:-2]}, headers=bearer(MONITOR_TOKEN)
        )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"count": 1, "channels": {name: {"subscription_count": 1}}}
