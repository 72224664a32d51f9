"""The pytest plugin (rtctl.testing): its fixtures used directly by these tests, and real pytest
runs in a subprocess (pytester) for what only a whole session shows: start-up errors, options,
the log on failures, Ctrl-C, a crashing test, pytest-xdist workers."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pusher.errors
import pytest

from rtctl.errors import InvalidInput
from rtctl.runtime import docker, native
from rtctl.testing.client import pusher_client as make_pusher_client
from rtctl.testing.listener import Listener
from rtctl.testing.server import LocalSoketi, RealtimeServer
from rtctl.testing.webhooks import WebhookInbox, Webhooks
from tests.helpers import REPO, PusherStandIn, free_port, write_env
from tests.waiting import wait_until

# --- the fixtures, used here directly -----------------------------------------------------------


def test_an_event_arrives_on_a_private_channel_with_its_data(
    realtime_listener: Callable[..., Listener], pusher_client: Any, unique_channel: Any
) -> None:
    channel = unique_channel("private-orders")
    listener = realtime_listener(channel)

    pusher_client.trigger(channel, "order.created", {"id": 7})

    message = listener.wait_for(event="order.created", channel=channel, data={"id": 7})
    assert (message.channel, message.event, message.data) == (channel, "order.created", {"id": 7})
    assert [m.event for m in listener.received] == ["order.created"]


def test_wait_for_returns_each_matching_event_once_in_order(
    realtime_listener: Callable[..., Listener], pusher_client: Any, unique_channel: Any
) -> None:
    channel = unique_channel("private-counter")
    listener = realtime_listener(channel)
    for number in (1, 2, 3):
        pusher_client.trigger(channel, "tick", {"n": number})

    first = listener.wait_for(event="tick")
    odd = listener.wait_for(event="tick", data=lambda data: data["n"] % 2 == 1)
    last = listener.wait_for(event="tick")

    assert [first.data, odd.data, last.data] == [{"n": 1}, {"n": 3}, {"n": 2}]
    assert [m.data for m in listener.events("tick", data=lambda d: d["n"] > 1)] == [
        {"n": 2},
        {"n": 3},
    ]


def test_wait_for_fails_listing_what_did_arrive(
    realtime_listener: Callable[..., Listener], pusher_client: Any, unique_channel: Any
) -> None:
    channel = unique_channel("private-orders")
    listener = realtime_listener(channel)
    pusher_client.trigger(channel, "order.created", {"id": 2})
    listener.wait_for(event="order.created")  # it is there before the failing wait starts

    with pytest.raises(AssertionError) as failure:
        listener.wait_for(event="order.created", data={"id": 1}, timeout=0.3)

    lines = str(failure.value).splitlines()
    assert lines[0] == "no event matching event='order.created', data={'id': 1} arrived within 0.3s"
    assert lines[1] == f"1 event(s) arrived on this listener ({channel}):"
    assert lines[2].endswith(f"{channel} order.created {{'id': 2}}")


def test_wait_for_on_a_quiet_listener_says_nothing_arrived(
    realtime_listener: Callable[..., Listener], unique_channel: Any
) -> None:
    channel = unique_channel("quiet")
    listener = realtime_listener(channel)

    with pytest.raises(
        AssertionError, match=rf"nothing arrived on this listener \(subscribed to {channel}\)"
    ):
        listener.wait_for(event="anything", timeout=0.2)


def test_assert_nothing_fails_on_an_unexpected_event_and_passes_once_it_was_waited_for(
    realtime_listener: Callable[..., Listener], pusher_client: Any, unique_channel: Any
) -> None:
    channel = unique_channel("private-orders")
    listener = realtime_listener(channel)
    pusher_client.trigger(channel, "order.deleted", {"id": 3})

    with pytest.raises(AssertionError) as failure:
        listener.assert_nothing(event="order.deleted", within=0.5)
    assert str(failure.value).startswith(
        "expected no event matching event='order.deleted' within 0.5s, but 1 arrived:"
    )
    listener.assert_nothing(event="order.created", within=0.1)  # other events: fine

    listener.wait_for(event="order.deleted")
    listener.assert_nothing(within=0.1)  # everything that arrived was expected


def test_an_encrypted_channel_is_signed_and_decrypted(
    realtime_listener: Callable[..., Listener], pusher_client: Any, unique_channel: Any
) -> None:
    channel = unique_channel("private-encrypted-inbox")
    listener = realtime_listener(channel)

    pusher_client.trigger(channel, "secret", {"pin": "0000"})

    message = listener.wait_for(event="secret")
    assert message.data == {"pin": "0000"}
    assert message.error is None
    assert "0000" not in message.raw  # it travelled sealed


def test_a_client_event_goes_from_one_listener_to_another(
    realtime_listener: Callable[..., Listener], unique_channel: Any
) -> None:
    channel = unique_channel("presence-chat")
    ann = realtime_listener(channel, user_id="ann", user_info={"name": "Ann"})
    bob = realtime_listener(channel, user_id="bob")

    ann.send(channel, "client-typing", {"typing": True})

    message = bob.wait_for(event="client-typing", channel=channel)
    assert (message.data, message.user_id) == ({"typing": True}, "ann")
    assert bob.members(channel) == {"ann": {"name": "Ann"}, "bob": None}


def test_webhooks_of_the_tests_own_channels_arrive_verified(
    realtime_listener: Callable[..., Listener], realtime_webhooks: Any, unique_channel: Any
) -> None:
    room = unique_channel("presence-room")
    ann = realtime_listener(room, user_id="ann")

    occupied = realtime_webhooks.wait_for(name="channel_occupied", channel=room)
    joined = realtime_webhooks.wait_for(name="member_added", channel=room)
    assert (occupied.user_id, joined.user_id) == (None, "ann")
    ann.send(room, "client-typing", {"typing": True})
    typed = realtime_webhooks.wait_for(name="client_event", channel=room)
    assert (typed.event, typed.data, typed.user_id) == ("client-typing", {"typing": True}, "ann")
    ann.unsubscribe(room)
    realtime_webhooks.wait_for(name="member_removed", user_id="ann")
    realtime_webhooks.wait_for(name="channel_vacated", channel=room)

    realtime_webhooks.assert_nothing(within=0.2)  # each arrived once, nothing else
    assert sorted(w.name for w in realtime_webhooks.received) == [
        "channel_occupied",
        "channel_vacated",
        "client_event",
        "member_added",
        "member_removed",
    ]
    assert all(w.time_ms > 0 and w.channel == room for w in realtime_webhooks.received)


def test_webhooks_keep_only_the_channels_this_test_made(
    realtime_server: RealtimeServer,
    realtime_listener: Callable[..., Listener],
    realtime_webhooks: Any,
    unique_channel: Any,
) -> None:
    other = f"presence-made-elsewhere-{time.monotonic_ns()}"  # not by unique_channel
    mine = unique_channel("presence-mine")
    realtime_listener(other, user_id="eve")
    realtime_listener(mine, user_id="ann")

    realtime_webhooks.wait_for(name="member_added", channel=mine)
    inbox = realtime_server.webhooks
    assert inbox is not None
    wait_until(
        lambda: any(w.channel == other for w in inbox.events()), 5, "the other channel's webhooks"
    )  # it arrived at the session's receiver ...
    assert {w.channel for w in realtime_webhooks.received} == {mine}  # ... but is not this test's
    with pytest.raises(AssertionError) as failure:
        realtime_webhooks.wait_for(name="member_added", user_id="eve", timeout=0.3)
    lines = str(failure.value).splitlines()
    assert lines[0] == "no webhook matching name='member_added', user_id='eve' arrived within 0.3s"
    assert lines[1] == f"2 webhook(s) arrived for this test's channels ({mine}):"
    assert sorted(line.split("s ", 1)[1] for line in lines[2:]) == [  # in arrival order
        f"channel_occupied {mine}",
        f"member_added {mine} (user ann)",
    ]


def test_webhooks_without_unique_channels_say_so(realtime_webhooks: Any) -> None:
    with pytest.raises(AssertionError) as failure:
        realtime_webhooks.wait_for(name="channel_occupied", timeout=0.1)
    assert str(failure.value).splitlines()[1] == (
        "this test made no channel with unique_channel: only webhooks of the channels it makes "
        "are collected"
    )


def test_zero_and_negative_bounds_are_refused(
    realtime_listener: Callable[..., Listener], realtime_settings: Any, unique_channel: Any
) -> None:
    listener = realtime_listener(unique_channel())
    with pytest.raises(InvalidInput, match=r"timeout must be a number of seconds above 0, not 0$"):
        listener.wait_for(event="x", timeout=0)
    with pytest.raises(InvalidInput, match=r"within must be a number of seconds above 0, not -1$"):
        listener.assert_nothing(within=-1)
    with pytest.raises(InvalidInput, match=r"timeout must be .* not 0$"):
        Listener(realtime_settings, timeout=0)


@pytest.mark.parametrize("bound", [float("inf"), 1e12])
def test_bounds_that_would_overflow_the_timers_are_refused(
    realtime_listener: Callable[..., Listener],
    realtime_settings: Any,
    unique_channel: Any,
    bound: float,
) -> None:
    refused = rf"must be at most 2592000 seconds \(30 days\), not {bound!r}$"
    listener = realtime_listener(unique_channel())
    with pytest.raises(InvalidInput, match=rf"^timeout {refused}"):
        listener.wait_for(event="x", timeout=bound)
    with pytest.raises(InvalidInput, match=rf"^within {refused}"):
        listener.assert_nothing(within=bound)
    with pytest.raises(InvalidInput, match=rf"^timeout {refused}"):
        Listener(realtime_settings, timeout=bound)
    with pytest.raises(InvalidInput, match=rf"^timeout {refused}"):
        Webhooks(WebhookInbox(), set, timeout=bound)


def test_unique_channel_gives_new_valid_names_of_the_asked_kind(unique_channel: Any) -> None:
    names = [unique_channel("private-orders") for _ in range(3)] + [unique_channel()]
    assert len(set(names)) == 4
    assert all(name.startswith("private-orders-") for name in names[:3])
    assert names[3].startswith("test-")


def test_unique_channel_refuses_a_prefix_pusher_would_refuse(unique_channel: Any) -> None:
    with pytest.raises(pytest.fail.Exception) as failure:
        unique_channel("private orders")
    assert str(failure.value).startswith("unique_channel('private orders') gives 'private orders-")
    assert "contains characters Pusher refuses: ' '" in str(failure.value)
    assert "hint: use only letters, digits and - _ = @ , . ;" in str(failure.value)


def test_the_listener_refuses_a_channel_name_pusher_refuses_even_where_soketi_would_not(
    realtime_listener: Callable[..., Listener],
) -> None:
    with pytest.raises(pytest.fail.Exception) as failure:
        realtime_listener("private-" + "a" * 170)  # Soketi allows 200 characters, Pusher 164
    assert str(failure.value) == (
        "realtime_listener: channel name is 178 characters; Pusher allows 164\n"
        "hint: shorten the channel name"
    )


def test_realtime_env_describes_the_session_server(
    realtime_env: dict[str, str], realtime_server: RealtimeServer
) -> None:
    settings = realtime_server.settings
    assert realtime_env == {
        "PUSHER_APP_ID": settings.app_id,
        "PUSHER_APP_KEY": settings.key,
        "PUSHER_APP_SECRET": settings.secret,
        "PUSHER_APP_CLUSTER": "mt1",
        "PUSHER_HOST": "127.0.0.1",
        "PUSHER_PORT": str(settings.port),
        "PUSHER_SCHEME": "http",
        "PUSHER_ENCRYPTION_MASTER_KEY_BASE64": settings.encryption_master_key_base64,
        "REALTIME_PROVIDER": "soketi",
        "REALTIME_HOST": "127.0.0.1",
        "REALTIME_PORT": str(settings.port),
        "REALTIME_SCHEME": "http",
    }
    assert realtime_server.soketi is not None and realtime_server.soketi.alive()
    assert realtime_server.env_file.read_text().count("\n") >= 7  # what `rtctl --env-file` reads


def test_the_pusher_client_raises_on_a_payload_over_pushers_limit_as_against_pusher(
    pusher_client: Any, unique_channel: Any
) -> None:
    channel = unique_channel()
    assert pusher_client.trigger(channel, "fits", "x" * 9_000) == {"ok": True}
    with pytest.raises(pusher.errors.PusherBadStatus, match=r"^413: .*less than 10 KB"):
        pusher_client.trigger(channel, "too-big", "x" * 11_000)


def test_the_pusher_client_raises_on_a_wrong_secret(realtime_settings: Any) -> None:
    wrong = dataclasses.replace(realtime_settings, secret="wrong" + realtime_settings.secret)
    with pytest.raises(pusher.errors.PusherBadAuth, match="secret authentication failed"):
        make_pusher_client(wrong).trigger("somewhere", "x", {})


def test_the_docs_show_the_example_app_and_its_tests_as_they_run() -> None:
    docs = (REPO / "docs" / "testing.md").read_text()
    shown = {}
    for block in re.findall(r"```python\n# (tests/example_app/\S+)\n(.*?)```", docs, re.DOTALL):
        shown[block[0]] = block[1]
    assert sorted(shown) == ["tests/example_app/app.py", "tests/example_app/test_example_app.py"]
    for path, code in shown.items():
        assert code in (REPO / path).read_text(), f"docs/testing.md shows an outdated {path}"


# --- whole pytest runs in a subprocess ----------------------------------------------------------

RECORD_TEST = """
import json, os

