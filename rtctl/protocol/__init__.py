"""The Pusher-protocol library: what any Pusher Channels client or server-side app needs.

Layers: ``signing`` (auth strings and HMACs), ``validation`` (Pusher's names and limits),
``crypto`` (encrypted channels), ``payloads`` (the bot-user pattern's chat message), ``httpapi``
(the signed HTTP API client), and the WebSocket client: ``socket`` (``PusherSocket``) over
``frames`` (bytes to messages), ``closecodes`` (what a close means) and ``authclient`` (asking an
auth endpoint). Nothing here imports the CLI, rich or the runtime.

The socket classes are re-exported lazily, so ``from rtctl.protocol import signing`` does not
import websocket-client:

    from rtctl.protocol import PusherSocket, Message, Subscription, Disconnected
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rtctl.protocol.closecodes import Disconnected, backoff_delay, close_policy
    from rtctl.protocol.socket import Message, PusherSocket, Subscription

_EXPORTS = {
    "PusherSocket": "rtctl.protocol.socket",
    "Message": "rtctl.protocol.socket",
    "Subscription": "rtctl.protocol.socket",
    "Disconnected": "rtctl.protocol.closecodes",
    "close_policy": "rtctl.protocol.closecodes",
    "backoff_delay": "rtctl.protocol.closecodes",
}

__all__ = [
    "Disconnected",
    "Message",
    "PusherSocket",
    "Subscription",
    "backoff_delay",
    "close_policy",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rtctl.protocol' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
