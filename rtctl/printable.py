"""Text from a server or a user, made safe to print: the one escaping rtctl applies.

Anyone allowed on a channel chooses event names and data; a terminal obeys what it is sent. So
before such text reaches a person's terminal, every character that could forge a line (newline,
carriage return), move the cursor or recolour the screen (ANSI escapes and other C0/C1 controls),
reorder what is shown (bidirectional overrides) or fail to encode at all (lone surrogates) is
shown as its escape instead: ``\\n``, ``\\x1b``, ``\\u202e``, ``\\ud800``.

JSON output (``--json``, NDJSON) stays exact instead: it only needs lone surrogates written as
``\\uXXXX`` escapes, which every JSON parser reads back as the same string.

Pure functions (no Typer, no rich): rtctl.cli.output and the listen formatter both use them.
"""

from __future__ import annotations

import re

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C1 controls, the Arabic letter mark, LRM/RLM, and the bidirectional embeddings and isolates.
_OTHER_CONTROLS = "\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_SURROGATES = "\ud800-\udfff"
_UNSAFE = re.compile(f"[\x00-\x1f{_OTHER_CONTROLS}{_SURROGATES}]")
_UNSAFE_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f{_OTHER_CONTROLS}{_SURROGATES}]")
_LONE_SURROGATE = re.compile(f"[{_SURROGATES}]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` as one safe line for a terminal: every control character escaped."""
    if _UNSAFE.search(text) is None:  # the common case costs one scan
        return text
    return _UNSAFE.sub(_escape, text)


def printable_lines(text: str) -> str:
    """Like ``printable`` but keeps line breaks (for rtctl's own multi-line messages)."""
    if _UNSAFE_BUT_NEWLINE.search(text) is None:
        return text
    return _UNSAFE_BUT_NEWLINE.sub(_escape, text)


def json_safe(text: str) -> str:
    """JSON text (``ensure_ascii=False``) with lone surrogates as ``\\uXXXX`` escapes, so it
    encodes as UTF-8 and still parses to the same string."""
    if _LONE_SURROGATE.search(text) is None:
        return text
    return _LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
