"""`rtctl listen` end to end: the real CLI (mostly as a subprocess, stdout a pipe) against a real
Soketi, events triggered over the HTTP API or sent by pusher-js, exit codes on every failure."""

from __future__ import annotations

import json
import re
import secrets
import signal
from pathlib import Path

import pytest

from rtctl.protocol import PusherSocket
from rtctl.protocol.httpapi import ApiClient
from rtctl.protocol.payloads import bot_message
from rtctl.protocol.signing import sign
from rtctl.protocol.validation import Event
from tests.helpers import SoketiServer, free_port, run_cli, write_env
from tests.listen_support import (
    MASTER_KEY,
    AuthEndpoint,
    listening,
    pusher_js_send,
    settings_for,
    trigger,
)

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
CLOCK = r"\d\d:\d\d:\d\d\.\d{3}"


def channel(prefix: str) -> str:
    return f"{prefix}l{secrets.token_hex(4)}"


@pytest.fixture
def env_dir(tmp_path: Path, soketi: SoketiServer) -> Path:
    soketi.write_env(tmp_path / ".env", PUSHER_ENCRYPTION_MASTER_KEY_BASE64=MASTER_KEY)
    return tmp_path


def test_ndjson_lines_arrive_one_by_one(env_dir: Path, soketi: SoketiServer) -> None:
    name = channel("private-")
    with listening([name, "--json", "--count", "2", "--timeout", "60"], env_dir) as listener:
        listener.wait_stderr("listening on")
        trigger(soketi, name, "first", {"n": 1})
        # The first line must be readable before the second event even exists: flushed at once.
        first = json.loads(listener.stdout_line())
        trigger(soketi, name, "second", "plain text")
        second = json.loads(listener.stdout_line())
        code, rest, _ = listener.finish()
    assert (code, rest) == (0, "")
    assert re.fullmatch(ISO, first.pop("time")) and re.fullmatch(ISO, second.pop("time"))
    assert first == {"channel": name, "event": "first", "data": {"n": 1}}
    assert second == {"channel": name, "event": "second", "data": "plain text"}


def test_human_lines_show_chat_messages_as_the_bot_speaking(
    env_dir: Path, soketi: SoketiServer
) -> None:
    name = "private-" + secrets.token_hex(3) + "_9000000"
    chat = bot_message("1", "Great! Keep going", "9000000", "Coach", "/assets/bot.png")
    payload = {**chat.to_dict(), "channel": name}
    with listening([name, "--count", "2", "--timeout", "60"], env_dir) as listener:
        listener.wait_stderr("listening on")
        trigger(soketi, name, "chat_message", payload)
        trigger(soketi, name, "status", {"step": 2, "done": False})
        code, out, err = listener.finish()
    assert code == 0
    lines = out.splitlines()
    assert re.fullmatch(rf"{CLOCK}  {name}  chat_message  Coach: Great! Keep going", lines[0])
    assert re.fullmatch(rf'{CLOCK}  {name}  status  {{"step": 2, "done": false}}', lines[1])
    assert err.startswith(f"listening on {name} (socket ")


def test_every_channel_kind_in_one_listen(env_dir: Path, soketi: SoketiServer) -> None:
    names = [channel(p) for p in ("", "private-", "presence-", "private-encrypted-")]
    args = [*names, "--as-user", "7", "--json", "--count", "4", "--timeout", "60"]
    with listening(args, env_dir) as listener:
        listener.wait_stderr("listening on")
        for name in names:
            trigger(soketi, name, "kind", {"on": name})
        code, out, _ = listener.finish()
    assert code == 0
    received = [json.loads(line) for line in out.splitlines()]
    assert [(r["channel"], r["data"]) for r in received] == [(n, {"on": n}) for n in names]


def test_pusher_js_client_events_are_printed(env_dir: Path, soketi: SoketiServer) -> None:
    """The required third-party client: pusher-js 8.6.0 sends, `rtctl listen` prints."""
    name = channel("private-")
    with listening([name, "--json", "--count", "3", "--timeout", "60"], env_dir) as listener:
        listener.wait_stderr("listening on")
        sent = pusher_js_send(soketi, name, 3, event="client-typing", data={"who": "js"})
        code, out, _ = listener.finish()
    assert (code, sent["sent"]) == (0, 3)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(x["event"], x["data"]) for x in lines] == [
        ("client-typing", {"who": "js", "i": i}) for i in range(3)
    ]