def test_record(realtime_server):
    soketi = realtime_server.soketi
    with open(os.environ["RECORD"], "a") as out:
        out.write(json.dumps({"pid": soketi.running.pid, "ticks": soketi.running.start_ticks,
                              "port": soketi.port,
                              "worker": os.environ.get("PYTEST_XDIST_WORKER", "main")}) + "\\n")
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=180)


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def stops_soon(pid: int, ticks: int, timeout: float = 20) -> bool:
    """The recorded Soketi is gone (PID exited, or reused by another process)."""
    with contextlib.suppress(AssertionError):
        return wait_until(lambda: native.start_ticks(pid) != ticks, timeout, "", interval=0.1)
    return False


def test_the_entry_point_registers_the_plugin() -> None:
    found = [ep for ep in entry_points(group="pytest11") if ep.name == "rtctl"]
    assert [ep.value for ep in found] == ["rtctl.testing.plugin"]


def test_importing_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys; import rtctl.testing.plugin;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('rtctl', 'pusher', 'websocket', 'requests', 'nacl', 'typer', 'rich')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['rtctl', 'rtctl.testing', 'rtctl.testing.plugin']"


def test_options_are_in_the_help_and_no_rtctl_disables_the_fixtures(
    pytester: pytest.Pytester,
) -> None:
    help_text = run(pytester, "--help").stdout.str()
    for option in ("--rtctl-runtime", "--rtctl-env-file=PATH", "--rtctl-timeout=SECONDS"):
        assert option in help_text
    pytester.makepyfile("def test_x(realtime_server):\n    pass\n")
    result = run(pytester, "-p", "no:rtctl")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'realtime_server' not found*"])


