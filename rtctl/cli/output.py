"""All of rtctl's output, in one place: every command writes through these functions.

The rules they keep:
- data (the command's result, tables, JSON, NDJSON) goes to stdout; everything for people
  (progress, notes, warnings, errors) goes to stderr, so a pipe carries only data;
- whether stderr is a terminal is decided here and nowhere else: spinners and live views appear
  only on a terminal and never in --json mode; off a terminal progress is one plain line per step;
- rich picks colour only on a terminal and honours NO_COLOR; rich is imported only when used;
- text from a server or a user goes through ``printable`` (rtctl.printable) before it reaches a
  person: control characters are shown escaped, never obeyed; JSON stays exact (``json_safe``).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from rtctl.printable import json_safe, printable_lines
from rtctl.printable import printable as printable  # for commands: output.printable(text)

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

    from rtctl.errors import RtctlError

_consoles: dict[str, Console] = {}


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def is_interactive() -> bool:
    """Prompts only when a person can answer and see the question."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def err_console() -> Console:
    """rich console on stderr, for what people read while stdout carries data."""
    if "err" not in _consoles:
        from rich.console import Console

        _consoles["err"] = Console(stderr=True, highlight=False, soft_wrap=True)
    return _consoles["err"]


def out_console() -> Console:
    if "out" not in _consoles:
        from rich.console import Console

        _consoles["out"] = Console(highlight=False, soft_wrap=True)
    return _consoles["out"]


# --- data: stdout --------------------------------------------------------------------------------


def data(text: str) -> None:
    """Plain text data; a newline is added."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def data_raw(text: str) -> None:
    """Text data written as is (it carries its own newlines, e.g. a diff or a JS snippet)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def data_json(value: Any) -> None:
    """One JSON document."""
    data(json_safe(json.dumps(value, indent=2, default=str, ensure_ascii=False)))


def data_ndjson(value: Any) -> None:
    """One compact JSON line, flushed at once (for jq and CI)."""
    data(json_safe(json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False)))


def data_rich(renderable: RenderableType) -> None:
    """A rich table or text as data (plain when stdout is not a terminal)."""
    out_console().print(renderable)


# --- for people: stderr --------------------------------------------------------------------------


def say(message: str) -> None:
    """One plain line, never wrapped (paths and URLs stay whole for people and scripts).
    Control characters other than line breaks are shown escaped; text from a server or a user
    inside ``message`` should already have passed ``printable`` (its line breaks too)."""
    sys.stderr.write(printable_lines(message) + "\n")
    sys.stderr.flush()


def note(markup: str) -> None:
    """A line with rich markup (colour on a terminal only)."""
    err_console().print(markup)


def show(renderable: RenderableType) -> None:
    """A rich table or text for people (e.g. a report shown while stdout carries NDJSON)."""
    err_console().print(renderable)


def error(problem: RtctlError, as_json: bool) -> None:
    """The one error format: ``error: …`` then ``hint: …`` on stderr; in --json mode also one
    compact JSON line on stdout, so it ends an NDJSON stream as a parseable record."""
    if as_json:
        data_ndjson({"error": problem.to_dict()})
    verdict(problem.message, problem.hint)


def verdict(message: str, hint: str | None) -> None:
    """The error lines alone (a report that already printed its data ends with these)."""
    sys.stderr.write(f"error: {printable_lines(message)}\n")
    if hint:
        sys.stderr.write(f"hint: {printable_lines(hint)}\n")
    sys.stderr.flush()


@contextlib.contextmanager
def progress(first: str, enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """Yields ``update(message)``: a spinner on a terminal, one plain line per message off it;
    nothing at all when not ``enabled`` (e.g. --json)."""
    if not enabled:
        yield lambda _message: None
    elif stderr_is_terminal():
        with err_console().status(first + " …") as spinner:
            yield lambda message: spinner.update(message + " …")
    else:
        yield say


@contextlib.contextmanager
def live(enabled: bool = True, transient: bool = False) -> Iterator[Live | None]:
    """A rich live view on stderr when it is a terminal (and ``enabled``), else None: callers
    then print each state in turn."""
    if not (enabled and stderr_is_terminal()):
        yield None
        return
    from rich.live import Live

    with Live(console=err_console(), auto_refresh=False, transient=transient) as view:
        yield view


class Counter:
    """``sent 3/10`` rewritten in place on a terminal (at most 4 times a second), for runs of
    more than one item; silent off a terminal. Call it with (done, total); ``done`` is kept."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.visible = total > 1 and stderr_is_terminal()
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        import time

        self.done = done
        if not self.visible:
            return
        now = time.monotonic()
        if now - self._last >= 0.25 or done == total:
            self._last = now
            sys.stderr.write(f"\r{self.label} {done}/{total}" + ("\n" if done == total else ""))
            sys.stderr.flush()
