"""The exit-code table in the README is the contract: bad input through every command ends with
its documented code and one error line (`error: …`, then at most a `hint: …`), never an
"unexpected …" internal error; in --json mode the error is also one JSON line on stdout.

The table is keyed by command. A command registered in the app without rows here fails
`test_every_command_has_rows`, so a new command cannot arrive without its bad inputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer

from rtctl.cli.app import app
from tests.helpers import free_port, fresh_credentials, run_cli, write_env

Setup = Callable[[Path], dict[str, str]]  # prepares the folder; returns environment changes


@dataclass(frozen=True)
class Case:
    command: str  # the command path ("bot say"), "" for the global options
    args: tuple[str, ...]  # the full command line
    code: int
    error: str  # the error line starts with "error: " + this
    setup: Setup | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        shown = " ".join(arg if len(arg) < 40 else arg[:20] + "…" for arg in self.args)
        return shown.encode("unicode_escape").decode("ascii")


def registered_commands() -> dict[str, Any]:
    """Every command a user can run, by its path under `rtctl` ("bot say")."""
    found: dict[str, Any] = {}

    def walk(group: Any, prefix: str) -> None:
        for name, command in group.commands.items():
            path = f"{prefix} {name}".strip()
            if hasattr(command, "commands"):  # a group (bot): its commands are the runnable ones
                walk(command, path)
            else:
                found[path] = command

    walk(typer.main.get_command(app), "")
    return found


def takes_json(command: str) -> bool:
    if not command:
        return False
    return any("--json" in param.opts for param in registered_commands()[command].params)


# --- set-ups ---------------------------------------------------------------------------------------


def existing_env(folder: Path) -> dict[str, str]:
    (folder / "compose.yaml").write_text("# mine\n")
    return {}


def state_is_a_file(folder: Path) -> dict[str, str]:
    (folder / "state").write_text("")
    return {"RTCTL_STATE_DIR": str(folder / "state")}


def log_is_a_folder(folder: Path) -> dict[str, str]:
    (folder / ".rtctl" / "soketi.log").mkdir(parents=True)
    return {"RTCTL_STATE_DIR": str(folder / ".rtctl")}


def a_folder(folder: Path) -> dict[str, str]:
    (folder / "adir").mkdir()
    return {}


def pusher_env(folder: Path) -> dict[str, str]:
    write_env(
        folder / ".env",
        {**fresh_credentials(), "REALTIME_PROVIDER": "pusher", "PUSHER_APP_CLUSTER": "eu"},
    )
    return {}


DEEP = "[" * 100_000 + "]" * 100_000
SIGNED_PATH = (
    "/apps/1/events?auth_key=k&auth_timestamp=1&auth_version=1.0&auth_signature=" + "a" * 64
)


def C(command: str, *args: str, code: int, error: str, **extra: object) -> Case:
    return Case(command, args, code, error, **extra)  # type: ignore[arg-type]


# fmt: off
BAD_INPUT: list[Case] = [
    # global options
    C("", "--port", "inf", "status", code=2, error="Invalid value for '--port': 'inf' is not a whole number"),
    C("", "--port", "70000", "status", code=2, error="Invalid value for '--port': 70000 is out of range"),
    C("", "--host", "256.1.1.1", "status", code=3, error="REALTIME_HOST='256.1.1.1' is not a valid IP address"),
    C("", "--host", "http://x", "status", code=3, error="REALTIME_HOST='http://x' is not a host name"),
    C("", "--scheme", "ftp", "status", code=3, error="REALTIME_SCHEME='ftp' is not http or https"),
    C("", "--env-file", "nowhere.env", "config", code=3, error="nowhere.env does not exist"),
    C("", "--env-file", "adir", "config", code=3, error="adir is a directory", setup=a_folder),
    C("", "--nonsense", "status", code=2, error="No such option: --nonsense"),
    C("", "nonsense", code=2, error="No such command 'nonsense'"),
    # configuration
    C("init", "init", "--port", "7000", "--metrics-port", "7000", "--dir", "new", code=2,
      error="SOKETI_METRICS_SERVER_PORT and REALTIME_PORT are both 7000"),
    C("init", "init", "--port", "0", code=2, error="Invalid value for '--port': 0 is out of range"),
    C("init", "init", "--provider", "ably", code=2, error="--provider 'ably' is not a known provider"),
    C("init", "init", "--dir", ".env", code=9, error=".env is not a folder"),
    C("init", "init", code=9, error=".env and compose.yaml already exist", setup=existing_env),
    C("init", "init", "--provider", "pusher", code=2, error="init --provider pusher needs --cluster"),
    C("switch", "switch", code=2, error="Missing argument 'provider'"),
    C("switch", "switch", "ably", code=2, error="unknown provider 'ably'"),
    C("switch", "switch", "pusher", "--cluster", "e u", "--app-id", "1", "--key", "k1", "--secret", "s1",
      code=2, error="--cluster 'e u' is not a cluster name"),
    C("switch", "--env-file", "/dev/null", "switch", "pusher", "--cluster", "eu", "--app-id", "1",
      "--key", "k1", "--secret", "s1", code=3, error="/dev/null is not a regular file"),
    C("config", "config", "--show", code=2, error="No such option: --show"),
    C("config", "config", code=3, error="REALTIME_BOT_ID is empty", env={"REALTIME_BOT_ID": ""}),
    C("client-config", "client-config", code=3, error="PUSHER_APP_ID is not set",
      env={"PUSHER_APP_ID": ""}),
    C("client-config", "client-config", code=3,
      error="SOKETI_METRICS_SERVER_PORT and REALTIME_PORT are both 7001",
      env={"REALTIME_PORT": "7001", "SOKETI_METRICS_SERVER_PORT": "7001"}),
    # running Soketi
    C("up", "up", "--timeout", "inf", code=2, error="Invalid value for '--timeout': inf is not a finite number"),
    C("up", "up", "--runtime", "podman", code=2, error="Invalid value for '--runtime'"),
    C("up", "--host", "no-such-host.invalid", "up", "--runtime", "native", code=3,
      error="REALTIME_HOST 'no-such-host.invalid' cannot be resolved to an address"),
    C("up", "--host", "192.0.2.1", "up", "--runtime", "native", code=3,
      error="REALTIME_HOST 192.0.2.1 is not an address of this machine"),
    C("up", "up", "--runtime", "native", code=8, error="cannot use", setup=log_is_a_folder),
    C("up", "--provider", "pusher", "up", code=3, error="the provider is pusher", setup=pusher_env),
    C("down", "down", "--now", code=2, error="No such option: --now"),
    C("down", "down", code=8, error="cannot create the folder", setup=state_is_a_file),
    C("status", "status", "--watch", "--interval", "nan", code=2,
      error="Invalid value for '--interval': nan is not a finite number"),
    C("status", "status", "--count", "-1", code=2, error="Invalid value for '--count': -1 is out of range"),
    C("status", "status", code=8, error="cannot use", setup=state_is_a_file),
    C("logs", "logs", "-n", "-5", code=2, error="Invalid value for '--lines' / '-n': -5 is out of range"),
    C("logs", "logs", "--timeout", "1e10", code=2, error="Invalid value for '--timeout': 1e10 is out of range"),
    C("logs", "logs", code=8, error="cannot use", setup=log_is_a_folder),
    C("doctor", "doctor", "--timeout", "inf", code=2, error="Invalid value for '--timeout': inf is not a finite number"),
    C("doctor", "doctor", "--timeout", "0", code=2, error="Invalid value for '--timeout': 0 is out of range"),
    # events
    C("auth", "auth", "private-x", code=2, error="--socket-id is required"),
    C("auth", "auth", "bad channel", "--socket-id", "1.1", code=2, error="channel name 'bad channel'"),
    C("auth", "auth", "presence-x", "--socket-id", "1.1", "--user-id", "1", "--user-info", '{"a":NaN}',
      code=2, error="--user-info is not JSON (NaN is not a JSON value"),
    C("auth", "auth", "presence-x", "--socket-id", "1.1", "--user-id", "1", "--user-info", DEEP,
      code=2, error="--user-info is not JSON (nested too deeply)"),
    C("emit", "emit", "orders", "e", "--data", "NaN", code=2,
      error="event data from --data is not JSON: NaN is not a JSON value"),
    C("emit", "emit", "orders", "e", "--data", '{"x": -Infinity}', code=2,
      error="event data from --data is not JSON: -Infinity is not a JSON value"),
    C("emit", "emit", "orders", "e", "--data", DEEP, code=2,
      error="event data from --data is not JSON: nested too deeply"),
    C("emit", "emit", "orders", "e\x1b[31m", code=2, error="event name 'e\\x1b[31m' contains a control character"),
    C("emit", "emit", "orders", "e", "--rate", "inf", code=2, error="Invalid value for '--rate': inf is not a finite number"),
    C("emit", "emit", "orders", "e", "--rate", "-1", code=2, error="Invalid value for '--rate': -1 is out of range"),
    C("emit", "emit", "orders", "e", "--count", "1e10", code=2, error="Invalid value for '--count' / '-n': '1e10' is not a whole number"),
    C("emit", "emit", "--batch", "adir", code=2, error="cannot read data file 'adir'", setup=a_folder),
    C("emit", "emit", "orders", "e", "--data", "@missing.json", code=2, error="cannot read data file 'missing.json'"),
    C("emit", "emit", "orders", code=2, error="name a channel and an event"),
    C("bot say", "bot", "say", "hi", code=2, error="--to is required"),
    C("bot say", "bot", "say", "--to", "1 2", "hi", code=2, error="channel name 'private-1 2_9000000'"),
    C("bot say", "bot", "say", "--to", "1", "hi", code=3, error="REALTIME_BOT_ID is empty",
      env={"REALTIME_BOT_ID": ""}),
    C("bot say", "bot", "say", "--to", "1", "hi", code=3, error="REALTIME_BOT_ID='9_0' cannot be part",
      env={"REALTIME_BOT_ID": "9_0"}),
    C("channels", "channels", "--bogus", code=2, error="No such option: --bogus"),
    C("channels", "channels", code=3, error="provider is pusher but PUSHER_APP_CLUSTER is empty",
      setup=pusher_env, env={"PUSHER_APP_CLUSTER": ""}),
    C("channel", "channel", "bad name", code=2, error="channel name 'bad name'"),
    C("channel", "channel", code=2, error="Missing argument 'CHANNEL'"),
    C("users", "users", "private-x", code=2, error="'private-x' is not a presence channel"),
    C("terminate", "terminate", " ", code=2, error="user id ' ' contains characters Pusher refuses"),
    C("terminate", "terminate", "a\x1bb", code=2, error="user id 'a\\x1bb' contains characters Pusher refuses"),
    C("listen", "listen", "c", "--timeout", "inf", code=2, error="Invalid value for '--timeout': inf is not a finite number"),
    C("listen", "listen", "c", "--count", "0", code=2, error="Invalid value for '--count': 0 is out of range"),
    C("listen", "listen", "c", "--auth-header", "A: b", code=2, error="--auth-header is only sent to an --auth-endpoint"),
    C("listen", "listen", "--signin", "--user-auth-endpoint", "ftp://h/u", code=2,
      error="--user-auth-endpoint 'ftp://h/u' is not an http(s) URL"),
    C("listen", "listen", "private-c", "--auth-endpoint", "not a url", code=2,
      error="--auth-endpoint 'not a url' is not an http(s) URL"),
    C("listen", "listen", "private-c", "--auth-endpoint", "ftp://x/y", code=2,
      error="--auth-endpoint 'ftp://x/y' is not an http(s) URL"),
    C("listen", "listen", "private-c", "--auth-endpoint", "http://127.0.0.1:99999/a", code=2,
      error="--auth-endpoint 'http://127.0.0.1:99999/a' has an invalid port"),
    C("listen", "listen", "private-c", "--auth-endpoint", "http://127.0.0.1:9/a", "--auth-header",
      "A: b\r\nX: y", code=2, error="--auth-header 'A' value contains a line break"),
    C("listen", "listen", "private-c", "--auth-endpoint", "http://127.0.0.1:9/a", "--auth-header",
      "A B: c", code=2, error="--auth-header header name 'A B' is not a valid header name"),
    C("listen", "listen", "presence-c", code=2, error="listening on presence channel 'presence-c' needs a user id"),
    # CI, gateway, load
    C("smoke", "smoke", "--timeout", "inf", code=2, error="Invalid value for '--timeout': inf is not a finite number"),
    C("smoke", "smoke", "--via-gateway", "not a url", "--token", "x", code=2,
      error="--via-gateway 'not a url' is not an http(s) URL"),
    C("smoke", "smoke", "--via-gateway", "ftp://h", "--token", "x", code=2,
      error="--via-gateway 'ftp://h' is not an http(s) URL"),
    C("smoke", "smoke", "--junit", "adir", code=2, error="--junit adir is a directory", setup=a_folder),
    C("gateway", "gateway", "--port", "0", code=2, error="Invalid value for '--port': 0 is out of range"),
    C("gateway", "gateway", "--host", "256.1.1.1", code=2, error="--host '256.1.1.1' cannot be resolved"),
    C("gateway", "gateway", "--host", "192.0.2.1", code=2, error="--host 192.0.2.1 is not an address of this machine"),
    C("gateway", "gateway", "--log-level", "loud", code=2, error="--log-level 'loud' is not one of"),
    C("gateway", "gateway", "--prefix", "x", code=2, error="--prefix 'x' must start with /"),
    C("console", "console", "--port", "99999", code=2, error="Invalid value for '--port': 99999 is out of range"),
    C("console", "console", "--host", "256.1.1.1", code=2, error="--host '256.1.1.1' cannot be resolved"),
    C("console", "console", "--host", "192.0.2.1", "--port", "0", code=2,
      error="--host 192.0.2.1 is not an address of this machine"),
    C("verify auth", "verify", "auth", "--socket-id", "1.1", "--auth", "x", "--channel", "private-a", code=2,
      error="--auth 'x' is not KEY:SIGNATURE"),
    C("verify auth", "verify", "auth", "--socket-id", "x", "--auth", "k:" + "a" * 64, "--channel", "private-a",
      code=2, error="socket id 'x' is malformed"),
    C("verify auth", "verify", "auth", "--auth", "k:s", code=2, error="Missing option '--socket-id'"),
    C("verify api", "verify", "api", "--path", SIGNED_PATH, "--at", "inf", code=2,
      error="Invalid value for '--at': inf is not a finite number"),
    C("verify api", "verify", "api", "--path", SIGNED_PATH, "--at", "nan", code=2,
      error="Invalid value for '--at': nan is not a finite number"),
    C("verify api", "verify", "api", "--path", SIGNED_PATH, "--method", "PO\nST", code=2,
      error="--method 'PO\\nST' is not an HTTP method"),
    C("verify api", "verify", "api", "--path", "not a path", code=2, error="'not a path' has no path"),
    C("webhooks listen", "webhooks", "listen", "--port", "70000", code=2,
      error="Invalid value for '--port': 70000 is out of range"),
    C("webhooks listen", "webhooks", "listen", "--timeout", "inf", code=2,
      error="Invalid value for '--timeout': inf is not a finite number"),
    C("webhooks listen", "webhooks", "listen", "--forward-to", "not a url", code=2,
      error="--forward-to 'not a url' is not an http(s) URL"),
    C("webhooks listen", "webhooks", "listen", "--host", "256.1.1.1", code=2,
      error="--host '256.1.1.1' cannot be resolved"),
    C("webhooks listen", "webhooks", "listen", "--record", "adir", code=2, error="--record adir is a directory",
      setup=a_folder),
    C("webhooks listen", "webhooks", "listen", "--only", "bogus", code=2,
      error="--only 'bogus' is not a webhook event type"),
    C("webhooks trigger", "webhooks", "trigger", "--to", "http://127.0.0.1:9/x", code=2,
      error="Missing argument 'EVENT'"),
    C("webhooks trigger", "webhooks", "trigger", "member_added", "--channel", "presence-c", "--to",
      "http://127.0.0.1:9/x", "--timeout", "nan", code=2, error="Invalid value for '--timeout': nan is not a finite number"),
    C("webhooks verify", "webhooks", "verify", "--max-age", "inf", code=2,
      error="Invalid value for '--max-age': inf is not a finite number"),
    C("webhooks verify", "webhooks", "verify", "missing.ndjson", code=2, error="cannot read missing.ndjson"),
    C("webhooks replay", "webhooks", "replay", code=2, error="Missing argument 'FILE'"),
    C("webhooks replay", "webhooks", "replay", "adir", "--to", "http://127.0.0.1:9/", code=2,
      error="cannot read adir: Is a directory", setup=a_folder),
    C("send-to-user", "send-to-user", code=2, error="Missing argument 'USER_ID'"),
    C("send-to-user", "send-to-user", "a b", "e", code=2, error="user id 'a b' contains characters Pusher refuses"),
    C("send-to-user", "send-to-user", "1", "e\x1b", code=2, error="event name 'e\\x1b' contains a control character"),
    C("send-to-user", "send-to-user", "1", "e", "--data", "NaN", code=2,
      error="event data from --data is not JSON: NaN is not a JSON value"),
    C("compat", "compat", "--timeout", "inf", code=2, error="Invalid value for '--timeout': inf is not a finite number"),
    C("compat", "compat", "--webhook-wait", "0", code=2, error="Invalid value for '--webhook-wait': 0 is out of range"),
    C("compat", "compat", "--require", "bogus", code=2, error="unknown probe 'bogus' in --require"),
    C("compat", "compat", "--webhook-listen", "x y", code=2, error="--webhook-listen 'x y' is not HOST:PORT"),
    C("up", "up", "--nodes", "0", code=2, error="Invalid value for '--nodes': 0 is out of range"),
    C("up", "up", "--nodes", "2", "--adapter", "kafka", code=2, error="Invalid value for '--adapter'"),
    C("bench", "bench", "--workers", "100", code=2, error="Invalid value for '--workers' / '-w': 100 is out of range"),
    C("bench", "bench", "--rate", "inf", code=2, error="Invalid value for '--rate' / '-r': inf is not a finite number"),
    C("bench", "bench", "--duration", "nan", code=2, error="Invalid value for '--duration' / '-d': nan is not a finite number"),
    C("bench", "bench", "--min-delivery", "2", code=2, error="Invalid value for '--min-delivery': 2 is out of range"),
    C("bench", "bench", "-n", "2", "-c", "5", code=2, error="--channels 5 is more than --connections 2"),
    C("bench", "bench", "--channel-type", "secret", code=2, error="--channel-type must be one of"),
]
# fmt: on


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """A project whose .env is valid and points at ports where nothing listens: every row fails
    on its input, never on reaching a server."""
    write_env(
        tmp_path / ".env",
        {
            **fresh_credentials(),
            "REALTIME_PORT": str(free_port()),
            "SOKETI_METRICS_SERVER_PORT": str(free_port()),
        },
    )
    yield tmp_path


def _run(case: Case, folder: Path, monkeypatch: pytest.MonkeyPatch, extra: tuple[str, ...] = ()):
    changes = dict(case.env)
    if case.setup is not None:
        changes.update(case.setup(folder))
    for name, value in changes.items():
        monkeypatch.setenv(name, value)
    return run_cli([*case.args, *extra])


def _assert_one_error_line(stderr: str, case: Case) -> None:
    lines = stderr.splitlines()
    assert "unexpected" not in stderr and "Traceback" not in stderr, stderr
    errors = [index for index, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert lines[errors[0]].startswith(f"error: {case.error}"), stderr
    after = lines[errors[0] + 1 :]  # a hint at most, and nothing else
    assert after == [] or (len(after) == 1 and after[0].startswith("hint: ")), stderr


@pytest.mark.parametrize("case", BAD_INPUT, ids=[case.id for case in BAD_INPUT])
def test_bad_input_exit_code_and_one_error_line(
    case: Case, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(case, folder, monkeypatch)
    assert result.exit_code == case.code, result.stderr
    _assert_one_error_line(result.stderr, case)
    assert result.stdout == ""


JSON_CASES = [case for case in BAD_INPUT if takes_json(case.command)]


@pytest.mark.parametrize("case", JSON_CASES, ids=[case.id for case in JSON_CASES])
def test_bad_input_in_json_mode_ends_with_the_json_error(
    case: Case, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(case, folder, monkeypatch, ("--json",))
    assert result.exit_code == case.code, result.stderr
    _assert_one_error_line(result.stderr, case)
    record = json.loads(result.stdout.splitlines()[-1])
    assert record["error"]["exit_code"] == case.code
    assert record["error"]["message"].startswith(case.error)


def test_every_command_has_rows() -> None:
    """New commands get rows here when they are added (the merge fails otherwise)."""
    covered = {case.command for case in BAD_INPUT}
    missing = sorted(set(registered_commands()) - covered)
    assert missing == [], f"commands without bad-input rows in tests/test_bad_input.py: {missing}"


def test_a_metrics_port_equal_to_the_main_port_is_refused_everywhere(folder: Path) -> None:
    """init, doctor and every other command agree: one diagnosis, one message."""
    message = (
        "SOKETI_METRICS_SERVER_PORT and REALTIME_PORT are both 7002: Soketi would share the port "
        "between its API and its metrics and drop connections"
    )
    init = run_cli(["init", "--dir", "new", "--port", "7002", "--metrics-port", "7002"])
    assert init.exit_code == 2
    assert init.stderr.startswith(f"error: {message}; nothing was written\n")
    assert not (folder / "new" / ".env").exists()

    env = (folder / ".env").read_text()
    (folder / ".env").write_text(env + "REALTIME_PORT=7002\nSOKETI_METRICS_SERVER_PORT=7002\n")
    doctor = run_cli(["doctor", "--json", "--timeout", "0.5"])
    assert doctor.exit_code == 1
    check = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "scheme-tls-port")
    assert (check["status"], check["evidence"]) == ("fail", message)
    for command in (["status"], ["up"], ["emit", "orders", "e"], ["config"]):
        result = run_cli(command)
        assert (result.exit_code, result.stderr.splitlines()[0]) == (3, f"error: {message}")


def test_env_file_dev_null_is_an_empty_file(folder: Path) -> None:
    human = run_cli(["--env-file", "/dev/null", "config"])
    assert human.exit_code == 0
    assert "not found" not in human.stderr
    assert "warning: PUSHER_APP_ID is not set" in human.stderr  # nothing came from the file
    as_json = run_cli(["--env-file", "/dev/null", "config", "--json"])
    assert json.loads(as_json.stdout)["env_file_found"] is True
    emit = run_cli(["--env-file", "/dev/null", "emit", "orders", "e"])
    assert (emit.exit_code, emit.stderr.splitlines()[0]) == (3, "error: PUSHER_APP_ID is not set")


def test_every_numeric_option_uses_the_shared_number_parser() -> None:
    """`rtctl.cli.common.number` refuses inf, nan and out-of-range values for every numeric option
    (Typer's own float accepts inf, and min= alone lets it through)."""
    import typing

    from rtctl.cli import common

    commands = {"rtctl": typer.main.get_command(app), **registered_commands()}
    unchecked = []
    for path, command in commands.items():
        for param in command.params:
            annotation = param.type_descriptor.annotation
            kinds = set(typing.get_args(annotation)) or {annotation}
            if kinds & {int, float} and bool not in kinds:
                parser = param.type_descriptor.parameter_info.parser
                if not isinstance(parser, common.Number):
                    unchecked.append(f"{path} {param.opts[0]}")
    assert unchecked == []
