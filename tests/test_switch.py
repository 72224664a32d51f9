"""`rtctl switch` and the .env editor under it: lossless round trips, dry runs, exact errors."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtctl.config import load_settings
from rtctl.envfile import EnvDocument, atomic_write
from rtctl.errors import EnvironmentProblem
from rtctl.ops.switch import plan_switch, stash_path
from rtctl.protocol.httpapi import ApiClient
from tests.helpers import SoketiServer, run_cli, run_rtctl

PUSHER_FLAGS = ["--cluster", "eu", "--app-id", "1234567", "--key", "pk1abc", "--secret", "ps2def"]

# A hand-edited Soketi .env: comments, blank lines, quoting, `export`, CRLF-free but odd spacing,
# an inline comment, unrelated keys before and after, and Soketi mirrors that must not drift.
SOKETI_ENV = """\
# My project's realtime settings
export APP_NAME="Chat demo"   # not rtctl's

REALTIME_PROVIDER=soketi
REALTIME_HOST='127.0.0.1'
REALTIME_PORT=6001 # local port
REALTIME_SCHEME=http

# credentials
PUSHER_APP_ID=654321
PUSHER_APP_KEY="skey1abc"
PUSHER_APP_SECRET=ssec2def
PUSHER_APP_CLUSTER=mt1
SOKETI_DEFAULT_APP_ID=654321
SOKETI_DEFAULT_APP_KEY=skey1abc
SOKETI_DEFAULT_APP_SECRET=ssec2def

