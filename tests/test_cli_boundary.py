"""The one error boundary, seen from a real `python -m rtctl` process: one line, a hint, the
documented exit code; a traceback only with RTCTL_DEBUG; JSON errors on stdout in --json mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_rtctl, write_env

MISSING = (
    "error: nowhere.env does not exist\n"
    "hint: create it with `rtctl init`, or pass --env-file with an existing file\n"
)


def test_expected_failure_has_no_traceback(tmp_path: Path) -> None:
    proc = run_rtctl(["--env-file", "nowhere.env", "config"], cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "", MISSING)


def test_rtctl_debug_shows_the_traceback_then_the_same_message(tmp_path: Path) -> None:
    proc = run_rtctl(
        ["--env-file", "nowhere.env", "config"], cwd=tmp_path, env={"RTCTL_DEBUG": "1"}
    )
    assert proc.returncode == 3
    assert proc.stderr.startswith("Traceback (most recent call last):\n")
    assert "rtctl.errors.ConfigError: nowhere.env does not exist\n" in proc.stderr
    assert proc.stderr.endswith(MISSING)


def test_json_mode_reports_the_error_as_json_on_stdout(tmp_path: Path) -> None:
    proc = run_rtctl(["--env-file", "nowhere.env", "config", "--json"], cwd=tmp_path)
    assert proc.returncode == 3
    assert proc.stdout.count("\n") == 1  # one line: it can close an NDJSON stream too
    assert json.loads(proc.stdout) == {
        "error": {
            "code": "config",
            "message": "nowhere.env does not exist",
            "hint": "create it with `rtctl init`, or pass --env-file with an existing file",
            "exit_code": 3,
        }
    }
    assert proc.stderr == MISSING


def test_usage_error_exit_2(tmp_path: Path) -> None:
    write_env(
        tmp_path / ".env", {"PUSHER_APP_ID": "1", "PUSHER_APP_KEY": "k1", "PUSHER_APP_SECRET": "s1"}
    )
    proc = run_rtctl(["switch", "ably"], cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        2,
        "",
        "error: unknown provider 'ably'\nhint: use `rtctl switch soketi` or `rtctl switch pusher`\n",
    )


def test_typer_usage_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:
    proc = run_rtctl(["switch"], cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        2,
        "",
        "error: Missing argument 'provider'\nhint: see `rtctl switch --help`\n",
    )


@pytest.mark.parametrize(
    ("args", "message", "where"),
    [
        (["switch", "--json"], "Missing argument 'provider'", "rtctl switch"),
        (["status", "--bogus", "--json"], "No such option: --bogus", "rtctl status"),
        (
            ["--port", "x", "status", "--json"],
            "Invalid value for '--port': 'x' is not a whole number",
            "rtctl",
        ),
        (
            ["listen", "c", "--timeout", "inf", "--json"],
            "Invalid value for '--timeout': inf is not a finite number",
            "rtctl listen",
        ),
    ],
)
def test_usage_errors_in_json_mode_print_the_json_error_line(
    tmp_path: Path, args: list[str], message: str, where: str
) -> None:
    proc = run_rtctl(args, cwd=tmp_path)
    hint = f"see `{where} --help`"
    assert proc.returncode == 2
    assert json.loads(proc.stdout) == {
        "error": {"code": "usage", "message": message, "hint": hint, "exit_code": 2}
    }
    assert proc.stderr == f"error: {message}\nhint: {hint}\n"


@pytest.mark.parametrize("args", [[], ["bot"], ["webhooks"], ["listen"]])
def test_a_command_line_that_stops_short_shows_its_help_with_exit_2(
    tmp_path: Path, args: list[str]
) -> None:
    """`rtctl`, `rtctl bot`, `rtctl listen`: the help exactly as --help prints it, on stderr
    (nothing was asked for on stdout), not an `error: Usage: …` line with a hint under it."""
    proc = run_rtctl(args, cwd=tmp_path)
    asked = run_rtctl([*args, "--help"], cwd=tmp_path)
    assert asked.returncode == 0 and asked.stdout.startswith(
        f"Usage: {' '.join(['rtctl', *args])} "
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", asked.stdout)


def test_conflict_exit_9_as_json(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("KEEP=1\n")
    proc = run_rtctl(["init", "--json"], cwd=tmp_path)
    assert proc.returncode == 9
    assert json.loads(proc.stdout)["error"]["code"] == "conflict"
    assert proc.stderr.startswith("error: .env already exists; nothing was written\n")
    assert (tmp_path / ".env").read_text() == "KEEP=1\n"


def test_no_colour_and_no_prompt_off_a_tty(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("REALTIME_PROVIDER=soketi\nPUSHER_APP_ID=1\n")
    proc = run_rtctl(["switch", "pusher"], cwd=tmp_path, env={"NO_COLOR": "1"})
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        "error: switch pusher needs --cluster, --app-id, --key, --secret (Pusher credentials)\n"
        "hint: pass them from the Pusher dashboard (App Keys), or run on a terminal to be "
        "prompted\n"
    )
    assert "\x1b[" not in proc.stderr


# --- report commands: the report is the data; the verdict is the same line in every mode ---------


def _nothing_listening(tmp_path: Path) -> None:
    from tests.helpers import free_port

    write_env(
        tmp_path / ".env",
        {
            "PUSHER_APP_ID": "1",
            "PUSHER_APP_KEY": "key1",
            "PUSHER_APP_SECRET": "secret1",
            "REALTIME_PORT": str(free_port()),
            "SOKETI_METRICS_SERVER_PORT": str(free_port()),
        },
    )


def test_status_not_running_says_so_the_same_way_with_and_without_json(tmp_path: Path) -> None:
    _nothing_listening(tmp_path)
    human = run_rtctl(["status"], cwd=tmp_path)
    as_json = run_rtctl(["status", "--json"], cwd=tmp_path)
    assert human.returncode == as_json.returncode == 4
    assert human.stderr == as_json.stderr
    assert human.stderr.startswith("error: no Soketi answers at http://127.0.0.1:")
    assert human.stderr.endswith("\nhint: start one with `rtctl up`\n")
    report = json.loads(as_json.stdout)  # the one document on stdout is the report, no error
    assert report["running"] is False and "error" not in report


def test_doctor_failing_in_json_mode_prints_the_report_and_the_verdict(tmp_path: Path) -> None:
    _nothing_listening(tmp_path)
    proc = run_rtctl(["doctor", "--json", "--timeout", "0.5"], cwd=tmp_path)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    failed = [check["name"] for check in report["checks"] if check["status"] == "fail"]
    assert report["ok"] is False and failed
    assert proc.stderr.startswith(f"error: {len(failed)} check")
    assert proc.stderr.endswith(
        "hint: apply the fixes shown under ✗ (or !), then run `rtctl doctor` again\n"
    )


def test_no_command_leaves_through_a_bare_exit_number() -> None:
    """Every exit goes through ExitCode and the boundary (rtctl/cli/app.py): no typer.Exit,
    sys.exit or SystemExit elsewhere, and no integer literal as an exit code anywhere."""
    import ast

    package = Path(__file__).resolve().parent.parent / "rtctl"
    offences = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package.parent).as_posix()
        tree = ast.parse(path.read_text(), relative)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                exits = name in ("typer.Exit", "SystemExit", "sys.exit", "os._exit", "exit")
                if exits and relative not in ("rtctl/cli/app.py", "rtctl/__main__.py"):
                    offences.append(f"{relative}:{node.lineno} {name}(...) outside the boundary")
                literal = [arg for arg in node.args if isinstance(arg, ast.Constant)]
                if exits and any(isinstance(arg.value, int) for arg in literal):
                    offences.append(f"{relative}:{node.lineno} {name} with a bare number")
                for keyword in node.keywords:
                    if keyword.arg == "exit_code" and isinstance(keyword.value, ast.Constant):
                        offences.append(f"{relative}:{node.lineno} exit_code={keyword.value.value}")
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                value = getattr(node, "value", None)
                if (
                    ast.unparse(target).endswith("exit_code")
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, int)
                ):
                    offences.append(f"{relative}:{node.lineno} exit_code = {value.value}")
    assert offences == []


def test_cli_modules_keep_annotations_as_objects() -> None:
    """Typer reads every command's (and option type's) annotations when rtctl starts; as strings (the __future__
    import) each one is compiled and evaluated again on every run: ~25 ms of `rtctl --help`."""
    cli = Path(__file__).resolve().parent.parent / "rtctl" / "cli"
    stringy = [
        path.name
        for path in sorted([*cli.glob("cmd_*.py"), cli / "app.py", cli / "common.py"])
        if "from __future__ import annotations" in path.read_text()
    ]
    assert stringy == []
