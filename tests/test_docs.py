"""Docs cannot drift: every command, exit code and env variable is documented."""

from __future__ import annotations

import re

import typer

from rtctl.cli.app import app
from rtctl.config import DEFAULTS
from rtctl.errors import ExitCode
from tests.helpers import REPO


def command_paths(group: typer.Typer, prefix: str = "") -> list[str]:
    """Every command as the user types it, sub-apps included (e.g. 'bot say')."""
    click_group = typer.main.get_command(group)
    paths: list[str] = []

    def walk(command: object, path: str) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, f"{path} {name}".strip())
        else:
            paths.append(path)

    walk(click_group, prefix)
    return sorted(paths)


def test_every_command_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [path for path in command_paths(app) if f"rtctl {path}" not in readme]
    assert missing == []


def test_every_command_has_generated_usage_and_options() -> None:
    """Usage lines (README) and option tables (docs/) are generated from the CLI: every command
    needs its blocks, which `python scripts/gen_docs.py` then fills."""
    readme = (REPO / "README.md").read_text()
    docs = "".join(path.read_text() for path in sorted((REPO / "docs").glob("*.md")))
    used = {m for block in re.findall(r"\[\[\[cog usage\((.*?)\)", readme) for m in _names(block)}
    tabled = set(re.findall(r'\[\[\[cog options\("(.*?)"\)', docs))
    paths = command_paths(app)
    hint = "add a cog block for it, then run: python scripts/gen_docs.py"
    assert [path for path in paths if path not in used] == [], f"usage in README.md: {hint}"
    assert [path for path in paths if path not in tabled] == [], f"options in docs/*.md: {hint}"


def _names(arguments: str) -> list[str]:
    return re.findall(r'"(.*?)"', arguments)


def test_every_exit_code_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    rows = {int(m.group(1)) for m in re.finditer(r"^\|\s*`?(\d+)`?\s*\|", readme, re.MULTILINE)}
    assert {int(code) for code in ExitCode} <= rows


def test_every_variable_is_in_env_example() -> None:
    example = (REPO / ".env.example").read_text()
    missing = [name for name in DEFAULTS if not re.search(rf"^#?\s*{name}=", example, re.MULTILINE)]
    assert missing == []


def test_readme_shows_the_ci_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    command = next(
        line.strip()
        for line in ci
        if line.strip() and not line.startswith(("#", "set ", "cd ")) and "cd " not in line
    )
    assert command in (REPO / "README.md").read_text()


def test_every_option_value_is_named_in_the_generated_docs() -> None:
    """A value option without a metavar shows Typer's type (`<str>`, `<int range>`) in --help
    and in the generated docs; give it a name a reader understands (`--port PORT`)."""
    import re

    placeholder = re.compile(r"<(?:str|text|int|integer|float|path|file|uuid|[a-z]+ range)>")
    found = [
        f"{path.name}: {match.group(0)}"
        for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
        for match in placeholder.finditer(path.read_text())
    ]
    assert found == []
