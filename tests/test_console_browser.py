"""`rtctl console` in a real browser (Debian's Chromium, headless, through Selenium): what a user
sees in each view, against real Soketis. Each view's screenshot is taken here (docs/console.md
shows them: RTCTL_SCREENSHOT_DIR=docs/img refreshes them)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from rtctl.protocol import PusherSocket
from rtctl.protocol.signing import sign
from rtctl.runtime import cluster
from tests.cluster_support import Cluster
from tests.console_support import (
    Console,
    browser_errors,
    running_console,
    screenshot,
    text_of,
    wait_for,
)
from tests.helpers import SoketiServer, run_cli
from tests.listen_support import listening, settings_for

pytestmark = pytest.mark.soketi


@pytest.fixture(scope="module")
def console(soketi: SoketiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with running_console(soketi, tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest.fixture
def page(browser: Any, console: Console) -> Any:
    """The console's page, freshly loaded, on the Overview."""
    browser.get_log("browser")  # what earlier tests' pages logged is not this page's
    browser.get(console.url)
    wait_for(browser, lambda d: text_of(d, "server-state") == "connected", what="connected")
    return browser


@pytest.fixture
def env_here(tmp_path: Path, soketi: SoketiServer) -> Path:
    """A .env for the in-process CLI runs (rtctl emit) of a test."""
    return soketi.write_env(tmp_path / ".env")


def view(driver: Any, name: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f'nav a[data-view="{name}"]').click()
    wait_for(driver, lambda d: d.find_element(By.ID, f"view-{name}").is_displayed())


def watch(driver: Any, channel: str) -> None:
    view(driver, "log")
    field = driver.find_element(By.ID, "watch-channel")
    field.clear()
    field.send_keys(channel)
    driver.find_element(By.CSS_SELECTOR, "#watch-form button[type=submit]").click()
    wait_for(
        driver,
        lambda d: f"subscribed to {channel} " in text_of(d, "log"),
        what=f"subscribed to {channel}",
    )


def log_rows(driver: Any) -> list[dict[str, str]]:
    return list(
        driver.execute_script(
            """return [...document.getElementById('log-rows').children].map(r => ({
                 kind: r.children[1].textContent, channel: r.children[2].textContent,
                 event: r.children[3].textContent, data: r.children[4].textContent}));"""
        )
    )


def row_with(driver: Any, predicate: Callable[[dict[str, str]], bool]) -> dict[str, str] | None:
    return next((row for row in log_rows(driver) if predicate(row)), None)


def name(prefix: str) -> str:
    return f"{prefix}c{secrets.token_hex(4)}"


# --- the token -----------------------------------------------------------------------------------


def test_the_page_without_the_token_is_refused(browser: Any, console: Console) -> None:
    browser.get(console.base + "/")
    assert "a valid access token is required" in browser.find_element(By.TAG_NAME, "body").text
    browser.get(console.base + "/?token=" + "x" * len(console.token))
    assert "a valid access token is required" in browser.find_element(By.TAG_NAME, "body").text


# --- Live log -----------------------------------------------------------------------------------


def test_rtctl_emit_appears_in_the_live_log(
    page: Any, env_here: Path, tmp_path: Path, soketi: SoketiServer
) -> None:
    private, encrypted = name("private-"), name("private-encrypted-")
    watch(page, private)
    watch(page, encrypted)
    result = run_cli(["emit", private, "order-created", "--data", '{"id":42,"total":"9.50"}'])
    assert result.exit_code == 0, result.stderr
    settings = settings_for(soketi)  # with the master key: emit encrypts
    from rtctl.protocol.httpapi import ApiClient
    from rtctl.protocol.validation import Event

    with ApiClient(settings) as api:
        api.trigger(Event((encrypted,), "secret-note", '{"text":"only for the key holder"}'))
    row = wait_for(
        page,
        lambda d: row_with(d, lambda r: r["event"] == "order-created"),
        what="the emitted event",
    )
    assert row == {
        "kind": "event",
        "channel": private,
        "event": "order-created",
        "data": '{"id":42,"total":"9.50"}',
    }
    sealed = wait_for(
        page, lambda d: row_with(d, lambda r: r["event"] == "secret-note"), what="encrypted"
    )
    assert sealed["data"] == '[decrypted] {"text":"only for the key holder"}'  # decrypted
    # filter by event: only the matching row stays
    page.find_element(By.ID, "filter-event").send_keys("order-")
    assert [r["event"] for r in log_rows(page)] == ["order-created"]
    # copy an entry as JSON
    page.execute_cdp_cmd(
        "Browser.grantPermissions",
        {
            "origin": page.current_url.split("/?")[0],
            "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"],
        },
    )
    page.find_element(By.CSS_SELECTOR, "#log-rows .entry button.copy").click()
    copied = page.execute_async_script(
        "const done = arguments[0]; navigator.clipboard.readText().then(done, e => done(String(e)));"
    )
    entry = json.loads(copied)
    assert (entry["kind"], entry["channel"], entry["event"], entry["data"]) == (
        "event",
        private,
        "order-created",
        {"id": 42, "total": "9.50"},
    )
    page.find_element(By.ID, "filter-event").clear()
    page.execute_script("document.getElementById('filter-event').dispatchEvent(new Event('input'))")
    screenshot(page, "live-log", tmp_path)


