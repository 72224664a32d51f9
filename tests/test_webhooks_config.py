"""Webhook configuration: REALTIME_WEBHOOK_* composed into Soketi's variables for both runtimes,
malformed values refused with exit 3 naming the variable, `rtctl init --webhooks`, and the
doctor's webhook checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rtctl.config import load_settings, read_layers
from rtctl.ops.doctor import CheckResult, run_doctor
from rtctl.ops.webhook_receiver import WebhookReceiver
from rtctl.runtime import docker, native
from tests.helpers import SoketiServer, free_port, make_server, run_cli, write_env

ALL_SOKETI_TYPES = [
    "channel_occupied",
    "channel_vacated",
    "member_added",
    "member_removed",
    "client_event",
    "cache_miss",
]


def base(tmp_path: Path) -> dict[str, str]:
    return make_server(tmp_path / "unused").env


def settings_with(tmp_path: Path, **values: str):  # type: ignore[no-untyped-def]
    return load_settings(environ={**base(tmp_path), **values})


# --- composition ----------------------------------------------------------------------------------


def test_rtctl_terms_compose_soketis_variable(tmp_path: Path) -> None:
    settings = settings_with(
        tmp_path,
        REALTIME_WEBHOOK_URL="http://127.0.0.1:6080/webhooks, http://127.0.0.1:3000/hooks",
        REALTIME_WEBHOOK_EVENTS="channel_occupied,member_added",
        REALTIME_WEBHOOK_CHANNEL_PREFIX="presence-",
        REALTIME_WEBHOOK_CHANNEL_SUFFIX="-room",
    )
    entry = {
        "event_types": ["channel_occupied", "member_added"],
        "filter": {"channel_name_starts_with": "presence-", "channel_name_ends_with": "-room"},
    }
    assert json.loads(settings.soketi_webhooks) == [
        {"url": "http://127.0.0.1:6080/webhooks", **entry},
        {"url": "http://127.0.0.1:3000/hooks", **entry},
    ]
    assert settings.sources["soketi_webhooks"] == "derived"
    env = native.soketi_environment(settings)
    assert env["SOKETI_DEFAULT_APP_WEBHOOKS"] == settings.soketi_webhooks
    assert "SOKETI_WEBHOOKS_BATCHING" not in env
    assert docker.compose_environment(settings) == {
        "SOKETI_DEFAULT_APP_WEBHOOKS": settings.soketi_webhooks
    }


def test_defaults_are_every_type_soketi_sends_and_batching_is_passed(tmp_path: Path) -> None:
    settings = settings_with(
        tmp_path,
        REALTIME_WEBHOOK_URL="http://127.0.0.1:6080/webhooks",
        REALTIME_WEBHOOK_BATCHING="true",
        REALTIME_WEBHOOK_BATCHING_MS="120",
    )
    assert json.loads(settings.soketi_webhooks) == [
        {"url": "http://127.0.0.1:6080/webhooks", "event_types": ALL_SOKETI_TYPES}
    ]
    env = native.soketi_environment(settings)
    assert (env["SOKETI_WEBHOOKS_BATCHING"], env["SOKETI_WEBHOOKS_BATCHING_DURATION"]) == (
        "true",
        "120",
    )
    assert settings.webhooks.listen_address() == (6080, "/webhooks")


def test_no_webhooks_no_variable(tmp_path: Path) -> None:
    settings = settings_with(tmp_path)
    assert settings.soketi_webhooks is None
    assert "SOKETI_DEFAULT_APP_WEBHOOKS" not in native.soketi_environment(settings)
    assert docker.compose_environment(settings) == {}


def test_a_handwritten_value_is_passed_as_written(tmp_path: Path) -> None:
    written = (
        '[{"url":"http://127.0.0.1:9/h","event_types":["client_event"],"headers":{"X-A":"1"}}]'
    )
    settings = settings_with(tmp_path, SOKETI_DEFAULT_APP_WEBHOOKS=written)
    assert native.soketi_environment(settings)["SOKETI_DEFAULT_APP_WEBHOOKS"] == written
    assert settings.webhooks.listen_address() == (9, "/h")


def test_the_compose_file_interpolates_the_composed_value() -> None:
    env = yaml.safe_load(docker.compose_template())["services"]["soketi"]["environment"]
    assert env["SOKETI_DEFAULT_APP_WEBHOOKS"] == "${SOKETI_DEFAULT_APP_WEBHOOKS:-[]}"
    assert env["SOKETI_WEBHOOKS_BATCHING"] == "${SOKETI_WEBHOOKS_BATCHING:-false}"
    assert env["SOKETI_WEBHOOKS_BATCHING_DURATION"] == "${SOKETI_WEBHOOKS_BATCHING_DURATION:-50}"
    broken = yaml.safe_load(docker.compose_template())
    del broken["services"]["soketi"]["environment"]["SOKETI_DEFAULT_APP_WEBHOOKS"]
    assert docker.compose_problems(broken) == [
        "SOKETI_DEFAULT_APP_WEBHOOKS must be interpolated (rtctl up composes it)"
    ]


def test_config_shows_the_composed_value(tmp_path: Path) -> None:
    write_env(
        tmp_path / ".env", {**base(tmp_path), "REALTIME_WEBHOOK_URL": "http://127.0.0.1:6080/w"}
    )
    rows = json.loads(run_cli(["config", "--json"]).stdout)["settings"]
    assert rows["soketi_webhooks"] == {
        "value": json.dumps(
            [{"url": "http://127.0.0.1:6080/w", "event_types": ALL_SOKETI_TYPES}],
            separators=(",", ":"),
        ),
        "variable": "SOKETI_DEFAULT_APP_WEBHOOKS",
        "source": "derived",
    }
    assert rows["webhook_urls"]["source"] == ".env"


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:9/h", True),
        ("http://127.3.4.5:9/h", True),
        ("http://localhost:9/h", True),
        ("http://[::1]:9/h", True),
        ("http://[0:0:0:0:0:0:0:1]:9/h", True),
        ("http://127.example.com:9/h", False),  # a DNS name that only looks like loopback
        ("http://10.0.0.1:9/h", False),
        ("https://127.0.0.1:9/h", False),  # rtctl receives plain HTTP only
    ],
)
def test_local_url_is_a_loopback_address(tmp_path: Path, url: str, local: bool) -> None:
    settings = settings_with(tmp_path, REALTIME_WEBHOOK_URL=url)
    assert settings.webhooks.local_url() == (url if local else None)


# --- malformed configuration: exit 3 naming the variable ------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"REALTIME_WEBHOOK_URL": "ftp://x/y"}, "REALTIME_WEBHOOK_URL 'ftp://x/y' is not an http(s) URL"),
        ({"REALTIME_WEBHOOK_URL": "http://:80/x"}, "REALTIME_WEBHOOK_URL 'http://:80/x' has no host"),
        ({"REALTIME_WEBHOOK_URL": "http://h:99999/x"}, "REALTIME_WEBHOOK_URL 'http://h:99999/x' has an invalid port"),
        ({"REALTIME_WEBHOOK_EVENTS": "channel_occupy"}, "REALTIME_WEBHOOK_EVENTS has 'channel_occupy', which is not a webhook event type"),
        ({"REALTIME_WEBHOOK_CHANNEL_PREFIX": "bad prefix"}, "REALTIME_WEBHOOK_CHANNEL_PREFIX='bad prefix' has characters no channel name can have"),
        ({"REALTIME_WEBHOOK_BATCHING": "maybe"}, "REALTIME_WEBHOOK_BATCHING='maybe' is not a boolean"),
        ({"REALTIME_WEBHOOK_BATCHING_MS": "0"}, "REALTIME_WEBHOOK_BATCHING_MS='0' is not a number of ms"),
        ({"REALTIME_WEBHOOK_MAX_AGE": "-5"}, "REALTIME_WEBHOOK_MAX_AGE='-5' is not a number of seconds"),
        ({"REALTIME_WEBHOOK_DEDUP_WINDOW": "soon"}, "REALTIME_WEBHOOK_DEDUP_WINDOW='soon' is not a number of seconds"),
        ({"REALTIME_WEBHOOK_HOOK": "myapp.hooks"}, "REALTIME_WEBHOOK_HOOK='myapp.hooks' is not module:function"),
        ({"SOKETI_DEFAULT_APP_WEBHOOKS": "[{url:"}, "SOKETI_DEFAULT_APP_WEBHOOKS is not JSON (Expecting property name enclosed in double quotes at line 1 column 3)"),
        ({"SOKETI_DEFAULT_APP_WEBHOOKS": "[" * 5000 + "]" * 5000}, "SOKETI_DEFAULT_APP_WEBHOOKS is not JSON (nested too deeply)"),
        ({"SOKETI_DEFAULT_APP_WEBHOOKS": '[{"url": "http://h/x", "event_types": ["cache_miss"], "lambda": NaN}]'},
         "SOKETI_DEFAULT_APP_WEBHOOKS is not JSON (NaN is not a JSON value (JSON has no NaN or Infinity))"),
        ({"SOKETI_DEFAULT_APP_WEBHOOKS": '{"url": "http://h/x"}'}, "SOKETI_DEFAULT_APP_WEBHOOKS must be a JSON array of webhooks, got dict"),
        ({"SOKETI_DEFAULT_APP_WEBHOOKS": '[{"url": "http://h/x"}]'}, "SOKETI_DEFAULT_APP_WEBHOOKS[0].event_types is missing or empty (Soketi's queue worker crashes on it)"),
        ({"SOKETI_DEFAULT_APP_WEBHOOKS": '[{"url": "http://h/x", "event_types": ["member_joined"]}]'}, "SOKETI_DEFAULT_APP_WEBHOOKS[0].event_types has unknown type 'member_joined'"),
        ({"SOKETI_DEFAULT_APP_WEBHOOKS": '[{"url": "h/x", "event_types": ["cache_miss"]}]'}, "SOKETI_DEFAULT_APP_WEBHOOKS[0].url 'h/x' is not an http(s) URL"),
        ({"SOKETI_DEFAULT_APP_WEBHOOKS": '[{"url": "http://h/x", "event_types": ["cache_miss"], "filter": {"channel_prefix": "a"}}]'},
         "SOKETI_DEFAULT_APP_WEBHOOKS[0].filter has unknown key 'channel_prefix' (known: channel_name_starts_with, channel_name_ends_with)"),
        ({"SOKETI_DEFAULT_APP_WEBHOOKS": '[{"endpoint": "http://h/x", "event_types": ["cache_miss"]}]'},
         "SOKETI_DEFAULT_APP_WEBHOOKS[0] has unknown key(s) endpoint (Soketi ignores them)"),
        ({"REALTIME_WEBHOOK_URL": "http://h/x", "SOKETI_DEFAULT_APP_WEBHOOKS": '[{"url": "http://h/y", "event_types": ["cache_miss"]}]'},
         "SOKETI_DEFAULT_APP_WEBHOOKS differs from what REALTIME_WEBHOOK_URL and the other REALTIME_WEBHOOK_* variables give Soketi"),
    ],
)  # fmt: skip
def test_malformed_configuration_exits_3_naming_the_variable(
    tmp_path: Path, values, message
) -> None:
    write_env(tmp_path / ".env", {**base(tmp_path), **values})
    for command in (["config"], ["webhooks", "listen", "--timeout", "0.1"], ["up"]):
        result = run_cli(command)
        assert result.exit_code == 3, (command, result.stderr)
        assert result.stderr.splitlines()[0] == f"error: {message}"


def test_matching_handwritten_and_composed_values_are_fine(tmp_path: Path) -> None:
    composed = json.dumps([{"url": "http://h/x", "event_types": ALL_SOKETI_TYPES}])
    settings = settings_with(
        tmp_path, REALTIME_WEBHOOK_URL="http://h/x", SOKETI_DEFAULT_APP_WEBHOOKS=composed
    )
    assert json.loads(settings.soketi_webhooks) == json.loads(composed)


def test_warnings_do_not_block(tmp_path: Path) -> None:
    write_env(
        tmp_path / ".env",
        {**base(tmp_path), "REALTIME_WEBHOOK_EVENTS": "subscription_count,channel_occupied"},
    )
    result = run_cli(["config"])
    assert result.exit_code == 0
    assert (
        "warning: REALTIME_WEBHOOK_EVENTS is set but REALTIME_WEBHOOK_URL is not: no webhooks are sent"
        in result.stderr
    )
    write_env(
        tmp_path / ".env",
        {
            **base(tmp_path),
            "REALTIME_WEBHOOK_URL": "http://h/x",
            "REALTIME_WEBHOOK_EVENTS": "subscription_count",
        },
    )
    assert (
        "warning: REALTIME_WEBHOOK_EVENTS has subscription_count: Soketi 1.6.1 never sends it"
        in (run_cli(["config"]).stderr)
    )


# --- init -----------------------------------------------------------------------------------------


def test_init_writes_the_webhook_url(tmp_path: Path) -> None:
    assert run_cli(["init", "--webhooks"]).exit_code == 0
    text = (tmp_path / ".env").read_text()
    assert "\nREALTIME_WEBHOOK_URL=http://127.0.0.1:6080/webhooks\n" in text
    settings = load_settings(tmp_path / ".env", environ={})
    assert json.loads(settings.soketi_webhooks)[0]["url"] == "http://127.0.0.1:6080/webhooks"
    other = tmp_path / "other"
    result = run_cli(["init", "--dir", str(other), "--webhook-url", "http://127.0.0.1:3000/pusher"])
    assert result.exit_code == 0
    assert "\nREALTIME_WEBHOOK_URL=http://127.0.0.1:3000/pusher\n" in (other / ".env").read_text()
    third = tmp_path / "third"
    assert run_cli(["init", "--dir", str(third)]).exit_code == 0
    assert "REALTIME_WEBHOOK_URL" not in (third / ".env").read_text()


def test_init_webhook_refusals(tmp_path: Path) -> None:
    pusher = run_cli(
        ["init", "--provider", "pusher", "--cluster", "eu", "--app-id", "1", "--key", "k1",
         "--secret", "s1", "--webhooks"]
    )  # fmt: skip
    assert pusher.exit_code == 2
    assert pusher.stderr.splitlines() == [
        "error: with Pusher, webhooks are set in its dashboard (your app > Webhooks), not in .env",
        "hint: add the URL there; `rtctl webhooks listen` verifies what arrives",
    ]
    bad = run_cli(["init", "--webhook-url", "localhost:6080"])
    assert bad.exit_code == 2
    assert (
        bad.stderr.splitlines()[0] == "error: --webhook-url 'localhost:6080' is not an http(s) URL"
    )
    assert not (tmp_path / ".env").exists()


# --- doctor ---------------------------------------------------------------------------------------


def doctor_checks(path: Path, timeout: float = 2.0) -> dict[str, CheckResult]:
    return {r.name: r for r in run_doctor(read_layers(path, environ={}), timeout=timeout)}


@pytest.fixture
def ours(soketi: SoketiServer, monkeypatch: pytest.MonkeyPatch) -> SoketiServer:
    monkeypatch.setenv("RTCTL_STATE_DIR", str(soketi.state))
    return soketi


def test_doctor_without_webhooks(ours: SoketiServer, tmp_path: Path) -> None:
    found = doctor_checks(ours.write_env(tmp_path / ".env"))
    assert (found["webhooks"].status, found["webhooks"].evidence) == (
        "pass",
        "no webhooks configured (REALTIME_WEBHOOK_URL is not set)",
    )
    assert (found["webhooks-reachable"].status, found["webhooks-reachable"].evidence) == (
        "skip",
        "no webhook URL configured",
    )


def test_doctor_sees_a_receiver_and_its_absence(ours: SoketiServer, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks"
    path = ours.write_env(tmp_path / ".env", REALTIME_WEBHOOK_URL=url)
    down = doctor_checks(path)["webhooks-reachable"]
    assert down.status == "fail"
    assert down.evidence == (
        f"{url}: connection refused: Soketi never retries, so every webhook until then is lost"
    )
    assert down.fix.startswith("start the receiver (`rtctl webhooks listen` in another terminal)")
    with WebhookReceiver(ours.key, ours.secret, port=port):
        found = doctor_checks(path)
    assert found["webhooks"].evidence == (
        f"REALTIME_WEBHOOK_URL composes SOKETI_DEFAULT_APP_WEBHOOKS: 6 event types to {url}"
    )
    assert (found["webhooks-reachable"].status, found["webhooks-reachable"].evidence) == (
        "pass",
        f"{url} answers (405 Method Not Allowed to GET)",
    )


def test_doctor_deployment_mistakes(tmp_path: Path) -> None:
    values = {**base(tmp_path), "REALTIME_WEBHOOK_URL": "http://127.0.0.1:9/w"}
    write_env(tmp_path / ".env", {**values, "SOKETI_MODE": "server"})
    check = doctor_checks(tmp_path / ".env", timeout=0.5)["webhooks"]
    assert check.status == "fail"
    assert check.evidence == (
        "SOKETI_MODE=server with the sync queue: no process sends the webhooks, every one is "
        "dropped silently"
    )
    write_env(
        tmp_path / ".env", {**values, "SOKETI_MODE": "server", "SOKETI_QUEUE_DRIVER": "redis"}
    )
    assert doctor_checks(tmp_path / ".env", timeout=0.5)["webhooks"].status == "pass"
    write_env(
        tmp_path / ".env",
        {
            **values,
            "REALTIME_WEBHOOK_BATCHING": "true",
            "REALTIME_WEBHOOK_CHANNEL_PREFIX": "presence-",
        },
    )
    leak = doctor_checks(tmp_path / ".env", timeout=0.5)["webhooks"]
    assert leak.status == "warn"
    assert leak.evidence.startswith("batching-leak: with batching on, Soketi posts a whole batch")
    write_env(tmp_path / ".env", {**values, "REALTIME_WEBHOOK_BATCHING": "true"})
    assert doctor_checks(tmp_path / ".env", timeout=0.5)["webhooks"].status == "pass"


def test_doctor_names_a_bad_handwritten_value(tmp_path: Path) -> None:
    write_env(tmp_path / ".env", {**base(tmp_path), "SOKETI_DEFAULT_APP_WEBHOOKS": "[1]"})
    result = run_cli(["doctor", "--timeout", "0.5"])
    assert result.exit_code == 1
    line = next(line for line in result.stdout.splitlines() if " webhooks " in line)
    assert line.split(None, 2)[2] == "SOKETI_DEFAULT_APP_WEBHOOKS[0] is not an object"
    assert "webhooks-reachable" in result.stdout
