"""Who is asking: a bearer JWT verified with PyJWT, or (development only) a trusted header.

The browser cannot forge a token signed by the app's identity provider, so the user id used for
every authorization decision comes from the token's ``sub`` claim and nothing else. HS256 uses
REALTIME_JWT_SECRET; RS*/PS*/ES*/EdDSA use REALTIME_JWT_PUBLIC_KEY (PEM text, or the path of a PEM
file). The accepted algorithms are fixed at start; the token's own ``alg`` header only selects
among them, so ``alg: none`` and algorithm-confusion tokens are refused.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rtctl.config import Settings
from rtctl.errors import ConfigError
from rtctl.gateway.errors import GatewayError, unauthorized
from rtctl.hosts import is_loopback

# Pusher's user-id rules: the channel-name character set, at most 128 characters.
USER_ID_RE = re.compile(r"[-a-zA-Z0-9_=@,.;]+")  # used with fullmatch: no "\n" slips past $
MAX_USER_ID = 128
MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash
MAX_TOKEN_CHARS = 8192
MAX_INFO_BYTES = 400  # name and avatar each, as JSON text in UTF-8
LEEWAY_SECONDS = 5  # clock skew tolerated on exp/nbf/iat
VERIFIED_CACHE_SIZE = 10_000  # tokens whose verification is remembered until they expire

DEV_USER_HEADER = "X-Realtime-User-Id"

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGORITHMS = {256: "ES256", 384: "ES384", 521: "ES512"}


@dataclass(frozen=True)
class Identity:
    """The verified caller: the token's subject and the presence ``user_info`` from its claims."""

    user_id: str
    user_info: dict[str, str] = field(default_factory=dict)
    source: Literal["jwt", "dev-header"] = "jwt"


def load_public_key(value: str) -> Any:
    """REALTIME_JWT_PUBLIC_KEY is PEM text (``\\n`` escapes allowed) or the path of a PEM file."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    text = value.strip()
    if not text.startswith("-----BEGIN"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"REALTIME_JWT_PUBLIC_KEY is neither PEM text nor an existing file: {text[:80]}",
                hint="paste the PEM public key (-----BEGIN PUBLIC KEY-----...) or give its path",
            )
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read REALTIME_JWT_PUBLIC_KEY file {path}: {exc}") from exc
    text = text.replace("\\n", "\n")
    try:
        return load_pem_public_key(text.encode())
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            "REALTIME_JWT_PUBLIC_KEY is not a PEM public key",
            hint="export the identity provider's public key: openssl pkey -pubout -in key.pem",
        ) from exc


def key_algorithms(key: Any) -> tuple[str, ...]:
    """The algorithms a public key can verify, by key type."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, rsa.RSAPublicKey):
        return RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size in EC_ALGORITHMS:
        return (EC_ALGORITHMS[key.curve.key_size],)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return ("EdDSA",)
    raise ConfigError(
        f"REALTIME_JWT_PUBLIC_KEY is a {type(key).__name__}, which JWTs cannot use here",
        hint="use an RSA, EC (P-256/P-384/P-521) or Ed25519 public key",
    )


def _default_asymmetric(algorithms: tuple[str, ...]) -> tuple[str, ...]:
    return ("RS256",) if algorithms == RSA_ALGORITHMS else algorithms


def check_service_tokens(settings: Settings) -> None:
    """Service tokens are bearer secrets like the HS256 key: as long, so they cannot be guessed."""
    tokens = {
        "REALTIME_EMIT_TOKEN": settings.emit_token,
        "REALTIME_MONITOR_TOKEN": settings.monitor_token,
    }
    for name, value in tokens.items():
        if value is not None and len(value.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"{name} is {len(value.encode())} bytes; service tokens need at least "
                f"{MIN_SECRET_BYTES}",
                hint="generate one with `openssl rand -hex 32`",
            )


