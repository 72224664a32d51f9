"""`rtctl emit` against the real session Soketi: what is triggered arrives, what is refused fails."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from rtctl.protocol.crypto import channel_key, decrypt
from tests.events_support import JsReceiver, RawSocket
from tests.helpers import SoketiServer, free_port, run_cli, run_rtctl


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


@pytest.fixture
def socket_on(soketi: SoketiServer):
    opened: list[RawSocket] = []

    def open_(channel: str, **kwargs) -> RawSocket:
        sock = RawSocket(soketi)
        sock.subscribe(channel, **kwargs)
        opened.append(sock.start())
        return sock

    yield open_
    for sock in opened:
        sock.close()


# --- trigger -> receive ----------------------------------------------------------------------------


def test_emit_inline_json_arrives_verbatim(env_file: Path, socket_on) -> None:
    channel = unique("orders-")
    sock = socket_on(channel)
    result = run_cli(["emit", channel, "order.created", "--data", '{"id": 7, "total": 1.50}'])
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == f"sent order.created to {channel}\n"
    [frame] = sock.wait_events(1)
    assert frame == {
        "event": "order.created",
        "channel": channel,
        "data": '{"id": 7, "total": 1.50}',  # verbatim: number text and spacing survive
    }


def test_emit_data_from_file_and_stdin(env_file: Path, socket_on, tmp_path: Path) -> None:
    channel = unique("private-files-")
    sock = socket_on(channel)
    (tmp_path / "payload.json").write_text('{"from": "file"}\n')
    assert run_cli(["emit", channel, "a", "--data", "@payload.json"]).exit_code == 0
    assert run_cli(["emit", channel, "b", "--data", "-"], input='{"from": "stdin"}').exit_code == 0
    assert run_cli(["emit", channel, "c"]).exit_code == 0
    assert run_cli(["emit", channel, "d", "--raw", "--data", "plain text"]).exit_code == 0
    frames = sock.wait_events(4)
    assert [(f["event"], f["data"]) for f in frames] == [
        ("a", '{"from": "file"}'),
        ("b", '{"from": "stdin"}'),
        ("c", "{}"),
        ("d", "plain text"),
    ]


def test_emit_to_several_channels_and_json_summary(env_file: Path, socket_on) -> None:
    one, two = unique("multi-a-"), unique("multi-b-")
    sock_one, sock_two = socket_on(one), socket_on(two)
    result = run_cli(["emit", f"{one},{two}", "ping", "--data", "[1,2]", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert {k: summary[k] for k in ("ok", "channels", "event", "sent", "batches")} == {
        "ok": True,
        "channels": [one, two],
        "event": "ping",
        "sent": 1,
        "batches": 1,
    }
    assert sock_one.wait_events(1)[0]["data"] == "[1,2]"
    assert sock_two.wait_events(1)[0]["data"] == "[1,2]"


def test_socket_id_excludes_that_connection(env_file: Path, socket_on) -> None:
    channel = unique("excl-")
    excluded, included = socket_on(channel), socket_on(channel)
    result = run_cli(["emit", channel, "e", "--socket-id", excluded.socket_id])
    assert result.exit_code == 0
    assert len(included.wait_events(1)) == 1
    run_cli(["emit", channel, "marker"])  # a later event proves the first one was skipped
    assert [f["event"] for f in excluded.wait_events(1)] == ["marker"]


def test_count_delivers_every_event_and_reports_json(env_file: Path, socket_on) -> None:
    channel = unique("load-")
    sock = socket_on(channel)
    result = run_cli(["emit", channel, "tick", "--count", "2000", "--data", '{"n":1}', "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["sent"], summary["batches"]) == (2000, 200)
    assert summary["rate"] > 0 and summary["elapsed"] > 0
    assert sock.count_frames('"event":"tick"', 2000) == 2000
    assert result.stderr == ""  # no progress off a terminal


def test_rate_paces_with_small_batches(env_file: Path, socket_on) -> None:
    channel = unique("paced-")
    sock = socket_on(channel)
    result = run_cli(["emit", channel, "tick", "--count", "30", "--rate", "300", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    # 300/s -> groups of 3, one request every 10 ms; 30 events take at least ~90 ms
    assert (summary["sent"], summary["batches"]) == (30, 10)
    assert summary["elapsed"] >= 0.09
    assert len(sock.wait_events(30)) == 30


def test_batch_file_groups_of_ten_in_order(env_file: Path, socket_on, tmp_path: Path) -> None:
    channel_a, channel_b = unique("batch-a-"), unique("private-batch-b-")
    sock_a, sock_b = socket_on(channel_a), socket_on(channel_b)
    lines = [
        json.dumps({"channel": channel_a if i % 2 else channel_b, "event": "n", "data": {"i": i}})
        for i in range(23)
    ]
    lines.insert(5, "")  # blank lines are skipped
    lines.append(json.dumps({"channel": channel_a, "event": "s", "data": "already a string"}))
    (tmp_path / "events.ndjson").write_text("\n".join(lines) + "\n")
    result = run_cli(["emit", "--batch", "events.ndjson", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["sent"], summary["batches"]) == (24, 3)
    got_a = [f["data"] for f in sock_a.wait_events(12)]
    got_b = [f["data"] for f in sock_b.wait_events(12)]
    assert got_a == [json.dumps({"i": i}, separators=(",", ":")) for i in range(1, 23, 2)] + [
        "already a string"
    ]
    assert got_b == [json.dumps({"i": i}, separators=(",", ":")) for i in range(0, 23, 2)]


def test_encrypted_channel_round_trip(soketi: SoketiServer, tmp_path: Path, socket_on) -> None:
    master = secrets.token_bytes(32)
    soketi.write_env(
        tmp_path / ".env", PUSHER_ENCRYPTION_MASTER_KEY_BASE64=base64.b64encode(master).decode()
    )
    channel = unique("private-encrypted-dm-")
    sock = socket_on(channel)
    result = run_cli(["emit", channel, "secret", "--data", '{"pin":"4711"}'])
    assert result.exit_code == 0, result.stderr
    [frame] = sock.wait_events(1)
    assert "4711" not in frame["data"]  # the server only ever saw ciphertext
    assert set(json.loads(frame["data"])) == {"nonce", "ciphertext"}
    assert decrypt(channel_key(channel, master), frame["data"]) == '{"pin":"4711"}'


def test_encrypted_channel_without_master_key(env_file: Path) -> None:
    result = run_cli(["emit", "private-encrypted-x", "e"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: 'private-encrypted-x' is an encrypted channel and no master key is configured\n"
        "hint: set PUSHER_ENCRYPTION_MASTER_KEY_BASE64 (openssl rand -base64 32)\n"
    )


# --- pusher-js (a real third-party client) receives what rtctl emits ------------------------------


def test_pusher_js_receives_public_private_presence(env_file: Path, soketi: SoketiServer) -> None:
    public, private, presence = unique("pub-"), unique("private-js-"), unique("presence-js-")
    receiver = JsReceiver(
        soketi,
        [public, private, presence],
        count=3,
        env_file=env_file,
        auth_args={presence: ["--user-id", "42", "--user-info", '{"name":"Ann"}']},
    )
    try:
        receiver.wait_subscribed()
        for channel in (public, private, presence):
            result = run_cli(["emit", channel, "greeting", "--data", f'{{"to":"{channel}"}}'])
            assert result.exit_code == 0, result.stderr
        code, events, last = receiver.finish()
    finally:
        receiver.stop()
    assert (code, last) == (0, {"type": "done", "received": 3})
    assert sorted((e["channel"], e["event"], json.dumps(e["data"])) for e in events) == sorted(
        (c, "greeting", json.dumps({"to": c})) for c in (public, private, presence)
    )


def test_pusher_js_decrypts_what_rtctl_encrypts(soketi: SoketiServer, tmp_path: Path) -> None:
    env = soketi.write_env(
        tmp_path / ".env",
        PUSHER_ENCRYPTION_MASTER_KEY_BASE64=base64.b64encode(secrets.token_bytes(32)).decode(),
    )
    channel = unique("private-encrypted-js-")
    receiver = JsReceiver(soketi, [channel], count=1, env_file=env)
    try:
        receiver.wait_subscribed()
        assert run_cli(["emit", channel, "sealed", "--data", '{"ok":true}']).exit_code == 0
        code, events, _ = receiver.finish()
    finally:
        receiver.stop()
    assert code == 0
    assert events == [
        {"type": "event", "channel": channel, "event": "sealed", "data": {"ok": True}}
    ]


def test_pusher_js_gets_every_event_of_a_count_run(env_file: Path, soketi: SoketiServer) -> None:
    channel = unique("bulk-")
    receiver = JsReceiver(soketi, [channel], count=10000, env_file=env_file, quiet=True, timeout=60)
    try:
        receiver.wait_subscribed()
        proc = run_rtctl(["emit", channel, "tick", "--count", "10000", "--json"], timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["sent"] == 10000
        code, _, last = receiver.finish(timeout=60)
    finally:
        receiver.stop()
    assert (code, last) == (0, {"type": "done", "received": 10000})


# --- refusals --------------------------------------------------------------------------------------


def test_wrong_secret_fails_with_the_servers_message(soketi: SoketiServer, tmp_path: Path) -> None:
    soketi.write_env(tmp_path / ".env", PUSHER_APP_SECRET="sec" + "0" * 24)
    result = run_cli(["emit", "orders", "e"])
    assert (result.exit_code, result.stdout) == (5, "")
    assert result.stderr == (
        "error: the server refused our credentials (401): The secret authentication failed\n"
        "hint: PUSHER_APP_KEY/PUSHER_APP_SECRET must match the server's app (`rtctl doctor`)\n"
    )


def test_wrong_secret_in_json_mode(soketi: SoketiServer, tmp_path: Path) -> None:
    soketi.write_env(tmp_path / ".env", PUSHER_APP_SECRET="sec" + "0" * 24)
    result = run_cli(["emit", "orders", "e", "--count", "25", "--json"])
    assert result.exit_code == 5
    error = json.loads(result.stdout)["error"]
    assert (error["code"], error["exit_code"]) == ("auth_rejected", 5)
    assert "ok" not in json.loads(result.stdout)


def test_wrong_app_id(soketi: SoketiServer, tmp_path: Path) -> None:
    soketi.write_env(tmp_path / ".env", PUSHER_APP_ID="999999999")
    result = run_cli(["emit", "orders", "e"])
    assert result.exit_code == 5
    assert result.stderr == (
        "error: the server does not know this app (404): The app 999999999 could not be found.\n"
        "hint: PUSHER_APP_ID must match the server's app id (`rtctl doctor`)\n"
    )


def test_server_down(soketi: SoketiServer, tmp_path: Path) -> None:
    port = free_port()
    soketi.write_env(tmp_path / ".env", REALTIME_PORT=str(port))
    result = run_cli(["emit", "orders", "e"])
    assert result.exit_code == 4
    assert result.stderr == (
        f"error: cannot reach the HTTP API at http://127.0.0.1:{port}: Connection refused\n"
        "hint: is the server running? `rtctl status` shows it, `rtctl up` starts one\n"
    )


def test_real_entry_point_no_traceback_on_refusal(soketi: SoketiServer, tmp_path: Path) -> None:
    soketi.write_env(tmp_path / ".env", PUSHER_APP_SECRET="sec" + "1" * 24)
    proc = run_rtctl(["emit", "orders", "e"], cwd=tmp_path)
    assert proc.returncode == 5
    assert proc.stderr.splitlines()[0] == (
        "error: the server refused our credentials (401): The secret authentication failed"
    )
    assert "Traceback" not in proc.stderr


def test_oversize_allowed_with_allow_large_up_to_soketis_limit(env_file: Path, socket_on) -> None:
    channel = unique("big-")
    sock = socket_on(channel)
    big = json.dumps({"blob": "x" * 50_000})
    result = run_cli(["emit", channel, "big", "--data", big, "--allow-large"])
    assert result.exit_code == 0, result.stderr
    assert sock.wait_events(1)[0]["data"] == big


# --- bad input: refused locally, exit 2, nothing sent ----------------------------------------------


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (
            ["bad channel!", "e"],
            "channel name 'bad channel!' contains characters Pusher refuses: ' !'",
            "use only letters, digits and - _ = @ , . ;",
        ),
        (
            ["c" * 165, "e"],
            "channel name is 165 characters; Pusher allows 164",
            "shorten the channel name",
        ),
        (
            ["orders", "e" * 201],
            "event name is 201 characters; the limit is 200",
            "shorten the event name",
        ),
        (
            ["orders", "pusher:subscribe"],
            "event name 'pusher:subscribe' uses a reserved prefix (pusher: / pusher_internal:)",
            "choose a name of your own",
        ),
        (
            ["orders", "e", "--data", "{not json"],
            "event data from --data is not JSON: Expecting property name enclosed in double quotes at line 1 column 2",
            'quote it as JSON, e.g. --data \'{"text":"hi"}\', or pass --raw to send text as is',
        ),
        (
            ["orders", "e", "--data", json.dumps({"blob": "x" * 10_240})],
            "event data is 10252 bytes; the limit is 10240",
            "Pusher refuses events over 10 KB; send less, or pass --allow-large for Soketi-only setups",
        ),
        (
            ["orders", "e", "--allow-large", "--data", json.dumps({"blob": "x" * 102_400})],
            "event data is 102412 bytes; the limit is 102400",
            "Soketi's own default limit is 100 KB",
        ),
        (
            ["orders", "e", "--data", "@missing.json"],
            "cannot read data file 'missing.json': No such file or directory",
            "check the path after @ (relative to the current folder)",
        ),
        (
            [",".join(f"c{i}" for i in range(101)), "e"],
            "101 channels in one trigger; the limit is 100",
            "split the channels over several triggers",
        ),
        (
            ["a,,b", "e"],
            "channel list 'a,,b' has an empty name",
            "separate channels with single commas",
        ),
        (
            ["", "e"],
            "no channel given",
            "name a channel, e.g. private-123_9000000",
        ),
        (
            ["private-encrypted-a,b", "e"],
            "an encrypted channel must be triggered on its own",
            "send to private-encrypted-a in a separate trigger",
        ),
        (
            ["orders", "e", "--socket-id", "abc"],
            "socket id 'abc' is malformed",
            "a socket id is two numbers joined by a dot, e.g. 1234.5678",
        ),
        (
            ["orders", "e", "--rate", "0"],
            "Invalid value for '--rate': 0 is out of range: use a number above 0 up to 1000000",
            "see `rtctl emit --help`",
        ),
    ],
)
def test_bad_input_is_refused_locally(env_file: Path, args, message, hint) -> None:
    result = run_cli(["emit", *args])
    assert result.exit_code == 2
    if hint is None:  # Typer's own usage error
        assert message in result.stderr
        return
    assert result.stderr == f"error: {message}\nhint: {hint}\n"
    assert result.stdout == ""


def test_unreadable_file_is_exit_2(env_file: Path, tmp_path: Path) -> None:
    # tests run as root here, so permission bits do not stop reads; a folder cannot be read either
    (tmp_path / "payload.json").mkdir()
    result = run_cli(["emit", "orders", "e", "--data", "@payload.json"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: cannot read data file 'payload.json': Is a directory\n"
        "hint: check the path after @ (relative to the current folder)\n"
    )


def test_batch_file_with_a_bad_line_sends_nothing(env_file: Path, socket_on, tmp_path) -> None:
    channel = unique("batch-bad-")
    sock = socket_on(channel)
    good = json.dumps({"channel": channel, "event": "e", "data": {}})
    (tmp_path / "b.ndjson").write_text(f"{good}\n{good}\n{{oops\n")
    result = run_cli(["emit", "--batch", "b.ndjson"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: batch line 3: not JSON: Expecting property name enclosed in double quotes "
        "at line 1 column 2\n"
        'hint: one JSON object per line: {"channel": "c", "event": "e", "data": {}}\n'
    )
    run_cli(["emit", channel, "marker"])
    assert [f["event"] for f in sock.wait_events(1)] == ["marker"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"channel": "c", "data": {}}, "batch line 1: 'event' is missing"),
        ({"channels": ["c"], "event": "e"}, "batch line 1: unknown field(s): channels"),
        (
            {"channel": "bad name", "event": "e"},
            "batch line 1: channel name 'bad name' contains characters Pusher refuses: ' '",
        ),
        ([1, 2], "batch line 1: not a JSON object"),
    ],
)
def test_batch_line_errors(env_file: Path, tmp_path: Path, line, message) -> None:
    (tmp_path / "b.ndjson").write_text(json.dumps(line) + "\n")
    result = run_cli(["emit", "--batch", "b.ndjson"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == f"error: {message}"


def test_missing_batch_file(env_file: Path) -> None:
    result = run_cli(["emit", "--batch", "nope.ndjson"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        "error: cannot read data file 'nope.ndjson': No such file or directory"
    )
    # a batch file is named without @: the hint does not point at one
    assert result.stderr.splitlines()[1] == "hint: check the path (relative to the current folder)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["orders"], "name a channel and an event"),
        (["orders", "e", "--batch", "f"], "--batch takes channels and events from the file"),
        (
            ["--batch", "f", "--count", "3"],
            "--batch cannot be combined with --count, --data or --socket-id",
        ),
    ],
)
def test_usage_errors(env_file: Path, args, message) -> None:
    result = run_cli(["emit", *args])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == f"error: {message}"


def test_chat_message_payloads_are_validated(env_file: Path) -> None:
    result = run_cli(["emit", "private-1_9000000", "chat_message", "--data", '{"body":"hi"}'])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: chat_message payload missing ['actor', 'audio_url', 'channel', 'created_at']\n"
        "hint: shape: {channel, actor: {id, name, avatar}, body, audio_url, created_at}; "
        '`rtctl bot say --to USER "text"` sends a well-formed one, and --no-payload-check sends '
        "your own payload under this name\n"
    )


def test_another_apps_chat_message_is_sent_with_no_payload_check(
    env_file: Path, socket_on, tmp_path: Path
) -> None:
    # Another app may use the event name with its own payload: --raw does not skip the check
    # (it only skips the JSON check), --no-payload-check does, for single events and batches.
    channel = unique("room-")
    sock = socket_on(channel)
    theirs = '{"user":"ann","text":"hi"}'
    refused = run_cli(["emit", channel, "chat_message", "--data", theirs, "--raw"])
    assert refused.exit_code == 2
    sent = run_cli(["emit", channel, "chat_message", "--data", theirs, "--no-payload-check"])
    assert sent.exit_code == 0, sent.stderr
    batch = tmp_path / "batch.ndjson"
    batch.write_text(json.dumps({"channel": channel, "event": "chat_message", "data": "plain"}))
    assert run_cli(["emit", "--batch", str(batch)]).exit_code == 2
    assert run_cli(["emit", "--batch", str(batch), "--no-payload-check"]).exit_code == 0
    events = sock.wait_events(2)
    assert [(e["event"], e["data"]) for e in events] == [
        ("chat_message", theirs),
        ("chat_message", "plain"),
    ]


def test_chat_message_in_the_bot_user_pattern_shape_is_sent(env_file: Path, socket_on) -> None:
    channel = unique("private-7_")
    sock = socket_on(channel)
    payload = {
        "channel": channel,
        "actor": {"id": 9000000, "name": "Coach", "avatar": "/assets/bot.png"},
        "body": "Great!",
        "audio_url": None,
        "created_at": "2026-11-25T17:06:31.123Z",
    }
    assert run_cli(["emit", channel, "chat_message", "--data", json.dumps(payload)]).exit_code == 0
    assert json.loads(sock.wait_events(1)[0]["data"]) == payload


def test_ctrl_c_reports_how_many_were_accepted(env_file: Path, socket_on, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    channel = unique("interrupted-")
    sock = socket_on(channel)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtctl", "emit", channel, "tick", "--count", "1000", "--rate", "50"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert len(sock.wait_events(5)) >= 5  # it is running
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Events arrive in order: once a marker sent afterwards is here, every earlier one is too.
    assert run_cli(["emit", channel, "marker"]).exit_code == 0
    assert len(sock.wait_events(1, "marker")) == 1
    delivered = len(sock.events("tick"))
    assert proc.returncode == 130
    assert out == ""
    first = err.splitlines()[0]
    confirmed = int(first.split()[1])
    assert first == f"interrupted: {confirmed} of 1000 events were confirmed by the server"
    # a request cut short by Ctrl-C may have reached the server without being confirmed
    assert delivered - confirmed in (0, 1)
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def small_limit_soketi(soketi_factory) -> SoketiServer:
    """A Soketi configured like Pusher (10 KB events), to see the server itself refuse.
    Extra SOKETI_* tuning reaches the server from the environment it is started in."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOKETI_EVENT_MAX_SIZE_IN_KB", "10")
        return soketi_factory()