@pytest.mark.parametrize("value", ["0", "-2", "soon"])
def test_a_timeout_option_that_is_not_above_zero_is_a_usage_error(
    pytester: pytest.Pytester, value: str
) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = run(pytester, f"--rtctl-timeout={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: --rtctl-timeout (or the rtctl_timeout ini option) must be a number of seconds "
            f"above 0, not '{value}'"
        ]
    )


@pytest.mark.parametrize("value", ["inf", "1e12"])
def test_a_timeout_option_that_would_overflow_the_timers_is_a_usage_error(
    pytester: pytest.Pytester, value: str
) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = run(pytester, f"--rtctl-timeout={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: --rtctl-timeout (or the rtctl_timeout ini option) must be at most 2592000 "
            f"seconds (30 days), not '{value}'"
        ]
    )


def test_a_failing_test_gets_the_soketi_log_of_its_own_run_and_its_own_webhooks(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, native_soketi: Path
) -> None:
    monkeypatch.setenv("SOKETI_DEBUG", "1")  # Soketi logs every connection
    pytester.makepyfile(
        """
        def test_passes(realtime_server):
            pass

        def test_fails(realtime_listener, unique_channel):
            realtime_listener(unique_channel("private-logged"))
            assert False, "the app did not publish"

        def test_a_member_joins(realtime_listener, realtime_webhooks, unique_channel):
            room = unique_channel("presence-first")
            realtime_listener(room, user_id="ann")
            assert realtime_webhooks.wait_for(name="member_added", channel=room).user_id == "ann"
            # its listener leaves at teardown: channel_vacated arrives during the next test

        def test_a_webhook_that_never_comes(realtime_listener, realtime_webhooks, unique_channel):
            room = unique_channel("presence-second")
            realtime_listener(room, user_id="bob")
            realtime_webhooks.wait_for(name="member_added", user_id="bob")
            realtime_webhooks.wait_for(name="member_removed", channel=room, timeout=1)
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=2, failed=2)
    output = result.stdout.str()
    # each failing test gets its own run's log
    assert output.count("rtctl: realtime_server Soketi log (") == 2, output
    section = output.split("rtctl: realtime_server Soketi log (", 1)[1]
    assert "Sent message to client" in section, section
    assert "private-logged-" in section, section
    # the failed wait_for lists what arrived: only this test's channel, not the earlier test's
    # (whose listener left at its teardown: its last webhooks may come while this one runs)
    failure = output.split("_ test_a_webhook_that_never_comes _", 1)[1]
    said = [line[1:].strip() for line in failure.splitlines() if line.startswith("E  ")]
    room = re.search(r"presence-second-[0-9a-f]{8}-1", said[0])
    assert room is not None, said
    assert said[:2] == [
        f"AssertionError: no webhook matching name='member_removed', channel='{room[0]}' "
        "arrived within 1s",
        f"2 webhook(s) arrived for this test's channels ({room[0]}):",
    ]
    # each its own request: they may arrive in either order
    assert sorted(re.sub(r"^\+\d+\.\d{3}s ", "", line) for line in said[2:4]) == [
        f"channel_occupied {room[0]}",
        f"member_added {room[0]} (user bob)",
    ]
    assert not any("presence-first" in line for line in said), said


def test_an_existing_deployment_is_used_and_nothing_is_started(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, soketi: Any, tmp_path: Path
) -> None:
    env_file = soketi.write_env(tmp_path / "deployment.env")
    monkeypatch.setenv("RTCTL_ENV_FILE", str(env_file))
    pytester.makepyfile(
        f"""
        def test_round_trip(realtime_server, realtime_listener, pusher_client, unique_channel):
            assert realtime_server.soketi is None
            assert realtime_server.settings.port == {soketi.port}
            channel = unique_channel("private-deployed")
            listener = realtime_listener(channel)
            pusher_client.trigger(channel, "hello", {{"to": "deployment"}})
            assert listener.wait_for(event="hello").data == {{"to": "deployment"}}

        def test_webhooks(realtime_webhooks):
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "realtime_webhooks: the session's server is the deployment in "
            f"{env_file} (ws://127.0.0.1:{soketi.port}/app/{soketi.key}), which sends its "
            "webhooks where it is configured, not to this test process; only the native Soketi "
            "the plugin starts sends them here",
            "hint: run these tests without --rtctl-env-file / RTCTL_ENV_FILE and without "
            "--rtctl-runtime docker, or receive that deployment's webhooks with `rtctl webhooks "
            "listen`",
        ]
    )


