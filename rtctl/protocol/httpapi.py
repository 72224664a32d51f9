"""The HTTP API client: requests signed by the ``pusher`` SDK, answers checked by rtctl.

Why not just call the SDK's ``trigger``: Soketi answers every error with HTTP 200 and the real
status in a JSON body (``{"error": ..., "code": 401}``), which the SDK returns as if it were
success; the SDK's ``terminate_user_connections`` posts to a path without ``/apps/{id}``; and its
size check (``sys.getsizeof`` at 30 KB) is neither Pusher's 10 KB nor Soketi's 100 KB. So the SDK
signs (``pusher.http.Request``) and rtctl sends, reads the real status, and raises typed errors.

How a URL is built (as both official server SDKs do): ``{api_base}/apps/{app_id}{path}?{query}``,
where a channel name or user id goes into ``path`` **raw**. Every character Pusher allows in a
name (letters, digits, ``- _ = @ , . ;``) is legal in a URL path, and Soketi does not decode the
path: a percent-encoded ``presence-a%3Db`` would be looked up as that literal name, not as
``presence-a=b``. Names are therefore validated first (anything else is refused before sending),
then placed in the path as they are; the string to sign uses that same path. The query string is
the SDK's: sorted ``key=value`` pairs, values unescaped (``make_query_string``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rtctl.config import Settings
from rtctl.errors import AuthRejected, ServerRejected, Unreachable
from rtctl.protocol.signing import channel_kind
from rtctl.protocol.validation import Event


@dataclass(frozen=True)
class ApiResponse:
    status: int  # the real status: Soketi's body code when it sends one
    data: Any
    date: str | None  # the server's Date header, for clock-skew checks


def error_status(data: Any) -> int | None:
    """Soketi's error body: ``{"error": "...", "code": 4xx}`` with HTTP status 200."""
    if isinstance(data, dict) and "error" in data and isinstance(data.get("code"), int):
        return int(data["code"])
    return None


def sdk_options(settings: Settings, timeout: float) -> dict[str, Any]:
    """What the ``pusher`` SDK's clients take from the settings: the app, its credentials and
    where its HTTP API is (a host, or Pusher's cluster host)."""
    return {
        "app_id": settings.app_id,
        "key": settings.key,
        "secret": settings.secret,
        "ssl": settings.tls,
        "host": settings.api_host,
        "port": settings.port,
        "timeout": timeout,
    }


