#!/usr/bin/env python3
"""Regenerate what README.md and docs/*.md copy from the CLI: usage lines and option tables.

The prose around them is written by hand. The generated blocks sit between cog markers, e.g.

    <!-- [[[cog usage("up", "down")]]] -->
    ...generated, do not edit...
    <!-- [[[end]]] -->

and are rebuilt from the Typer/Click command objects themselves (the same text `--help` prints),
so a changed option changes the docs. CI runs the check: a block that is out of date fails it.

    python scripts/gen_docs.py           # rewrite every generated block after changing the CLI
    python scripts/gen_docs.py --check   # exit 1 (and show the diff) when a block is out of date

Functions usable in a block: usage(*commands), options(command), global_options().
A command is named as it is typed after `rtctl`: "emit", "bot say".
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperArgument

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
WIDTH = 100  # the repo's line length, also for the usage blocks
HELP_OPTIONS = ("-h", "--help")


def _contexts(command: str) -> list[typer.Context]:
    """The chain of contexts from `rtctl` down to ``command`` (what --help renders with)."""
    from rtctl.cli.app import app

    root = typer.main.get_command(app)
    chain = [typer.Context(root, info_name="rtctl", terminal_width=WIDTH)]
    for name in command.split():
        sub = getattr(chain[-1].command, "commands", {}).get(name)
        assert sub is not None, f"rtctl has no command {command!r}"
        chain.append(typer.Context(sub, info_name=name, parent=chain[-1]))
    return chain


def _params(ctx: typer.Context) -> Iterator[tuple[Any, tuple[str, str]]]:
    """Each parameter with its --help record (name column, help column); --help itself skipped."""
    for param in ctx.command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None or set(param.opts) & set(HELP_OPTIONS):
            continue
        yield param, record


def _value_part(param: Any, name_column: str) -> str:
    """What follows the option names in the --help name column: its metavar (or type)."""
    names = [*param.opts, *param.secondary_opts]
    end = max(name_column.rfind(name) + len(name) for name in names if name in name_column)
    return name_column[end:].strip()


def _argument_name(param: TyperArgument) -> str:
    name = param.metavar or str(param.name).upper()
    return f"{name}…" if param.nargs == -1 else name


def _token(param: Any, name_column: str) -> str:
    """One piece of a synopsis: ``[--count N]``, ``[--wait/--no-wait]``, ``CHANNEL…``."""
    if isinstance(param, TyperArgument):
        token = _argument_name(param)
        return token if param.required else f"[{token}]"
    long_names = [name for name in param.opts if name.startswith("--")] or list(param.opts)
    token = long_names[0]
    if param.secondary_opts:
        token += "/" + param.secondary_opts[0]
    value = _value_part(param, name_column) if not getattr(param, "is_flag", False) else ""
    if value:
        token += f" {value}"
    if getattr(param, "multiple", False):
        token += "…"
    return token if param.required else f"[{token}]"


def synopsis(command: str) -> str:
    """``rtctl emit [CHANNEL[,CHANNEL…]] [EVENT] [--data JSON] …``, wrapped at WIDTH."""
    params = list(_params(_contexts(command)[-1]))
    arguments = [_token(p, name) for p, (name, _) in params if isinstance(p, TyperArgument)]
    flags = [_token(p, name) for p, (name, _) in params if not isinstance(p, TyperArgument)]
    head = f"rtctl {command}".rstrip()
    indent = " " * (len(head) + 1)
    lines, line = [], head
    for token in [*arguments, *flags]:
        if len(line) + 1 + len(token) > WIDTH and line.strip():
            lines.append(line)
            line = indent + token
        else:
            line += " " + token
    lines.append(line)
    return "\n".join(lines)


def _cell(text: str) -> str:
    """One line of table text; | < > * would end the cell or read as HTML or emphasis."""
    text = " ".join(text.split()).replace("|", "\\|")
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")


def _table(ctx: typer.Context) -> str:
    rows = ["| Option | Meaning |", "|---|---|"]
    for param, (name_column, help_column) in _params(ctx):
        if isinstance(param, TyperArgument):  # --help adds the type (<str>); the name says more
            name_column = _argument_name(param)
        name = " ".join(name_column.split()).replace("|", "\\|")  # in a code span: only | matters
        rows.append(f"| `{name}` | {_cell(help_column)} |")
    return "\n".join(rows)


# --- what a block can call ----------------------------------------------------------------------


def usage(*commands: str) -> None:
    """A fenced block with one synopsis per command."""
    print("```")
    for command in commands:
        print(synopsis(command))
    print("```")


def options(command: str) -> None:
    """The command's arguments and options as a table: the name column and help text of --help."""
    print(_table(_contexts(command)[-1]))


def global_options() -> None:
    """The options of `rtctl` itself (given before the command)."""
    print(_table(_contexts("")[0]))


# --- running cog --------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    from cogapp import Cog

    check = "--check" in argv
    files = [str(path) for path in DOCS if "[[[cog" in path.read_text(encoding="utf-8")]
    args = ["cog", "-P", "-I", str(Path(__file__).parent), "-p", "from gen_docs import *"]
    if check:
        args += ["--check", "--diff", "--check-fail-msg=run: python scripts/gen_docs.py"]
    else:
        args += ["-r"]
    return Cog().main([*args, "--verbosity=1", *files])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