def test_the_log_drops_the_oldest_rows_and_says_so(page: Any, env_here: Path) -> None:
    channel = name("flood-")
    watch(page, channel)
    page.find_element(By.ID, "pause").click()
    result = run_cli(["emit", channel, "tick", "--data", '{"n":1}', "--count", "700"])
    assert result.exit_code == 0, result.stderr
    wait_for(
        page,
        lambda d: "paused, 500 waiting" in text_of(d, "log-counts"),
        what="500 entries waiting while paused",
    )
    assert not any(r["event"] == "tick" for r in log_rows(page))  # paused: nothing rendered
    page.find_element(By.ID, "pause").click()
    wait_for(page, lambda d: len(log_rows(d)) == 500, what="500 rows")
    notice = text_of(page, "dropped")
    assert "older entries dropped to keep this page responsive (it keeps the newest 500)" in notice
    dropped = int(notice.split(" ", 1)[0])
    assert dropped >= 200  # 700 ticks plus the status lines, 500 kept
    assert [r["event"] for r in log_rows(page)].count("tick") == 500


# --- Event Creator ------------------------------------------------------------------------------


def fill_creator(driver: Any, channels: str, event: str, data: str) -> None:
    view(driver, "creator")
    for field_id, value in (("creator-channels", channels), ("creator-event", event)):
        field = driver.find_element(By.ID, field_id)
        field.clear()
        field.send_keys(value)
    # typing 10 KB key by key takes seconds: paste-like, with the input event the page listens to
    driver.execute_script(
        "const f = document.getElementById('creator-data'); f.value = arguments[0];"
        "f.dispatchEvent(new Event('input'));",
        data,
    )
    driver.find_element(By.ID, "creator-send").click()


def test_event_creator_reaches_rtctl_listen(
    page: Any, env_here: Path, soketi: SoketiServer, tmp_path: Path
) -> None:
    channel = name("private-")
    with PusherSocket(settings_for(soketi)) as witness:
        witness.connect(10)
        witness.subscribe(channel, 10)
        # invalid JSON: an inline error and nothing sent
        fill_creator(page, channel, "greeting", '{"hello": ')
        assert text_of(page, "creator-error").startswith("Data is not JSON: ")
        # over Pusher's 10 KB: an inline error and nothing sent
        fill_creator(page, channel, "greeting", json.dumps({"blob": "x" * 10_300}))
        assert text_of(page, "creator-error") == "Data is 10312 bytes; Pusher's limit is 10240."
        assert witness.recv(1.0) is None
    with listening([channel, "--json", "--count", "1", "--timeout", "30"], tmp_path) as listener:
        listener.wait_stderr(f"listening on {channel}")
        fill_creator(page, channel, "greeting", '{"hello": "from the browser"}')
        line = listener.stdout_line(15)
    event = json.loads(line)
    assert (event["channel"], event["event"], event["data"]) == (
        channel,
        "greeting",
        {"hello": "from the browser"},
    )
    wait_for(page, lambda d: text_of(d, "creator-result").startswith("Sent greeting to "))
    assert text_of(page, "creator-error") == ""
    screenshot(page, "event-creator", tmp_path)


# --- Channels -----------------------------------------------------------------------------------


def channel_row(driver: Any, channel: str) -> list[str] | None:
    """The cells of a channel's row, read at once (the table is rebuilt every 3 s)."""
    return driver.execute_script(  # type: ignore[no-any-return]
        "const r = document.querySelector(`#channels tr[data-channel='${arguments[0]}']`);"
        "return r ? [...r.cells].map(c => c.innerText) : null;",
        channel,
    )


