"""A .env editor that changes only what it is asked to change.

python-dotenv's parser gives each binding's original text, so a document is the list of those
texts: unrelated keys, comments, blank lines, quoting and order survive byte for byte. Writes are
atomic (temp file in the same folder, fsync, ``os.replace``), mode 0600, with an optional backup
of the file being replaced, so a crash never leaves a half-written .env.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from rtctl import locks
from rtctl.errors import ConfigError, filesystem_problem

FILE_MODE = 0o600
EDIT_LOCK_WAIT = 60.0  # seconds a writer waits for another one editing the same .env
_BOM = "\ufeff"
# Values written without quotes: nothing dotenv would reinterpret (spaces, #, quotes, $, \).
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_\-.,:/@+=%~]*")
_ASSIGNMENT = re.compile(r"[ \t]*(?:export[ \t]+)?(?:'[^']+'|[^=#\s]+)[ \t]*=[ \t]*")
_QUOTED = {"'": re.compile(r"'(?:\\.|[^'\\])*'", re.S), '"': re.compile(r'"(?:\\.|[^"\\])*"', re.S)}
_EOL = re.compile(r"(\r\n|\n|\r)\Z")


@dataclass
class Entry:
    """One binding as dotenv saw it: its exact text (leading blank lines included)."""

    text: str
    key: str | None
    value: str | None
    error: bool
    line: int  # 1-based line of the statement itself (after any leading blank lines)

    @property
    def lead(self) -> str:
        """The blank lines before the statement (kept when the statement changes)."""
        stripped = self.text.lstrip(" \t\r\n")
        head = self.text[: len(self.text) - len(stripped)]
        cut = max(head.rfind("\n"), head.rfind("\r")) + 1
        return self.text[:cut]

    @property
    def statement(self) -> str:
        return self.text[len(self.lead) :]


class EnvDocument:
    """A parsed .env: read values, set or delete keys, render the text back."""

    def __init__(self, text: str) -> None:
        from dotenv.parser import parse_stream

        self.bom = _BOM if text.startswith(_BOM) else ""
        self.entries: list[Entry] = []
        for binding in parse_stream(io.StringIO(text)):
            original = binding.original.string
            entry = Entry(original, binding.key, binding.value, binding.error, 0)
            entry.line = binding.original.line + len(re.findall(r"\r\n|\n|\r", entry.lead))
            self.entries.append(entry)
        newline = re.search(r"\r\n|\n|\r", text)
        self.newline = newline.group(0) if newline else "\n"

    @property
    def text(self) -> str:
        return self.bom + "".join(entry.text for entry in self.entries)

    def errors(self) -> list[Entry]:
        return [entry for entry in self.entries if entry.error]

    def keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for entry in self.entries:
            if entry.key is not None:
                seen[entry.key] = None
        return list(seen)

    def values(self) -> dict[str, str]:
        """What python-dotenv would load (the last binding of a key wins)."""
        result: dict[str, str] = {}
        for entry in self.entries:
            if entry.key is not None:
                result[entry.key] = entry.value if entry.value is not None else ""
        return result

    def get(self, key: str) -> str | None:
        return self.values().get(key)

    def __contains__(self, key: object) -> bool:
        return any(entry.key == key for entry in self.entries)

    def set(self, key: str, value: str) -> bool:
        """Set ``key`` in place (the binding dotenv reads) or append it. True if the text changed."""
        if "\0" in value:
            raise ConfigError(f"{key}: a value cannot contain a NUL byte")
        before = self.text
        for entry in reversed(self.entries):
            if entry.key == key:
                entry.text = entry.lead + _rewrite(entry.statement, key, value, self.newline)
                entry.value = value
                break
        else:
            if self.entries and not _EOL.search(self.entries[-1].text):
                self.entries[-1].text += self.newline
            line = len(re.findall(r"\r\n|\n|\r", self.text)) + 1
            text = f"{key}={format_value(value)}{self.newline}"
            self.entries.append(Entry(text, key, value, False, line))
        return self.text != before

    def place(self, key: str, value: str, statement: str, after: str | None = None) -> None:
        """Put back a saved binding verbatim: ``statement`` is its exact text (``KEY=value``...).

        An existing binding of ``key`` gets the text in place; a new one goes right after the last
        binding of ``after`` (its neighbour when it was saved), or at the end.
        """
        if not _EOL.search(statement):
            statement += self.newline
        for entry in reversed(self.entries):
            if entry.key == key:
                entry.text, entry.value = entry.lead + statement, value
                return
        index = len(self.entries)
        for position, entry in enumerate(self.entries):
            if after is not None and entry.key == after:
                index = position + 1
        if index and not _EOL.search(self.entries[index - 1].text):
            self.entries[index - 1].text += self.newline
        self.entries.insert(index, Entry(statement, key, value, False, 0))

    def delete(self, key: str) -> bool:
        """Remove every binding of ``key`` (its statement; surrounding blank lines stay)."""
        found = False
        for entry in self.entries:
            if entry.key == key:
                entry.text, entry.key, entry.value = entry.lead, None, None
                found = True
        return found


def format_value(value: str, quote: str = "") -> str:
    """The shortest text dotenv reads back as ``value``, in the requested quote style if safe."""
    if quote == "'" and not re.search(r"['\\\r\n]", value):
        return f"'{value}'"
    if quote != '"' and _PLAIN_VALUE.fullmatch(value):
        return value
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def _rewrite(statement: str, key: str, value: str, newline: str) -> str:
    """Replace the value in one statement, keeping indentation, `export`, quotes and comment."""
    eol_match = _EOL.search(statement)
    assignment = _ASSIGNMENT.match(statement)
    if assignment is None:  # `KEY` alone (no `=`): write a full assignment
        indent = statement[: len(statement) - len(statement.lstrip(" \t"))]
        eol = eol_match.group(0) if eol_match else newline
        return f"{indent}{key}={format_value(value)}{eol}"
    head, rest = statement[: assignment.end()], statement[assignment.end() :]
    eol_match = _EOL.search(rest)
    quote = rest[:1] if rest[:1] in _QUOTED else ""
    if quote:
        closing = _QUOTED[quote].match(rest)
        tail = rest[closing.end() :] if closing else (eol_match.group(0) if eol_match else "")
    else:
        line = rest[: eol_match.start()] if eol_match else rest
        comment = re.search(r"\s+#", line)
        if comment is None and line.startswith("#") and head.endswith((" ", "\t")):
            comment = re.match(r"", line)  # `KEY= # note`: the value is empty, the rest a comment
        tail = rest[comment.start() :] if comment else rest[len(line) :]
        if tail.startswith("#"):  # keep the comment a comment after a non-empty value
            tail = " " + tail
    return head + format_value(value, quote) + tail


# --- reading and writing ------------------------------------------------------------------------


def read_text(path: Path) -> str:
    """The text of a .env file, or a ConfigError that names the file and the fix."""
    if path.is_dir():
        raise ConfigError(
            f"{path} is a directory, not a .env file",
            hint="remove it or point --env-file at a file (rtctl init writes one)",
        )
    try:
        raw = path.read_bytes()
        return raw.decode("utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path} does not exist",
            hint="create it with `rtctl init`, or pass --env-file with an existing file",
        ) from exc
    except PermissionError as exc:
        raise ConfigError(
            f"{path} cannot be read: permission denied",
            hint=f"fix its permissions (chmod 600 {path}) or run as its owner",
        ) from exc
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path} is not UTF-8 text (line {line})",
            hint="re-save it as UTF-8, or recreate it with `rtctl init --force`",
        ) from exc
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read: {exc.strerror}") from exc


def load(path: Path) -> EnvDocument:
    return EnvDocument(read_text(path))


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold for a whole read-modify-write of the .env at ``path`` (and the files kept beside it:
    backups, the switch stash): two rtctl processes editing it at once take turns, so neither
    loses the other's update. The lock is the folder's, where the file really lives."""
    if path.is_symlink():
        path = path.resolve()
    folder = path.parent if str(path.parent) else Path(".")
    with locks.folder_lock(folder, f"editing {path.name}", EDIT_LOCK_WAIT, create=False):
        yield


