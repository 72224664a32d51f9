"""`rtctl verify auth|api`: the golden vectors of pusher-protocol.md §9 verify, and each mistake a
signer makes is named for what it is. The pure explanation first, then the CLI (exit codes 0/1/2,
--json, malformed input refused before the configuration is read)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from rtctl.errors import InvalidInput
from rtctl.protocol.explain import (
    describe_json_difference,
    explain_api,
    explain_auth,
    verify_command,
)
from rtctl.protocol.signing import sign
from tests.helpers import run_cli, write_env

KEY, SECRET = "278d425bdf160c739803", "7ad3773142a6692b25b8"  # the vectors' credentials
V3_DATA = '{"user_id":10,"user_info":{"name":"Mr. Pusher"}}'
V3_SIG = "afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c"
V4_BODY = '{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}'
V4_QUERY = (
    "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0"
    "&body_md5=ec365a775a4cd0599faeb73354201b6f"
)
V4_SIG = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"


def blocking(explanation) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(f.part, f.message) for f in explanation.findings if f.blocking]


def private(socket_id: str, channel: str, auth: str, **kw: str):  # type: ignore[no-untyped-def]
    return explain_auth(KEY, SECRET, socket_id=socket_id, channel=channel, auth=auth, **kw)


# --- golden vectors verify ----------------------------------------------------------------------


def test_v1_private_verifies_with_a_note_on_what_a_refusal_then_means() -> None:
    auth = f"{KEY}:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
    result = private("1234.1234", "private-foobar", auth)
    assert result.verifies
    assert result.string_to_sign == "1234.1234:private-foobar"
    assert result.expected == auth
    assert [f.part for f in result.findings] == ["secret"]
    assert "that server's app has another secret or key" in result.findings[0].message


def test_v3_presence_and_v2_v9_sign_in_verify() -> None:
    assert private("1234.1234", "presence-foobar", f"{KEY}:{V3_SIG}", channel_data=V3_DATA).verifies
    v2 = explain_auth(
        KEY,
        SECRET,
        socket_id="1234.1234",
        user_data='{"id":"12345"}',
        auth=f"{KEY}:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba",
    )
    assert (v2.kind, v2.verifies, v2.string_to_sign) == (
        "user",
        True,
        '1234.1234::user::{"id":"12345"}',
    )
    v9 = explain_auth(
        "thisisaauthkey",
        "thisisasecret",
        socket_id="12345.6789",
        user_data='{"id":"123","name":"John Smith"}',
        auth="thisisaauthkey:0dddb208b53c7649f3fbbb86254a6e1986bc6f8b566423ea690c9ca773497373",
    )
    assert v9.verifies


def test_v4_api_request_verifies() -> None:
    result = explain_api(
        KEY,
        SECRET,
        method="POST",
        target=f"/apps/3/events?{V4_QUERY}&auth_signature={V4_SIG}",
        body=V4_BODY,
        now=1353088179 + 30,
        provider="pusher",
    )
    assert result.verifies, result.findings
    assert result.string_to_sign == f"POST\n/apps/3/events\n{V4_QUERY}"
    assert result.facts["body_md5"] == "ec365a775a4cd0599faeb73354201b6f"
    assert result.facts["timestamp_skew_seconds"] == 30


def test_v5_get_with_a_full_url_verifies() -> None:
    query = "auth_key=key&auth_timestamp=1000&auth_version=1.0&body_md5=d41d8cd98f00b204e9800998ecf8427e&foo=bar"
    result = explain_api(
        "key",
        "secret",
        method="GET",
        target="http://127.0.0.1:6001/some/obscure/api?"
        + query
        + "&auth_signature=5c49f04a95eedc9028b1e0e8de7c2c7ad63504a0e3b5c145d2accaef6c14dbac",
        now=1000,
    )
    assert result.verifies, result.findings


# --- each mistake is named ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "reasons"),
    [
        ('{"user_id": 10, "user_info": {"name": "Mr. Pusher"}}', "spaces"),
        ('{"user_info":{"name":"Mr. Pusher"},"user_id":10}', "key order"),
        ('{"user_id":"10","user_info":{"name":"Mr. Pusher"}}', "different values"),
    ],
)
def test_channel_data_reserialized_after_signing(sent: str, reasons: str) -> None:
    # V3's signature covers the compact text; the frame carried another serialization.
    result = private("1234.1234", "presence-foobar", f"{KEY}:{V3_SIG}", channel_data=sent)
    assert not result.verifies
    [(part, message)] = blocking(result)
    assert part == "channel_data"
    assert message.startswith(
        f"channel_data was re-serialized between signing and sending ({reasons}): "
        f"the signature covers {V3_DATA!r}"
    )
    assert result.signed_string == f"1234.1234:presence-foobar:{V3_DATA}"


def test_escapes_php_style() -> None:
    data = '{"user_id":"1","user_info":{"url":"https://x.test/é"}}'
    php = '{"user_id":"1","user_info":{"url":"https:\\/\\/x.test\\/\\u00e9"}}'
    assert json.loads(php) == json.loads(data)
    signature = sign(SECRET, f"1.2:presence-a:{php}")
    result = private("1.2", "presence-a", f"{KEY}:{signature}", channel_data=data)
    [(part, message)] = blocking(result)
    assert part == "channel_data"
    assert "(escapes)" in message
    assert "PHP json_encode" in message
    assert describe_json_difference('{"a": 1,"b":2}', '{"b":2,"a":1}') == "key order, spaces"


@pytest.mark.parametrize(
    ("signed", "part", "says"),
    [
        ("undefined:private-a", "socket_id", "the signature is for socket id 'undefined'"),
        ("1.2:undefined", "channel", "the signature is for channel 'undefined'"),
        ("1.2:a", "channel", "the signature is for channel 'a' (no prefix)"),
        ("1.2:presence-a", "channel", "with the prefix 'presence-'"),
        ("private-a:1.2", "string", "socket id and channel are swapped"),
        ("2.1:private-a", "socket_id", "its halves swapped"),
        ("1.2:private-a\n", "string", "ends with a newline"),
    ],
)
def test_another_socket_id_channel_or_string_than_sent(signed: str, part: str, says: str) -> None:
    result = private("1.2", "private-a", f"{KEY}:{sign(SECRET, signed)}")
    [(found, message)] = blocking(result)
    assert found == part
    assert says in message
    assert result.signed_string == signed


def test_url_encoded_channel() -> None:
    result = private("1.2", "private-a@b", f"{KEY}:{sign(SECRET, '1.2:private-a%40b')}")
    assert blocking(result)[0][1].startswith("the signature is for channel 'private-a%40b'")


def test_presence_signed_like_a_private_channel() -> None:
    signature = sign(SECRET, "1.2:presence-a")
    result = private("1.2", "presence-a", f"{KEY}:{signature}", channel_data='{"user_id":"1"}')
    assert blocking(result) == [
        (
            "channel_data",
            "the signature leaves channel_data out (signed as a private channel): a presence "
            "signature covers socket_id:channel:channel_data",
        )
    ]


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        (KEY, "signed with the app key as the secret"),
        (SECRET + "\n", "the secret plus a trailing newline"),
    ],
)
def test_a_secret_we_can_name(secret: str, says: str) -> None:
    result = private("1.2", "private-a", f"{KEY}:{sign(secret, '1.2:private-a')}")
    [(part, message)] = blocking(result)
    assert part == "secret"
    assert says in message


def test_another_secret_entirely_and_another_key() -> None:
    result = private("1.2", "private-a", f"otherkey:{sign('another', '1.2:private-a')}")
    assert [part for part, _ in blocking(result)] == ["key", "secret"]
    assert blocking(result)[0][1] == (
        f"the auth carries key 'otherkey' but the configured key is {KEY!r}: it was signed for "
        "another app, or the server and this config name different apps"
    )
    assert blocking(result)[1][1].startswith(
        "the signature matches none of the known mistakes: it was made with another secret, or "
        "over another socket id and channel than these"
    )


def test_upper_case_hex_and_the_docs_user_form() -> None:
    signature = sign(SECRET, "1.2:private-a")
    result = private("1.2", "private-a", f"{KEY}:{signature.upper()}")
    assert [part for part, _ in blocking(result)] == ["signature"]
    user = '{"id":"1"}'
    result = explain_auth(
        KEY,
        SECRET,
        socket_id="1.2",
        user_data=user,
        auth=f"{KEY}::user::{sign(SECRET, f'1.2::user::{user}')}",
    )
    assert [part for part, _ in blocking(result)] == ["auth"]


def test_payload_the_server_cannot_read() -> None:
    data = '{"name":"Ann"}'
    result = private(
        "1.2", "presence-a", f"{KEY}:{sign(SECRET, f'1.2:presence-a:{data}')}", channel_data=data
    )
    assert blocking(result) == [
        ("channel_data", "channel_data has no user_id: the server refuses it")
    ]


@pytest.mark.parametrize("data", ['{"user_id":NaN}', "[" * 5000 + "]" * 5000])
def test_payload_that_is_not_strict_json_is_named_not_a_crash(data: str) -> None:
    # The server reads channel_data with JSON.parse: NaN is not JSON, and nesting too deep for a
    # parser was an internal error here before.
    result = private(
        "1.2", "presence-a", f"{KEY}:{sign(SECRET, f'1.2:presence-a:{data}')}", channel_data=data
    )
    assert blocking(result) == [
        ("channel_data", "channel_data is not JSON: the server cannot read the user from it")
    ]
    user = explain_auth(
        KEY, SECRET, socket_id="1.2", user_data=data, auth=f"{KEY}:{sign(SECRET, 'other')}"
    )
    assert [part for part, _ in blocking(user)] == ["user_data", "secret"]


def api(target: str, body: str = "", now: float = 1353088179, provider: str = "pusher"):  # type: ignore[no-untyped-def]
    return explain_api(
        KEY, SECRET, method="POST", target=target, body=body, now=now, provider=provider
    )


def test_path_prefixed_by_a_proxy() -> None:
    result = api(f"/realtime/apps/3/events?{V4_QUERY}&auth_signature={V4_SIG}", V4_BODY)
    [(part, message)] = blocking(result)
    assert part == "path"
    assert message.startswith(
        "the request was signed for /apps/3/events but received under the prefix '/realtime' "
        "(/realtime/apps/3/events): a proxy rewrote the path"
    )


def test_body_changed_after_signing() -> None:
    # body_md5 and the signature cover V4_BODY; a trailing newline was added on the way.
    result = api(f"/apps/3/events?{V4_QUERY}&auth_signature={V4_SIG}", V4_BODY + "\n")
    assert blocking(result) == [
        (
            "body_md5",
            "body_md5 is ec365a775a4cd0599faeb73354201b6f but the body's MD5 is "
            f"{hashlib.md5((V4_BODY + chr(10)).encode()).hexdigest()}: the signed body differs "
            "from the one sent (a trailing newline): serialize the body once",
        )
    ]


def test_timestamp_window_blocks_on_pusher_only() -> None:
    target = f"/apps/3/events?{V4_QUERY}&auth_signature={V4_SIG}"
    late = api(target, V4_BODY, now=1353088179 + 601)
    assert not late.verifies
    assert blocking(late)[0][1].startswith(
        "auth_timestamp is 601 s before now, outside Pusher's 600 s window: Pusher refuses it"
    )
    on_soketi = api(target, V4_BODY, now=1353088179 + 601, provider="soketi")
    assert on_soketi.verifies
    assert [f.part for f in on_soketi.findings] == ["auth_timestamp", "secret"]


def test_values_escaped_in_the_signed_string() -> None:
    params = [
        ("auth_key", KEY),
        ("auth_timestamp", "1353088179"),
        ("auth_version", "1.0"),
        ("filter_by_prefix", "presence-"),
        ("info", "user_count,subscription_count"),
    ]
    wrong = "GET\n/apps/3/channels\n" + "&".join(f"{k}={v.replace(',', '%2C')}" for k, v in params)
    target = f"/apps/3/channels?{urlencode(params)}&auth_signature={sign(SECRET, wrong)}"
    result = explain_api(
        KEY, SECRET, method="GET", target=target, now=1353088179, provider="pusher"
    )
    assert blocking(result) == [
        ("query", "the parameter values were URL-escaped in the signed string: sign them unescaped")
    ]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: private("1234", "private-a", f"{KEY}:{'0' * 64}"),
            "socket id '1234' is malformed",
        ),
        (lambda: private("1.2", "private-a", "no-colon"), "--auth 'no-colon' is not KEY:SIGNATURE"),
        (
            lambda: private("1.2", "private-a", f"{KEY}:xyz"),
            "the signature part of --auth is not 64 hex digits: 'xyz'",
        ),
        (
            lambda: private("1.2", "public-a", f"{KEY}:{'0' * 64}"),
            "'public-a' is a public channel: its subscriptions carry no signature",
        ),
        (
            lambda: private(
                "1.2", "#server-to-user-1", f"{KEY}:{sign(SECRET, '1.2:#server-to-user-1')}"
            ),
            "'#server-to-user-1' is never subscribed with a signature: a signed-in connection "
            "receives it",
        ),
        (
            lambda: private("1.2", "presence-a", f"{KEY}:{'0' * 64}"),
            "a presence signature covers channel_data: pass the --channel-data sent for "
            "'presence-a'",
        ),
        (lambda: api("/apps/3/events?auth_key=k"), "the request has no auth_signature parameter"),
        (lambda: api("apps/3/events?auth_signature=" + "0" * 64), "has no path"),
    ],
)
def test_malformed_input_is_invalid(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput) as raised:
        call()
    assert message in raised.value.message


def test_verify_command_is_shell_quoted() -> None:
    assert verify_command("1.2", "presence-a", "k:s", '{"user_id":"1"}') == (
        "rtctl verify auth --socket-id 1.2 --channel presence-a --auth k:s "
        '--channel-data \'{"user_id":"1"}\''
    )


# --- the CLI ------------------------------------------------------------------------------------


@pytest.fixture
def vector_env(tmp_path: Path) -> Path:
    return write_env(
        tmp_path / ".env",
        {"PUSHER_APP_ID": "3", "PUSHER_APP_KEY": KEY, "PUSHER_APP_SECRET": SECRET},
    )


def test_cli_verifies_exit_0(vector_env: Path) -> None:
    result = run_cli(
        ["verify", "auth", "--socket-id", "1234.1234", "--channel", "presence-foobar",
         "--channel-data", V3_DATA, "--auth", f"{KEY}:{V3_SIG}"]
    )  # fmt: skip
    assert result.exit_code == 0
    assert result.stdout.splitlines()[:4] == [
        "✓ verifies",
        '  string to sign  "1234.1234:presence-foobar:{\\"user_id\\":10,\\"user_info\\":{\\"name\\":\\"Mr. Pusher\\"}}"',
        f"  expected        {KEY}:{V3_SIG}",
        f"  received        {KEY}:{V3_SIG}",
    ]
    assert result.stderr == ""


def test_cli_does_not_verify_exit_1_with_the_finding(vector_env: Path) -> None:
    spaced = '{"user_id": 10, "user_info": {"name": "Mr. Pusher"}}'
    result = run_cli(
        ["verify", "auth", "--socket-id", "1234.1234", "--channel", "presence-foobar",
         "--channel-data", spaced, "--auth", f"{KEY}:{V3_SIG}"]
    )  # fmt: skip
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "✗ does not verify"
    assert lines[4] == (
        '  signed instead  "1234.1234:presence-foobar:{\\"user_id\\":10,\\"user_info\\":'
        '{\\"name\\":\\"Mr. Pusher\\"}}"'
    )
    assert lines[5].startswith("  ✗ channel_data: channel_data was re-serialized")
    assert result.stderr == (
        "error: the signature does not verify (channel_data)\n"
        "hint: the findings marked ✗ name what differs and how to fix it\n"
    )


def test_cli_api_json(vector_env: Path, tmp_path: Path) -> None:
    (tmp_path / "body.json").write_text(V4_BODY)
    result = run_cli(
        ["verify", "api", "--json", "--at", "1353088179", "--path",
         f"/apps/3/events?{V4_QUERY}&auth_signature={V4_SIG}", "--body", "@body.json"]
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout
    document = json.loads(result.stdout)
    assert document["verifies"] is True
    assert document["string_to_sign"] == f"POST\n/apps/3/events\n{V4_QUERY}"
    assert document["facts"]["timestamp_skew_seconds"] == 0


def test_cli_api_body_nested_too_deeply_is_a_finding_not_a_crash(
    vector_env: Path, tmp_path: Path
) -> None:
    (tmp_path / "body.json").write_text("[" * 5000 + "]" * 5000)
    result = run_cli(
        ["verify", "api", "--at", "1353088179", "--path",
         f"/apps/3/events?{V4_QUERY}&auth_signature={V4_SIG}", "--body", "@body.json"]
    )  # fmt: skip
    assert result.exit_code == 1
    assert "  ✗ body_md5: body_md5 is ec365a775a4cd0599faeb73354201b6f" in result.stdout
    assert result.stderr == (
        "error: the signature does not verify (body_md5)\n"
        "hint: the findings marked ✗ name what differs and how to fix it\n"
    )


def test_cli_api_json_not_verifying_exits_1_with_the_verdict(vector_env: Path) -> None:
    result = run_cli(
        ["verify", "api", "--json", "--path", f"/apps/3/events?{V4_QUERY}&auth_signature={V4_SIG}"]
    )
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["verifies"] is False
    assert [f["part"] for f in document["findings"] if f["blocking"]] == ["body_md5"]
    # the report is the data; the verdict goes to stderr, as every report command ends
    assert result.stderr == (
        "error: the signature does not verify (body_md5)\n"
        'hint: the findings with "blocking": true name what differs and how to fix it\n'
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["auth", "--socket-id", "abc", "--channel", "private-a", "--auth", "k:s"],
         "error: socket id 'abc' is malformed"),
        (["auth", "--socket-id", "1.2", "--channel", "private-a", "--auth", "ks"],
         "error: --auth 'ks' is not KEY:SIGNATURE"),
        (["api", "--path", "/apps/1/events?auth_key=k"],
         "error: the request has no auth_signature parameter: there is nothing to verify"),
        (["api", "--method", "PO ST", "--path", "/apps/1/events?auth_signature=" + "0" * 64],
         "error: --method 'PO ST' is not an HTTP method"),
    ],
)  # fmt: skip
def test_cli_malformed_input_exit_2_before_reading_config(
    tmp_path: Path, args: list[str], message: str
) -> None:
    # No .env here at all: malformed input is named first, not the missing configuration.
    result = run_cli(["verify", *args])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == message


@pytest.mark.parametrize(
    ("body", "setup", "error", "hint"),
    [
        ("@missing.json", None,
         "cannot read body file 'missing.json': No such file or directory",
         "check the path after @ (relative to the current folder)"),
        ("@adir", "folder",
         "cannot read body file 'adir': Is a directory",
         "check the path after @ (relative to the current folder)"),
        ("@latin1.json", "latin-1",
         "body file 'latin1.json' is not UTF-8 text", "an HTTP API body is JSON text"),
        ("@", None, "--body @ names no file", "write --body @request-body.json"),
        # a command line holding bytes that are not UTF-8 arrives as lone surrogates
        ('{"name":"\udce9"}', None, "--body is not UTF-8 text", "an HTTP API body is JSON text"),
    ],
)  # fmt: skip
def test_cli_api_body_that_cannot_be_read_names_body(
    tmp_path: Path, body: str, setup: str | None, error: str, hint: str
) -> None:
    # The errors name --body and a body file, not event data; and come before the configuration.
    if setup == "folder":
        (tmp_path / "adir").mkdir()
    elif setup == "latin-1":
        (tmp_path / "latin1.json").write_bytes('{"name":"é"}'.encode("latin-1"))
    result = run_cli(
        ["verify", "api", "--path", f"/apps/3/events?{V4_QUERY}&auth_signature={V4_SIG}",
         "--body", body]
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr == f"error: {error}\nhint: {hint}\n"
    assert result.stdout == ""


def test_cli_api_body_from_stdin_that_is_not_utf8(tmp_path: Path) -> None:
    # the real entry point: a real stdin, read as bytes (the text layer lets bad bytes through)
    result = subprocess.run(
        [sys.executable, "-m", "rtctl", "verify", "api", "--path",
         f"/apps/3/events?{V4_QUERY}&auth_signature={V4_SIG}", "--body", "-"],
        input='{"name":"é"}'.encode("latin-1"), capture_output=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.decode() == (
        "error: stdin (--body -) is not UTF-8 text\nhint: an HTTP API body is JSON text\n"
    )


def test_cli_api_body_from_stdin_when_there_is_none(tmp_path: Path) -> None:
    # `<&-` closes stdin: Python then has no sys.stdin at all
    result = subprocess.run(
        ["sh", "-c", 'exec "$@" <&-', "sh", sys.executable, "-m", "rtctl", "verify", "api",
         "--path", f"/apps/3/events?{V4_QUERY}&auth_signature={V4_SIG}", "--body", "-"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        "error: --body - reads stdin, and there is none\n"
        "hint: pass the text inline or as --body @request-body.json\n"
    )


def test_cli_json_error_for_malformed_input(tmp_path: Path) -> None:
    result = run_cli(["verify", "auth", "--json", "--socket-id", "x", "--channel", "private-a",
                      "--auth", "k:s"])  # fmt: skip
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["code"] == "invalid_input"


def test_timestamp_now_is_the_default(vector_env: Path) -> None:
    stamp = str(int(time.time()) - 5)
    query = f"auth_key={KEY}&auth_timestamp={stamp}&auth_version=1.0"
    signature = sign(SECRET, f"GET\n/apps/3/channels\n{query}")
    result = run_cli(
        ["verify", "api", "--json", "--method", "GET", "--path",
         f"/apps/3/channels?{query}&auth_signature={signature}"]
    )  # fmt: skip
    assert result.exit_code == 0
    assert 4 <= json.loads(result.stdout)["facts"]["timestamp_skew_seconds"] <= 60
