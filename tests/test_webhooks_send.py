"""`rtctl webhooks trigger`, `verify` and `replay` against a real small app endpoint that validates
with the `pusher` SDK (tests/webhooks_support.AppServer), and against a real receiver."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rtctl.ops.webhook_receiver import WebhookReceiver
from rtctl.ops.webhook_sender import post
from rtctl.protocol.webhooks import build_body, sample_event, signed_headers
from tests.helpers import free_port, make_server, run_cli, write_env
from tests.webhooks_support import AppServer

PRESENCE_TYPES = [
    "channel_occupied",
    "channel_vacated",
    "member_added",
    "member_removed",
    "client_event",
]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    values = make_server(tmp_path / "unused").env
    write_env(tmp_path / ".env", values)
    return values


def app_for(env: dict[str, str], mode: str = "validate") -> AppServer:
    return AppServer(env["PUSHER_APP_KEY"], env["PUSHER_APP_SECRET"], mode)


# --- trigger --------------------------------------------------------------------------------------


def test_trigger_every_event_type_reaches_the_app_valid(env) -> None:
    with app_for(env) as app:
        result = run_cli(
            ["webhooks", "trigger", *PRESENCE_TYPES, "--channel", "presence-room", "--to", app.url,
             "--user-id", "42", "--event", "client-typing", "--data", '{"on":true}']
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        extra = run_cli(
            ["webhooks", "trigger", "cache_miss", "--channel", "private-cache-x", "--to", app.url]
        )
        count = run_cli(
            ["webhooks", "trigger", "subscription_count", "--channel", "room", "--to", app.url,
             "--subscription-count", "3"]
        )  # fmt: skip
        assert (extra.exit_code, count.exit_code) == (0, 0)
    assert len(app.requests) == 7
    assert all(request.valid is not None for request in app.requests)  # the SDK validated each
    received = [request.valid["events"][0] for request in app.requests]  # type: ignore[index]
    assert received == [
        {"name": "channel_occupied", "channel": "presence-room"},
        {"name": "channel_vacated", "channel": "presence-room"},
        {"name": "member_added", "channel": "presence-room", "user_id": "42"},
        {"name": "member_removed", "channel": "presence-room", "user_id": "42"},
        {"name": "client_event", "channel": "presence-room", "event": "client-typing",
         "data": '{"on":true}', "socket_id": "123.456", "user_id": "42"},
        {"name": "cache_miss", "channel": "private-cache-x"},
        {"name": "subscription_count", "channel": "room", "subscription_count": 3},
    ]  # fmt: skip
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("200 OK  ") and lines[0].endswith(
        "ms  channel_occupied  presence-room"
    )
    assert lines[4].endswith(
        'client_event  presence-room  client-typing  {"on":true}  from 123.456  user 42'
    )
    assert app.requests[0].headers["Content-Type"] == "application/json"


def test_trigger_batch_and_soketi_variant(env) -> None:
    with app_for(env) as app:
        result = run_cli(
            ["webhooks", "trigger", "member_added", "client_event", "--channel", "presence-r",
             "--to", app.url, "--batch", "--soketi", "--json"]
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (request,) = app.requests
    assert request.valid is not None
    assert [event["name"] for event in request.valid["events"]] == ["member_added", "client_event"]
    assert request.valid["events"][1]["data"] == {"hello": "world"}  # Soketi: an object
    assert request.headers["User-Agent"].startswith("SoketiWebhooksAxiosClient/1.0")
    report = json.loads(result.stdout)
    (delivery,) = report["deliveries"]
    assert (delivery["status"], delivery["signature"]) == (200, "valid")
    assert delivery["headers"]["X-Pusher-Key"] == env["PUSHER_APP_KEY"]
    assert len(delivery["events"]) == 2


def test_bad_signature_passes_when_the_app_refuses_it(env) -> None:
    with app_for(env) as app:
        result = run_cli(
            ["webhooks", "trigger", "channel_occupied", "--channel", "c", "--to", app.url,
             "--bad-signature"]
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert app.requests[0].valid is None
    assert result.stdout.startswith("401 Unauthorized  ")
    assert result.stdout.splitlines()[0].endswith("channel_occupied  c (forged signature)")


def test_bad_signature_fails_when_the_app_accepts_it(env) -> None:
    with app_for(env, "naive") as app:
        result = run_cli(
            ["webhooks", "trigger", "channel_occupied", "--channel", "c", "--to", app.url,
             "--bad-signature"]
        )  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: the app answered 200 to a forged webhook: it accepted it\n"
    )


def test_an_app_that_refuses_a_valid_delivery_exits_7(env) -> None:
    with app_for(env, "fail") as app:
        result = run_cli(
            ["webhooks", "trigger", "channel_occupied", "--channel", "c", "--to", app.url]
        )
    assert result.exit_code == 7
    assert result.stdout.splitlines()[1] == '  {"error":"boom"}'
    assert result.stderr.startswith(
        f"error: {app.url} answered 500 Internal Server Error to 1 of 1 deliveries\n"
    )


def test_unreachable_targets_exit_4_with_the_reason(env) -> None:
    port = free_port()  # nothing listens there
    refused = run_cli(
        ["webhooks", "trigger", "channel_occupied", "--channel", "c", "--to",
         f"http://127.0.0.1:{port}/hook"]
    )  # fmt: skip
    assert refused.exit_code == 4
    assert refused.stderr.startswith(f"error: http://127.0.0.1:{port}/hook: connection refused\n")
    with app_for(env, "hang") as app:
        hung = run_cli(
            ["webhooks", "trigger", "channel_occupied", "--channel", "c", "--to", app.url,
             "--timeout", "0.5", "--json"]
        )  # fmt: skip
    assert hung.exit_code == 4
    assert json.loads(hung.stdout)["error"]["message"] == f"{app.url}: no answer within 0.5 s"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["channel_occupied", "--to", "http://127.0.0.1:9/x"], "error: --channel is required"),
        (["channel_occupied", "--channel", "c"], "error: --to is required"),
        (["channel_occupied", "--channel", "c", "--to", "ftp://x"], "error: --to 'ftp://x' is not an http(s) URL"),
        (["member_added", "--channel", "room", "--to", "http://127.0.0.1:9/x"],
         "error: member_added is only sent for presence channels, not 'room'"),
        (["channel_moved", "--channel", "room", "--to", "http://127.0.0.1:9/x"],
         "error: EVENT 'channel_moved' is not a webhook event type"),
        (["client_event", "--channel", "private-x", "--event", "typing", "--to", "http://127.0.0.1:9/x"],
         "error: client event name 'typing' must start with 'client-'"),
    ],
)  # fmt: skip
def test_trigger_bad_input_exits_2(env, args, message) -> None:
    result = run_cli(["webhooks", "trigger", *args])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == message


# --- verify ---------------------------------------------------------------------------------------


def recorded(env: dict[str, str], tmp_path: Path, secret: str | None = None) -> Path:
    """A recording made by a real receiver: two verified deliveries (signed with ``secret``, by
    default the app's) and one it refused."""
    key = env["PUSHER_APP_KEY"]
    signer = secret or env["PUSHER_APP_SECRET"]
    with WebhookReceiver(key, signer) as receiver:
        for name in ("member_added", "client_event"):
            body = build_body([sample_event(name, "presence-r", user_id="1")])
            assert post(receiver.url, body, signed_headers(key, signer, body)).status == 200
        forged = build_body([sample_event("channel_occupied", "x")])
        assert post(receiver.url, forged, signed_headers(key, "wrong", forged)).status == 401
    path = tmp_path / "hooks.ndjson"
    items = [*receiver.received, *receiver.rejected]
    path.write_text("".join(json.dumps(item.to_record()) + "\n" for item in items))
    return path


def test_verify_a_good_recording(env, tmp_path: Path) -> None:
    path = recorded(env, tmp_path)
    lines = path.read_text().splitlines()
    good = tmp_path / "good.ndjson"
    good.write_text("\n".join(lines[:2]) + "\n")
    result = run_cli(["webhooks", "verify", str(good)])
    assert result.exit_code == 0, result.stderr
    out = result.stdout.splitlines()
    assert out[0].startswith(f"✓ {good} record 1: verifies (time_ms ")
    assert out[0].endswith("member_added  presence-r  user 1")
    assert out[1].endswith(
        'client_event  presence-r  client-event  {"hello":"world"}  from 123.456  user 1'
    )


def test_verify_says_why_a_delivery_does_not_verify(env, tmp_path: Path) -> None:
    path = recorded(env, tmp_path)
    record = json.loads(path.read_text().splitlines()[0])
    record["body"] = json.dumps(json.loads(record["body"]))  # parsed and written again
    rewritten = tmp_path / "rewritten.json"
    rewritten.write_text(json.dumps(record))
    result = run_cli(["webhooks", "verify", str(rewritten)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"✗ {rewritten}: does not verify",
        "  - the body was re-serialized (spaces after , and :): the signature matches the bytes "
        "the sender posted, not these",
        "    fix: verify the raw request body, before any JSON parsing or re-encoding",
    ]
    assert result.stderr.splitlines() == [
        "error: 1 of 1 deliveries do not verify: the body was re-serialized (spaces after , and :): "
        "the signature matches the bytes the sender posted, not these",
        "hint: verify the raw request body, before any JSON parsing or re-encoding",
    ]
    whole = run_cli(["webhooks", "verify", str(path), "--json"])
    assert whole.exit_code == 1
    report = json.loads(whole.stdout)
    assert [d["verified"] for d in report["deliveries"]] == [True, True, False]
    assert [f["code"] for f in report["deliveries"][2]["findings"]] == ["bad_signature"]


def test_verify_stale_and_max_age(env, tmp_path: Path) -> None:
    key, secret = env["PUSHER_APP_KEY"], env["PUSHER_APP_SECRET"]
    body = build_body(
        [{"name": "channel_vacated", "channel": "r"}], int(time.time() * 1000) - 900_000
    )
    headers = signed_headers(key, secret, body)
    request = "POST /webhooks HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    raw = request.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    stale = run_cli(["webhooks", "verify", "-"], input=raw.decode())
    assert stale.exit_code == 1
    assert stale.stdout.splitlines()[1] == (
        "  - time_ms is 15 min old: receivers refuse deliveries more than 300 s away (a replayed "
        "or long-delayed delivery, or a wrong clock)"
    )
    relaxed = run_cli(["webhooks", "verify", "-", "--max-age", "0"], input=raw.decode())
    assert relaxed.exit_code == 0
    assert relaxed.stdout.startswith("✓ stdin: verifies (time_ms 15 min old): channel_vacated  r")


def test_verify_a_raw_body_with_its_signature(env, tmp_path: Path) -> None:
    body = build_body([{"name": "channel_occupied", "channel": "r"}])
    signature = signed_headers(env["PUSHER_APP_KEY"], env["PUSHER_APP_SECRET"], body)[
        "X-Pusher-Signature"
    ]
    (tmp_path / "body.json").write_bytes(body + b"\n")  # saved by an editor: a newline more
    result = run_cli(["webhooks", "verify", "body.json", "--signature", signature])
    assert result.exit_code == 1
    assert (
        result.stdout.splitlines()[1]
        == "  - a trailing newline or spaces were added to the body: the signature matches the bytes the sender posted, not these"
    )
    (tmp_path / "body.json").write_bytes(body)
    assert run_cli(["webhooks", "verify", "body.json", "--signature", signature]).exit_code == 0


def test_verify_names_credentials_kept_by_switch(env, tmp_path: Path) -> None:
    """After `rtctl switch pusher`, a delivery signed by the local Soketi names those settings."""
    path = recorded(env, tmp_path)
    switched = run_cli(
        ["switch", "pusher", "--cluster", "eu", "--app-id", "555", "--key", "pusherkey1",
         "--secret", "pushersecret1"]
    )  # fmt: skip
    assert switched.exit_code == 0, switched.stderr
    result = run_cli(["webhooks", "verify", str(path), "--json"])
    findings = json.loads(result.stdout)["deliveries"][0]["findings"]
    assert [f["code"] for f in findings] == ["unknown_key", "other_secret"]
    assert findings[1]["message"] == (
        "signed with the secret of the soketi settings kept by `rtctl switch`, not this app's secret"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "error: hooks.txt is empty"),
        ("GET / HTTP/1.1\nno blank line", "error: hooks.txt: no blank line between the headers and the body"),
        ('{"a": 1}\n{"b": 2}\n', "error: hooks.txt record 1 is not a recorded delivery (an object with headers and body)"),
        ("{nope\n", "error: hooks.txt line 1 is not JSON"),
        ('{"a":' * 100_000 + "\n", "error: hooks.txt line 1 is not JSON"),  # too deep
        ('{"headers": {}, "body": NaN}\n', "error: hooks.txt line 1 is not JSON"),
    ],
)  # fmt: skip
def test_verify_unreadable_input_exits_2(env, tmp_path: Path, content, message) -> None:
    (tmp_path / "hooks.txt").write_text(content)
    result = run_cli(["webhooks", "verify", "hooks.txt"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == message
    missing = run_cli(["webhooks", "verify", "nope.ndjson"])
    assert (missing.exit_code, missing.stderr.splitlines()[0]) == (
        2,
        "error: cannot read nope.ndjson: No such file or directory",
    )


# --- replay ---------------------------------------------------------------------------------------


def test_replay_resigns_with_the_current_secret_and_a_fresh_time(env, tmp_path: Path) -> None:
    path = recorded(env, tmp_path, secret="the-old-secret")  # recorded when the secret differed
    old = [json.loads(line) for line in path.read_text().splitlines()]
    before = int(time.time() * 1000)
    with app_for(env) as app:
        result = run_cli(["webhooks", "replay", str(path), "--to", app.url])
    assert result.exit_code == 0, result.stderr
    assert len(app.requests) == 2  # the refused record is left out
    assert result.stderr == "skipped record 3: refused when recorded (401 bad_signature)\n"
    for request, record in zip(app.requests, old, strict=False):
        assert request.valid is not None  # the SDK validates with today's secret
        assert request.valid["time_ms"] >= before
        assert request.valid["events"] == json.loads(record["body"])["events"]
    assert [line.split("  ")[0] for line in result.stdout.splitlines()] == ["200 OK", "200 OK"]


def test_replay_errors(env, tmp_path: Path) -> None:
    path = recorded(env, tmp_path)
    port = free_port()
    down = run_cli(["webhooks", "replay", str(path), "--to", f"http://127.0.0.1:{port}/x"])
    assert down.exit_code == 4
    assert down.stderr.splitlines()[-2] == f"error: http://127.0.0.1:{port}/x: connection refused"
    only_refused = tmp_path / "refused.ndjson"
    only_refused.write_text(path.read_text().splitlines()[2] + "\n")
    nothing = run_cli(["webhooks", "replay", str(only_refused), "--to", "http://127.0.0.1:9/x"])
    assert nothing.exit_code == 2
    assert (
        nothing.stderr.splitlines()[-2]
        == f"error: {only_refused} holds no verified delivery to replay"
    )
    no_target = run_cli(["webhooks", "replay", str(path)])
    assert (no_target.exit_code, no_target.stderr.splitlines()[0]) == (2, "error: --to is required")
