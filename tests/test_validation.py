"""Pusher's publishing limits, checked locally (protocol §2, §5.4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtctl.errors import ExitCode, InvalidInput
from rtctl.protocol.validation import (
    MAX_CHANNEL_NAME,
    MAX_DATA_BYTES,
    SOKETI_MAX_DATA_BYTES,
    Event,
    validate_batch,
    validate_channel,
    validate_data,
    validate_event,
    validate_event_name,
    validate_publish_channel,
)

ALLOWED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=@,.;"


def message_of(call, *args, **kwargs) -> str:
    with pytest.raises(InvalidInput) as caught:
        call(*args, **kwargs)
    assert caught.value.exit_code == ExitCode.USAGE
    return caught.value.message


def test_documented_example_name_is_valid() -> None:
    assert validate_channel("foo-bar_1234@=,.;") == "foo-bar_1234@=,.;"


@given(st.text(alphabet=ALLOWED, min_size=1, max_size=MAX_CHANNEL_NAME))
def test_every_allowed_name_passes(name: str) -> None:
    assert validate_channel(name) == name


@given(
    st.text(alphabet=ALLOWED, max_size=20),
    st.characters(blacklist_characters=ALLOWED),
    st.text(alphabet=ALLOWED, max_size=20),
)
def test_any_other_character_is_refused(before: str, bad: str, after: str) -> None:
    assert "contains characters Pusher refuses" in message_of(
        validate_channel, before + bad + after
    )


def test_channel_length_is_pushers_164() -> None:
    assert validate_channel("c" * 164) == "c" * 164
    assert message_of(validate_channel, "c" * 165) == (
        "channel name is 165 characters; Pusher allows 164"
    )


def test_hash_is_reserved() -> None:
    assert message_of(validate_channel, "#room") == (
        "channel name '#room' contains characters Pusher refuses: '#'"
    )
    # Pusher's own channel for one user: published on (send-to-user), never created or authorized
    assert message_of(validate_channel, "#server-to-user-1") == (
        "'#server-to-user-1' is Pusher's channel for events sent to one user: apps neither "
        "create nor authorize it"
    )
    assert validate_publish_channel("#server-to-user-ada@example.com").endswith("example.com")
    assert message_of(validate_publish_channel, "#server-to-user-") == (
        "'#server-to-user-': user id is empty"
    )
    assert message_of(validate_publish_channel, "#server-to-user-" + "u" * 185) == (
        "channel name is 201 characters; the limit is 200"
    )


def test_cache_channels_are_recognised_by_anchored_prefixes() -> None:
    from rtctl.protocol.signing import channel_kind, is_cache_channel

    kinds = {
        "cache-prices": ("public", True),
        "private-cache-orders": ("private", True),
        "private-encrypted-cache-notes": ("private-encrypted", True),
        "presence-cache-lobby": ("presence", True),
        "x-cache-y": ("public", False),  # Soketi's unanchored test would call this a cache channel
        "my-private-cache-z": ("public", False),
        "#server-to-user-1": ("server-to-user", False),
    }
    for name, expected in kinds.items():
        assert (channel_kind(name), is_cache_channel(name)) == expected, name


def test_empty_names() -> None:
    assert message_of(validate_channel, "") == "channel name is empty"
    assert message_of(validate_event_name, "") == "event name is empty"


def test_event_name_length_200() -> None:
    assert validate_event_name("e" * 200) == "e" * 200
    assert message_of(validate_event_name, "e" * 201) == (
        "event name is 201 characters; the limit is 200"
    )


@pytest.mark.parametrize("name", ["pusher:ping", "pusher_internal:member_added"])
def test_reserved_event_prefixes(name: str) -> None:
    assert "uses a reserved prefix" in message_of(validate_event_name, name)


def test_client_event_names_are_allowed_on_the_api() -> None:
    assert validate_event_name("client-typing") == "client-typing"


def test_data_limit_counts_utf8_bytes() -> None:
    assert validate_data("x" * MAX_DATA_BYTES) == "x" * MAX_DATA_BYTES
    # 5,121 two-byte characters are 10,242 bytes: over the limit though under 10,240 characters
    assert message_of(validate_data, "é" * 5121) == "event data is 10242 bytes; the limit is 10240"


def test_allow_large_lifts_to_soketis_100_kb() -> None:
    big = "x" * SOKETI_MAX_DATA_BYTES
    assert validate_data(big, allow_large=True) == big
    assert message_of(validate_data, big + "x", allow_large=True) == (
        "event data is 102401 bytes; the limit is 102400"
    )


def test_hundred_channels_per_trigger() -> None:
    hundred = tuple(f"c{i}" for i in range(100))
    assert validate_event(Event(hundred, "e", "{}")).channels == hundred
    assert message_of(validate_event, Event((*hundred, "c100"), "e", "{}")) == (
        "101 channels in one trigger; the limit is 100"
    )


def test_encrypted_channel_alone() -> None:
    assert message_of(validate_event, Event(("private-encrypted-a", "b"), "e", "{}")) == (
        "an encrypted channel must be triggered on its own"
    )


def test_no_channels() -> None:
    assert message_of(validate_event, Event((), "e", "{}")) == "no channel given"


def test_socket_id_checked_when_given() -> None:
    assert validate_event(Event(("c",), "e", "{}", "1.2")).socket_id == "1.2"
    assert message_of(validate_event, Event(("c",), "e", "{}", "x")) == "socket id 'x' is malformed"


def test_batch_items_take_one_channel_and_name_their_index() -> None:
    ok = Event(("a",), "e", "{}")
    validate_batch([ok, ok])
    assert message_of(validate_batch, [ok, Event(("a", "b"), "e", "{}")]) == (
        "batch item 2 has 2 channels; a batch item takes one"
    )
    assert message_of(validate_batch, [ok, ok, Event(("bad name",), "e", "{}")]) == (
        "batch item 3: channel name 'bad name' contains characters Pusher refuses: ' '"
    )


def test_a_trailing_newline_is_not_a_valid_channel_name() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_channel("private-x\n")
    assert caught.value.message == (
        "channel name 'private-x\\n' contains characters Pusher refuses: '\\n'"
    )