def backup_path(path: Path) -> Path:
    """A free name next to ``path``: ``.env.bak-20261125T171702Z`` (``-2``… if taken)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    candidate = path.with_name(f"{path.name}.bak-{stamp}")
    counter = 2
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.bak-{stamp}-{counter}")
        counter += 1
    return candidate


def replaceable(path: Path) -> Path:
    """The file an atomic write of ``path`` replaces (through a symlink), or a ConfigError when
    that is a folder or not a regular file (/dev/null, a pipe: never replace those)."""
    if path.is_symlink():  # write through the link (a .env kept elsewhere stays linked)
        path = path.resolve()
    if path.is_dir():
        raise ConfigError(
            f"{path} is a directory, not a file",
            hint="remove it or choose another path",
        )
    if path.exists() and not path.is_file():
        raise ConfigError(
            f"{path} is not a regular file: rtctl only replaces files it can write whole",
            hint="point --env-file at a regular file (rtctl init writes one)",
        )
    return path


def atomic_write(path: Path, data: str | bytes, backup: bool = False) -> Path | None:
    """Replace ``path`` with ``data`` atomically, mode 0600. Returns the backup path, if one was made.

    The new content goes to a temp file in the same folder, is fsynced, then renamed over the old
    file: readers see the old file or the new one, never a mix, even if we are killed midway.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path = replaceable(path)
    saved: Path | None = None
    if backup and path.exists():
        saved = backup_path(path)
        atomic_write(saved, path.read_bytes())
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise filesystem_problem(exc, "write in", path.parent) from exc
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException as exc:
        with suppress(FileNotFoundError):
            os.unlink(temp)
        if isinstance(exc, OSError):  # a full disk, a file-size limit: the old file is whole
            raise filesystem_problem(exc, "write", path) from exc
        raise
    _fsync_dir(path.parent)
    return saved


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (best effort: not every platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
