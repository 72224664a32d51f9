"""A ``pusher.Pusher`` server client configured for a test server, that reports refusals the way
it does against Pusher.

Soketi answers every HTTP API error with status 200 and the real status in the JSON body
(``{"error": "...", "code": 413}``), which the pusher SDK returns as if the trigger had worked.
Against Pusher the same request raises (``PusherBadRequest``, ``PusherBadStatus``, ...). The
backend here hands the body's status to the SDK's own response handling, so code under test sees
the exception it would see in production.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pusher

    from rtctl.config import Settings


def _backend_class() -> type:
    from pusher.http import process_response
    from pusher.requests import RequestsBackend

    from rtctl.protocol.httpapi import error_status

    class StatusInBodyBackend(RequestsBackend):
        """RequestsBackend that honours Soketi's status-in-the-body errors."""

        ca_bundle: str | None = None

        def __init__(self, client: Any, **options: Any) -> None:
            super().__init__(client, **options)
            if self.ca_bundle:  # a self-signed TLS server: trust its CA, not the SDK's bundle
                self.options["verify"] = self.ca_bundle

        def send_request(self, request: Any) -> Any:
            response = self.session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                timeout=self.client.timeout,
                **self.options,
            )
            status, text = response.status_code, response.text
            if status == 200:
                with contextlib.suppress(ValueError):  # not JSON: the SDK's handling says so
                    found = error_status(json.loads(text))
                    status = status if found is None else found
            return process_response(status, text)

    return StatusInBodyBackend


def pusher_client(settings: Settings, timeout: float = 10.0) -> pusher.Pusher:
    """``pusher.Pusher`` for these settings (TLS, custom CA and encryption master key included)."""
    import pusher as pusher_sdk

    from rtctl.protocol.httpapi import sdk_options

    backend = type("Backend", (_backend_class(),), {"ca_bundle": settings.ca_bundle})
    return pusher_sdk.Pusher(
        **sdk_options(settings, timeout),
        encryption_master_key_base64=settings.encryption_master_key_base64 or None,
        backend=backend,
    )
