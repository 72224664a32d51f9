"""Whether a host is this machine: one rule for the gateway, the console and webhook settings."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str | None) -> bool:
    """A loopback address (``127.0.0.0/8``, ``::1`` in any spelling, ``[::1]``) or ``localhost``;
    a name such as ``127.example.com`` is not."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() == "localhost"
