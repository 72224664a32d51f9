"""One rule for "this machine": the gateway's dev header, the console's guard and webhook URLs."""

from __future__ import annotations

import pytest

from rtctl.hosts import is_loopback


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("0:0:0:0:0:0:0:1", True),
        ("localhost", True),
        ("LocalHost", True),
        ("127.example.com", False),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_is_decided_by_address_or_the_name_localhost(
    host: str | None, expected: bool
) -> None:
    assert is_loopback(host) is expected
