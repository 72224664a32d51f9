"""The one config loader: precedence, provider derivation, and every kind of bad .env, with the
exact message, hint and exit code a user sees."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

import pytest

from rtctl import __version__
from rtctl.config import DEFAULTS, diagnose, load_settings, read_layers
from rtctl.errors import ConfigError
from tests.helpers import REPO, fresh_credentials, run_cli, unprivileged_runner, write_env

CREDS = {"PUSHER_APP_ID": "123456", "PUSHER_APP_KEY": "key123abc", "PUSHER_APP_SECRET": "sec456def"}
INIT_HINT = "hint: create it with `rtctl init`, or pass --env-file with an existing file\n"


def cli_error(args: list[str]) -> tuple[int, str, str]:
    result = run_cli(args)
    return result.exit_code, result.stdout, result.stderr


# --- precedence -----------------------------------------------------------------------------------


def test_precedence_flags_over_env_over_dotenv_over_defaults(tmp_path: Path) -> None:
    write_env(
        tmp_path / ".env",
        {**CREDS, "REALTIME_HOST": "10.0.0.1", "REALTIME_PORT": "7001", "REALTIME_BOT_NAME": "Env"},
    )
    settings = load_settings(
        Path(".env"),
        overrides={"REALTIME_PORT": "7003", "REALTIME_HOST": None},
        environ={"REALTIME_PORT": "7002", "REALTIME_BOT_NAME": "Proc", "UNRELATED": "x"},
    )
    assert (settings.port, settings.host, settings.bot_name, settings.bot_id) == (
        7003,  # flag beats env and .env
        "10.0.0.1",  # a flag left unset (None) does not hide the .env value
        "Proc",  # env beats .env
        "9000000",  # default
    )
    assert {name: settings.sources[name] for name in ("port", "host", "bot_name", "bot_id")} == {
        "port": "flag",
        "host": ".env",
        "bot_name": "env",
        "bot_id": "default",
    }


def test_precedence_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_env(tmp_path / ".env", {**CREDS, "REALTIME_PORT": "7001", "REALTIME_HOST": "10.0.0.1"})
    monkeypatch.setenv("REALTIME_PORT", "7002")
    monkeypatch.setenv("REALTIME_HOST", "10.0.0.2")
    result = run_cli(["--port", "7003", "config", "--json"])
    import json

    rows = json.loads(result.stdout)["settings"]
    assert (rows["port"], rows["host"]) == (
        {"value": 7003, "variable": "REALTIME_PORT", "source": "flag"},
        {"value": "10.0.0.2", "variable": "REALTIME_HOST", "source": "env"},
    )


def test_defaults_cover_every_documented_variable() -> None:
    example = (REPO / ".env.example").read_text()
    settings = load_settings(REPO / ".env.example", environ={})
    assert settings.provider == "soketi" and settings.port == 6001
    assert all(f"{name}=" in example for name in DEFAULTS)


# --- provider pusher ------------------------------------------------------------------------------


def test_pusher_hosts_derive_from_the_cluster(tmp_path: Path) -> None:
    write_env(
        tmp_path / ".env", {**CREDS, "REALTIME_PROVIDER": "pusher", "PUSHER_APP_CLUSTER": "eu"}
    )
    settings = load_settings(Path(".env"), environ={})
    assert (settings.ws_host, settings.api_host, settings.tls, settings.port) == (
        "ws-eu.pusher.com",
        "api-eu.pusher.com",
        True,
        443,
    )
    assert settings.ws_url == (
        f"wss://ws-eu.pusher.com/app/key123abc?protocol=7&client=rtctl-python&version={__version__}"
    )
    assert (settings.api_base, settings.health_base, settings.metrics_url) == (
        "https://api-eu.pusher.com",
        None,
        None,
    )
    assert {settings.sources[name] for name in ("host", "port", "scheme")} == {"derived"}


def test_pusher_with_a_host_left_over_is_refused(tmp_path: Path) -> None:
    write_env(
        tmp_path / ".env", {**CREDS, "REALTIME_PROVIDER": "pusher", "REALTIME_HOST": "127.0.0.1"}
    )
    assert cli_error(["client-config"]) == (
        3,
        "",
        "error: provider is pusher but REALTIME_HOST is set (Pusher hosts come from the cluster)\n"
        "hint: remove REALTIME_HOST/REALTIME_PORT, or run `rtctl switch pusher`\n",
    )


# --- bad input: exact message, hint, exit code ----------------------------------------------------


def test_unknown_provider_in_dotenv(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", {**CREDS, "REALTIME_PROVIDER": "ably"})
    assert cli_error(["config"]) == (
        3,
        "",
        "error: REALTIME_PROVIDER='ably' is not a known provider\n"
        "hint: set REALTIME_PROVIDER=soketi or pusher (or run `rtctl switch`)\n",
    )


def test_unknown_provider_as_a_flag(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", CREDS)
    code, _, err = cli_error(["--provider", "Nope", "client-config"])
    assert (code, err.splitlines()[0]) == (
        3,
        "error: REALTIME_PROVIDER='nope' is not a known provider",
    )


def test_missing_env_file_named_with_env_file_flag() -> None:
    assert cli_error(["--env-file", "prod.env", "config"]) == (
        3,
        "",
        "error: prod.env does not exist\n" + INIT_HINT,
    )


def test_no_dotenv_without_the_flag_is_not_an_error_for_config_views() -> None:
    result = run_cli(["config"])
    assert result.exit_code == 0
    assert "note: .env not found; showing defaults and environment\n" in result.stderr


def test_no_dotenv_and_no_credentials_for_a_command_that_needs_them() -> None:
    assert cli_error(["client-config"]) == (
        3,
        "",
        "error: PUSHER_APP_ID is not set (no .env found)\n"
        "hint: run `rtctl init` to write fresh credentials\n",
    )


def test_malformed_line_is_named_with_its_line_number(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "PUSHER_APP_ID=123456\n\n\nPUSHER_APP_KEY key123abc\nPUSHER_APP_SECRET=sec456def\n"
    )
    assert cli_error(["config"]) == (
        3,
        "",
        "error: .env line 4 cannot be parsed: 'PUSHER_APP_KEY key123abc'\n"
        "hint: write it as KEY=value (quote values with spaces or #)\n",
    )


def test_missing_credential(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", {"PUSHER_APP_ID": "123456", "PUSHER_APP_KEY": "key123abc"})
    assert cli_error(["client-config"]) == (
        3,
        "",
        "error: PUSHER_APP_SECRET is not set\nhint: run `rtctl init` to write fresh credentials\n",
    )


def test_all_digit_secret(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", {**CREDS, "PUSHER_APP_SECRET": "1234567890"})
    assert cli_error(["config"]) == (
        3,
        "",
        "error: PUSHER_APP_SECRET is all digits\n"
        "hint: add letters: Soketi JSON-parses env values and crashes on a numeric secret\n",
    )


def test_non_numeric_app_id(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", {**CREDS, "PUSHER_APP_ID": "app-1"})
    assert cli_error(["config"]) == (
        3,
        "",
        "error: PUSHER_APP_ID='app-1' is not numeric\n"
        "hint: use digits only: the pusher Python SDK refuses other app ids\n",
    )


def test_dotenv_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / ".env").mkdir()
    assert cli_error(["config"]) == (
        3,
        "",
        "error: .env is a directory, not a .env file\n"
        "hint: remove it or point --env-file at a file (rtctl init writes one)\n",
    )


def test_dotenv_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"PUSHER_APP_ID=123456\nREALTIME_BOT_NAME=Caf\xe9\n")
    assert cli_error(["config"]) == (
        3,
        "",
        "error: .env is not UTF-8 text (line 2)\n"
        "hint: re-save it as UTF-8, or recreate it with `rtctl init --force`\n",
    )


def test_credential_drift_between_soketi_and_pusher_variables(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", {**CREDS, "SOKETI_DEFAULT_APP_KEY": "otherkey1"})
    assert cli_error(["config"]) == (
        3,
        "",
        "error: SOKETI_DEFAULT_APP_KEY differs from PUSHER_APP_KEY: Soketi and clients would use "
        "different credentials\n"
        "hint: delete SOKETI_DEFAULT_APP_KEY (rtctl passes PUSHER_APP_KEY to Soketi) or make them "
        "equal\n",
    )


def test_matching_mirrors_are_fine_and_diagnose_lists_every_problem(tmp_path: Path) -> None:
    write_env(
        tmp_path / ".env",
        {**CREDS, "SOKETI_DEFAULT_APP_KEY": "key123abc", "SOKETI_DEFAULT_APP_SECRET": "x"},
    )
    problems = diagnose(read_layers(Path(".env"), environ={}))
    assert [p.variable for p in problems] == ["SOKETI_DEFAULT_APP_SECRET"]


def test_loader_never_raises_a_bare_exception_on_random_credentials() -> None:
    for _ in range(20):
        creds = fresh_credentials()
        assert load_settings(environ=creds).key == creds["PUSHER_APP_KEY"]


def test_load_settings_raises_config_error_for_a_library_user(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "absent.env")
    assert (caught.value.message, caught.value.hint) == (
        f"{tmp_path / 'absent.env'} does not exist",
        "create it with `rtctl init`, or pass --env-file with an existing file",
    )


# --- unreadable .env ------------------------------------------------------------------------------


def test_unreadable_dotenv_permission_denied() -> None:
    """As root no chmod denies a read, so the CLI runs as `nobody` (the venv's interpreter lives
    under /root, which nobody cannot enter: the same-version system Python gets the venv's
    packages on PYTHONPATH)."""
    runner = unprivileged_runner()
    if runner is None:
        pytest.skip("running as root and no unprivileged user/setpriv to drop to")
    folder = Path(tempfile.mkdtemp(prefix="rtctl-perm-"))
    try:
        folder.chmod(0o755)
        env_path = folder / ".env"
        env_path.write_text("PUSHER_APP_ID=123456\n")
        env_path.chmod(0o600)
        environment = {
            "PATH": os.environ["PATH"],
            "HOME": str(folder),
            "NO_COLOR": "1",
            "PYTHONPATH": os.pathsep.join([str(REPO), sysconfig.get_paths()["purelib"]]),
        }
        proc = subprocess.run(
            [*runner, "-m", "rtctl", "config"],  # the default ./.env
            capture_output=True,
            text=True,
            cwd=folder,
            env=environment,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert (proc.returncode, proc.stdout, proc.stderr) == (
            3,
            "",
            "error: .env cannot be read: permission denied\n"
            "hint: fix its permissions (chmod 600 .env) or run as its owner\n",
        )
        assert env_path.read_text() == "PUSHER_APP_ID=123456\n"
    finally:
        shutil.rmtree(folder)


# --- problem kinds ---------------------------------------------------------------------------------


def test_every_problem_carries_a_kind_that_names_it(tmp_path: Path) -> None:
    """Code reacts to the kind, never to the message: each problem the loader and the doctor can
    see has a kind of its own, and the doctor files it under its check by that kind."""
    from rtctl.config import ProblemKind
    from rtctl.ops.doctor import check_of, config_checks

    (tmp_path / ".env").write_text(
        "PUSHER_APP_ID=app-1\nPUSHER_APP_KEY=123\nPUSHER_APP_SECRET=s e\n"
        "SOKETI_DEFAULT_APP_ID=9\nSOKETI_APP_MANAGER_DRIVER=redis\nREALTIME_PORT=x\n"
        "SOKETI_METRICS_ENABLED=maybe\nPUSHER_ENCRYPTION_MASTER_KEY_BASE64=abc\n"
        "RTCTL_CA_BUNDLE=/nowhere.pem\nREALTIME_SCHEME=gopher\nbroken line\n"
    )
    layers = read_layers(Path(".env"), environ={})
    found = [(p.variable, p.kind) for p in diagnose(layers)]
    assert found == [
        (".env", ProblemKind.ENV_FILE_UNPARSABLE),
        ("PUSHER_APP_ID", ProblemKind.APP_ID_NOT_NUMERIC),
        ("PUSHER_APP_KEY", ProblemKind.KEY_OR_SECRET_ALL_DIGITS),
        ("PUSHER_APP_SECRET", ProblemKind.KEY_OR_SECRET_CHARACTERS),
        ("SOKETI_DEFAULT_APP_ID", ProblemKind.CREDENTIAL_MIRROR_DIFFERS),
        ("SOKETI_APP_MANAGER_DRIVER", ProblemKind.UNKNOWN_APP_MANAGER_DRIVER),
        ("REALTIME_SCHEME", ProblemKind.UNKNOWN_SCHEME),
        ("REALTIME_PORT", ProblemKind.NOT_A_PORT),
        ("SOKETI_METRICS_ENABLED", ProblemKind.NOT_A_BOOLEAN),
        ("PUSHER_ENCRYPTION_MASTER_KEY_BASE64", ProblemKind.BAD_MASTER_KEY),
        ("RTCTL_CA_BUNDLE", ProblemKind.CA_BUNDLE_MISSING),
    ]
    assert [check_of(p) for p in diagnose(layers)] == [
        "env-file",
        "app-id",
        "key-secret",
        "key-secret",
        "soketi-matches-pusher",
        "app-manager-driver",
        "scheme-tls-port",
        "scheme-tls-port",
        "other-settings",
        "other-settings",
        "other-settings",
    ]
    failing = [check.name for check in config_checks(layers) if check.status == "fail"]
    assert failing == [
        "env-file",
        "app-id",
        "key-secret",
        "soketi-matches-pusher",
        "app-manager-driver",
        "scheme-tls-port",
        "other-settings",
    ]


def test_missing_credentials_are_tolerated_by_kind_whatever_their_wording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rtctl config` works before `rtctl init`: it skips missing credentials by their kind, so a
    reworded message changes nothing."""
    import rtctl.config as config

    real = config.credential_problems

    def reworded(app_id: str, key: str, secret: str) -> list[config.Problem]:
        return [
            dataclasses.replace(p, message=f"please set {p.variable}")
            for p in real(app_id, key, secret)
        ]

    monkeypatch.setattr(config, "credential_problems", reworded)
    settings = config.build_settings(read_layers(environ={}), require_credentials=False)
    assert settings.key == ""
    with pytest.raises(ConfigError) as caught:
        config.build_settings(read_layers(environ={}))
    assert caught.value.message == "please set PUSHER_APP_ID (no .env found)"
    result = run_cli(["config", "--json"])
    assert [(p["variable"], p["kind"]) for p in json.loads(result.stdout)["problems"]] == [
        ("PUSHER_APP_ID", "credential-missing"),
        ("PUSHER_APP_KEY", "credential-missing"),
        ("PUSHER_APP_SECRET", "credential-missing"),
    ]