class ApiClient:
    """The signed HTTP API of one app (``settings``: provider, host or cluster, credentials).

    Publishing (``trigger``, ``trigger_batch``: encrypted channels are encrypted here), reading
    (``channels``, ``channel``, ``users``) and ``terminate``. Every refusal is a typed error
    (``AuthRejected``, ``ServerRejected`` with the real status, ``Unreachable``), including the
    ones Soketi sends with HTTP 200. Holds one HTTP session: use it as a context manager, or
    ``close`` it; one client per thread.
    """

    def __init__(self, settings: Settings, timeout: float = 10.0) -> None:
        import requests
        from pusher.pusher_client import PusherClient

        self.settings = settings
        self.timeout = timeout
        self._sdk = PusherClient(**sdk_options(settings, timeout))
        self._session = requests.Session()
        # requests re-reads proxy variables from the environment on every request (about 15 % of
        # the CPU of a batch_events call); read them once here instead, for this one API host.
        self._session.trust_env = False
        self._session.proxies = requests.utils.get_environ_proxies(settings.api_base)
        self._session.verify = (
            settings.ca_bundle
            or os.environ.get("REQUESTS_CA_BUNDLE")
            or os.environ.get("CURL_CA_BUNDLE")
            or True
        )
        self._session.headers["User-Agent"] = "rtctl"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- transport -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        expect_json: bool = True,
    ) -> ApiResponse:
        """Send one signed request to ``/apps/{id}{path}``; raise a typed error on any refusal.

        ``expect_json=False`` hands a non-JSON success back to callers that diagnose it (doctor).
        """
        import requests
        from pusher.http import Request

        full_path = f"/apps/{self.settings.app_id}{path}"
        signed = Request(self._sdk, method, full_path, dict(params or {}))
        url = f"{self.settings.api_base}{signed.signed_path}"
        try:
            response = self._session.request(
                method, url, data=signed.body, headers=signed.headers, timeout=self.timeout
            )
        except requests.exceptions.SSLError as exc:
            raise Unreachable(
                f"TLS handshake with {self.settings.api_base} failed: {_reason(exc)}",
                hint="for a self-signed server set RTCTL_CA_BUNDLE to its CA certificate",
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise Unreachable(
                f"cannot reach the HTTP API at {self.settings.api_base}: {_reason(exc)}",
                hint="is the server running? `rtctl status` shows it, `rtctl up` starts one",
            ) from exc
        try:
            data: Any = response.json() if response.content else None
        except ValueError:
            data = response.text
        status = error_status(data) or response.status_code
        result = ApiResponse(status, data, response.headers.get("Date"))
        if status >= 300:
            raise _refusal(status, data, method, path)
        if expect_json and not isinstance(data, (dict, list)):
            # Success is always a JSON document (Pusher `{}`, Soketi `{"ok":true}`). An empty or
            # non-JSON 200 comes from a server that is not handling the request, e.g. a Soketi
            # whose app manager failed: never report that as delivered.
            raise ServerRejected(
                f"the server answered {method} {path} with HTTP {status} but no JSON body",
                hint="this is not a working Pusher-compatible API: check `rtctl doctor` and `rtctl logs`",
                status=status,
            )
        return result

    # --- publishing ------------------------------------------------------------------------------

    def _wire_data(self, channel: str, data: str) -> str:
        if channel_kind(channel) == "private-encrypted":
            from rtctl.protocol.crypto import encrypt, require_master_key

            return encrypt(channel, data, require_master_key(self.settings.master_key, channel))
        return data

    def trigger(self, event: Event) -> ApiResponse:
        params: dict[str, Any] = {
            "name": event.name,
            "channels": list(event.channels),
            "data": self._wire_data(event.channels[0], event.data),
        }
        if event.socket_id:
            params["socket_id"] = event.socket_id
        return self.request("POST", "/events", params)

    def trigger_batch(self, events: Sequence[Event]) -> ApiResponse:
        batch = []
        for event in events:
            item: dict[str, Any] = {
                "channel": event.channels[0],
                "name": event.name,
                "data": self._wire_data(event.channels[0], event.data),
            }
            if event.socket_id:
                item["socket_id"] = event.socket_id
            batch.append(item)
        return self.request("POST", "/batch_events", {"batch": batch})

    # --- reading ---------------------------------------------------------------------------------

    def channels(self, prefix: str | None = None, info: str | None = None) -> dict[str, Any]:
        """Occupied channels, optionally those starting with ``prefix``; a ``presence-`` prefix
        also asks for each channel's user count unless ``info`` says otherwise."""
        params = {}
        if prefix:
            params["filter_by_prefix"] = prefix
        info = _default_info(prefix or "", info)
        if info:
            params["info"] = info
        data = self.request("GET", "/channels", params).data
        return dict((data or {}).get("channels", {}))

    def channel(self, name: str, info: str | None = None) -> dict[str, Any]:
        """One channel; presence channels also report their user count unless ``info`` says."""
        from rtctl.protocol.validation import validate_channel

        validate_channel(name)
        info = _default_info(name, info)
        params = {"info": info} if info else {}
        # The name goes into the path raw (see the module docstring): validated above.
        return dict(self.request("GET", f"/channels/{name}", params).data or {})

    def users(self, channel: str) -> list[str]:
        """The user ids on a presence channel (refused locally for any other kind)."""
        from rtctl.errors import InvalidInput
        from rtctl.protocol.validation import validate_channel

        validate_channel(channel)
        if channel_kind(channel) != "presence":
            raise InvalidInput(
                f"{channel!r} is not a presence channel: only presence channels have users",
                hint="presence channel names start with presence-",
            )
        data = self.request("GET", f"/channels/{channel}/users").data or {}
        return [str(user.get("id")) for user in data.get("users", [])]

    def terminate(self, user_id: str) -> ApiResponse:
        """Close a user's signed-in connections, on the documented path with ``/apps/{id}`` (the
        Python SDK's own method omits it and Soketi answers 404; the Node SDK's is right)."""
        from rtctl.protocol.validation import validate_user_id

        validate_user_id(user_id)
        return self.request("POST", f"/users/{user_id}/terminate_connections", {})


def _default_info(name: str, info: str | None) -> str | None:
    """Presence channels (or a presence- prefix) have a user count worth asking for; Pusher
    refuses ``info=user_count`` for any other kind, so it is asked for nowhere else."""
    if info is None and channel_kind(name) == "presence":
        return "user_count"
    return info


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in (
        "Connection refused",
        "timed out",
        "Name or service not known",
        "certificate verify failed",
    ):
        if marker in text:
            return marker
    return text.splitlines()[0][:160] if text else type(exc).__name__


def _refusal(status: int, data: Any, method: str, path: str) -> Exception:
    if isinstance(data, dict):
        message = str(data.get("error") or data.get("message") or json.dumps(data))
    else:
        message = (str(data or "").strip() or f"HTTP {status}")[:300]
    if status in (401, 403):
        return AuthRejected(
            f"the server refused our credentials ({status}): {message}",
            hint="PUSHER_APP_KEY/PUSHER_APP_SECRET must match the server's app (`rtctl doctor`)",
        )
    if status == 404 and "could not be found" in message:
        return AuthRejected(
            f"the server does not know this app ({status}): {message}",
            hint="PUSHER_APP_ID must match the server's app id (`rtctl doctor`)",
        )
    return ServerRejected(
        f"the server refused {method} {path} ({status}): {message}",
        hint="the message above is the server's own; fix the request it names",
        status=status,
    )