def test_a_client_event_flood_loses_nothing(env_dir: Path, soketi: SoketiServer) -> None:
    """Soketi silently drops frames to a slow reader; every one of a burst must be printed."""
    name, total = channel("private-"), 30000
    args = [name, "--json", "--count", str(total), "--timeout", "120"]
    with listening(args, env_dir) as listener:
        listener.wait_stderr("listening on")
        pusher_js_send(soketi, name, total, event="client-flood", data={"pad": "x" * 64})
        code, out, err = listener.finish(timeout=150)
    seen = {json.loads(line)["data"]["i"] for line in out.splitlines()}
    assert code == 0, err
    assert seen == set(range(total))


def test_presence_members_and_member_events(env_dir: Path, soketi: SoketiServer) -> None:
    name = channel("presence-")
    args = [name, "--as-user", "ann", "--user-info", '{"name": "Ann"}', "--count", "2"]
    with listening([*args, "--timeout", "60"], env_dir) as listener:
        listener.wait_stderr("listening on")
        bob = PusherSocket(settings_for(soketi), user_id="bob", user_info={"name": "Bob"})
        bob.connect(10)
        bob.subscribe(name, 10)
        bob.close()
        code, out, err = listener.finish()
    assert code == 0
    assert f'{name}: 1 member: ann {{"name": "Ann"}}\n' in err
    lines = out.splitlines()
    assert re.fullmatch(
        rf'{CLOCK}  {name}  pusher:member_added  bob joined {{"name": "Bob"}}', lines[0]
    )
    assert re.fullmatch(rf"{CLOCK}  {name}  pusher:member_removed  bob left", lines[1])


def test_event_filter(env_dir: Path, soketi: SoketiServer) -> None:
    name = channel("")
    args = [name, "--json", "--event", "wanted", "--count", "1", "--timeout", "60"]
    with listening(args, env_dir) as listener:
        listener.wait_stderr("listening on")
        trigger(soketi, name, "noise", {})
        trigger(soketi, name, "wanted", {"yes": 1})
        code, out, _ = listener.finish()
    assert code == 0
    assert [json.loads(line)["event"] for line in out.splitlines()] == ["wanted"]


def test_survives_a_real_soketi_restart(tmp_path: Path, soketi_factory) -> None:
    server = soketi_factory()
    server.write_env(tmp_path / ".env")
    name = channel("private-")
    with listening([name, "--json", "--count", "1", "--timeout", "90"], tmp_path) as listener:
        listener.wait_stderr("listening on")
        server.stop()  # SIGTERM -> close 4200 "reconnect immediately"
        listener.wait_stderr("connection lost: the server closed the connection (4200: ")
        server.start()  # same port and credentials; the listener retries with back-off
        back = listener.wait_stderr("reconnected as socket", timeout=60)
        # Published after the restart: only a re-signed, resubscribed private channel gets it.
        trigger(server, name, "after-restart", {"ok": True})
        code, out, err = listener.finish()
    assert code == 0, err
    assert json.loads(out)["data"] == {"ok": True}
    assert re.search(r"after a \d+\.\ds gap; re-signed and resubscribed 1 channel ", back)


def test_ctrl_c_exits_130_quietly(env_dir: Path) -> None:
    with listening([channel("")], env_dir) as listener:
        listener.wait_stderr("listening on")
        listener.proc.send_signal(signal.SIGINT)
        code, out, err = listener.finish()
    assert (code, out) == (130, "")
    assert err.count("\n") == 1 and err.startswith("listening on")  # nothing after it