REALTIME_BOT_NAME='Coach Bot'
UNRELATED=keep me
"""


@pytest.fixture
def soketi_env(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    path.write_text(SOKETI_ENV)
    return path


# --- the editor -----------------------------------------------------------------------------------


def test_set_and_delete_touch_only_their_lines() -> None:
    document = EnvDocument(SOKETI_ENV)
    document.set("REALTIME_PORT", "7001")
    document.set("PUSHER_APP_KEY", "new key")
    document.set("REALTIME_HOST", "localhost")
    document.delete("REALTIME_SCHEME")
    document.set("ADDED", "1")
    assert (
        document.text
        == SOKETI_ENV.replace("REALTIME_PORT=6001 # local port", "REALTIME_PORT=7001 # local port")
        .replace('PUSHER_APP_KEY="skey1abc"', 'PUSHER_APP_KEY="new key"')
        .replace("REALTIME_HOST='127.0.0.1'", "REALTIME_HOST='localhost'")
        .replace("REALTIME_SCHEME=http\n", "")
        + "ADDED=1\n"
    )


def test_unparsed_text_round_trips_byte_for_byte() -> None:
    text = "\ufeff# bom\r\nA=1\r\n\r\n  export B = 'x' # c\r\nC=\"multi\nline\"\nBROKEN LINE\n#end"
    assert EnvDocument(text).text == text


@settings(max_examples=300, deadline=None)
@given(
    key=st.sampled_from(["REALTIME_PORT", "PUSHER_APP_KEY", "APP_NAME", "UNRELATED", "NEW_KEY"]),
    value=st.text(st.characters(exclude_characters="\0", exclude_categories=("Cs",)), max_size=30),
)
def test_any_value_set_reads_back_and_nothing_else_moves(key: str, value: str) -> None:
    document = EnvDocument(SOKETI_ENV)
    document.set(key, value)
    reread = EnvDocument(document.text)
    assert reread.errors() == []
    assert reread.get(key) == value
    before = EnvDocument(SOKETI_ENV).values()
    assert {k: v for k, v in reread.values().items() if k != key} == {
        k: v for k, v in before.items() if k != key
    }


def test_atomic_write_mode_backup_and_no_temp_left(tmp_path: Path) -> None:
    target = tmp_path / "x.env"
    target.write_text("OLD=1\n")
    target.chmod(0o644)
    saved = atomic_write(target, "NEW=1\n", backup=True)
    assert saved is not None and saved.read_text() == "OLD=1\n"
    assert target.read_text() == "NEW=1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["x.env", saved.name])


def test_a_failed_write_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / ".env"
    target.write_text("OLD=1\n")

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(EnvironmentProblem) as raised:
        atomic_write(target, "NEW=1\n" * 1000)
    assert raised.value.message == f"cannot write {target}: no space left on the device"
    assert target.read_text() == "OLD=1\n"
    assert [p.name for p in tmp_path.iterdir()] == [".env"]  # the temp file was removed


# --- the round trip -------------------------------------------------------------------------------


def test_round_trip_soketi_pusher_soketi_is_byte_identical(soketi_env: Path) -> None:
    to_pusher = run_cli(["switch", "pusher", *PUSHER_FLAGS])
    assert to_pusher.exit_code == 0, to_pusher.stderr
    pusher_text = soketi_env.read_text()
    values = EnvDocument(pusher_text).values()
    for gone in ("REALTIME_HOST", "REALTIME_PORT", "REALTIME_SCHEME", "SOKETI_DEFAULT_APP_KEY"):
        assert gone not in values
    assert {
        k: values[k] for k in ("REALTIME_PROVIDER", "PUSHER_APP_CLUSTER", "PUSHER_APP_KEY")
    } == {
        "REALTIME_PROVIDER": "pusher",
        "PUSHER_APP_CLUSTER": "eu",
        "PUSHER_APP_KEY": "pk1abc",
    }
    # comments, quoting and unrelated keys survive; the edited keys keep their quoting style
    for kept in (
        "# My project's realtime settings\n",
        'export APP_NAME="Chat demo"   # not rtctl\'s\n',
        "REALTIME_BOT_NAME='Coach Bot'\nUNRELATED=keep me\n",
        'PUSHER_APP_KEY="pk1abc"\n',
    ):
        assert kept in pusher_text
    settings_now = load_settings(soketi_env, environ={})
    assert (settings_now.provider, settings_now.ws_host) == ("pusher", "ws-eu.pusher.com")
    assert stat.S_IMODE(stash_path(soketi_env).stat().st_mode) == 0o600

    back = run_cli(["switch", "soketi"])
    assert back.exit_code == 0, back.stderr
    assert soketi_env.read_text() == SOKETI_ENV
    assert back.stderr.startswith(
        ".env: switched from pusher to soketi (restored the soketi settings saved when you left "
        "it)\n"
    )


def test_pusher_credentials_come_back_without_flags(soketi_env: Path) -> None:
    assert run_cli(["switch", "pusher", *PUSHER_FLAGS]).exit_code == 0
    pusher_text = soketi_env.read_text()
    assert run_cli(["switch", "soketi"]).exit_code == 0
    again = run_cli(["switch", "pusher"])  # no flags, not a TTY: the stash supplies them
    assert again.exit_code == 0, again.stderr
    assert soketi_env.read_text() == pusher_text
    assert run_cli(["switch", "soketi"]).exit_code == 0
    assert soketi_env.read_text() == SOKETI_ENV


def test_edits_made_while_on_pusher_survive_the_way_back(soketi_env: Path) -> None:
    assert run_cli(["switch", "pusher", *PUSHER_FLAGS]).exit_code == 0
    with soketi_env.open("a") as handle:
        handle.write("# added on pusher\nNEW_FEATURE=on\n")
    result = run_cli(["switch", "soketi"])
    assert result.exit_code == 0
    assert "restored the saved soketi values (the file was edited since)" in result.stderr
    # every soketi line is back where it was, verbatim; the edit is kept
    assert soketi_env.read_text() == SOKETI_ENV + "# added on pusher\nNEW_FEATURE=on\n"


def test_round_trip_against_the_real_soketi(env_file: Path, soketi: SoketiServer) -> None:
    before = env_file.read_bytes()
    assert ApiClient(load_settings(env_file, environ={}), timeout=10).channels() == {}
    assert run_cli(["switch", "pusher", *PUSHER_FLAGS]).exit_code == 0
    assert load_settings(env_file, environ={}).api_base == "https://api-eu.pusher.com"
    assert run_cli(["switch", "soketi"]).exit_code == 0
    assert env_file.read_bytes() == before
    assert ApiClient(load_settings(env_file, environ={}), timeout=10).channels() == {}


# --- output ---------------------------------------------------------------------------------------


def test_client_side_changes_are_printed(soketi_env: Path) -> None:
    result = run_cli(["switch", "pusher", *PUSHER_FLAGS])
    assert result.stderr == (
        ".env: switched from soketi to pusher (set up pusher)\n"
        "the soketi settings are kept in .env.rtctl-stash; `rtctl switch soketi` restores them\n"
        "client side (pusher-js): drop wsHost, wsPort, wssPort, enabledTransports; "
        "set cluster: 'eu', forceTLS: true; use key 'pk1abc'\n"
    )
    assert result.stdout == (
        "// pusher-js options for pusher (generated by rtctl client-config)\n"
        "const pusher = new Pusher('pk1abc', {\n"
        "  cluster: 'eu',\n"
        "  forceTLS: true,\n"
        "  channelAuthorization: {\n"
        "    endpoint: '/realtime/auth',\n"
        "    transport: 'ajax',\n"
        "  },\n"
        "});\n"
    )
    back = run_cli(["switch", "soketi"])
    assert back.stderr.splitlines()[-1] == (
        "client side (pusher-js): set wsHost: '127.0.0.1', wsPort: 6001, wssPort: 6001, "
        "forceTLS: false, enabledTransports: ['ws', 'wss'], cluster: 'mt1'; use key 'skey1abc'"
    )


def test_json_output(soketi_env: Path) -> None:
    result = run_cli(["switch", "pusher", *PUSHER_FLAGS, "--json"])
    data = json.loads(result.stdout)
    assert (data["from"], data["to"], data["changed"], data["dry_run"], data["restored"]) == (
        "soketi",
        "pusher",
        True,
        False,
        "fresh",
    )
    assert data["changed_keys"] == [
        "REALTIME_PROVIDER",
        "REALTIME_HOST",
        "REALTIME_PORT",
        "REALTIME_SCHEME",
        "PUSHER_APP_ID",
        "PUSHER_APP_KEY",
        "PUSHER_APP_SECRET",
        "PUSHER_APP_CLUSTER",
        "SOKETI_DEFAULT_APP_ID",
        "SOKETI_DEFAULT_APP_KEY",
        "SOKETI_DEFAULT_APP_SECRET",
    ]
    assert data["client"]["changes"] == {
        "drop": ["wsHost", "wsPort", "wssPort", "enabledTransports"],
        "set": {"cluster": "eu", "forceTLS": True},
        "key": "pk1abc",
    }
    assert result.stderr == ""


def test_dry_run_prints_a_masked_diff_and_writes_nothing(soketi_env: Path) -> None:
    result = run_cli(["switch", "pusher", *PUSHER_FLAGS[:-1], "psecret2def", "--dry-run"])
    assert result.exit_code == 0
    assert soketi_env.read_text() == SOKETI_ENV
    assert not stash_path(soketi_env).exists()
    assert result.stderr == "dry run: .env was not changed\n"
    diff = result.stdout.splitlines()
    assert diff[:2] == ["--- .env (now)", "+++ .env (after switch pusher)"]
    assert "-REALTIME_HOST='127.0.0.1'" in diff and "+REALTIME_PROVIDER=pusher" in diff
    assert "-PUSHER_APP_SECRET=****" in diff and "+PUSHER_APP_SECRET=pse…ef" in diff
    assert "ssec2def" not in result.stdout and "psecret2def" not in result.stdout
    shown = run_cli(["switch", "pusher", *PUSHER_FLAGS, "--dry-run", "--show-secrets"])
    assert "-PUSHER_APP_SECRET=ssec2def" in shown.stdout.splitlines()


def test_dry_run_json(soketi_env: Path) -> None:
    result = run_cli(["switch", "pusher", *PUSHER_FLAGS, "--dry-run", "--json"])
    data = json.loads(result.stdout)
    assert data["dry_run"] is True and data["diff"].startswith("--- .env (now)\n")
    assert soketi_env.read_text() == SOKETI_ENV


def test_switching_to_the_active_provider_is_a_no_op(soketi_env: Path) -> None:
    result = run_cli(["switch", "soketi"])
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        "",
        ".env already uses soketi: nothing to do\n",
    )
    assert soketi_env.read_text() == SOKETI_ENV and not stash_path(soketi_env).exists()


def test_env_variables_that_shadow_the_file_are_warned_about(
    soketi_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUSHER_APP_KEY", "fromenv1")
    result = run_cli(["switch", "pusher", *PUSHER_FLAGS])
    assert result.stderr.startswith(
        "warning: PUSHER_APP_KEY set in the environment overrides .env: unset it to use the "
        "switched file\n"
    )


def test_switch_pusher_with_the_soketi_settings_exported(soketi_env: Path) -> None:
    # CI systems and `set -a; . .env` export the file: switch judges the file it writes and warns
    # that the environment overrides it, instead of refusing with a hint to run itself.
    exported = {
        "REALTIME_PROVIDER": "soketi",
        "REALTIME_HOST": "127.0.0.1",
        "REALTIME_PORT": "6001",
        "REALTIME_SCHEME": "http",
        "PUSHER_APP_ID": "100001",
    }
    result = run_rtctl(["switch", "pusher", *PUSHER_FLAGS], env=exported, cwd=soketi_env.parent)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(
        "warning: REALTIME_PROVIDER, REALTIME_HOST, REALTIME_PORT, REALTIME_SCHEME, PUSHER_APP_ID "
        "set in the environment override .env: unset them to use the switched file\n"
        ".env: switched from soketi to pusher"
    )
    written = load_settings(soketi_env, environ={})
    assert (written.provider, written.cluster, written.app_id) == ("pusher", "eu", "1234567")


def test_switch_from_a_pusher_only_env_to_soketi_gets_fresh_credentials(tmp_path: Path) -> None:
    assert run_cli(["init", "--provider", "pusher", *PUSHER_FLAGS]).exit_code == 0
    result = run_cli(["switch", "soketi"])
    assert result.exit_code == 0, result.stderr
    settings_now = load_settings(Path(".env"), environ={})
    assert (settings_now.provider, settings_now.host, settings_now.port) == (
        "soketi",
        "127.0.0.1",
        6001,
    )
    assert settings_now.key != "pk1abc" and settings_now.cluster == "eu"


# --- bad input ------------------------------------------------------------------------------------


def test_missing_pusher_credentials_off_a_tty(soketi_env: Path) -> None:
    result = run_cli(["switch", "pusher", "--cluster", "eu"])
    assert (result.exit_code, result.stdout, result.stderr) == (
        2,
        "",
        "error: switch pusher needs --app-id, --key, --secret (Pusher credentials)\n"
        "hint: pass them from the Pusher dashboard (App Keys), or run on a terminal to be "
        "prompted\n",
    )
    assert soketi_env.read_text() == SOKETI_ENV


def test_unknown_provider(soketi_env: Path) -> None:
    result = run_cli(["switch", "ably"])
    assert (result.exit_code, result.stderr) == (
        2,
        "error: unknown provider 'ably'\nhint: use `rtctl switch soketi` or `rtctl switch pusher`\n",
    )


def test_all_digit_secret_flag(soketi_env: Path) -> None:
    result = run_cli(["switch", "pusher", *PUSHER_FLAGS[:-1], "13579"])
    assert (result.exit_code, result.stderr) == (
        2,
        "error: --secret: PUSHER_APP_SECRET is all digits\n"
        "hint: add letters: Soketi JSON-parses env values and crashes on a numeric secret\n",
    )
    assert soketi_env.read_text() == SOKETI_ENV


def test_malformed_env_is_not_edited(tmp_path: Path) -> None:
    broken = SOKETI_ENV + "THIS IS NOT A BINDING\n"
    (tmp_path / ".env").write_text(broken)
    result = run_cli(["switch", "pusher", *PUSHER_FLAGS])
    assert (result.exit_code, result.stderr) == (
        3,
        "error: .env line 20 cannot be parsed: 'THIS IS NOT A BINDING'\n"
        "hint: fix that line first (KEY=value); switch only edits a .env it fully understands\n",
    )
    assert (tmp_path / ".env").read_text() == broken


def test_missing_env_file() -> None:
    result = run_cli(["--env-file", "staging.env", "switch", "pusher", *PUSHER_FLAGS])
    assert (result.exit_code, result.stderr) == (
        3,
        "error: staging.env does not exist\n"
        "hint: create it with `rtctl init`, or pass --env-file with an existing file\n",
    )


def test_env_file_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / ".env").mkdir()
    result = run_cli(["switch", "pusher", *PUSHER_FLAGS])
    assert (result.exit_code, result.stderr) == (
        3,
        "error: .env is a directory, not a .env file\n"
        "hint: remove it or point --env-file at a file (rtctl init writes one)\n",
    )


def test_damaged_stash_is_reported_not_dropped(soketi_env: Path) -> None:
    assert run_cli(["switch", "pusher", *PUSHER_FLAGS]).exit_code == 0
    stash_path(soketi_env).write_text("{not json")
    pusher_text = soketi_env.read_text()
    result = run_cli(["switch", "soketi"])
    assert (result.exit_code, result.stderr) == (
        3,
        "error: .env.rtctl-stash is not a stash written by rtctl switch\n"
        "hint: move it away (it may hold the other provider's credentials), then retry\n",
    )
    assert soketi_env.read_text() == pusher_text


def test_plan_is_pure(soketi_env: Path) -> None:
    plan = plan_switch(
        soketi_env,
        "pusher",
        {
            "PUSHER_APP_CLUSTER": "eu",
            "PUSHER_APP_ID": "1",
            "PUSHER_APP_KEY": "k1a",
            "PUSHER_APP_SECRET": "s1a",
        },
    )
    assert plan.old_text == SOKETI_ENV and plan.new_text != SOKETI_ENV
    assert soketi_env.read_text() == SOKETI_ENV and not stash_path(soketi_env).exists()


# --- prompts on a terminal ------------------------------------------------------------------------


def run_on_a_terminal(
    args: list[str], cwd: Path, answers: list[tuple[str, str]]
) -> tuple[int, str]:
    """Run the real CLI on a pseudo-terminal, answering each prompt when it appears."""
    import select
    import subprocess
    import sys
    import time

    master, slave = os.openpty()
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtctl", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    seen = ""
    deadline = time.monotonic() + 30
    pending = list(answers)
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096).decode(errors="replace")
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            if pending and pending[0][0] in seen:
                prompt, answer = pending.pop(0)
                seen = seen.replace(prompt, f"<{prompt}>", 1)
                os.write(master, (answer + "\n").encode())
            if proc.poll() is not None and not ready:
                break
        return proc.wait(timeout=10), seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_switch_prompts_for_missing_pusher_credentials_on_a_terminal(soketi_env: Path) -> None:
    code, screen = run_on_a_terminal(
        ["switch", "pusher", "--cluster", "eu"],
        soketi_env.parent,
        [
            ("Pusher app id: ", "7654321"),
            ("Pusher app key: ", "typedkey1"),
            ("Pusher app secret: ", "typedsecret2"),
        ],
    )
    assert code == 0, screen
    assert "Pusher cluster" not in screen  # given as a flag: not asked
    assert "typedsecret2" not in screen  # typed without echo
    values = EnvDocument(soketi_env.read_text()).values()
    assert {k: values[k] for k in ("PUSHER_APP_ID", "PUSHER_APP_KEY", "PUSHER_APP_SECRET")} == {
        "PUSHER_APP_ID": "7654321",
        "PUSHER_APP_KEY": "typedkey1",
        "PUSHER_APP_SECRET": "typedsecret2",
    }


def test_a_symlinked_env_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "secrets" / "realtime.env"
    real.parent.mkdir()
    real.write_text(SOKETI_ENV)
    (tmp_path / ".env").symlink_to(real)
    assert run_cli(["switch", "pusher", *PUSHER_FLAGS]).exit_code == 0
    assert (tmp_path / ".env").is_symlink()
    assert EnvDocument(real.read_text()).get("REALTIME_PROVIDER") == "pusher"
    assert run_cli(["switch", "soketi"]).exit_code == 0
    assert real.read_text() == SOKETI_ENV


def test_crlf_file_round_trip_and_new_lines_use_crlf(tmp_path: Path) -> None:
    crlf = SOKETI_ENV.replace("\n", "\r\n").replace("PUSHER_APP_CLUSTER=mt1\r\n", "")
    (tmp_path / ".env").write_bytes(crlf.encode())
    assert run_cli(["switch", "pusher", *PUSHER_FLAGS]).exit_code == 0
    on_pusher = (tmp_path / ".env").read_bytes()
    assert on_pusher.endswith(b"UNRELATED=keep me\r\nPUSHER_APP_CLUSTER=eu\r\n")
    assert b"\n" not in on_pusher.replace(b"\r\n", b"")
    assert run_cli(["switch", "soketi"]).exit_code == 0
    assert (tmp_path / ".env").read_bytes() == crlf.encode()


def test_a_file_that_relied_on_the_environment_comes_back_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A .env without credentials (CI keeps them in the environment) round-trips; if they are
    missing from the environment too, the file still comes back, with a warning."""
    text = "REALTIME_PROVIDER=soketi\nREALTIME_HOST=127.0.0.1\n"
    (tmp_path / ".env").write_text(text)
    assert run_cli(["switch", "pusher", *PUSHER_FLAGS]).exit_code == 0
    result = run_cli(["switch", "soketi"])
    assert result.exit_code == 0
    assert result.stderr.startswith(
        "warning: the restored .env does not load: PUSHER_APP_ID is not set\n"
    )
    assert (tmp_path / ".env").read_text() == text

    assert run_cli(["switch", "pusher", *PUSHER_FLAGS]).exit_code == 0
    monkeypatch.setenv("PUSHER_APP_ID", "111111")
    monkeypatch.setenv("PUSHER_APP_KEY", "envkey1")
    monkeypatch.setenv("PUSHER_APP_SECRET", "envsecret1")
    result = run_cli(["switch", "soketi"])
    assert result.exit_code == 0
    assert "does not load" not in result.stderr
    assert (tmp_path / ".env").read_text() == text
