"""Auth signatures and encrypted-channel framing against the golden vectors of
pusher-protocol.md §9, and cross-checked against the pusher SDK's own authenticate()."""

from __future__ import annotations

import base64
import json
import re

import pytest
from pusher.authentication_client import AuthenticationClient

from rtctl.errors import InvalidInput
from rtctl.protocol.crypto import DecryptionFailed, channel_key, decrypt, encrypt
from rtctl.protocol.signing import (
    authenticate_user,
    authorize_channel,
    channel_kind,
    check_socket_id,
    presence_channel_data,
    shared_secret,
    sign,
)

DOC_KEY, DOC_SECRET = "278d425bdf160c739803", "7ad3773142a6692b25b8"


def test_v1_private_channel() -> None:
    assert authorize_channel(DOC_KEY, DOC_SECRET, "1234.1234", "private-foobar") == {
        "auth": "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
    }


def test_v2_user_authentication() -> None:
    assert authenticate_user(DOC_KEY, DOC_SECRET, "1234.1234", {"id": "12345"}) == {
        "auth": "278d425bdf160c739803:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba",
        "user_data": '{"id":"12345"}',
    }


@pytest.mark.parametrize(
    ("name", "signature"),
    [
        ("Mr. Pusher", "afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c"),
        ("Mr. Channels", "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80"),
    ],
)
def test_v3_presence_both_pairings(name: str, signature: str) -> None:
    channel_data = f'{{"user_id":10,"user_info":{{"name":"{name}"}}}}'
    assert authorize_channel(DOC_KEY, DOC_SECRET, "1234.1234", "presence-foobar", channel_data) == {
        "auth": f"{DOC_KEY}:{signature}",
        "channel_data": channel_data,
    }


def test_v7_private_sdk_vector() -> None:
    assert authorize_channel("foo", "bar", "345.23", "private-channel") == {
        "auth": "foo:89955e77e1b40e33df6d515a5ecbba86a01dc816a5b720da18a06fd26f7d92ff"
    }


def test_v8_presence_sdk_vector() -> None:
    channel_data = presence_channel_data("fred", {"key": "value"})
    assert channel_data == '{"user_id":"fred","user_info":{"key":"value"}}'
    assert authorize_channel("foo", "bar", "345.43245", "presence-channel", channel_data) == {
        "auth": "foo:e80ba6439492c2113022c39297a87a948de14061cc67b5788e045645a68b8ccd",
        "channel_data": channel_data,
    }


def test_v9_user_sdk_vector() -> None:
    response = authenticate_user(
        "thisisaauthkey", "thisisasecret", "12345.6789", {"id": "123", "name": "John Smith"}
    )
    assert response == {
        "auth": "thisisaauthkey:0dddb208b53c7649f3fbbb86254a6e1986bc6f8b566423ea690c9ca773497373",
        "user_data": '{"id":"123","name":"John Smith"}',
    }


def test_v9_presence_with_python_separators() -> None:
    # The exact string is signed, whatever its formatting (here json.dumps' default spaces).
    assert authorize_channel("key", "secret", "1.1", "presence-c1", '{"money": "1.32"}') == {
        "auth": "key:7f2ae5922800a20b9615543ce7c8e7d1c97115d108939410825ea690f308a05f",
        "channel_data": '{"money": "1.32"}',
    }


def test_v10_encrypted_channel() -> None:
    master = base64.b64decode("OHRXNUZRTG5pUTFzQlFGd3J3N3Q2VFZFc0paZDEweVk=")
    assert authorize_channel(
        "foo", "bar", "345.23", "private-encrypted-channel", master_key=master
    ) == {
        "auth": "foo:fff0503dfe4929f5162efe4d1dacbce524b0d8e7e1331117a8651c0e74d369e3",
        "shared_secret": "VmIsNZtCSteh8kazd2toc+ofhohBtUouQRSDtRvuyVI=",
    }


V11_CHANNEL = "pvUPIk0YG6MnxCEMIUUVFrbDmQwbhICXUcy"
V11_MASTER = b"OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"  # raw ASCII bytes, not base64-decoded
V11_WIRE = (
    '{"nonce":"WEFKSTBZNkRQQkhTQUhYVEhWM0EzWk1G",'
    '"ciphertext":"tsYJa2JgGDOpVIYFe4aNVWAvZlpB7z7CjN9mpIdbATE0Yc4izN8aM8D6VigBxnIQ"}'
)


def test_v11_secretbox_framing() -> None:
    wire = encrypt(
        V11_CHANNEL,
        "kkkT5OOkOkO5kT5TOO5TkOT5TTk5O55T",
        V11_MASTER,
        nonce=b"XAJI0Y6DPBHSAHXTHV3A3ZMF",
    )
    assert wire == V11_WIRE


def test_v11_decrypts_string_and_object_payloads() -> None:
    key = channel_key(V11_CHANNEL, V11_MASTER)
    assert decrypt(key, V11_WIRE) == "kkkT5OOkOkO5kT5TOO5TkOT5TTk5O55T"
    assert decrypt(key, json.loads(V11_WIRE)) == "kkkT5OOkOkO5kT5TOO5TkOT5TTk5O55T"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("not json", "encrypted payload is not JSON"),
        ('{"nonce":"AAAA"}', "encrypted payload lacks nonce or ciphertext"),
        ('{"nonce":"%%%","ciphertext":"AAAA"}', "encrypted payload is not base64"),
        (
            '{"nonce":"AAAA","ciphertext":"AAAA"}',
            "encrypted payload has a bad nonce or ciphertext length",
        ),
    ],
)
def test_decrypt_refuses_malformed_payloads(payload: str, message: str) -> None:
    with pytest.raises(DecryptionFailed, match=f"^{re.escape(message)}$"):
        decrypt(channel_key(V11_CHANNEL, V11_MASTER), payload)