def test_server_refusal_is_exit_7_with_its_message(small_limit_soketi, tmp_path: Path) -> None:
    small_limit_soketi.write_env(tmp_path / ".env")
    big = json.dumps({"blob": "x" * 20_000})
    result = run_cli(["emit", "orders", "big", "--allow-large", "--data", big])
    assert (result.exit_code, result.stdout) == (7, "")
    assert result.stderr == (
        "error: the server refused POST /events (413): The event data should be less than 10 KB.\n"
        "hint: the message above is the server's own; fix the request it names\n"
    )


def test_partial_run_says_how_many_were_accepted(small_limit_soketi, tmp_path: Path) -> None:
    small_limit_soketi.write_env(tmp_path / ".env")
    sock = RawSocket(small_limit_soketi)
    sock.subscribe("partial")
    sock.start()
    try:
        lines = [{"channel": "partial", "event": "n", "data": {"i": i}} for i in range(20)]
        lines[14]["data"] = {"blob": "x" * 20_000}  # the second batch of ten is refused
        (tmp_path / "b.ndjson").write_text("".join(json.dumps(x) + "\n" for x in lines))
        result = run_cli(["emit", "--batch", "b.ndjson", "--allow-large", "--json"])
        assert result.exit_code == 7
        assert json.loads(result.stdout)["error"]["message"] == (
            "the server refused POST /batch_events (413): The event data should be less than 10 KB."
            " (after 10 of 20 events were accepted)"
        )
        assert len(sock.wait_events(10)) == 10
    finally:
        sock.close()


