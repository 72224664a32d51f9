#!/usr/bin/env python3
"""Benchmark 1: start-up time of `rtctl --help` / `rtctl --version` against a bare Typer app.

Every command runs as a fresh process with the same interpreter (`python -m rtctl ...` and
`python hello.py ...`), RUNS times each, interleaved so background load hits all alike; the median
is reported, with the interpreter alone (`python -c pass`) as the floor. Ratio = rtctl ÷ Typer.

With ``--baseline DIR`` (another checkout of rtctl, e.g. `git worktree add /tmp/base main`),
`rtctl --help` and `--version` of that tree run in the same interleaved rounds, so a change is
compared with its base under the same load.

Usage: scripts/bench_startup.py [--runs 21] [--baseline DIR] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HELLO = '''import typer

app = typer.Typer()


@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""
    print(f"hello {name}")


@app.callback(invoke_without_command=True)
def main(version: bool = typer.Option(False, "--version")) -> None:
    if version:
        print("hello 0.0.0")
        raise typer.Exit()


if __name__ == "__main__":
    app()
'''


LEAN = "typer.Typer(rich_markup_mode=None, pretty_exceptions_enable=False, add_completion=False)"


def timed(argv: list[str], cwd: Path = REPO) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=cwd)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--baseline", type=Path, help="another rtctl checkout to compare with")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        hello = Path(folder) / "hello.py"
        hello.write_text(HELLO)
        # The same app with the settings rtctl uses (no rich help, no pretty tracebacks): the floor.
        lean = Path(folder) / "hello_lean.py"
        lean.write_text(HELLO.replace("typer.Typer()", LEAN))
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "typer hello --help": [sys.executable, str(hello), "--help"],
            "typer hello --version": [sys.executable, str(hello), "--version"],
            "typer lean --help": [sys.executable, str(lean), "--help"],
            "typer lean --version": [sys.executable, str(lean), "--version"],
            "rtctl --help": [sys.executable, "-m", "rtctl", "--help"],
            "rtctl --version": [sys.executable, "-m", "rtctl", "--version"],
        }
        # `python -m` imports the package from the working folder, so the baseline runs there.
        folders = dict.fromkeys(commands, REPO)
        if args.baseline is not None:
            for flag in ("--help", "--version"):
                name = f"baseline rtctl {flag}"
                commands[name] = [sys.executable, "-m", "rtctl", flag]
                folders[name] = args.baseline.resolve()
        for name, argv in commands.items():  # warm the page cache and .pyc files
            timed(argv, folders[name])
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                samples[name].append(timed(argv, folders[name]))
    medians = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    print(f"== 1. startup (median of {args.runs} runs, ms) ==")
    for name, ms in medians.items():
        print(f"{name:<24} {ms:7.1f} ms")
    ratios = {
        "help": medians["rtctl --help"] / medians["typer hello --help"],
        "version": medians["rtctl --version"] / medians["typer hello --version"],
        "help_vs_lean": medians["rtctl --help"] / medians["typer lean --help"],
        "version_vs_lean": medians["rtctl --version"] / medians["typer lean --version"],
    }
    print(
        f"ratio rtctl/typer hello: --help {ratios['help']:.2f}x, --version {ratios['version']:.2f}x;"
        f" rtctl/typer lean: --help {ratios['help_vs_lean']:.2f}x,"
        f" --version {ratios['version_vs_lean']:.2f}x"
    )
    if args.baseline is not None:
        ratios["help_vs_baseline"] = medians["rtctl --help"] / medians["baseline rtctl --help"]
        print(f"ratio rtctl/baseline: --help {ratios['help_vs_baseline']:.2f}x")
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps({"runs": args.runs, "median_ms": medians, "ratio": ratios}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