def test_decrypt_with_the_wrong_key() -> None:
    with pytest.raises(
        DecryptionFailed, match=r"^decryption failed: wrong key or tampered payload$"
    ):
        decrypt(channel_key("other-channel", V11_MASTER), V11_WIRE)


def test_encrypt_round_trip_with_a_random_nonce() -> None:
    master = b"m" * 32
    first = encrypt("private-encrypted-x", '{"a":1}', master)
    second = encrypt("private-encrypted-x", '{"a":1}', master)
    assert first != second  # a fresh nonce each time
    assert decrypt(channel_key("private-encrypted-x", master), first) == '{"a":1}'


# --- the pusher SDK's own authenticate() agrees ------------------------------------------------


MASTER_B64 = "OHRXNUZRTG5pUTFzQlFGd3J3N3Q2VFZFc0paZDEweVk="


@pytest.fixture
def sdk() -> AuthenticationClient:
    return AuthenticationClient(
        app_id="1",
        key="appkey",
        secret="appsecret",
        encryption_master_key_base64=MASTER_B64,
    )


def test_private_matches_the_sdk(sdk: AuthenticationClient) -> None:
    assert authorize_channel(
        "appkey", "appsecret", "123.456", "private-orders"
    ) == sdk.authenticate("private-orders", "123.456")


def test_encrypted_matches_the_sdk(sdk: AuthenticationClient) -> None:
    expected = sdk.authenticate("private-encrypted-dm", "123.456")
    ours = authorize_channel(
        "appkey",
        "appsecret",
        "123.456",
        "private-encrypted-dm",
        master_key=base64.b64decode(MASTER_B64),
    )
    assert ours == {"auth": expected["auth"], "shared_secret": expected["shared_secret"].decode()}


def test_presence_matches_the_sdk(sdk: AuthenticationClient) -> None:
    expected = sdk.authenticate("presence-room", "123.456", {"user_id": "7", "user_info": {"n": 1}})
    # The SDK signs json.dumps with spaces; given that same string we sign identically...
    assert (
        authorize_channel(
            "appkey", "appsecret", "123.456", "presence-room", expected["channel_data"]
        )
        == expected
    )
    # ...and our own compact channel_data carries the same member.
    ours = presence_channel_data("7", {"n": 1})
    assert json.loads(ours) == json.loads(expected["channel_data"])


def test_user_auth_matches_the_sdk(sdk: AuthenticationClient) -> None:
    expected = sdk.authenticate_user("123.456", {"id": "7", "user_info": {"n": 1}})
    ours = authenticate_user("appkey", "appsecret", "123.456", {"id": "7", "user_info": {"n": 1}})
    assert json.loads(ours["user_data"]) == json.loads(expected["user_data"])
    assert (
        expected["auth"] == f"appkey:{sign('appsecret', '123.456::user::' + expected['user_data'])}"
    )


# --- helpers and refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "kind"),
    [
        ("orders", "public"),
        ("my-private-x", "public"),  # Pusher's prefixes are anchored (Soketi's regex is not)
        ("private-x", "private"),
        ("private-encrypted-x", "private-encrypted"),
        ("presence-x", "presence"),
        ("cache-x", "public"),
    ],
)
def test_channel_kind(channel: str, kind: str) -> None:
    assert channel_kind(channel) == kind


def test_shared_secret_is_base64_of_32_bytes() -> None:
    assert len(base64.b64decode(shared_secret("private-encrypted-a", b"k" * 32))) == 32


@pytest.mark.parametrize("socket_id", ["", "1234", "12.34.56", "a.b", "1234.5678 "])
def test_malformed_socket_ids(socket_id: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_socket_id(socket_id)
    assert caught.value.message == f"socket id {socket_id!r} is malformed"


def test_public_channel_needs_no_auth() -> None:
    with pytest.raises(InvalidInput) as caught:
        authorize_channel("k", "s", "1.1", "orders")
    assert caught.value.message == "'orders' is a public channel: it needs no authorization"


def test_presence_needs_channel_data() -> None:
    with pytest.raises(InvalidInput) as caught:
        authorize_channel("k", "s", "1.1", "presence-room")
    assert caught.value.message == "presence channel 'presence-room' needs a user"


def test_encrypted_needs_the_master_key() -> None:
    with pytest.raises(InvalidInput) as caught:
        authorize_channel("k", "s", "1.1", "private-encrypted-room")
    assert caught.value.message == (
        "'private-encrypted-room' is an encrypted channel and no master key is configured"
    )


def test_user_needs_an_id() -> None:
    with pytest.raises(InvalidInput) as caught:
        authenticate_user("k", "s", "1.1", {"id": ""})
    assert caught.value.message == "user data needs a non-empty id"


@pytest.mark.parametrize("socket_id", ["1.2\n", "١.٢", "1.2.3", ".2", "1."])
def test_malformed_socket_ids_are_refused(socket_id: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_socket_id(socket_id)
    assert caught.value.message == f"socket id {socket_id!r} is malformed"
