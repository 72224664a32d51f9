"""The HTTP API client never reports success for an answer that is not a working API's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rtctl.errors import ServerRejected
from rtctl.protocol.httpapi import ApiClient
from rtctl.protocol.validation import Event
from rtctl.runtime import native
from tests.helpers import make_server


def test_trigger_on_a_server_whose_app_manager_failed_is_not_success(tmp_path: Path) -> None:
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