def test_an_existing_tls_pusher_configuration_works_through_its_ca_bundle(
    pytester: pytest.Pytester, pusher_standin: PusherStandIn, tmp_path: Path
) -> None:
    env_file = write_env(tmp_path / "pusher.env", pusher_standin.env())
    pytester.makepyfile(
        """
        def test_round_trip(realtime_settings, realtime_env, realtime_listener, pusher_client,
                            unique_channel):
            assert (realtime_settings.provider, realtime_settings.tls) == ("pusher", True)
            assert realtime_env["PUSHER_SCHEME"] == "https"
            assert realtime_env["RTCTL_PUSHER_ENDPOINT"].startswith("127.0.0.1:")
            channel = unique_channel("private-tls")
            listener = realtime_listener(channel)
            pusher_client.trigger(channel, "hello", {"over": "tls"})
            assert listener.wait_for(event="hello").data == {"over": "tls"}
        """
    )
    run(pytester, f"--rtctl-env-file={env_file}").assert_outcomes(passed=1)


def test_a_missing_env_file_is_an_error_naming_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "def test_a(realtime_server):\n    pass\n\ndef test_b(pusher_client):\n    pass\n"
    )
    result = run(pytester, "--rtctl-env-file=nowhere.env")
    result.assert_outcomes(errors=2)  # the first use and every later one, never a skip
    result.stdout.fnmatch_lines(
        [
            f"rtctl could not provide a server for the tests: the env file "
            f"{pytester.path / 'nowhere.env'} does not exist",
            "hint: pass --rtctl-env-file (or RTCTL_ENV_FILE) with the .env of a running "
            "deployment, or leave both unset to start a Soketi for the session",
        ]
    )


