"""The one JSON parser for text a user or a client wrote: JSON as Pusher and JavaScript read it.

Python's ``json.loads`` accepts ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON: a
payload that rtctl let through would be refused later by the server or break the consumers that
receive it. And nesting thousands of levels deep exhausts Python's recursion, which would end a
command with an internal error. Both are refused here as ordinary "not JSON" (a ``ValueError``,
so callers that catch the standard parser's errors catch these too).
"""

from __future__ import annotations

import json
from typing import Any


class NotJson(ValueError):
    """The text is not JSON that Pusher accepts; ``str()`` says why."""


def _refuse_constant(name: str) -> Any:
    raise NotJson(f"{name} is not a JSON value (JSON has no NaN or Infinity)")


# One decoder, built once: json.loads(text, parse_constant=...) builds a new decoder per call,
# which made every server frame a listener reads measurably slower.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def loads(text: str | bytes) -> Any:
    """Parse ``text``; NotJson (a ValueError) when it is not strict JSON."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return _DECODER.decode(text)
    except RecursionError:
        raise NotJson("nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise NotJson(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError as exc:
        raise NotJson(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