def test_auth_endpoint_refusal_exits_5(env_dir: Path, soketi: SoketiServer) -> None:
    with AuthEndpoint(soketi, status=401).running() as endpoint:
        result = run_cli(
            [
                "listen",
                "private-x",
                "--auth-endpoint",
                endpoint.url,
                "--auth-header",
                "Authorization: Bearer expired",
                "--timeout",
                "20",
            ]
        )
    assert endpoint.requests[0]["headers"]["Authorization"] == "Bearer expired"
    assert result.exit_code == 5
    assert result.stderr == (
        'error: the auth endpoint refused \'private-x\' with HTTP 401: {"error": "no"}\n'
        "hint: check the --auth-header credentials (e.g. a bearer token)\n"
    )


# --- exit codes (in-process through the error boundary) -------------------------------------------


def test_timeout_exits_6(env_dir: Path) -> None:
    result = run_cli(["listen", channel(""), "--count", "2", "--timeout", "0.5"])
    assert result.exit_code == 6
    assert result.stderr.endswith(
        "error: timed out after 0.5s: 0 of 2 events arrived\n"
        "hint: check that something publishes on the channel (rtctl emit) or raise --timeout\n"
    )


def test_timeout_without_count_and_no_event_exits_6(env_dir: Path) -> None:
    result = run_cli(["listen", channel(""), "--timeout", "0.3"])
    assert result.exit_code == 6
    assert "error: timed out after 0.3s: no event arrived\n" in result.stderr


def test_unknown_app_key_exits_5(tmp_path: Path, soketi: SoketiServer) -> None:
    soketi.write_env(tmp_path / ".env", PUSHER_APP_KEY="stranger")
    result = run_cli(["listen", "orders", "--timeout", "20"])
    assert result.exit_code == 5
    assert result.stderr == (
        "error: app key 'stranger' is unknown to the server (App key stranger does not exist.)\n"
        "hint: check PUSHER_APP_KEY matches the server's app key\n"
    )


def test_wrong_secret_subscription_exits_5(tmp_path: Path, soketi: SoketiServer) -> None:
    soketi.write_env(tmp_path / ".env", PUSHER_APP_SECRET="not-the-server-secret")
    result = run_cli(["listen", "private-orders", "--timeout", "20"])
    assert result.exit_code == 5
    error, hint, end = result.stderr.split("\n")
    assert error == (
        "error: subscription to 'private-orders' refused: The connection is unauthorized. "
        "(status 401)"
    )
    assert end == ""
    # The hint names the likely cause and the command that explains it, with the values sent.
    match = re.fullmatch(
        r"hint: the secret in your config does not match the server's \(check PUSHER_APP_SECRET\), "
        r"or the auth endpoint signed for another app; see why: rtctl verify auth --socket-id "
        r"(\d+\.\d+) --channel private-orders --auth (\S+)",
        hint,
    )
    assert match, hint
    socket_id, auth = match.groups()
    key = soketi.key
    assert auth == f"{key}:" + sign("not-the-server-secret", f"{socket_id}:private-orders")
    # Run it: with this config it verifies (so the server holds another secret) ...
    verify = run_cli(
        ["verify", "auth", "--socket-id", socket_id, "--channel", "private-orders", "--auth", auth]
    )
    assert verify.exit_code == 0, verify.stdout
    assert "that server's app has another secret or key" in verify.stdout
    # ... and with the server's own settings it does not verify, and says it is another secret.
    soketi.write_env(tmp_path / "server.env")
    verify = run_cli(
        [
            "--env-file",
            str(tmp_path / "server.env"),
            "verify",
            "auth",
            "--socket-id",
            socket_id,
            "--channel",
            "private-orders",
            "--auth",
            auth,
        ]
    )
    assert verify.exit_code == 1
    assert (
        "✗ secret: the signature matches none of the known mistakes: it was made with another secret"
        in verify.stdout
    )


def test_presence_refusal_hint_carries_the_channel_data(
    tmp_path: Path, soketi: SoketiServer
) -> None:
    soketi.write_env(tmp_path / ".env", PUSHER_APP_SECRET="not-the-server-secret")
    args = ["listen", "presence-room", "--as-user", "7", "--user-info", '{"name":"Ann"}']
    result = run_cli([*args, "--timeout", "20"])
    assert result.exit_code == 5
    channel_data = '{"user_id":"7","user_info":{"name":"Ann"}}'
    match = re.search(
        r"; see why: rtctl verify auth --socket-id (\d+\.\d+) --channel presence-room "
        rf"--auth {soketi.key}:([0-9a-f]{{64}}) --channel-data (.*)\n$",
        result.stderr,
    )
    assert match, result.stderr
    socket_id, signature, quoted = match.groups()
    assert quoted == f"'{channel_data}'"  # shell-quoted, ready to paste
    assert signature == sign("not-the-server-secret", f"{socket_id}:presence-room:{channel_data}")


