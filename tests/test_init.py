"""`rtctl init`: fresh working credentials, atomic 0600 files, no overwrite without --force."""

from __future__ import annotations

import dataclasses
import json
import re
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from rtctl.config import load_settings
from rtctl.envfile import EnvDocument
from rtctl.errors import AuthRejected
from rtctl.ops.initialize import compose_template, random_token
from rtctl.protocol.httpapi import ApiClient
from tests.helpers import SoketiServer, free_port, run_cli, run_rtctl
from tests.test_switch import run_on_a_terminal

CONFLICT_HINT = (
    "hint: pass --force to replace (the old files are kept as *.bak-<time>), or --dir to write "
    "elsewhere\n"
)
PUSHER_FLAGS = ["--cluster", "eu", "--app-id", "1234567", "--key", "pk1abc", "--secret", "ps2def"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_writes_a_loadable_env_and_compose_with_mode_0600(tmp_path: Path) -> None:
    result = run_cli(["init"])
    assert (result.exit_code, result.stdout) == (0, ".env\ncompose.yaml\n")
    assert result.stderr == "wrote fresh credentials; next: `rtctl up` starts Soketi with them\n"
    assert (mode(tmp_path / ".env"), mode(tmp_path / "compose.yaml")) == (0o600, 0o600)
    assert (tmp_path / "compose.yaml").read_text() == compose_template()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", "compose.yaml"]  # no temp left

    settings = load_settings(Path(".env"), environ={})
    assert re.fullmatch(r"[1-9][0-9]{5}", settings.app_id)
    assert re.fullmatch(r"[a-z][a-z0-9]{19}", settings.key)
    assert re.fullmatch(r"[a-z][a-z0-9]{31}", settings.secret)
    assert (settings.provider, settings.host, settings.port, settings.scheme) == (
        "soketi",
        "127.0.0.1",
        6001,
        "http",
    )
    assert (settings.app_manager_driver, settings.metrics_enabled, settings.client_messages) == (
        "array",
        True,
        True,
    )
    assert (settings.bot_id, settings.bot_name, settings.bot_avatar) == (
        "9000000",
        "Coach",
        "/assets/bot.png",
    )
    assert settings.master_key is not None and len(settings.master_key) == 32


def test_every_init_gets_new_credentials(tmp_path: Path) -> None:
    assert run_cli(["init", "--dir", "a"]).exit_code == 0
    assert run_cli(["init", "--dir", "b"]).exit_code == 0
    a = EnvDocument((tmp_path / "a" / ".env").read_text()).values()
    b = EnvDocument((tmp_path / "b" / ".env").read_text()).values()
    for name in ("PUSHER_APP_ID", "PUSHER_APP_KEY", "PUSHER_APP_SECRET"):
        assert a[name] != b[name]


def test_generated_keys_never_parse_as_json_numbers() -> None:
    for _ in range(500):
        token = random_token(20)
        assert token[0].isalpha() and not token.isdigit()
        try:
            value = json.loads(token)
        except ValueError:
            value = token
        assert value == token  # Soketi's JSON.parse keeps it a string


def test_the_written_env_works_against_a_real_soketi(
    tmp_path: Path, soketi_factory: Callable[..., SoketiServer]
) -> None:
    """A real Soketi started with the .env's credentials accepts requests signed from that .env
    (Soketi crashes on credentials it JSON-parses to numbers; a wrong secret is refused)."""
    port, metrics = free_port(), free_port()
    assert run_cli(["init", "--port", str(port), "--metrics-port", str(metrics)]).exit_code == 0
    written = EnvDocument((tmp_path / ".env").read_text()).values()
    soketi_factory(
        **{
            name: written[name]
            for name in written
            if name.startswith(("PUSHER_APP", "REALTIME_PORT", "SOKETI_METRICS_SERVER_PORT"))
        }
    )
    settings = load_settings(Path(".env"), environ={})
    assert ApiClient(settings, timeout=10).channels() == {}  # signed with the .env: accepted
    wrong = dataclasses.replace(settings, secret="wrong" + settings.secret)
    with pytest.raises(AuthRejected):  # the same request with another secret: refused
        ApiClient(wrong, timeout=10).channels()


def test_init_ports_and_the_compose_file_agree(tmp_path: Path) -> None:
    port, metrics = free_port(), free_port()
    result = run_cli(["init", "--port", str(port), "--metrics-port", str(metrics)])
    assert result.exit_code == 0
    settings = load_settings(Path(".env"), environ={})
    assert (settings.port, settings.metrics_port) == (port, metrics)
    compose = yaml.safe_load((tmp_path / "compose.yaml").read_text())
    env = compose["services"]["soketi"]["environment"]
    assert env["SOKETI_DEFAULT_APP_KEY"].startswith("${PUSHER_APP_KEY:?")


def test_no_overwrite_without_force(tmp_path: Path) -> None:
    assert run_cli(["init"]).exit_code == 0
    before = {name: (tmp_path / name).read_bytes() for name in (".env", "compose.yaml")}
    result = run_cli(["init"])
    assert (result.exit_code, result.stdout, result.stderr) == (
        9,
        "",
        "error: .env already exists; nothing was written\n" + CONFLICT_HINT,
    )
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    (tmp_path / "compose.yaml").write_text("# edited\n")
    both = run_cli(["init"])
    assert (both.exit_code, both.stderr) == (
        9,
        "error: .env and compose.yaml already exist; nothing was written\n" + CONFLICT_HINT,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", "compose.yaml"]


def test_an_existing_env_alone_blocks_everything(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("# mine\nPUSHER_APP_ID=1\n")
    result = run_cli(["init"])
    assert (result.exit_code, result.stderr) == (
        9,
        "error: .env already exists; nothing was written\n" + CONFLICT_HINT,
    )
    assert (tmp_path / ".env").read_text() == "# mine\nPUSHER_APP_ID=1\n"
    assert not (tmp_path / "compose.yaml").exists()  # nothing half-done


def test_conflict_as_json(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("A=1\n")
    result = run_cli(["init", "--json"])
    assert result.exit_code == 9
    assert json.loads(result.stdout) == {
        "error": {
            "code": "conflict",
            "message": ".env already exists; nothing was written",
            "hint": CONFLICT_HINT[len("hint: ") : -1],
            "exit_code": 9,
        }
    }


def test_force_replaces_and_keeps_a_backup(tmp_path: Path) -> None:
    original = b"# hand-written\nPUSHER_APP_ID=42\n"
    (tmp_path / ".env").write_bytes(original)
    result = run_cli(["init", "--force"])
    assert result.exit_code == 0
    backups = sorted(tmp_path.glob(".env.bak-*"))
    assert len(backups) == 1 and re.fullmatch(r"\.env\.bak-\d{8}T\d{6}Z", backups[0].name)
    assert backups[0].read_bytes() == original
    assert mode(backups[0]) == 0o600
    assert result.stderr.startswith(f"kept the old file as {backups[0].name}\n")
    assert load_settings(Path(".env"), environ={}).app_id != "42"
    # a second --force keeps the first backup too
    assert run_cli(["init", "--force"]).exit_code == 0
    assert len(list(tmp_path.glob(".env.bak-*"))) == 2
    assert backups[0].read_bytes() == original


def test_no_prompt_off_a_tty_in_a_real_process(tmp_path: Path) -> None:
    proc = run_rtctl(["init"], cwd=tmp_path, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, ".env\ncompose.yaml\n")
    assert "Provider" not in proc.stderr


def test_dir_is_created(tmp_path: Path) -> None:
    result = run_cli(["init", "--dir", "deploy/local"])
    assert (result.exit_code, result.stdout) == (
        0,
        "deploy/local/.env\ndeploy/local/compose.yaml\n",
    )
    assert mode(tmp_path / "deploy" / "local" / ".env") == 0o600


def test_init_json_masks_the_secret(tmp_path: Path) -> None:
    result = run_cli(["init", "--json"])
    data = json.loads(result.stdout)
    secret = EnvDocument((tmp_path / ".env").read_text()).values()["PUSHER_APP_SECRET"]
    assert (data["provider"], data["written"], data["backups"]) == (
        "soketi",
        [".env", "compose.yaml"],
        [],
    )
    assert (
        secret not in result.stdout and data["settings"]["secret"] == f"{secret[:3]}…{secret[-2:]}"
    )


# --- provider pusher ------------------------------------------------------------------------------


def test_init_pusher_from_flags(tmp_path: Path) -> None:
    result = run_cli(["init", "--provider", "pusher", *PUSHER_FLAGS])
    assert (result.exit_code, result.stdout) == (0, ".env\n")
    values = EnvDocument((tmp_path / ".env").read_text()).values()
    assert "REALTIME_HOST" not in values and "REALTIME_PORT" not in values
    assert not (tmp_path / "compose.yaml").exists()
    settings = load_settings(Path(".env"), environ={})
    assert (settings.provider, settings.ws_host, settings.api_host, settings.tls) == (
        "pusher",
        "ws-eu.pusher.com",
        "api-eu.pusher.com",
        True,
    )
    assert (settings.app_id, settings.key, settings.secret) == ("1234567", "pk1abc", "ps2def")


def test_init_pusher_off_a_tty_names_the_missing_flags(tmp_path: Path) -> None:
    result = run_cli(["init", "--provider", "pusher", "--cluster", "eu", "--key", "pk1abc"])
    assert (result.exit_code, result.stdout, result.stderr) == (
        2,
        "",
        "error: init --provider pusher needs --app-id, --secret (Pusher credentials)\n"
        "hint: pass them from the Pusher dashboard (App Keys), or run on a terminal to be "
        "prompted\n",
    )
    assert not (tmp_path / ".env").exists()


def test_init_pusher_refuses_an_all_digit_secret(tmp_path: Path) -> None:
    flags = [*PUSHER_FLAGS[:-1], "987654321"]
    result = run_cli(["init", "--provider", "pusher", *flags])
    assert (result.exit_code, result.stderr) == (
        2,
        "error: --secret: PUSHER_APP_SECRET is all digits\n"
        "hint: add letters: Soketi JSON-parses env values and crashes on a numeric secret\n",
    )
    assert not (tmp_path / ".env").exists()


def test_init_pusher_refuses_a_non_numeric_app_id(tmp_path: Path) -> None:
    flags = ["--cluster", "eu", "--app-id", "my-app", "--key", "pk1abc", "--secret", "ps2def"]
    result = run_cli(["init", "--provider", "pusher", *flags])
    assert (result.exit_code, result.stderr) == (
        2,
        "error: --app-id: PUSHER_APP_ID='my-app' is not numeric\n"
        "hint: use digits only: the pusher Python SDK refuses other app ids\n",
    )


def test_init_unknown_provider(tmp_path: Path) -> None:
    result = run_cli(["init", "--provider", "ably"])
    assert (result.exit_code, result.stderr) == (
        2,
        "error: --provider 'ably' is not a known provider\n"
        "hint: use --provider soketi (self-hosted, the default) or --provider pusher\n",
    )
    assert list(tmp_path.iterdir()) == []


def test_init_asks_for_the_provider_on_a_terminal(tmp_path: Path) -> None:
    code, screen = run_on_a_terminal(
        ["init"], tmp_path, [("Provider (soketi or pusher) [soketi]: ", "")]
    )
    assert code == 0, screen
    assert load_settings(tmp_path / ".env", environ={}).provider == "soketi"


def test_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    result = run_cli(["init", "--dir", "notes.txt"])
    assert (result.exit_code, result.stderr) == (
        9,
        "error: notes.txt is not a folder\nhint: pass --dir with a folder path\n",
    )


def test_init_pusher_prompts_for_credentials_on_a_terminal(tmp_path: Path) -> None:
    code, screen = run_on_a_terminal(
        ["init", "--provider", "pusher"],
        tmp_path,
        [
            ("Pusher cluster (e.g. mt1, eu, us2): ", "us2"),
            ("Pusher app id: ", "2468"),
            ("Pusher app key: ", "typedkey1"),
            ("Pusher app secret: ", "typedsecret2"),
        ],
    )
    assert code == 0, screen
    assert "typedsecret2" not in screen
    settings = load_settings(tmp_path / ".env", environ={})
    assert (settings.ws_host, settings.app_id, settings.secret) == (
        "ws-us2.pusher.com",
        "2468",
        "typedsecret2",
    )


def test_an_identical_compose_file_is_not_a_conflict(tmp_path: Path) -> None:
    """`rm .env && rtctl init` works: the unchanged compose.yaml is left alone, not overwritten."""
    assert run_cli(["init"]).exit_code == 0
    (tmp_path / ".env").unlink()
    result = run_cli(["init"])
    assert (result.exit_code, result.stdout) == (0, ".env\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", "compose.yaml"]
    (tmp_path / ".env").unlink()
    (tmp_path / "compose.yaml").write_text("# my own compose\n")
    result = run_cli(["init"])
    assert (result.exit_code, result.stderr) == (
        9,
        "error: compose.yaml already exists; nothing was written\n" + CONFLICT_HINT,
    )
    assert not (tmp_path / ".env").exists()
