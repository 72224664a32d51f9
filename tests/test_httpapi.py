"""The HTTP API client never reports success for an answer that is not a working API's."""

from __future__ import annotations

import dataclasses
import http.server
import threading
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from rtctl.config import load_settings
from rtctl.errors import ServerRejected
from rtctl.protocol.httpapi import ApiClient
from rtctl.protocol.validation import Event
from rtctl.runtime import native
from tests.helpers import fresh_credentials, make_server


def test_trigger_on_a_server_whose_app_manager_failed_is_not_success(
    tmp_path: Path, native_soketi: Path
) -> None:
    """A Soketi with an app-manager driver that does not exist boots, then answers the first
    API call with an empty HTTP 200 and exits. A trigger must fail, not count as delivered."""
    server = make_server(tmp_path / "state")
    # rtctl's loader refuses such a driver, so it is swapped in after loading.
    settings = dataclasses.replace(server.settings(), app_manager_driver="local")
    native.start(settings, server.state, timeout=30)
    try:
        with ApiClient(settings, timeout=5) as client, pytest.raises(ServerRejected) as caught:
            client.trigger(Event(("smoke",), "ping", "{}"))
        assert caught.value.message == (
            "the server answered POST /events with HTTP 200 but no JSON body"
        )
        assert caught.value.status == 200
    finally:
        native.stop(server.state)


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every GET like an API with no occupied channels, remembering the query."""

    queries: ClassVar[list[dict[str, list[str]]]] = []

    def do_GET(self) -> None:
        self.queries.append(parse_qs(urlsplit(self.path).query))
        body = b'{"channels": {}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.mark.parametrize(
    ("call", "info"),
    [
        (lambda api: api.channels("presence-room"), ["user_count"]),
        (lambda api: api.channels("private-"), None),
        (lambda api: api.channels(), None),
        (lambda api: api.channel("presence-room"), ["user_count"]),
        (lambda api: api.channel("lobby"), None),
        (lambda api: api.channels("presence-", info="subscription_count"), ["subscription_count"]),
    ],
)
def test_the_client_alone_asks_presence_channels_for_their_user_count(call, info) -> None:
    """The CLI and the gateway pass no info: whether to ask for user_count is decided here."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.queries.clear()
    try:
        env = {**fresh_credentials(), "REALTIME_PORT": str(server.server_address[1])}
        with ApiClient(load_settings(environ=env), timeout=5) as api:
            call(api)
    finally:
        server.shutdown()
        server.server_close()
    assert [query.get("info") for query in _Recorder.queries] == [info]