def test_a_wrong_env_file_is_an_error_naming_the_problem(
    pytester: pytest.Pytester, soketi: Any, tmp_path: Path
) -> None:
    env_file = soketi.write_env(tmp_path / "wrong.env", PUSHER_APP_ID="app-one")
    pytester.makepyfile("def test_a(realtime_server):\n    pass\n")
    result = run(pytester, f"--rtctl-env-file={env_file}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["rtctl could not provide a server for the tests: PUSHER_APP_ID='app-one' is not numeric*"]
    )


def test_an_unreachable_deployment_is_an_error_naming_where(
    pytester: pytest.Pytester, soketi: Any, tmp_path: Path
) -> None:
    port = free_port()
    env_file = soketi.write_env(tmp_path / "down.env", REALTIME_PORT=str(port))
    pytester.makepyfile("def test_a(realtime_server):\n    pass\n")
    result = run(pytester, f"--rtctl-env-file={env_file}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            f"rtctl could not provide a server for the tests: the deployment in "
            f"{env_file} does not answer at ws://127.0.0.1:{port}/app/{soketi.key}: cannot "
            f"connect to *",
            "hint: is the server running? *",
        ]
    )


def test_no_node_is_an_error_at_first_use_naming_the_fix(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTCTL_NODE", "/nonexistent/node")
    pytester.makepyfile(
        "def test_plain():\n    pass\n\ndef test_uses_it(realtime_listener):\n    pass\n"
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, errors=1)  # a test without the fixture is untouched
    result.stdout.fnmatch_lines(
        [
            "rtctl could not provide a server for the tests: Node.js "
            "(/nonexistent/node) was not found on PATH",
            "hint: install Node 16, 18 or 20 *",
        ]
    )


def test_a_failing_soketi_install_is_an_error_naming_the_fix(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    only_node = tmp_path / "bin"
    only_node.mkdir()
    (only_node / "node").symlink_to(native.find_node()[0])
    monkeypatch.setenv("PATH", str(only_node))  # Node, but no npm to install Soketi with
    monkeypatch.setenv("RTCTL_CACHE_DIR", str(tmp_path / "empty-cache"))
    pytester.makepyfile("def test_a(realtime_server):\n    pass\n")
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "rtctl could not provide a server for the tests: npm was not found on PATH",
            "hint: install npm (it ships with Node.js)",
        ]
    )


