"""The doctor's webhook checks: the configuration, and whether the webhook URL answers.

- ``webhooks`` (no network): the REALTIME_WEBHOOK_* variables or a hand-written
  SOKETI_DEFAULT_APP_WEBHOOKS are valid (config.diagnose), and two deployment mistakes that lose
  webhooks without a word: ``SOKETI_MODE=server`` with the ``sync`` queue (nothing processes the
  webhook jobs), and batching combined with filters (Soketi posts the whole batch whenever one
  event matches, so other webhooks' event types and other channels leak through);
- ``webhooks-reachable``: each webhook URL answers HTTP from this machine (Soketi never retries,
  so a receiver that is down loses every webhook), and a loopback URL with the Docker runtime
  (127.0.0.1 inside the container is the container itself).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rtctl import webhook_settings
from rtctl.hosts import is_loopback

if TYPE_CHECKING:
    from rtctl.config import ConfigLayers, Problem, Settings
    from rtctl.ops.doctor import CheckResult

CONFIG_CHECK = "webhooks"
NETWORK_CHECKS = ("webhooks-reachable",)
# Variables whose problems the ``webhooks`` check reports.
VARIABLES = (
    *webhook_settings.VARIABLES,
    "SOKETI_MODE",
    "SOKETI_QUEUE_DRIVER",
    "SOKETI_WEBHOOKS_BATCHING",
)
_TRUE = {"1", "true", "yes", "on"}


def _entries(layers: ConfigLayers) -> list[dict[str, Any]]:
    try:
        return webhook_settings.from_layers(layers.get).entries()
    except ValueError:  # a malformed hand-written value: config.diagnose reports it
        return []


def batching_on(layers: ConfigLayers) -> bool:
    return any(
        layers.get(name).strip().lower() in _TRUE
        for name in (webhook_settings.BATCHING, "SOKETI_WEBHOOKS_BATCHING")
    )


def leaks(entries: list[dict[str, Any]]) -> bool:
    """Whether batching can deliver events a webhook did not ask for: Soketi queues an event
    when any webhook wants its type, and posts the unfiltered batch to each webhook with a match."""
    kinds = {tuple(sorted(map(str, entry.get("event_types") or []))) for entry in entries}
    return len(kinds) > 1 or any(entry.get("filter") for entry in entries)


def problems(layers: ConfigLayers) -> list[Problem]:
    """Deployment mistakes that config.diagnose does not count as configuration errors."""
    from rtctl.webhook_settings import webhook_problem

    entries = _entries(layers)
    if not entries or layers.get("REALTIME_PROVIDER").strip().lower() == "pusher":
        return []
    found = []
    mode = layers.get("SOKETI_MODE").strip().lower()
    queue = layers.get("SOKETI_QUEUE_DRIVER").strip().lower() or "sync"
    if mode == "server" and queue == "sync":
        found.append(
            webhook_problem(
                "SOKETI_MODE",
                "SOKETI_MODE=server with the sync queue: no process sends the webhooks, every "
                "one is dropped silently",
                "remove SOKETI_MODE (full: send them itself), or use SOKETI_QUEUE_DRIVER=redis "
                "with a SOKETI_MODE=worker process",
            )
        )
    if batching_on(layers) and leaks(entries):
        found.append(
            webhook_problem(
                webhook_settings.BATCHING,
                "batching-leak: with batching on, Soketi posts a whole batch to every webhook "
                "that wants one of its events, so events of other types (wanted by another "
                "webhook) and of other channels (outside the filter) leak through",
                "turn batching off, or filter again in the receiver",
                "warning",
            )
        )
    return found


def evidence(layers: ConfigLayers) -> str:
    """The ``webhooks`` check's evidence when nothing is wrong."""
    settings = webhook_settings.from_layers(layers.get)
    entries = _entries(layers)
    provider = layers.get("REALTIME_PROVIDER").strip().lower()
    if provider == "pusher":
        return "Pusher: webhooks are set in its dashboard; `rtctl webhooks listen` verifies them"
    if not entries:
        return f"no webhooks configured ({webhook_settings.URL} is not set)"
    source = (
        f"{webhook_settings.URL} composes SOKETI_DEFAULT_APP_WEBHOOKS"
        if settings.urls
        else "hand-written SOKETI_DEFAULT_APP_WEBHOOKS is valid"
    )
    first = entries[0]
    types = first.get("event_types") or []
    where = ", ".join(str(entry.get("url") or entry.get("lambda_function")) for entry in entries)
    batching = f", batched every {settings.batching_ms} ms" if batching_on(layers) else ""
    return f"{source}: {len(types)} event types to {where}{batching}"


def probe(url: str, timeout: float, ca_bundle: str | None) -> tuple[int | None, str]:
    """(status, detail) of a GET to ``url``; status None when nothing answered."""
    import http.client
    import ssl
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=ca_bundle)
        connection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=timeout, context=context
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        connection.request("GET", parts.path or "/")
        response = connection.getresponse()
        return response.status, response.reason
    except ConnectionRefusedError:
        return None, "connection refused"
    except TimeoutError:
        return None, f"no answer within {timeout:g} s"
    except OSError as exc:
        return None, str(exc.strerror or exc)
    except http.client.HTTPException as exc:
        return None, f"not an HTTP server ({type(exc).__name__})"
    finally:
        connection.close()


def network_checks(settings: Settings, timeout: float) -> list[CheckResult]:
    from rtctl.ops.doctor import CheckResult
    from rtctl.runtime import docker, native

    name = NETWORK_CHECKS[0]
    if settings.provider == "pusher":
        return [
            CheckResult(
                name,
                "skip",
                "Pusher posts from its own servers: the URL in its dashboard must be "
                "public, which cannot be checked from here",
            )
        ]
    urls = [str(e["url"]) for e in settings.webhooks.entries() if isinstance(e.get("url"), str)]
    if not urls:
        return [CheckResult(name, "skip", "no webhook URL configured")]
    answers, down = [], []
    for url in urls:
        status, detail = probe(url, timeout, settings.ca_bundle)
        if status is None:
            down.append(f"{url}: {detail}")
        else:
            answers.append(f"{url} answers ({status} {detail} to GET)")
    if down:
        return [
            CheckResult(
                name,
                "fail",
                "; ".join(down) + ": Soketi never retries, so every webhook until then is lost",
                "start the receiver (`rtctl webhooks listen` in another terminal) or fix "
                f"{webhook_settings.URL}",
            )
        ]
    in_docker = docker.read_marker(native.state_dir(settings)) is not None
    loopback = [url for url in urls if is_loopback(_host(url))]
    if in_docker and loopback:
        return [
            CheckResult(
                name,
                "warn",
                f"{', '.join(answers)} here, but Soketi runs in Docker, where "
                f"{_host(loopback[0])} is the container itself",
                "use http://host.docker.internal:<port>/... and listen on an address the "
                "container reaches (`rtctl webhooks listen --host 0.0.0.0` on a trusted network)",
            )
        ]
    return [CheckResult(name, "pass", "; ".join(answers))]


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or ""