def is_local_host_header(host_header: str | None) -> bool:
    """``Host: 127.0.0.1:8080`` / ``localhost`` / ``[::1]:8080``."""
    if not host_header:
        return False
    host = host_header.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return is_loopback(host)


class Verifier:
    """Turns request headers into an Identity, or raises a 401 GatewayError."""

    def __init__(
        self,
        settings: Settings,
        *,
        audience: str | None = None,
        issuer: str | None = None,
        dev_user_header: bool = False,
    ) -> None:
        self.secret = settings.jwt_secret
        self.public_key = (
            load_public_key(settings.jwt_public_key) if settings.jwt_public_key else None
        )
        self.audience = audience or settings.jwt_audience
        self.issuer = issuer or settings.jwt_issuer
        self.dev_user_header = dev_user_header
        # A browser presents the same token for every channel and again after each reconnect;
        # a verified token stays valid until its exp, so its check is done once (bounded, oldest
        # first out; failures are never remembered).
        self._verified: dict[str, tuple[Identity, float]] = {}
        if self.secret is not None and len(self.secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"REALTIME_JWT_SECRET is {len(self.secret.encode())} bytes; HS256 needs at least "
                f"{MIN_SECRET_BYTES}",
                hint="generate one with `openssl rand -hex 32`",
            )
        usable: tuple[str, ...] = HMAC_ALGORITHMS if self.secret else ()
        default: tuple[str, ...] = ("HS256",) if self.secret else ()
        if self.public_key is not None:
            key_algs = key_algorithms(self.public_key)
            usable += key_algs
            default += _default_asymmetric(key_algs)
        requested = tuple(a.strip() for a in settings.jwt_algorithms if a.strip())
        for name in requested:
            if name.lower() == "none":
                raise ConfigError(
                    "REALTIME_JWT_ALGORITHMS lists 'none': unsigned tokens are never accepted",
                    hint="remove 'none' from REALTIME_JWT_ALGORITHMS",
                )
            if name not in usable:
                raise ConfigError(
                    f"REALTIME_JWT_ALGORITHMS lists {name}, which no configured key can verify",
                    hint="HS* need REALTIME_JWT_SECRET; RS*/PS*/ES*/EdDSA need a matching "
                    "REALTIME_JWT_PUBLIC_KEY",
                )
        self.algorithms: tuple[str, ...] = requested or default
        if not self.algorithms and not dev_user_header:
            raise ConfigError(
                "the gateway has no way to verify users: no JWT secret or public key configured",
                hint="set REALTIME_JWT_SECRET (openssl rand -hex 32) or REALTIME_JWT_PUBLIC_KEY",
            )

    # --- requests --------------------------------------------------------------------------------

    def identify(
        self,
        authorization: str | None,
        dev_user: str | None,
        client_host: str | None,
        host_header: str | None = None,
    ) -> Identity:
        if authorization is not None:
            return self.verify(bearer_token(authorization))
        if self.dev_user_header and dev_user is not None:
            # Both the peer and the Host header must be local: a loopback peer with a foreign
            # Host is a browser tricked by DNS rebinding into calling this machine.
            if not is_loopback(client_host) or not is_local_host_header(host_header):
                raise unauthorized(
                    "missing_token",
                    f"{DEV_USER_HEADER} is trusted only from loopback; send Authorization: Bearer",
                )
            return Identity(check_user_id(dev_user.strip(), "dev user header"), {}, "dev-header")
        raise unauthorized("missing_token", "no Authorization: Bearer token was sent")

    def verify(self, token: str) -> Identity:
        remembered = self._verified.get(token)
        if remembered is not None:
            identity, expires = remembered
            if time.time() < expires + LEEWAY_SECONDS:
                return identity
            del self._verified[token]
        identity, expires = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (identity, expires)
        return identity

    def _verify(self, token: str) -> tuple[Identity, float]:
        import jwt

        if not self.algorithms:
            raise unauthorized("invalid_token", "this gateway accepts no bearer tokens (dev mode)")
        if len(token) > MAX_TOKEN_CHARS:
            raise unauthorized("invalid_token", "bearer token is too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise unauthorized("invalid_token", "bearer token is not a JWT") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.algorithms:
            shown = algorithm if isinstance(algorithm, str) else type(algorithm).__name__
            raise unauthorized(
                "invalid_token",
                f"token algorithm {shown[:20]!r} is not accepted "
                f"(accepted: {', '.join(self.algorithms)})",
            )
        key = self.secret if algorithm in HMAC_ALGORITHMS else self.public_key
        try:
            claims = jwt.decode(
                token,
                key,  # type: ignore[arg-type]
                algorithms=[algorithm],
                options={"require": ["exp", "sub"]},
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("token_expired", "bearer token has expired") from None
        except jwt.InvalidSignatureError:
            raise unauthorized("invalid_token", "bearer token signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise unauthorized(
                "invalid_token", f"bearer token has no {exc.claim!r} claim"
            ) from None
        except jwt.PyJWTError as exc:
            raise unauthorized("invalid_token", f"bearer token refused: {exc}"[:200]) from None
        except (ValueError, TypeError):  # odd key/claim types deep in the crypto layer
            raise unauthorized("invalid_token", "bearer token cannot be verified") from None
        check_claim_types(claims, self.audience)
        subject = claims.get("sub")
        if not isinstance(subject, str):
            raise unauthorized("invalid_token", "bearer token subject is not a string")
        identity = Identity(check_user_id(subject, "token subject"), user_info(claims), "jwt")
        return identity, float(claims["exp"])


def check_claim_types(claims: dict[str, Any], audience: str | None) -> None:
    """What PyJWT lets through: a time claim given as a numeric string ("exp": "9999999999"), and an
    empty ``aud`` ("" or []) when no audience is configured. RFC 7519 makes times NumericDates."""
    for name in ("exp", "nbf", "iat"):
        if name not in claims:
            continue
        value = claims[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise unauthorized("invalid_token", f"bearer token claim {name!r} is not a number")
    if audience is None and "aud" in claims:
        # the same answer PyJWT gives for a non-empty aud that nobody configured
        raise unauthorized("invalid_token", "bearer token refused: Invalid audience")


def bearer_token(authorization: str) -> str:
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("missing_token", "Authorization header is not 'Bearer <token>'")
    return token.strip()


def check_user_id(user_id: str, what: str) -> str:
    if not user_id or len(user_id) > MAX_USER_ID or not USER_ID_RE.fullmatch(user_id):
        raise unauthorized(
            "invalid_token",
            f"{what} is not a usable user id (1-{MAX_USER_ID} of A-Z a-z 0-9 - _ = @ , . ;)",
        )
    return user_id


def json_bytes(value: Any) -> int | None:
    """Size of ``value`` as the JSON text signed into channel_data (UTF-8, escapes included);
    None when it is not valid Unicode (a lone surrogate from a ``\\ud800`` escape)."""
    try:
        return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    except UnicodeEncodeError:
        return None


def user_info(claims: dict[str, Any]) -> dict[str, str]:
    """Presence ``user_info`` from optional claims: ``name``, and ``avatar`` (else OIDC ``picture``).

    Limited in bytes, as Pusher and Soketi count: a value over MAX_INFO_BYTES as JSON is left out,
    so the whole object always stays under Pusher's 1 KB and Soketi never refuses the member."""
    info: dict[str, str] = {}
    for target, names in (("name", ("name",)), ("avatar", ("avatar", "picture"))):
        for name in names:
            value = claims.get(name)
            if not isinstance(value, str) or not value:
                continue
            size = json_bytes(value)
            if size is not None and size - 2 <= MAX_INFO_BYTES:  # without the quotes
                info[target] = value
                break
    return info


__all__ = ["DEV_USER_HEADER", "GatewayError", "Identity", "Verifier"]
