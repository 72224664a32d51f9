"""The realtime gateway: channel auth, user sign-in, emit and monitor routes as an ASGI app.

Mount it in your own Starlette/FastAPI app, or serve it with `rtctl gateway`::

    from rtctl.config import load_settings
    from rtctl.gateway import create_app

    app = create_app(load_settings())

Importing this package imports Starlette; the CLI imports it only inside `rtctl gateway`.
"""

from __future__ import annotations

from rtctl.gateway.app import create_app
from rtctl.gateway.errors import GatewayError
from rtctl.gateway.identity import Identity

__all__ = ["GatewayError", "Identity", "create_app"]
