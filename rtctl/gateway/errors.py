"""The gateway's refusals: an HTTP status, a stable machine code and one line for people.

Every error body is ``{"error": {"code": "...", "message": "..."}}``; the codes are part of the
gateway's interface (docs/gateway.md lists them), the messages may improve.
"""

from __future__ import annotations


class GatewayError(Exception):
    """A request the gateway refuses; rendered as a JSON error body by the app."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message}}


def unauthorized(code: str, message: str) -> GatewayError:
    # RFC 6750: tell the client which scheme is expected and why the token failed.
    challenge = 'Bearer realm="realtime"'
    if code != "missing_token":
        challenge += ', error="invalid_token"'
    return GatewayError(401, code, message, {"WWW-Authenticate": challenge})


def bad_request(code: str, message: str) -> GatewayError:
    return GatewayError(400, code, message)


def forbidden(code: str, message: str) -> GatewayError:
    return GatewayError(403, code, message)
