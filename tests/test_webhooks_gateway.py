"""The gateway's POST /realtime/webhooks: a real Soketi posts real webhooks to a real `rtctl
gateway` process, which verifies them and hands each event to REALTIME_WEBHOOK_HOOK; forged ones
reach no hook; duplicates reach it once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from rtctl.config import load_settings
from rtctl.errors import ConfigError
from rtctl.gateway import create_app
from rtctl.gateway.shared import LocalStore
from rtctl.gateway.webhooks import dedup_keys
from rtctl.protocol.webhooks import build_body, signed_headers
from tests.gateway_support import GatewayProcess, gateway_env
from tests.helpers import SoketiServer, free_port
from tests.waiting import wait_until
from tests.webhooks_support import presence_round

pytestmark = pytest.mark.soketi

HOOK_MODULE = """
import json, os, pathlib

def on_webhook(event, delivery):
    out = pathlib.Path(os.environ["HOOK_OUT"])
    if event.get("channel") == "explode" and not out.with_suffix(".exploded").exists():
        out.with_suffix(".exploded").write_text("once")
        raise RuntimeError("the handler broke")
    with out.open("a") as handle:
        handle.write(json.dumps({"event": event, "time_ms": delivery.time_ms}) + "\\n")
"""


@pytest.fixture(scope="module")
def gateway_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def hooked(soketi_factory: Callable[..., SoketiServer], gateway_port: int) -> SoketiServer:
    return soketi_factory(REALTIME_WEBHOOK_URL=f"http://127.0.0.1:{gateway_port}/realtime/webhooks")


@pytest.fixture(scope="module")
def gateway(
    hooked: SoketiServer, gateway_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, Path]]:
    folder = tmp_path_factory.mktemp("webhook-gateway")
    (folder / "app_hooks.py").write_text(HOOK_MODULE)
    out = folder / "events.ndjson"
    env = gateway_env(
        hooked,
        REALTIME_WEBHOOK_HOOK="app_hooks:on_webhook",
        HOOK_OUT=str(out),
        PYTHONPATH=str(folder),
    )
    process = GatewayProcess(env, port=gateway_port).start(folder)
    try:
        yield process, out
    finally:
        process.stop()


def hooked_events(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def wait_for(out: Path, count: int, timeout: float = 15) -> list[dict]:
    return wait_until(
        lambda: found if len(found := hooked_events(out)) >= count else None,
        timeout,
        lambda: f"the hook got {hooked_events(out)}, not {count} events",
    )


def post(gateway: GatewayProcess, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{gateway.base}/webhooks", content=body, headers=headers, timeout=10)


def test_real_webhooks_reach_the_hook_once_each(gateway, hooked: SoketiServer) -> None:
    process, out = gateway
    before = len(hooked_events(out))
    presence_round(hooked, "presence-gw-room", user_id="8", client_data={"x": 1})
    found = wait_for(out, before + 5)[before:]
    events = sorted(item["event"]["name"] for item in found)
    assert events == [
        "channel_occupied", "channel_vacated", "client_event", "member_added", "member_removed"
    ]  # fmt: skip
    assert all(item["event"]["channel"] == "presence-gw-room" for item in found)
    time.sleep(0.3)
    assert len(hooked_events(out)) == before + 5
    log = process.log()
    assert "webhook member_added  presence-gw-room  user 8" in log


def test_forged_and_malformed_deliveries_reach_no_hook(gateway, hooked: SoketiServer) -> None:
    process, out = gateway
    before = len(hooked_events(out))
    body = build_body([{"name": "channel_occupied", "channel": "forged"}])
    key, secret = hooked.key, hooked.secret
    answers = {
        "forged": post(process, body, signed_headers(key, "guessed-secret", body)),
        "unsigned": post(process, body, {"Content-Type": "application/json"}),
        "other key": post(process, body, {**signed_headers(key, secret, body), "X-Pusher-Key": "k"}),
        "not JSON": post(process, b"{", signed_headers(key, secret, b"{")),
        "wrong type": post(process, body, {**signed_headers(key, secret, body), "Content-Type": "text/plain"}),
        "too large": post(process, b"x" * (1024 * 1024 + 1), signed_headers(key, secret, b"x")),
    }  # fmt: skip
    assert {name: (r.status_code, r.json()["error"]["code"]) for name, r in answers.items()} == {
        "forged": (401, "bad_signature"),
        "unsigned": (401, "unsigned"),
        "other key": (401, "unknown_key"),
        "not JSON": (400, "invalid_body"),
        "wrong type": (415, "unsupported_content_type"),
        "too large": (413, "body_too_large"),
    }
    time.sleep(0.3)
    assert len(hooked_events(out)) == before
    assert "webhook refused from 127.0.0.1: bad_signature" in process.log()


def test_a_delivery_received_twice_reaches_the_hook_once(gateway, hooked: SoketiServer) -> None:
    process, out = gateway
    before = len(hooked_events(out))
    now = int(time.time() * 1000)
    event = {"name": "channel_vacated", "channel": "presence-dup"}

    def send(time_ms: int) -> dict:
        body = build_body([event], time_ms)
        answer = post(process, body, signed_headers(hooked.key, hooked.secret, body))
        assert answer.status_code == 200
        return answer.json()

    assert send(now) == {"ok": True, "events": 1, "duplicates": 0}
    assert send(now) == {"ok": True, "events": 0, "duplicates": 1}  # re-sent as is
    assert send(now + 7) == {"ok": True, "events": 0, "duplicates": 1}  # another node, 7 ms on
    assert send(now + 10_000) == {"ok": True, "events": 1, "duplicates": 0}  # a new vacate
    assert len(hooked_events(out)) == before + 2


def test_a_failing_hook_gets_a_500_and_the_retry_goes_through(
    gateway, hooked: SoketiServer
) -> None:
    process, out = gateway
    body = build_body([{"name": "channel_occupied", "channel": "explode"}])
    headers = signed_headers(hooked.key, hooked.secret, body)
    first = post(process, body, headers)
    assert (first.status_code, first.json()["error"]["code"]) == (500, "webhook_hook_failed")
    retry = post(process, body, headers)  # what Pusher does after a 500
    assert retry.json() == {"ok": True, "events": 1, "duplicates": 0}
    assert hooked_events(out)[-1]["event"] == {"name": "channel_occupied", "channel": "explode"}
    assert "REALTIME_WEBHOOK_HOOK failed on channel_occupied: RuntimeError: the handler broke" in (
        process.log()
    )


# --- in process -----------------------------------------------------------------------------------


def test_dedup_keys_catch_any_pair_closer_than_the_window() -> None:
    event = {"name": "channel_occupied", "channel": "c"}

    def duplicate(first: int, second: int, other: dict | None = None) -> bool:
        store = LocalStore()
        for key in dedup_keys(event, first, 2.0):
            store.seen(key, 60)
        keys = dedup_keys(other or event, second, 2.0)
        return store.seen(keys[0], 60) | store.seen(keys[1], 60)

    for first in (0, 1999, 2000, 5_000_999):
        for delta in (-1999, -1, 0, 1, 1999):
            assert duplicate(first, first + delta), (first, delta)
        assert not duplicate(first, first + 4000)
        assert not duplicate(first, first - 4000)
    assert not duplicate(0, 0, {"name": "channel_occupied", "channel": "d"})


def test_the_local_store_forgets_after_its_window() -> None:
    store = LocalStore()
    assert store.seen("k", 0.05) is False
    assert store.seen("k", 0.05) is True
    time.sleep(0.1)
    assert store.seen("k", 0.05) is False
    store.forget("k")
    assert store.seen("k", 5) is False


def test_a_shared_store_can_be_plugged_in_and_dedup_can_be_off(hooked: SoketiServer) -> None:
    class Recording:
        def __init__(self) -> None:
            self.keys: list[str] = []

        def seen(self, key: str, window_s: float) -> bool:
            self.keys.append(key)
            return False

    store = Recording()
    body = build_body([{"name": "cache_miss", "channel": "cache-x"}])
    headers = signed_headers(hooked.key, hooked.secret, body)
    settings = load_settings(environ=gateway_env(hooked))
    with TestClient(create_app(settings, webhook_seen=store)) as client:
        answer = client.post("/realtime/webhooks", content=body, headers=headers)
    assert answer.json() == {"ok": True, "events": 1, "duplicates": 0}
    assert len(store.keys) == 2 and all(k.startswith("webhook:") for k in store.keys)
    off = load_settings(environ=gateway_env(hooked, REALTIME_WEBHOOK_DEDUP_WINDOW="0"))
    with TestClient(create_app(off)) as client:
        answers = [
            client.post("/realtime/webhooks", content=body, headers=headers).json()
            for _ in range(2)
        ]
    assert answers == [{"ok": True, "events": 1, "duplicates": 0}] * 2


def test_a_hook_that_cannot_load_stops_the_start(hooked: SoketiServer) -> None:
    settings = load_settings(environ=gateway_env(hooked, REALTIME_WEBHOOK_HOOK="no_such_mod_q:f"))
    with pytest.raises(ConfigError) as error:
        create_app(settings)
    assert error.value.message == (
        "REALTIME_WEBHOOK_HOOK module 'no_such_mod_q' cannot be imported: No module named 'no_such_mod_q'"
    )