def test_channels_show_a_presence_member(page: Any, soketi: SoketiServer, tmp_path: Path) -> None:
    room, lobby = name("presence-"), name("lobby-")
    with PusherSocket(settings_for(soketi), user_id="ann", user_info={"name": "Ann"}) as ann:
        ann.connect(10)
        ann.subscribe(room, 10)
        ann.subscribe(lobby, 10)
        view(page, "channels")
        cells = wait_for(page, lambda d: channel_row(d, room), what="the presence channel row")
        assert cells[:5] == [room, "presence", "1", "1", "ann"]
        assert (channel_row(page, lobby) or [])[:3] == [lobby, "public", "1"]
        # watching the room shows the members with their user_info (the console joins too)
        page.execute_script(
            "document.querySelector(`#channels tr[data-channel='${arguments[0]}'] button`).click()",
            room,
        )
        cells = wait_for(
            page,
            lambda d: (row := channel_row(d, room)) and 'ann {"name":"Ann"}' in row[4] and row,
            what="member info",
        )
        assert cells[3] == "2"  # ann and the console itself
        assert cells[4] == 'ann {"name":"Ann"}, rtctl-console {"name":"rtctl console"}'
        assert cells[5] == "watching"
        screenshot(page, "channels", tmp_path)


# --- Signature explainer ------------------------------------------------------------------------


def test_signature_explainer_names_the_reserialized_channel_data(
    page: Any, soketi: SoketiServer, tmp_path: Path
) -> None:
    signed = '{"user_id":"7","user_info":{"name":"Ann"}}'
    signature = sign(soketi.secret, f"1234.5678:presence-room:{signed}")
    view(page, "explainer")
    form = page.find_element(By.ID, "auth-form")
    for field, value in (
        ("socket_id", "1234.5678"),
        ("channel", "presence-room"),
        ("auth", f"{soketi.key}:{signature}"),
        ("channel_data", '{"user_id": "7", "user_info": {"name": "Ann"}}'),
    ):
        form.find_element(By.NAME, field).send_keys(value)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(page, lambda d: d.find_element(By.ID, "explain-result").is_displayed())
    assert text_of(page, "explain-verdict") == "✗ does not verify"
    assert text_of(page, "explain-signed") == json.dumps(f"1234.5678:presence-room:{signed}")
    findings = text_of(page, "explain-findings")
    assert findings.startswith(
        "channel_data: channel_data was re-serialized between signing and sending (spaces)"
    )
    assert soketi.secret not in page.page_source
    screenshot(page, "signature-explainer", tmp_path)
    # malformed input: the message, no verdict
    form.find_element(By.NAME, "socket_id").clear()
    form.find_element(By.NAME, "socket_id").send_keys("abc")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(page, lambda d: "socket id 'abc' is malformed" in text_of(d, "explain-error"))
    assert not page.find_element(By.ID, "explain-result").is_displayed()


# --- Overview (last: the chart has history by now) ------------------------------------------


# Last of this console's tests: by now the chart has a minute of history and some traffic.
def test_overview_shows_the_server_its_health_and_a_live_chart(
    page: Any, soketi: SoketiServer, tmp_path: Path
) -> None:
    assert text_of(page, "provider") == "Soketi"
    app = text_of(page, "app-facts")
    assert f"App id\n{soketi.app_id}" in app and f"Key\n{soketi.key}" in app
    assert f"HTTP API\nhttp://127.0.0.1:{soketi.port}" in text_of(page, "endpoint-facts")
    health = wait_for(
        page, lambda d: "/ready" in text_of(d, "health-facts") and text_of(d, "health-facts")
    )
    assert "/ready\n200 OK" in health and "/accept-traffic\n200 accepting traffic" in health
    assert f"127.0.0.1:{soketi.port}" in text_of(page, "nodes")
    assert "healthy" in text_of(page, "nodes")
    # the chart: at least two samples of the metrics endpoint (one every 2 s), the console's own
    # socket among the connections
    wait_for(page, lambda d: text_of(d, "now-messages").startswith("now "), 20, "two samples")
    assert int(text_of(page, "now-connections").removeprefix("now ")) >= 1
    drawn = page.execute_script(
        """const c = document.getElementById('chart-connections');
           const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
           let blue = 0; for (let i = 0; i < px.length; i += 4)
             if (px[i] < 90 && px[i + 2] > 180) blue++;
           return blue;"""
    )
    assert drawn > 0, "no line drawn on the connections chart"
    assert browser_errors(page) == []
    screenshot(page, "overview", tmp_path)


# --- a cluster, and the webhooks its nodes send ---------------------------------------------------


def node_rows(driver: Any) -> list[list[str]]:
    return list(
        driver.execute_script(
            "return [...document.querySelectorAll('#nodes tbody tr')]"
            ".map(r => [...r.cells].map(c => c.innerText));"
        )
    )