def test_the_docker_runtime_without_an_engine_is_an_error_naming_the_fix(
    pytester: pytest.Pytester,
) -> None:
    if docker.engine_answers():
        pytest.skip("a Docker engine answers here: this checks the error without one")
    pytester.makepyfile("def test_a(realtime_server):\n    pass\n")
    result = run(pytester, "--rtctl-runtime=docker")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["rtctl could not provide a server for the tests: *docker*", "hint: *native*"]
    )


def test_each_xdist_worker_starts_one_server_and_stops_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, native_soketi: Path, tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    monkeypatch.setenv("RECORD", str(record))
    pytester.makepyfile(
        RECORD_TEST
        + "\n".join(
            f"\ndef test_record_{n}(realtime_server):\n    test_record(realtime_server)\n"
            "    __import__('time').sleep(0.3)\n"
            for n in range(6)
        )
    )
    result = run(pytester, "-n", "2")
    result.assert_outcomes(passed=7)
    seen = records(record)
    by_worker: dict[str, set[tuple[int, int]]] = {}
    for line in seen:
        by_worker.setdefault(line["worker"], set()).add((line["pid"], line["port"]))
    assert sorted(by_worker) == ["gw0", "gw1"]
    assert all(len(servers) == 1 for servers in by_worker.values())  # once per worker
    assert len({line["pid"] for line in seen}) == 2  # and not shared between them
    for line in {(line["pid"], line["ticks"]) for line in seen}:
        assert stops_soon(*line)