def test_batch_from_stdin(env_file: Path, socket_on) -> None:
    channel = unique("stdin-batch-")
    sock = socket_on(channel)
    lines = "".join(
        json.dumps({"channel": channel, "event": "n", "data": {"i": i}}) + "\n" for i in range(3)
    )
    result = run_cli(["emit", "--batch", "-", "--json"], input=lines)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["sent"] == 3
    assert [f["data"] for f in sock.wait_events(3)] == ['{"i":0}', '{"i":1}', '{"i":2}']


def test_empty_stdin_is_not_json(env_file: Path) -> None:
    result = run_cli(["emit", "orders", "e", "--data", "-"], input="")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        "error: event data from stdin is not JSON: Expecting value at line 1 column 1"
    )


@pytest.mark.parametrize(
    ("args", "setup", "error", "hint"),
    [
        (["orders", "e", "--data", "@"], None,
         "--data @ names no file", "write --data @payload.json"),
        (["orders", "e", "--data", "@latin1.json"], "latin-1",
         "data file 'latin1.json' is not UTF-8 text", "event data is JSON text"),
        # a command line holding bytes that are not UTF-8 arrives as lone surrogates
        (["orders", "e", "--raw", "--data", "caf\udce9"], None,
         "--data is not UTF-8 text", "event data is JSON text"),
        (["orders", "e", "--data", '"caf\udce9"'], None,
         "--data is not UTF-8 text", "event data is JSON text"),
        (["--batch", "latin1.json"], "latin-1",
         "data file 'latin1.json' is not UTF-8 text", "a batch file is NDJSON text"),
    ],
)  # fmt: skip
def test_data_that_cannot_be_read_is_exit_2(
    env_file: Path, tmp_path: Path, args: list[str], setup: str | None, error: str, hint: str
) -> None:
    if setup == "latin-1":
        (tmp_path / "latin1.json").write_bytes('{"text":"café"}'.encode("latin-1"))
    result = run_cli(["emit", *args])
    assert result.exit_code == 2
    assert result.stderr == f"error: {error}\nhint: {hint}\n"


@pytest.mark.parametrize(
    ("args", "error", "hint"),
    [
        (["orders", "e", "--raw", "--data", "-"],
         "stdin (--data -) is not UTF-8 text", "event data is JSON text"),
        (["--batch", "-"], "stdin (--batch -) is not UTF-8 text", "a batch file is NDJSON text"),
    ],
)  # fmt: skip
def test_stdin_that_is_not_utf8_is_exit_2(
    env_file: Path, args: list[str], error: str, hint: str
) -> None:
    # the real entry point: a real stdin, read as bytes (the text layer lets bad bytes through)
    result = subprocess.run(
        [sys.executable, "-m", "rtctl", "emit", *args],
        input='"café"'.encode("latin-1"),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.decode() == f"error: {error}\nhint: {hint}\n"


def test_empty_batch_file(env_file: Path, tmp_path: Path) -> None:
    (tmp_path / "empty.ndjson").write_text("\n\n")
    result = run_cli(["emit", "--batch", "empty.ndjson"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: the batch file holds no events\n"
        'hint: one JSON object per line: {"channel": "c", "event": "e", "data": {}}\n'
    )
