"""End-to-end encrypted channels (protocol §4): NaCl secretbox with the per-channel shared secret.

PyNaCl does the cryptography; this module only frames it the way Pusher's SDKs and pusher-js do.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from rtctl.errors import InvalidInput
from rtctl.protocol import strictjson
from rtctl.protocol.signing import shared_secret


def channel_key(channel: str, master_key: bytes) -> bytes:
    return base64.b64decode(shared_secret(channel, master_key))


def encrypt(channel: str, plaintext: str, master_key: bytes, nonce: bytes | None = None) -> str:
    """The event ``data`` string for an encrypted channel: JSON of base64 nonce and ciphertext."""
    import nacl.secret
    import nacl.utils

    box = nacl.secret.SecretBox(channel_key(channel, master_key))
    nonce = nonce if nonce is not None else nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
    sealed = box.encrypt(plaintext.encode("utf-8"), nonce)
    return json.dumps(
        {
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(sealed.ciphertext).decode(),
        },
        separators=(",", ":"),
    )


class DecryptionFailed(Exception):
    """The payload is not a valid secretbox for this key (wrong key, rotated key, tampering)."""


def decrypt(key: bytes, payload: Any) -> str:
    """Open an encrypted event's data (a JSON string or an already decoded object)."""
    import nacl.exceptions
    import nacl.secret

    if isinstance(payload, str):
        try:
            payload = strictjson.loads(payload)
        except ValueError as exc:
            raise DecryptionFailed("encrypted payload is not JSON") from exc
    if not isinstance(payload, dict) or not {"nonce", "ciphertext"} <= payload.keys():
        raise DecryptionFailed("encrypted payload lacks nonce or ciphertext")
    try:
        nonce = base64.b64decode(payload["nonce"], validate=True)
        ciphertext = base64.b64decode(payload["ciphertext"], validate=True)
    except (binascii.Error, TypeError) as exc:
        raise DecryptionFailed("encrypted payload is not base64") from exc
    if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE or len(ciphertext) < 16:
        raise DecryptionFailed("encrypted payload has a bad nonce or ciphertext length")
    try:
        return nacl.secret.SecretBox(key).decrypt(ciphertext, nonce).decode("utf-8")
    except (nacl.exceptions.CryptoError, UnicodeDecodeError) as exc:
        raise DecryptionFailed("decryption failed: wrong key or tampered payload") from exc


def require_master_key(master_key: bytes | None, channel: str) -> bytes:
    if master_key is None:
        raise InvalidInput(
            f"{channel!r} is an encrypted channel and no master key is configured",
            hint="set PUSHER_ENCRYPTION_MASTER_KEY_BASE64 (openssl rand -base64 32)",
        )
    return master_key