def test_unreachable_exits_4(tmp_path: Path, soketi: SoketiServer) -> None:
    port = free_port()
    soketi.write_env(tmp_path / ".env", REALTIME_PORT=str(port))
    result = run_cli(["listen", "orders", "--timeout", "20"])
    assert result.exit_code == 4
    assert result.stderr.startswith(
        f"error: cannot connect to ws://127.0.0.1:{port}/app/{soketi.key}: "
        "[Errno 111] Connection refused\n"
    )


def test_presence_without_a_user_is_a_usage_error(env_dir: Path) -> None:
    result = run_cli(["listen", "presence-room"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: listening on presence channel 'presence-room' needs a user id\n"
        'hint: pass --as-user ID (and optionally --user-info \'{"name": "Ann"}\'), '
        "or --auth-endpoint URL to let your auth endpoint pick the user\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad channel"], "channel name 'bad channel' contains characters Pusher refuses: ' '"),
        (
            ["x", "--as-user", "1", "--user-info", "{nope"],
            "--user-info is not JSON (Expecting property name",
        ),
        (["x", "--as-user", "1", "--user-info", "[1]"], "--user-info must be a JSON object"),
        (["x", "--auth-header", "NoColon"], "--auth-header 'NoColon' is not 'Name: value'"),
        (["x", "--user-info", "{}"], "--user-info needs --as-user"),
    ],
)
def test_bad_input_is_a_usage_error(env_dir: Path, args: list[str], message: str) -> None:
    result = run_cli(["listen", *args])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {message}")
    assert "Traceback" not in result.stderr


# --- after `rtctl switch pusher`: TLS, hosts derived from the provider ----------------------------


def test_listen_over_tls_with_the_pusher_provider(tmp_path: Path, pusher_standin) -> None:
    server, cert = pusher_standin.server, pusher_standin.cert
    write_env(tmp_path / ".env", pusher_standin.env())
    name = channel("private-")
    with listening([name, "--json", "--count", "2", "--timeout", "60"], tmp_path) as listener:
        listener.wait_stderr("listening on")
        with ApiClient(settings_for(server), timeout=10) as api:
            api.trigger(Event((name,), "over-tls", json.dumps({"n": 1})))
        pusher_js_send(server, name, 1, event="client-tls", tls=True, ca=str(cert))
        code, out, err = listener.finish()
    assert code == 0, err
    assert [(x["event"], x["data"]) for x in map(json.loads, out.splitlines())] == [
        ("over-tls", {"n": 1}),
        ("client-tls", {"i": 0}),
    ]


def test_untrusted_certificate_exits_4(tmp_path: Path, pusher_standin) -> None:
    server = pusher_standin.server
    write_env(tmp_path / ".env", pusher_standin.env(trust=False))
    result = run_cli(["listen", "orders", "--timeout", "20"])
    assert result.exit_code == 4
    assert result.stderr.startswith(
        f"error: TLS handshake with wss://127.0.0.1:{server.port}/app/{server.key} failed: "
        "CERTIFICATE_VERIFY_FAILED"
    )
    assert result.stderr.endswith(
        "hint: for a self-signed server set RTCTL_CA_BUNDLE to its CA certificate\n"
    )


def test_unreachable_auth_endpoint_exits_4(env_dir: Path) -> None:
    port = free_port()
    result = run_cli(
        [
            "listen",
            "private-x",
            "--auth-endpoint",
            f"http://127.0.0.1:{port}/auth",
            "--timeout",
            "20",
        ]
    )
    assert result.exit_code == 4
    assert result.stderr == (
        f"error: cannot reach the auth endpoint http://127.0.0.1:{port}/auth: "
        "[Errno 111] Connection refused\n"
        "hint: is the gateway running? check --auth-endpoint\n"
    )