def test_a_cluster_overview_and_its_webhooks_in_the_live_log(
    browser: Any, redis_cluster: Cluster, tmp_path: Path
) -> None:
    settings = redis_cluster.settings()
    url = redis_cluster.webhook_url
    env = {**redis_cluster.env, **redis_cluster.webhook_env}
    # its state folder: the front door's view of each node, as `rtctl status` has it
    with running_console(env, tmp_path, RTCTL_STATE_DIR=str(redis_cluster.state)) as console:
        browser.get(console.url)
        wait_for(browser, lambda d: text_of(d, "server-state") == "connected", what="connected")
        # Overview: the front door, every node (each with its own figures) and the bus
        rows = wait_for(
            browser,
            lambda d: (r := node_rows(d)) and len(r) == 5 and r[1][3] != "—" and r,
            what="the cluster's rows",
        )
        port = redis_cluster.port
        assert [row[:3] for row in rows] == [
            ["front-door-1", f"127.0.0.1:{port}", "healthy"],
            *[[f"node-{i}", f"127.0.0.1:{port + i}", "healthy"] for i in (1, 2, 3)],
            ["bus", f"127.0.0.1:{redis_cluster.env['RTCTL_BUS_PORT']}", "healthy"],
        ]
        for row in rows[1:4]:
            assert row[3].isdigit() and " in · " in row[4] and row[4].endswith(" out"), row
        assert f"Webhooks\nreceiving at {url} · " in text_of(browser, "endpoint-facts")
        screenshot(browser, "overview-cluster", tmp_path)
        # a presence member joins on node-2: the webhooks the cluster sends appear in the log
        channel = name("presence-")
        node_2 = cluster.node_settings(settings, cluster.plan(settings).nodes[1])
        with PusherSocket(node_2, user_id="ann", user_info={"name": "Ann"}) as ann:
            ann.connect(10)
            ann.subscribe(channel, 10)
            view(browser, "log")

            def webhook(event: str) -> Callable[[Any], dict[str, str] | None]:
                return lambda d: row_with(
                    d,
                    lambda r: (r["kind"], r["channel"], r["event"]) == ("webhook", channel, event),
                )

            occupied = wait_for(browser, webhook("channel_occupied"), what="channel_occupied")
            added = wait_for(browser, webhook("member_added"), what="member_added")
        assert occupied["data"].endswith(
            f',"events":[{{"name":"channel_occupied","channel":"{channel}"}}]}}'
        )
        assert occupied["data"].startswith('{"time_ms":')
        assert added["data"].endswith(
            f',"events":[{{"name":"member_added","channel":"{channel}","user_id":"ann"}}]}}'
        )
        wait_for(browser, webhook("member_removed"), what="member_removed")
        wait_for(browser, webhook("channel_vacated"), what="channel_vacated")
        assert row_with(browser, lambda r: r["data"].startswith(f"receiving webhooks at {url}"))
        assert browser_errors(browser) == []
        screenshot(browser, "live-log-webhooks", tmp_path)
    assert f"receiving webhooks at {url}: they appear in the live log\n" in "".join(console.stderr)


# --- a server that goes away and comes back ------------------------------------------------------


def test_soketi_stopped_and_started_again(
    browser: Any,
    soketi_factory: Callable[..., SoketiServer],
    tmp_path: Path,
) -> None:
    # Its own server (this one is stopped) with a 1 KB event limit, so it also refuses an event
    # that passes Pusher's 10 KB check: the creator must show the server's own message.
    server = soketi_factory(start=False)
    server.soketi_env["SOKETI_EVENT_MAX_SIZE_IN_KB"] = "1"  # for each start of its process
    server.start()
    channel = name("private-")
    with running_console(server, tmp_path) as console:
        browser.get(console.url)
        wait_for(browser, lambda d: text_of(d, "server-state") == "connected", what="connected")
        watch(browser, channel)
        fill_creator(browser, channel, "big", json.dumps({"blob": "x" * 2000}))
        wait_for(browser, lambda d: text_of(d, "creator-error") != "", what="the refusal")
        assert text_of(browser, "creator-error").startswith(
            "the server refused POST /events (413): The event data should be less than 1 KB."
        )
        server.stop()
        wait_for(browser, lambda d: text_of(d, "server-state") == "server down", 20, "down")
        assert text_of(browser, "banner").startswith("The server is unreachable: ")
        view(browser, "log")
        assert row_with(browser, lambda r: r["data"].startswith("connection lost: "))
        server.start()
        wait_for(browser, lambda d: text_of(d, "server-state") == "connected", 30, "recovery")
        assert text_of(browser, "banner") == (
            "The server is back: the console reconnected and resubscribed."
        )
        wait_for(
            browser,
            lambda d: sum(f"subscribed to {channel} " in r["data"] for r in log_rows(d)) == 2,
            what="resubscribed",
        )
        fill_creator(browser, channel, "after-restart", '{"ok":true}')
        view(browser, "log")
        wait_for(
            browser,
            lambda d: row_with(d, lambda r: r["kind"] == "event" and r["event"] == "after-restart"),
            what="an event after the restart",
        )
