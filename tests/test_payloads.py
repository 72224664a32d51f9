"""The bot-user pattern's chat_message model: built by `bot say`, checked by `emit`."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest

from rtctl.errors import InvalidInput
from rtctl.protocol.payloads import (
    CREATED_AT_RE,
    bot_message,
    dm_channel,
    parse_chat_message,
    user_id_value,
    utc_timestamp,
)

MOMENT = datetime(2026, 11, 25, 17, 6, 31, 123456, tzinfo=timezone.utc)
GOOD = {
    "channel": "private-42_9000000",
    "actor": {"id": 9000000, "name": "Coach", "avatar": "/assets/bot.png"},
    "body": "Great! Keep going.",
    "audio_url": None,
    "created_at": "2026-11-25T17:06:31.123Z",
}


def test_utc_timestamp_has_milliseconds_and_z() -> None:
    assert utc_timestamp(MOMENT) == "2026-11-25T17:06:31.123Z"
    # another zone is converted, not relabelled
    assert utc_timestamp(MOMENT.astimezone(timezone(timedelta(hours=2)))) == (
        "2026-11-25T17:06:31.123Z"
    )
    assert CREATED_AT_RE.match(utc_timestamp())


def test_dm_channel_and_ids() -> None:
    assert dm_channel("42", "9000000") == "private-42_9000000"
    assert user_id_value("9000000") == 9000000
    assert user_id_value("bot-7") == "bot-7"


def test_bot_message_shape() -> None:
    message = bot_message(
        "42", "Great! Keep going.", "9000000", "Coach", "/assets/bot.png", None, MOMENT
    )
    assert message.to_dict() == GOOD
    with_audio = bot_message("42", "Hi", "9000000", "Coach", "/a.png", "https://x/a.mp3", MOMENT)
    assert with_audio.to_dict()["audio_url"] == "https://x/a.mp3"


def test_empty_text_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        bot_message("42", "  ", "9000000", "Coach", "/a.png")
    assert caught.value.message == "the message text is empty"


def test_parse_accepts_the_bot_user_pattern_shape() -> None:
    parsed = parse_chat_message(GOOD, "private-42_9000000")
    assert parsed.to_dict() == GOOD


def broken(path: tuple[str, ...], value: object) -> dict:
    data = copy.deepcopy(GOOD)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ("text", "is not a JSON object"),
        (broken(("body",), KeyError), "missing ['body']"),
        ({**GOOD, "extra": 1}, "unexpected ['extra']"),
        (broken(("actor", "avatar"), KeyError), "has an actor that is not {id, name, avatar}"),
        (broken(("actor", "id"), True), "has an actor.id that is neither a number nor a string"),
        (broken(("actor", "name"), 5), "has an actor name or avatar that is not a string"),
        (broken(("body",), 5), "has a channel or body that is not a string"),
        (broken(("audio_url",), 5), "has an audio_url that is neither a string nor null"),
        (
            broken(("created_at",), "2026-11-25T17:06:31Z"),
            "has a created_at that is not ISO-8601 UTC with milliseconds and Z",
        ),
        (
            broken(("created_at",), "2026-11-25T17:06:31.123+00:00"),
            "has a created_at that is not ISO-8601 UTC with milliseconds and Z",
        ),
    ],
)
def test_parse_refuses(data: object, problem: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_chat_message(data)
    assert caught.value.message == f"chat_message payload {problem}"


def test_parse_checks_the_channel_it_is_sent_on() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_chat_message(GOOD, "private-43_9000000")
    assert caught.value.message == (
        "chat_message payload names channel 'private-42_9000000' but is sent on 'private-43_9000000'"
    )
