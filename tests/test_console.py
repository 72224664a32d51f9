"""`rtctl console` over HTTP: the access token, other origins, the security headers, no secret in
anything it serves, the JSON API, a busy port (exit 9), a clean stop; the live log's bounded feed."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from rtctl.console.feed import Feed
from rtctl.protocol.signing import sign
from tests.cluster_support import Cluster
from tests.console_support import Console, poll, running_console
from tests.helpers import SoketiServer, free_port, run_cli, write_env
from tests.listen_support import MASTER_KEY

pytestmark = pytest.mark.soketi


@pytest.fixture(scope="module")
def console(soketi: SoketiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with running_console(soketi, tmp_path_factory.mktemp("console")) as running:
        yield running


def get(console: Console, path: str, **headers: str) -> httpx.Response:
    return httpx.get(console.base + path, headers=headers, timeout=10)


def post(console: Console, path: str, body: object, **headers: str) -> httpx.Response:
    headers = {"X-Rtctl-Token": console.token, **headers}
    return httpx.post(console.base + path, json=body, headers=headers, timeout=10)


# --- the token ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/", "/static/console.js", "/api/overview", "/api/stream", "/api/channels", "/nope"],
)
@pytest.mark.parametrize("token", [None, "wrong", ""])
def test_a_missing_or_wrong_token_gets_401(console: Console, path: str, token: str | None) -> None:
    query = "" if token is None else f"?token={token}"
    response = get(console, path + query)
    assert response.status_code == 401
    assert (
        response.text == "a valid access token is required: open the URL `rtctl console` printed\n"
    )


def test_the_printed_url_opens_the_page_with_strict_headers(console: Console) -> None:
    assert console.url.startswith("http://127.0.0.1:")
    response = httpx.get(console.url, timeout=10)
    assert response.status_code == 200
    assert "<title>rtctl console</title>" in response.text
    assert response.headers["content-security-policy"].startswith(
        "default-src 'none'; script-src 'self'"
    )
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    # the page's own script and style load with the same token, and nothing from elsewhere
    assert f'src="/static/console.js?token={console.token}"' in response.text
    assert "://" not in response.text


def test_the_token_header_works_for_the_api(console: Console) -> None:
    response = get(console, "/api/overview", **{"X-Rtctl-Token": console.token})
    assert response.status_code == 200
    assert response.json()["provider"] == "soketi"


# --- other origins ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Origin": "http://evil.test"}, "requests from other origins are refused"),
        ({"Origin": "null"}, "requests from other origins are refused"),
        ({"Sec-Fetch-Site": "cross-site"}, "requests from other sites are refused"),
        ({"Host": "evil.test"}, "this console answers only to a loopback host name"),
    ],
)
def test_other_origins_are_refused_even_with_the_token(
    console: Console, headers: dict[str, str], message: str
) -> None:
    response = httpx.post(
        console.base + "/api/emit",
        json={"channels": "x", "event": "e", "data": "{}"},
        headers={"X-Rtctl-Token": console.token, **headers},
        timeout=10,
    )
    assert (response.status_code, response.text) == (403, message + "\n")


def test_the_pages_own_origin_is_accepted(console: Console) -> None:
    origin = console.base
    response = get(console, "/api/overview", Origin=origin, **{"X-Rtctl-Token": console.token})
    assert response.status_code == 200
    localhost = console.base.replace("127.0.0.1", "localhost")
    response = httpx.get(
        localhost + "/api/overview", headers={"X-Rtctl-Token": console.token}, timeout=10
    )
    assert response.status_code == 200


# --- no secret reaches the browser --------------------------------------------------------------


def test_no_secret_in_anything_the_console_serves(console: Console, soketi: SoketiServer) -> None:
    token = {"X-Rtctl-Token": console.token}
    bodies = [httpx.get(console.url, timeout=10).text]
    for path in ("/static/console.js", "/static/console.css", "/api/overview", "/api/channels"):
        bodies.append(get(console, path, **token).text)
    bodies.append(post(console, "/api/watch", {"channel": "private-secretcheck"}).text)
    bodies.append(
        post(
            console,
            "/api/verify/auth",
            {"socket_id": "1.2", "channel": "private-a", "auth": f"{soketi.key}:{'0' * 64}"},
        ).text
    )
    with httpx.stream("GET", console.base + "/api/stream", headers=token, timeout=10) as stream:
        for chunk in stream.iter_text():
            bodies.append(chunk)
            if "entries" in chunk:
                break
    for body in bodies:
        assert soketi.secret not in body
        assert MASTER_KEY not in body
    overview = json.loads(bodies[3])
    assert overview["key"] == soketi.key  # the key is public (pusher-js has it)
    assert overview["endpoints"]["http_api"] == f"http://127.0.0.1:{soketi.port}"


# --- the JSON API -------------------------------------------------------------------------------


def test_emit_refuses_bad_input_like_rtctl_emit(console: Console) -> None:
    cases = [
        ({"channels": "a", "event": "e", "data": "{nope"}, "event data from --data is not JSON"),
        ({"channels": "a", "event": "e", "data": json.dumps("x" * 10_300)}, "event data is 10302 bytes; the limit is 10240"),
        ({"channels": "bad name", "event": "e", "data": "{}"}, "contains characters Pusher refuses"),
        ({"channels": "a", "event": "pusher:x", "data": "{}"}, "uses a reserved prefix"),
        ({"channels": "a", "data": "{}"}, "event is required"),
    ]  # fmt: skip
    for body, message in cases:
        response = post(console, "/api/emit", body)
        assert response.status_code == 400, body
        assert message in response.json()["error"]["message"]


def test_emit_data_is_json_text_never_a_file_or_stdin_of_the_server(
    console: Console, tmp_path: Path
) -> None:
    # `@file` and `-` are rtctl emit's command-line forms; from a browser they would read the
    # console machine's files and block on its stdin
    secret_file = tmp_path / "server-side.json"
    secret_file.write_text('{"secret": "on the console machine"}')
    for data in (f"@{secret_file}", "-"):
        response = post(console, "/api/emit", {"channels": "a", "event": "e", "data": data})
        assert response.status_code == 400, data
        error = response.json()["error"]
        assert error["message"].startswith("event data from --data is not JSON"), error
        assert error["hint"] == 'the data field is JSON text, e.g. {"text":"hi"}'


def test_emit_sends_and_the_feed_records_it(console: Console, soketi: SoketiServer) -> None:
    response = post(
        console, "/api/emit", {"channels": "feedcheck", "event": "e", "data": '{"n":1}'}
    )
    assert response.status_code == 200
    assert response.json() == {"ok": True, "status": 200, "response": {"ok": True}}


def test_verify_api_endpoint(console: Console, soketi: SoketiServer) -> None:
    query = f"auth_key={soketi.key}&auth_timestamp=1000&auth_version=1.0"
    signature = sign(soketi.secret, f"GET\n/apps/{soketi.app_id}/channels\n{query}")
    response = post(
        console,
        "/api/verify/api",
        {
            "method": "GET",
            "path": f"/apps/{soketi.app_id}/channels?{query}&auth_signature={signature}",
        },
    )
    assert response.status_code == 200
    assert response.json()["verifies"] is True  # Soketi does not check the timestamp
    response = post(
        console, "/api/verify/auth", {"socket_id": "1", "channel": "private-a", "auth": "k:s"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "socket id '1' is malformed"


@pytest.mark.parametrize(
    "body", [b"[" * 100_000 + b"]" * 100_000, b'{"channel": NaN}'], ids=["deep", "nan"]
)
def test_a_body_that_is_not_strict_json_is_a_400(console: Console, body: bytes) -> None:
    response = httpx.post(
        console.base + "/api/watch",
        content=body,
        headers={"X-Rtctl-Token": console.token, "Content-Type": "application/json"},
        timeout=10,
    )
    assert (response.status_code, response.json()) == (
        400,
        {"error": {"message": "the request body is not JSON", "hint": "send a JSON object"}},
    )
    assert "Traceback" not in "".join(console.stderr)


def test_watch_refuses_a_bad_channel_name(console: Console) -> None:
    response = post(console, "/api/watch", {"channel": "no spaces"})
    assert response.status_code == 400
    assert "contains characters Pusher refuses" in response.json()["error"]["message"]


# --- the command --------------------------------------------------------------------------------


def test_a_port_in_use_exits_9(soketi: SoketiServer, tmp_path: Path) -> None:
    soketi.write_env(tmp_path / ".env")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_cli(["console", "--port", str(port)])
    assert result.exit_code == 9
    assert result.stderr == (
        f"error: 127.0.0.1:{port} is already in use\n"
        "hint: stop what listens there, or pick another port with --port (0 picks a free one)\n"
    )
    assert result.stdout == ""


def test_an_address_not_of_this_machine_is_a_usage_error(tmp_path: Path) -> None:
    write_env(
        tmp_path / ".env",
        {"PUSHER_APP_ID": "1", "PUSHER_APP_KEY": "k1a", "PUSHER_APP_SECRET": "s1a"},
    )
    result = run_cli(["console", "--host", "192.0.2.1", "--port", "0"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --host 192.0.2.1 is not an address of this machine\n")


def test_missing_configuration_exits_3(tmp_path: Path) -> None:
    result = run_cli(["console", "--port", "0"])
    assert result.exit_code == 3


def test_stops_cleanly_with_an_event_stream_open(soketi: SoketiServer, tmp_path: Path) -> None:
    # running_console asserts exit 0 within 15 s of SIGTERM; an open stream must not hold it.
    with running_console(soketi, tmp_path, "--json") as running:
        printed = json.loads(running.url)
        assert printed["provider"] == "soketi"
        url = printed["url"]
        running.url = url
        token = {"X-Rtctl-Token": running.token}
        with httpx.stream("GET", running.base + "/api/stream", headers=token, timeout=10) as s:
            next(s.iter_text())
            running.process.terminate()
            assert running.process.wait(timeout=10) == 0


def test_another_loopback_address_answers_to_its_own_name(
    soketi: SoketiServer, tmp_path: Path
) -> None:
    with running_console(soketi, tmp_path, "--host", "127.0.0.2") as running:
        assert running.url.startswith("http://127.0.0.2:")
        token = {"X-Rtctl-Token": running.token}
        assert get(running, "/api/overview", **token).status_code == 200
        refused = get(running, "/api/overview", Host="rebound.example", **token)
        assert refused.status_code == 403


@pytest.mark.parametrize(
    ("base", "status"),
    [
        ("http://127.0.0.1", 200),  # port 80: the browser's Host has no port
        ("http://localhost", 200),
        ("http://[::1]:8090", 200),
        ("http://rebound.example", 403),
        ("http://rebound.example:80", 403),
    ],
)
def test_loopback_host_names_are_answered_with_or_without_a_port(
    soketi: SoketiServer, base: str, status: int
) -> None:
    # Not bound for real (port 80 needs root): the app as it would serve 127.0.0.1:80.
    from starlette.testclient import TestClient

    from rtctl.console.app import create_app

    app, _ = create_app(soketi.settings(), "tok3n", host="127.0.0.1")
    client = TestClient(app, base_url=base)
    answer = client.get("/api/overview", headers={"X-Rtctl-Token": "tok3n"})
    assert answer.status_code == status, answer.text
    if status == 403:
        assert answer.text == "this console answers only to a loopback host name\n"


def test_an_explicit_public_address_is_still_token_guarded(soketi: SoketiServer) -> None:
    # Not bound for real (only loopback is used here): the app as it would serve 192.0.2.10.
    from starlette.testclient import TestClient

    from rtctl.console.app import create_app

    app, _ = create_app(soketi.settings(), "tok3n", host="192.0.2.10")
    client = TestClient(app, base_url="http://console.example:8090")
    assert client.get("/api/overview").status_code == 401
    answer = client.get("/api/overview", headers={"X-Rtctl-Token": "tok3n"})
    assert answer.status_code == 200
    assert answer.json()["provider"] == "soketi"
    assert (
        client.get(
            "/api/overview", headers={"X-Rtctl-Token": "tok3n", "Origin": "http://other.example"}
        ).status_code
        == 403
    )


def test_pusher_provider_overview(pusher_standin, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with running_console(pusher_standin.env(), tmp_path) as running:
        token = {"X-Rtctl-Token": running.token}

        def connected() -> dict | None:
            data = get(running, "/api/overview", **token).json()
            return data if data["connection"]["connected"] else None

        overview = poll(connected)
        assert overview["provider"] == "pusher"
        assert overview["cluster"] == "eu"
        assert overview["health"] is None  # Pusher has no health routes or metrics endpoint
        assert overview["endpoints"]["metrics"] is None
        assert overview["nodes"] == [
            {
                "name": "Pusher cluster eu",
                "kind": "pusher",
                "address": f"https://127.0.0.1:{pusher_standin.server.port}",
                "healthy": None,  # Pusher does not expose its nodes' health
                "evidence": None,
                "connections": None,
                "messages_in": None,
                "messages_out": None,
            }
        ]


# --- the Overview's nodes -----------------------------------------------------------------------


def test_overview_of_a_single_soketi_has_its_health_and_figures(
    console: Console, soketi: SoketiServer
) -> None:
    token = {"X-Rtctl-Token": console.token}
    console_soketi_address = f"127.0.0.1:{soketi.port}"

    def sampled() -> list[dict] | None:
        rows: list[dict] = get(console, "/api/overview", **token).json()["nodes"]
        return rows if rows[0]["healthy"] is not None else None

    rows = poll(sampled)
    [row] = rows
    assert (row["name"], row["kind"], row["address"]) == ("soketi", "node", console_soketi_address)
    assert (row["healthy"], row["evidence"]) == (True, "/ready 200 OK")
    assert row["connections"] >= 1  # the console's own socket
    assert isinstance(row["messages_in"], int) and isinstance(row["messages_out"], int)


def test_overview_of_a_cluster_lists_the_front_door_every_node_and_the_bus(
    redis_cluster: Cluster, use_cluster: Callable[..., Path]
) -> None:
    from rtctl.console.overview import Sampler, nodes
    from rtctl.protocol import PusherSocket
    from rtctl.runtime import cluster

    use_cluster(redis_cluster)  # its state folder: the front door's view of each node
    settings = redis_cluster.settings()
    node_2 = cluster.node_settings(settings, cluster.plan(settings).nodes[1])

    def connections(rows: list[dict]) -> dict[str, int]:
        return {r["name"]: r["connections"] for r in rows if r["kind"] == "node"}

    before = connections(nodes(settings))
    with PusherSocket(node_2) as one, PusherSocket(node_2) as two:
        one.connect(10)
        two.connect(10)
        rows = poll(
            lambda: (
                (r := nodes(settings)) and connections(r)["node-2"] == before["node-2"] + 2 and r
            )
        )
    assert [(r["name"], r["kind"], r["address"], r["healthy"]) for r in rows] == [
        ("front-door-1", "front-door", f"127.0.0.1:{redis_cluster.port}", True),
        *[
            (f"node-{i}", "node", f"127.0.0.1:{redis_cluster.node_port(i)}", True)
            for i in (1, 2, 3)
        ],
        ("bus", "bus", f"127.0.0.1:{redis_cluster.env['RTCTL_BUS_PORT']}", True),
    ]
    assert rows[0]["evidence"] == "routes to 3/3 nodes"
    for row in rows[1:4]:
        assert row["evidence"] == "/ready 200"
        assert isinstance(row["messages_in"], int) and isinstance(row["messages_out"], int)
    assert connections(rows)["node-1"] == before["node-1"]  # each node's own metrics
    # the Overview's chart: the nodes summed, one sample after another
    sampler = Sampler(settings)
    sampler.sample()
    sampler.sample()
    assert sampler.nodes is not None and len(sampler.nodes) == 5
    first, second = sampler.points
    assert second["connections"] == sum(connections(sampler.nodes).values())
    assert first["messages_per_second"] is None and second["messages_per_second"] is not None


# --- webhooks in the live log -------------------------------------------------------------------


def stream_entries(console: Console, wanted: Callable[[list[dict]], bool]) -> list[dict]:
    """Read the live log's stream until ``wanted(entries so far)``."""
    entries: list[dict] = []
    headers = {"X-Rtctl-Token": console.token}
    with httpx.stream("GET", console.base + "/api/stream", headers=headers, timeout=15) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: ["):
                entries += json.loads(line[6:])
                if wanted(entries):
                    return entries
    raise AssertionError(f"the stream ended; entries: {entries}")


def test_verified_and_refused_webhooks_reach_the_live_log(
    soketi: SoketiServer, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}/webhooks"
    env = {**soketi.env, "REALTIME_WEBHOOK_URL": url}
    env_file = write_env(tmp_path / "app.env", env)
    with running_console(env, tmp_path) as running:
        said = f"receiving webhooks at {url}: they appear in the live log\n"
        poll(lambda: said in "".join(running.stderr))
        trigger = ["--env-file", str(env_file), "webhooks", "trigger", "member_added"]
        trigger += ["--channel", "presence-room", "--user-id", "ann", "--to", url]
        for extra in ([], ["--bad-signature"]):
            sent = run_cli([*trigger, *extra])
            assert sent.exit_code == 0, sent.stderr
        hooks = [
            e
            for e in stream_entries(
                running, lambda es: sum(e["kind"] == "webhook" for e in es) == 2
            )
            if e["kind"] == "webhook"
        ]
        overview = get(running, "/api/overview", **{"X-Rtctl-Token": running.token}).json()
    good, forged = hooks
    assert (good["valid"], good["error"], good["channel"], good["event"]) == (
        True,
        None,
        "presence-room",
        "member_added",
    )
    assert good["data"]["events"] == [
        {"name": "member_added", "channel": "presence-room", "user_id": "ann"}
    ]
    assert forged["valid"] is False
    assert forged["error"].startswith("401 ")
    assert forged["data"]["events"] == good["data"]["events"]  # what the forged one claimed
    assert overview["webhooks"] == {
        "configured": True,
        "url": url,
        "targets": [url],
        "receiving": True,
        "error": None,
        "hint": None,
        "deliveries": 1,
        "rejections": 1,
    }


def test_a_busy_webhook_port_is_said_and_the_console_runs_on(
    soketi: SoketiServer, tmp_path: Path
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        url = f"http://127.0.0.1:{port}/webhooks"
        with running_console({**soketi.env, "REALTIME_WEBHOOK_URL": url}, tmp_path) as running:
            token = {"X-Rtctl-Token": running.token}
            webhooks = get(running, "/api/overview", **token).json()["webhooks"]
            assert (webhooks["receiving"], webhooks["error"]) == (
                False,
                f"port {port} on 127.0.0.1 is already in use",
            )
            [error] = [
                e
                for e in stream_entries(running, lambda es: any(e["kind"] == "error" for e in es))
                if e["kind"] == "error"
            ]
            assert error["text"] == (
                f"webhooks are not shown: cannot receive at {url}: port {port} on 127.0.0.1 "
                "is already in use"
            )
            assert error["hint"].startswith("stop what listens there (`rtctl webhooks listen`?)")
            assert get(running, "/api/channels", **token).status_code == 200  # all else works
            warned = (
                f"warning: webhooks are not shown: cannot receive at {url}: port {port} on "
                "127.0.0.1 is already in use\n"
            )
            poll(lambda: warned in "".join(running.stderr))


# --- the feed -----------------------------------------------------------------------------------


def test_feed_keeps_the_newest_entries_and_counts_what_a_reader_missed() -> None:
    feed = Feed(size=5)
    for number in range(1, 9):
        feed.publish("event", channel="c", event="e", data={"n": number})
    texts, dropped, last = feed.since(0)
    assert [json.loads(t)["data"]["n"] for t in texts] == [4, 5, 6, 7, 8]
    assert (dropped, last) == (3, 8)
    texts, dropped, last = feed.since(6)
    assert ([json.loads(t)["seq"] for t in texts], dropped, last) == ([7, 8], 0, 8)
    assert feed.since(8) == ([], 0, 8)
    texts, dropped, _ = feed.since(2, limit=2)
    assert ([json.loads(t)["seq"] for t in texts], dropped) == ([7, 8], 4)
    # a page that outlived an earlier console process reads from the start
    assert [json.loads(t)["seq"] for t in feed.since(50)[0]] == [4, 5, 6, 7, 8]


def test_feed_webhook_seam() -> None:
    feed = Feed()
    feed.publish_webhook(
        [{"name": "channel_occupied", "channel": "private-a"}, {"name": "member_added", "channel": "private-a", "user_id": "1"}],
        valid=True,
        time_ms=1700000000000,
    )  # fmt: skip
    entry = json.loads(feed.since(0)[0][0])
    assert entry["kind"] == "webhook"
    assert (entry["channel"], entry["event"], entry["valid"]) == (
        "private-a",
        "channel_occupied,member_added",
        True,
    )
    assert entry["data"]["events"][1]["user_id"] == "1"
