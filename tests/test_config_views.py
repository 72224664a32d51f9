"""`rtctl config` and `rtctl client-config`: what is resolved, from where, and the pusher-js options
(checked with the real pusher-js against the real Soketi)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rtctl import __version__
from tests.helpers import JS_DIR, SoketiServer, run_cli, write_env

CREDS = {
    "PUSHER_APP_ID": "123456",
    "PUSHER_APP_KEY": "key123abc",
    "PUSHER_APP_SECRET": "secret456def",
}


def test_config_table_shows_value_source_and_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_env(tmp_path / ".env", {**CREDS, "REALTIME_PORT": "7001"})
    monkeypatch.setenv("REALTIME_BOT_NAME", "Helper")
    result = run_cli(["--host", "localhost", "config"])
    assert result.exit_code == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[:8] == [
        "provider                      default  REALTIME_PROVIDER                          soketi",
        "app_id                        .env     PUSHER_APP_ID                              123456",
        "key                           .env     PUSHER_APP_KEY                             key123abc",
        "secret                        .env     PUSHER_APP_SECRET                          sec…ef",
        "cluster                       default  PUSHER_APP_CLUSTER                         mt1",
        "host                          flag     REALTIME_HOST                              localhost",
        "port                          .env     REALTIME_PORT                              7001",
        "scheme                        default  REALTIME_SCHEME                            http",
    ]
    assert (
        "bot_name                      env      REALTIME_BOT_NAME                          Helper"
        in lines
    )
    assert lines[-4:] == [
        "ws_url                        derived  -                                          "
        f"ws://localhost:7001/app/key123abc?protocol=7&client=rtctl-python&version={__version__}",
        "api_base                      derived  -                                          "
        "http://localhost:7001",
        "metrics_url                   derived  -                                          "
        "http://localhost:9601/metrics",
        "tls                           derived  -                                          false",
    ]
    assert "secret456def" not in result.stdout


def test_config_show_secrets(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", {**CREDS, "REALTIME_EMIT_TOKEN": "emit-token-123456"})
    hidden = run_cli(["config", "--json"])
    shown = run_cli(["config", "--json", "--show-secrets"])
    hidden_rows = json.loads(hidden.stdout)["settings"]
    shown_rows = json.loads(shown.stdout)["settings"]
    assert (hidden_rows["secret"]["value"], shown_rows["secret"]["value"]) == (
        "sec…ef",
        "secret456def",
    )
    assert (hidden_rows["emit_token"]["value"], shown_rows["emit_token"]["value"]) == (
        "emi…56",
        "emit-token-123456",
    )
    assert "secret456def" not in hidden.stdout and "emit-token-123456" not in hidden.stdout


def test_config_json_shape(tmp_path: Path) -> None:
    write_env(
        tmp_path / ".env", {**CREDS, "REALTIME_PROVIDER": "pusher", "PUSHER_APP_CLUSTER": "eu"}
    )
    data = json.loads(run_cli(["config", "--json"]).stdout)
    assert (data["env_file"], data["env_file_found"], data["problems"]) == (".env", True, [])
    rows = data["settings"]
    assert rows["provider"] == {
        "value": "pusher",
        "variable": "REALTIME_PROVIDER",
        "source": ".env",
    }
    assert rows["host"] == {"value": "", "variable": "REALTIME_HOST", "source": "derived"}
    assert rows["api_base"] == {
        "value": "https://api-eu.pusher.com",
        "variable": None,
        "source": "derived",
    }
    assert rows["env_file"] == {"value": ".env", "variable": None, "source": "default"}


def test_config_without_credentials_still_shows_and_warns(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", {"REALTIME_PORT": "7001"})
    result = run_cli(["config"])
    assert result.exit_code == 0
    assert result.stderr == (
        "warning: PUSHER_APP_ID is not set (run `rtctl init` to write fresh credentials)\n"
        "warning: PUSHER_APP_KEY is not set (run `rtctl init` to write fresh credentials)\n"
        "warning: PUSHER_APP_SECRET is not set (run `rtctl init` to write fresh credentials)\n"
    )


def test_config_env_file_flag_source(tmp_path: Path) -> None:
    write_env(tmp_path / "other.env", CREDS)
    rows = json.loads(run_cli(["--env-file", "other.env", "config", "--json"]).stdout)["settings"]
    assert rows["env_file"] == {"value": "other.env", "variable": None, "source": "flag"}


# --- client-config --------------------------------------------------------------------------------


def test_client_config_soketi_snippet(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", {**CREDS, "REALTIME_PORT": "6002"})
    result = run_cli(["client-config"])
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        "// pusher-js options for soketi (generated by rtctl client-config)\n"
        "const pusher = new Pusher('key123abc', {\n"
        "  wsHost: '127.0.0.1',\n"
        "  wsPort: 6002,\n"
        "  wssPort: 6002,\n"
        "  forceTLS: false,\n"
        "  enabledTransports: ['ws', 'wss'],\n"
        "  cluster: 'mt1',\n"
        "  channelAuthorization: {\n"
        "    endpoint: '/realtime/auth',\n"
        "    transport: 'ajax',\n"
        "  },\n"
        "});\n"
    )


def test_client_config_pusher_json(tmp_path: Path) -> None:
    write_env(
        tmp_path / ".env", {**CREDS, "REALTIME_PROVIDER": "pusher", "PUSHER_APP_CLUSTER": "ap1"}
    )
    result = run_cli(["client-config", "--json"])
    assert json.loads(result.stdout) == {
        "provider": "pusher",
        "key": "key123abc",
        "options": {
            "cluster": "ap1",
            "forceTLS": True,
            "channelAuthorization": {"endpoint": "/realtime/auth", "transport": "ajax"},
        },
    }


def test_client_config_pusher_endpoint_override(tmp_path: Path) -> None:
    write_env(
        tmp_path / ".env",
        {**CREDS, "REALTIME_PROVIDER": "pusher", "RTCTL_PUSHER_ENDPOINT": "127.0.0.1:6443"},
    )
    options = json.loads(run_cli(["client-config", "--json"]).stdout)["options"]
    assert (options["wsHost"], options["wssPort"], options["forceTLS"]) == ("127.0.0.1", 6443, True)


def test_client_config_tls_soketi(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", {**CREDS, "REALTIME_SCHEME": "https", "REALTIME_PORT": "6443"})
    options = json.loads(run_cli(["client-config", "--json"]).stdout)["options"]
    assert (options["forceTLS"], options["wssPort"]) == (True, 6443)


def test_client_config_needs_credentials(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", {"PUSHER_APP_ID": "123456"})
    result = run_cli(["client-config", "--json"])
    assert result.exit_code == 3
    assert json.loads(result.stdout) == {
        "error": {
            "code": "config",
            "message": "PUSHER_APP_KEY is not set",
            "hint": "run `rtctl init` to write fresh credentials",
            "exit_code": 3,
        }
    }


CONNECT_JS = """
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
const Pusher = require("pusher-js");
const config = JSON.parse(process.argv[1]);
const options = { ...config.options };
delete options.channelAuthorization;  // public channel: no auth endpoint needed
const pusher = new Pusher(config.key, options);
const timer = setTimeout(() => { console.log("timeout"); process.exit(3); }, 10000);
pusher.connection.bind("error", (err) => { console.log("error " + JSON.stringify(err)); });
const channel = pusher.subscribe("client-config-check");
channel.bind("pusher:subscription_succeeded", () => {
  console.log("subscribed via " + pusher.connection.connection.transport.name);
  clearTimeout(timer);
  pusher.disconnect();
  process.exit(0);
});
"""


def test_real_pusher_js_connects_with_the_printed_options(
    env_file: Path, soketi: SoketiServer
) -> None:
    """The options are not just well-formed: pusher-js 8 connects with them and subscribes."""
    node = shutil.which("node")
    assert node, "node is needed for the pusher-js end-to-end tests"
    printed = run_cli(["client-config", "--json"]).stdout
    proc = subprocess.run(
        [node, "--input-type=module", "-e", CONNECT_JS, printed],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (proc.returncode, proc.stdout) == (0, "subscribed via ws\n"), proc.stderr
