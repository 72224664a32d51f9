"""Asking an auth endpoint for a signature, exactly as pusher-js' default transport does:
``POST socket_id=…&channel_name=…`` (channel authorization) or ``POST socket_id=…`` (user
authentication, ``pusher.signin()``), form-encoded, custom headers added, JSON ``{"auth": …}`` back."""

from __future__ import annotations

from typing import Any

from rtctl.errors import AuthRejected, ServerRejected, Unreachable
from rtctl.protocol import strictjson

AUTH_TIMEOUT = 10.0


def request_channel_auth(
    endpoint: str,
    socket_id: str,
    channel: str,
    headers: dict[str, str] | None = None,
    ca_bundle: str | None = None,
    timeout: float = AUTH_TIMEOUT,
) -> dict[str, Any]:
    """The endpoint's answer for ``channel``; a typed error naming what the endpoint did."""
    return _post(
        endpoint,
        {"socket_id": socket_id, "channel_name": channel},
        repr(channel),
        headers,
        ca_bundle,
        timeout,
    )


def request_user_auth(
    endpoint: str,
    socket_id: str,
    headers: dict[str, str] | None = None,
    ca_bundle: str | None = None,
    timeout: float = AUTH_TIMEOUT,
) -> dict[str, Any]:
    """The user authentication endpoint's answer (``{"auth", "user_data"}``) for a sign-in."""
    return _post(endpoint, {"socket_id": socket_id}, "the sign-in", headers, ca_bundle, timeout)


def _post(
    endpoint: str,
    fields: dict[str, str],
    what: str,
    headers: dict[str, str] | None,
    ca_bundle: str | None,
    timeout: float,
) -> dict[str, Any]:
    import ssl
    import urllib.error
    import urllib.parse
    import urllib.request

    body = urllib.parse.urlencode(fields)
    all_headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    request = urllib.request.Request(
        endpoint, data=body.encode(), headers=all_headers, method="POST"
    )
    context = None
    if endpoint.startswith("https:") and ca_bundle:
        context = ssl.create_default_context(cafile=ca_bundle)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            text = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace").strip()[:200]
        message = f"the auth endpoint refused {what} with HTTP {exc.code}"
        if detail:
            message += f": {detail}"
        if exc.code in (401, 403):
            raise AuthRejected(
                message, hint="check the --auth-header credentials (e.g. a bearer token)"
            ) from exc
        raise ServerRejected(message, status=exc.code) from exc
    except (OSError, urllib.error.URLError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise Unreachable(
            f"cannot reach the auth endpoint {endpoint}: {reason}",
            hint="is the gateway running? check --auth-endpoint",
        ) from exc
    try:
        data = strictjson.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("auth"), str):
        raise ServerRejected(
            f"the auth endpoint answered {what} without an auth JSON: {text[:200]!r}",
            hint='it must return {"auth": "key:signature", ...} with HTTP 200',
        )
    return data