def test_a_crashing_session_leaves_no_server_behind(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, native_soketi: Path, tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    monkeypatch.setenv("RECORD", str(record))
    pytester.makepyfile(
        RECORD_TEST
        + "\n\ndef test_crash(realtime_server):\n    os._exit(3)  # no teardown at all\n"
    )
    result = run(pytester)
    assert result.ret == 3
    [line] = records(record)
    assert stops_soon(line["pid"], line["ticks"])


def test_ctrl_c_leaves_no_server_behind(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, native_soketi: Path, tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    monkeypatch.setenv("RECORD", str(record))
    pytester.makepyfile(
        RECORD_TEST + "\n\ndef test_wait(realtime_server):\n"
        "    open(os.environ['RECORD'] + '.waiting', 'w').close()\n"
        "    __import__('time').sleep(120)\n"
    )
    session = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=pytester.path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        waiting = Path(f"{record}.waiting")  # written by test_wait as it starts to sleep
        wait_until(
            lambda: waiting.exists() or session.poll() is not None,
            120,
            "the inner pytest never reached its sleeping test",
            interval=0.1,
        )
        assert waiting.exists(), session.communicate(timeout=30)[0]
        session.send_signal(signal.SIGINT)
        output, _ = session.communicate(timeout=60)
    finally:
        if session.poll() is None:
            session.kill()
            session.wait(timeout=10)
    assert session.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "KeyboardInterrupt" in output
    [line] = records(record)
    assert stops_soon(line["pid"], line["ticks"])


def test_a_stopped_local_soketi_has_no_watchdog_left(tmp_path: Path, native_soketi: Path) -> None:
    server = LocalSoketi(
        env={
            "REALTIME_HOST": "127.0.0.1",
            "REALTIME_PORT": str(free_port()),
            "SOKETI_METRICS_SERVER_PORT": str(free_port()),
            "PUSHER_APP_ID": "123456",
            "PUSHER_APP_KEY": "watchkey",
            "PUSHER_APP_SECRET": "watchsecret",
        },
        state=tmp_path,
    ).start()
    watchdog = server._watchdog
    assert watchdog is not None and watchdog.poll() is None
    running = server.running
    assert running is not None
    server.stop()
    assert watchdog.returncode == 0
    assert native.start_ticks(running.pid) != running.start_ticks


def test_free_port_never_hands_out_the_same_port_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel may give the same ephemeral port to two binds in a row; a .env made from two such
    # calls (REALTIME_PORT and SOKETI_METRICS_SERVER_PORT) is refused, as a CI run once showed.
    import socket

    from rtctl.testing import server

    kernel_choices = iter([61_990, 61_990, 61_990, 61_991])

    class Kernel(socket.socket):
        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", next(kernel_choices))

    monkeypatch.setattr(server.socket, "socket", Kernel)
    assert [server.free_port(), server.free_port()] == [61_990, 61_991]
