"""`rtctl webhooks listen` and its receiver, against a real Soketi started with webhook settings
from .env (REALTIME_WEBHOOK_URL), sending real webhooks."""

from __future__ import annotations

import http.client
import json
import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from rtctl.errors import Conflict
from rtctl.ops.webhook_receiver import WebhookReceiver
from rtctl.protocol import PusherSocket
from rtctl.protocol.webhooks import Delivery, build_body, signed_headers
from tests.helpers import SoketiServer, free_port, run_cli
from tests.webhooks_support import AppServer, ListenProcess, presence_round, pusher_js_client_events

pytestmark = pytest.mark.soketi


@pytest.fixture(scope="module")
def hooked(soketi_factory: Callable[..., SoketiServer]) -> SoketiServer:
    """A Soketi whose .env sends every webhook to 127.0.0.1:<port>/webhooks."""
    return soketi_factory(REALTIME_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/webhooks")


@pytest.fixture(scope="module")
def batching(soketi_factory: Callable[..., SoketiServer]) -> SoketiServer:
    """Batching on, and a hand-written SOKETI_DEFAULT_APP_WEBHOOKS with two webhooks: ours wants
    channel_occupied only, another (nobody listens there) member_added."""
    ours, other = free_port(), free_port()
    webhooks = [
        {"url": f"http://127.0.0.1:{ours}/hooks", "event_types": ["channel_occupied"]},
        {"url": f"http://127.0.0.1:{other}/hooks", "event_types": ["member_added"]},
    ]
    return soketi_factory(
        SOKETI_DEFAULT_APP_WEBHOOKS=json.dumps(webhooks),
        REALTIME_WEBHOOK_BATCHING="true",
        REALTIME_WEBHOOK_BATCHING_MS="300",
    )


def receiver_port(server: SoketiServer) -> int:
    url = (
        server.env.get("REALTIME_WEBHOOK_URL")
        or json.loads(server.env["SOKETI_DEFAULT_APP_WEBHOOKS"])[0]["url"]
    )
    return int(url.split(":")[2].split("/")[0])


def listen(server: SoketiServer, folder: Path, *args: str) -> ListenProcess:
    env_file = server.write_env(folder / ".env")
    return ListenProcess(["--env-file", str(env_file), "webhooks", "listen", *args], folder).start()


def names(lines: list[dict]) -> list[str]:
    return [line["event"]["name"] for line in lines]


# --- real webhooks --------------------------------------------------------------------------------


def test_listen_prints_every_webhook_a_real_soketi_sends(
    hooked: SoketiServer, tmp_path: Path
) -> None:
    proc = listen(hooked, tmp_path, "--json", "--count", "5", "--timeout", "30")
    try:
        presence_round(hooked, "presence-room-a", user_id="42", client_data={"a": 1})
        assert proc.wait() == 0, proc.stderr_lines
        lines = proc.json_lines(5)
    finally:
        proc.stop()
    assert proc.stderr_lines[0] == (
        f"listening on http://127.0.0.1:{receiver_port(hooked)}/webhooks (verifying for app key "
        f"{hooked.key}); Ctrl-C stops"
    )
    # Soketi posts each webhook on its own request: arrival order is not guaranteed
    assert sorted(names(lines)) == [
        "channel_occupied", "channel_vacated", "client_event", "member_added", "member_removed"
    ]  # fmt: skip
    by_name = {line["event"]["name"]: line for line in lines}
    assert by_name["member_added"]["event"] == {
        "name": "member_added",
        "channel": "presence-room-a",
        "user_id": "42",
    }
    client = by_name["client_event"]["event"]
    assert (client["event"], client["data"], client["user_id"]) == ("client-hi", {"a": 1}, "42")
    assert re.fullmatch(r"[0-9]+\.[0-9]+", client["socket_id"])
    for line in lines:
        assert 0 <= line["latency_ms"] < 10_000
        assert (line["index"], line["batch"]) == (0, 1)
    assert [line["delivery"] for line in lines] == [1, 2, 3, 4, 5]


def test_human_lines_for_a_pusher_js_client(hooked: SoketiServer, tmp_path: Path) -> None:
    """A real third-party client (pusher-js) joins, sends two client events and leaves."""
    proc = listen(hooked, tmp_path, "--count", "6", "--timeout", "30")
    try:
        pusher_js_client_events(hooked, "presence-room-js", "7", count=2)
        assert proc.wait() == 0, proc.stderr_lines
        lines = proc.rest()
    finally:
        proc.stop()
    clock = r"\d\d:\d\d:\d\d\.\d{3}"
    # each webhook is its own request: lines come in arrival order, not necessarily event order
    assert any(
        re.fullmatch(rf"{clock}  channel_occupied  presence-room-js  \(\d+ ms\)", line)
        for line in lines
    ), lines
    assert any(
        re.fullmatch(rf"{clock}  member_added  presence-room-js  user 7  \(\d+ ms\)", line)
        for line in lines
    ), lines
    client = sorted(line for line in lines if "client_event" in line)
    assert len(client) == 2
    assert any(
        re.fullmatch(
            rf'{clock}  client_event  presence-room-js  client-note  {{"from": "pusher-js", "i": 0}}  '
            rf"from \d+\.\d+  user 7  \(\d+ ms\)",
            line,
        )
        for line in client
    ), client


def test_library_api_collects_without_losing_a_delivery(hooked: SoketiServer) -> None:
    """Start on a port, collect verified deliveries, stop: 40 channels opened and closed by
    one socket give 80 webhooks, every one collected once."""
    seen: list[str] = []
    with WebhookReceiver(
        hooked.key, hooked.secret, port=receiver_port(hooked), on_delivery=lambda r: seen.append(r.events[0]["name"])
    ) as receiver:  # fmt: skip
        with PusherSocket(hooked.settings()) as sock:
            sock.connect(10)
            channels = [f"burst-{i}" for i in range(40)]
            for channel in channels:
                sock.subscribe(channel, 10)
            for channel in channels:
                sock.unsubscribe(channel)
            got = receiver.collect(80, timeout=30)
        assert receiver.rejected == []
    events = [(r.events[0]["name"], r.events[0]["channel"]) for r in got]
    assert sorted(events) == sorted(
        [("channel_occupied", c) for c in channels] + [("channel_vacated", c) for c in channels]
    )
    assert sorted(r.seq for r in got) == list(range(1, 81))
    assert len(seen) == 80
    record = got[0].to_record()
    assert (record["status"], record["method"], record["path"]) == (200, "POST", "/webhooks")
    assert json.loads(record["body"])["events"] == list(got[0].events)
    assert record["headers"]["X-Pusher-Key"] == hooked.key


def test_a_second_receiver_on_the_same_port_is_refused(
    hooked: SoketiServer, tmp_path: Path
) -> None:
    with WebhookReceiver(hooked.key, hooked.secret, port=receiver_port(hooked)):
        with pytest.raises(Conflict) as busy:
            WebhookReceiver(hooked.key, hooked.secret, port=receiver_port(hooked)).start()
        assert busy.value.message == f"port {receiver_port(hooked)} on 127.0.0.1 is already in use"
        env_file = hooked.write_env(tmp_path / ".env")
        result = run_cli(["--env-file", str(env_file), "webhooks", "listen", "--timeout", "1"])
    assert result.exit_code == 9
    assert result.stderr.splitlines()[0] == (
        f"error: port {receiver_port(hooked)} on 127.0.0.1 is already in use"
    )


def test_stop_ends_kept_alive_connections_so_a_new_receiver_gets_their_next_delivery() -> None:
    """Soketi's HTTP client keeps connections alive: a stopped receiver must close them, or the
    next deliveries go to it over them, never to the receiver started next on its port."""
    key, secret, port = "key", "secret", free_port()

    def post(connection: http.client.HTTPConnection, channel: str) -> int:
        body = build_body([{"name": "channel_occupied", "channel": channel}])
        connection.request("POST", "/webhooks", body, signed_headers(key, secret, body))
        response = connection.getresponse()
        response.read()
        return response.status

    first = WebhookReceiver(key, secret, port=port).start()
    kept = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        assert post(kept, "one") == 200
        first.stop()
        second = WebhookReceiver(key, secret, port=port).start()
        try:
            # the kept connection was closed by the stopped receiver: the client notices and
            # connects again (to the new one), as Soketi's does
            with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
                post(kept, "two")
            kept.close()
            assert post(kept, "two") == 200
            assert [r.events[0]["channel"] for r in second.received] == ["two"]
        finally:
            second.stop()
    finally:
        kept.close()
    assert [r.events[0]["channel"] for r in first.received] == ["one"]


def test_batching_mixes_event_types_past_the_filter(batching: SoketiServer) -> None:
    """Our webhook wants channel_occupied only, but with batching Soketi posts the whole batch
    (member_added was queued for the other webhook). Also: a hand-written
    SOKETI_DEFAULT_APP_WEBHOOKS reaches the native Soketi."""
    with WebhookReceiver(
        batching.key, batching.secret, port=receiver_port(batching), path="/hooks"
    ) as receiver:
        presence_round(batching, "presence-batched", user_id="5")
        got = receiver.collect(1, timeout=10)
        got += receiver.collect(1, timeout=2)  # the leave, if it fell into a later batch
    events = [e["name"] for r in got for e in r.events]
    assert "channel_occupied" in events
    assert "member_added" in events  # not wanted, yet delivered: the documented leak
    assert max(len(r.events) for r in got) >= 2


# --- bad input ------------------------------------------------------------------------------------


def raw_post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", path, body, headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def raw_exchange(port: int, data: bytes, half_close: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_any_path_and_a_chosen_status_for_a_verified_delivery() -> None:
    """``path=None`` receives at any path; ``status_of`` answers a verified delivery with its own
    status (a 500 to see whether the sender retries), and the delivery is still collected with
    that status in its record."""
    key, secret, port = "key", "secret", free_port()

    def status_of(delivery: Delivery) -> int:
        return 500 if delivery.events[0]["channel"] == "fail" else 200

    def post(path: str, channel: str, sign_with: str = key) -> tuple[int, dict]:
        body = build_body([{"name": "channel_occupied", "channel": channel}])
        return raw_post(port, path, body, signed_headers(sign_with, secret, body))

    with WebhookReceiver(key, secret, port=port, path=None, status_of=status_of) as receiver:
        assert receiver.url == f"http://127.0.0.1:{port}/"
        assert post("/pusher/webhooks", "fine") == (200, {"ok": True})
        assert post("/", "fail") == (500, {"ok": False})
        assert post("/x", "other-key", sign_with="other")[0] == 401
        got = receiver.collect(2, timeout=5)
    assert [(r.path, r.events[0]["channel"], r.status) for r in got] == [
        ("/pusher/webhooks", "fine", 200),
        ("/", "fail", 500),
    ]
    assert [(r.to_record()["status"], r.to_record()["path"]) for r in got] == [
        (200, "/pusher/webhooks"),
        (500, "/"),
    ]
    assert [(r.status, r.code) for r in receiver.rejected] == [(401, "unknown_key")]


def test_every_bad_input_gets_its_status_and_one_line(hooked: SoketiServer, tmp_path: Path) -> None:
    port = receiver_port(hooked)
    proc = listen(hooked, tmp_path, "--json", "--max-body", "2000", "--record", "hooks.ndjson")
    key, secret = hooked.key, hooked.secret
    body = build_body([{"name": "channel_occupied", "channel": "x"}])
    good = signed_headers(key, secret, body)
    try:
        statuses = {
            "unsigned": raw_post(port, "/webhooks", body, {"Content-Type": "application/json"}),
            "forged": raw_post(port, "/webhooks", body, signed_headers(key, "not-the-secret", body)),
            "other key": raw_post(port, "/webhooks", body, {**good, "X-Pusher-Key": "other"}),
            "missing signature": raw_post(
                port, "/webhooks", body, {k: v for k, v in good.items() if k != "X-Pusher-Signature"}
            ),
            "non-JSON": raw_post(port, "/webhooks", b"hello", signed_headers(key, secret, b"hello")),
            "wrong content type": raw_post(port, "/webhooks", body, {**good, "Content-Type": "text/plain"}),
            "oversized": raw_post(port, "/webhooks", b"x" * 5000, signed_headers(key, secret, b"x" * 5000)),
            "stale": raw_post(
                port, "/webhooks", old := build_body([{"name": "channel_occupied", "channel": "x"}], 1000),
                signed_headers(key, secret, old),
            ),
            "wrong path": raw_post(port, "/other", body, good),
        }  # fmt: skip
        truncated = raw_exchange(
            port,
            b"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 500\r\n\r\n" + body,
        )
        no_length = raw_exchange(port, b"POST /webhooks HTTP/1.1\r\nHost: x\r\n\r\n")
        garbage = raw_exchange(port, b"HELLO\r\n\r\n")
        get = raw_exchange(port, b"GET /webhooks HTTP/1.1\r\nHost: x\r\n\r\n")
        # and the receiver still works: a real webhook is printed
        presence_round(hooked, "presence-after-bad-input", user_id="1")
        shown = [json.loads(proc.line(timeout=15))["event"] for _ in range(4)]
    finally:
        proc.stop()
    assert {
        name: (status, answer["error"]["code"]) for name, (status, answer) in statuses.items()
    } == {
        "unsigned": (401, "unsigned"),
        "forged": (401, "bad_signature"),
        "other key": (401, "unknown_key"),
        "missing signature": (401, "unsigned"),
        "non-JSON": (400, "invalid_body"),
        "wrong content type": (415, "unsupported_content_type"),
        "oversized": (413, "body_too_large"),
        "stale": (401, "stale"),
        "wrong path": (404, "not_found"),
    }
    assert truncated.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b'"code":"truncated_body"' in truncated
    assert no_length.startswith(b"HTTP/1.1 411 Length Required\r\n")
    assert garbage.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert get.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n") and b"Allow: POST" in get
    assert {"name": "channel_occupied", "channel": "presence-after-bad-input"} in shown
    refusals = proc.stderr_lines[1:]
    assert len(refusals) == 13  # one line each
    assert (
        refusals[0]
        == "401 unsigned: POST /webhooks from 127.0.0.1: no X-Pusher-Key and no X-Pusher-Signature header"
    )
    assert (
        refusals[6]
        == "413 body_too_large: POST /webhooks from 127.0.0.1: the body is 5000 bytes, over the 2000-byte limit"
    )
    assert refusals[9] == (
        f"400 truncated_body: POST /webhooks from 127.0.0.1: the body ended after {len(body)} of "
        "500 bytes"
    )
    assert (
        refusals[12]
        == "405 method_not_allowed: GET /webhooks from 127.0.0.1: only POST is accepted at /webhooks"
    )
    records = [json.loads(r) for r in (tmp_path / "hooks.ndjson").read_text().splitlines()]
    assert [r["status"] for r in records[:13]] == [
        401, 401, 401, 401, 400, 415, 413, 401, 404, 400, 411, 400, 405
    ]  # fmt: skip
    assert [r["status"] for r in records[13:]] == [200] * 4
    assert all("presence-after-bad-input" in r["body"] for r in records[13:])


def test_count_and_timeout(hooked: SoketiServer, tmp_path: Path) -> None:
    env_file = hooked.write_env(tmp_path / ".env")
    few = run_cli(
        ["--env-file", str(env_file), "webhooks", "listen", "--count", "3", "--timeout", "0.5"]
    )
    assert few.exit_code == 6
    assert "error: 0 of 3 webhook events arrived within 0.5 s" in few.stderr
    none = run_cli(
        ["--env-file", str(env_file), "webhooks", "listen", "--timeout", "0.5", "--json"]
    )
    assert none.exit_code == 6
    assert json.loads(none.stdout)["error"]["message"] == "no webhook arrived within 0.5 s"


# --- recording and forwarding ---------------------------------------------------------------------


def test_forward_to_a_real_app_and_to_one_that_is_down(
    hooked: SoketiServer, tmp_path: Path
) -> None:
    with AppServer(hooked.key, hooked.secret) as app:
        proc = listen(
            hooked, tmp_path, "--json", "--forward-to", app.url, "--record", "hooks.ndjson"
        )
        try:
            presence_round(hooked, "presence-forward", user_id="3")
            lines = proc.json_lines(8, timeout=20)  # 4 events + 4 forward results
        finally:
            proc.stop()
    events = [line for line in lines if "event" in line]
    forwards = [line["forward"] for line in lines if "forward" in line]
    assert len(events) == 4 and len(forwards) == 4
    assert all(f["status"] == 200 and f["url"] == app.url for f in forwards)
    records = [json.loads(r) for r in (tmp_path / "hooks.ndjson").read_text().splitlines()]
    # the app got the exact bytes and signature Soketi sent, and the SDK validated them
    assert [r.body.decode() for r in app.requests] == [r["body"] for r in records]
    assert [r.headers["X-Pusher-Signature"] for r in app.requests] == [
        r["headers"]["X-Pusher-Signature"] for r in records
    ]
    assert all(request.valid is not None for request in app.requests)
    assert app.requests[0].headers["User-Agent"].startswith("SoketiWebhooksAxiosClient/1.0")

    down = f"http://127.0.0.1:{free_port()}/hook"
    proc = listen(hooked, tmp_path, "--forward-to", down)
    try:
        presence_round(hooked, "presence-forward-down", user_id="3")
        shown = [proc.line(timeout=15) for _ in range(8)]
    finally:
        proc.stop()
    assert [line for line in shown if line.startswith("  -> ")] == [
        f"  -> forward to {down} failed: connection refused"
    ] * 4
    assert len([line for line in shown if not line.startswith("  -> ")]) == 4  # kept running


def test_recorded_deliveries_verify(hooked: SoketiServer, tmp_path: Path) -> None:
    proc = listen(hooked, tmp_path, "--count", "4", "--timeout", "20", "--record", "hooks.ndjson")
    try:
        presence_round(hooked, "presence-recorded", user_id="9")
        assert proc.wait() == 0
    finally:
        proc.stop()
    result = run_cli(["--env-file", ".env", "webhooks", "verify", "hooks.ndjson"])
    assert result.exit_code == 0, result.stdout
    assert len(result.stdout.splitlines()) == 4
    assert all(line.startswith("✓ hooks.ndjson record ") for line in result.stdout.splitlines())


def test_listen_says_when_nothing_is_configured_to_send_here(
    hooked: SoketiServer, tmp_path: Path
) -> None:
    env = {k: v for k, v in hooked.env.items() if k != "REALTIME_WEBHOOK_URL"}
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    proc = ListenProcess(
        ["webhooks", "listen", "--port", "0", "--timeout", "0.3"], tmp_path
    ).start()
    assert proc.wait() == 6
    assert proc.stderr_lines[1].startswith(
        "note: .env sends no webhooks: set REALTIME_WEBHOOK_URL=http://127.0.0.1:"
    )


def test_up_starts_soketi_configured_for_the_receiver(tmp_path: Path) -> None:
    """The developer's flow: `rtctl init --webhooks`, `rtctl up`, `rtctl webhooks listen`."""
    from tests.helpers import make_server

    values = make_server(tmp_path / "unused").env
    assert run_cli(["init", "--webhooks", "--port", values["REALTIME_PORT"]]).exit_code == 0
    text = (tmp_path / ".env").read_text()
    port = free_port()
    text = text.replace("127.0.0.1:6080/webhooks", f"127.0.0.1:{port}/webhooks")
    text = text.replace(
        "SOKETI_METRICS_SERVER_PORT=9601",
        f"SOKETI_METRICS_SERVER_PORT={values['SOKETI_METRICS_SERVER_PORT']}",
    )
    (tmp_path / ".env").write_text(text)
    up = run_cli(["up", "--runtime", "native"])
    try:
        assert up.exit_code == 0, up.stderr
        assert (
            f"webhooks go to http://127.0.0.1:{port}/webhooks (`rtctl webhooks listen` receives them)"
            in up.stderr
        )
        proc = ListenProcess(
            ["webhooks", "listen", "--json", "--count", "1", "--timeout", "20"], tmp_path
        ).start()
        try:
            from rtctl.config import load_settings

            settings = load_settings(tmp_path / ".env", environ={})
            with PusherSocket(settings) as sock:
                sock.connect(10)
                sock.subscribe("up-flow", 10)
                assert proc.wait() == 0, proc.stderr_lines
            assert json.loads(proc.line())["event"] == {
                "name": "channel_occupied",
                "channel": "up-flow",
            }
        finally:
            proc.stop()
    finally:
        assert run_cli(["down"]).exit_code == 0


def test_with_pusher_listen_says_where_webhooks_are_set_and_still_verifies(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "REALTIME_PROVIDER=pusher\nPUSHER_APP_CLUSTER=eu\nPUSHER_APP_ID=123\n"
        "PUSHER_APP_KEY=pusherkey1\nPUSHER_APP_SECRET=pushersecret1\n"
    )
    proc = ListenProcess(
        ["webhooks", "listen", "--port", "0", "--json", "--count", "1"], tmp_path
    ).start()
    try:
        port = int(proc.stderr_lines[0].split(":")[2].split("/")[0])
        body = build_body(
            [{"name": "subscription_count", "channel": "room", "subscription_count": 2}]
        )
        status, _ = raw_post(
            port, "/webhooks", body, signed_headers("pusherkey1", "pushersecret1", body)
        )
        assert status == 200
        assert proc.wait() == 0
        assert json.loads(proc.line())["event"]["subscription_count"] == 2
    finally:
        proc.stop()
    assert proc.stderr_lines[1] == (
        "Pusher posts webhooks to the URL set in its dashboard (your app > Webhooks); it must "
        "reach this receiver (a tunnel to this port)"
    )
