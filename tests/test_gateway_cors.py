"""The gateway's CORS as browsers meet it: the preflight Chromium sends for Laravel Echo's and
pusher-js' usual headers, and a real headless Chromium page whose pusher-js authorizes a private
channel cross-origin through a running `rtctl gateway`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
from starlette.testclient import TestClient

from rtctl.errors import ConfigError
from rtctl.gateway import create_app
from tests.gateway_support import DM, GatewayProcess, gateway_env, gateway_settings, token
from tests.helpers import JS_DIR, SoketiServer, free_port

pytestmark = pytest.mark.soketi

APP = "https://app.example.com"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def preflight(client: TestClient, requested: str, origin: str = APP):  # type: ignore[no-untyped-def]
    """An OPTIONS request shaped as Chromium sends it: lowercase, sorted, comma-joined names."""
    return client.options(
        "/realtime/auth",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": requested,
            "Sec-Fetch-Mode": "cors",
            "Sec-Fetch-Site": "cross-site",
            "Sec-Fetch-Dest": "empty",
        },
    )


def test_preflight_for_laravel_echo_and_pusher_js_headers_is_allowed(soketi) -> None:
    settings = gateway_settings(soketi, REALTIME_CORS_ORIGINS=APP)
    with TestClient(create_app(settings)) as client:
        answer = preflight(client, "authorization,content-type,x-csrf-token,x-socket-id")
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == APP
        allowed = {
            h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")
        }
        assert {"authorization", "content-type", "x-csrf-token", "x-socket-id"} <= allowed
        assert preflight(client, "x-requested-with,x-xsrf-token").status_code == 200
        # headers nobody configured stay refused
        assert preflight(client, "x-tenant").status_code == 400


def test_more_headers_through_realtime_cors_headers(soketi) -> None:
    settings = gateway_settings(
        soketi, REALTIME_CORS_ORIGINS=APP, REALTIME_CORS_HEADERS="X-Tenant, X-Trace-Id"
    )
    with TestClient(create_app(settings)) as client:
        assert preflight(client, "authorization,x-tenant,x-trace-id").status_code == 200
        assert preflight(client, "x-csrf-token").status_code == 200  # defaults kept


@pytest.mark.parametrize("value", ["*", "X Bad", "X-Ok,Bad:Header"])
def test_realtime_cors_headers_must_be_header_names(soketi, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        create_app(gateway_settings(soketi, REALTIME_CORS_ORIGINS=APP, REALTIME_CORS_HEADERS=value))
    assert refused.value.message.startswith("REALTIME_CORS_HEADERS entry ")
    assert refused.value.message.endswith(" is not a header name")


PAGE = """<!doctype html>
<html><head><meta name="csrf-token" content="csrf-from-the-layout">
<script src="/pusher.min.js"></script></head>
<body><div id="result">waiting</div><script>
// The result goes into the page and back to the page's server; /hold.js (below) keeps the page
// loading until then, so Chromium's --dump-dom waits for it.
const show = (text) => {
  document.getElementById("result").textContent = text;
  fetch("/report?" + encodeURIComponent(text));
};
// Configured as Laravel Echo configures pusher-js: the page's csrf-token meta tag becomes an
// X-CSRF-TOKEN auth header; X-Socket-ID as Echo's interceptors and many apps send it.
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const pusher = new Pusher(%(key)s, {
  cluster: "mt1", wsHost: "127.0.0.1", wsPort: %(ws_port)d, forceTLS: false,
  enabledTransports: ["ws"], disableStats: true,
  channelAuthorization: {
    endpoint: %(auth)s, transport: "ajax",
    headers: { Authorization: "Bearer " + %(token)s, "X-CSRF-TOKEN": csrf },
    headersProvider: () => ({ "X-Socket-ID": pusher.connection.socket_id }),
  },
});
const channel = pusher.subscribe(%(channel)s);
channel.bind("pusher:subscription_succeeded", () => show("subscribed"));
channel.bind("pusher:subscription_error", (e) => show("error " + JSON.stringify(e)));
</script><script src="/hold.js"></script></body></html>
"""


class PageServer:
    """The app's page and pusher-js' browser build on http://127.0.0.1:port; records what the
    page reports and holds /hold.js until then."""

    def __init__(self, html: str, port: int) -> None:
        web = JS_DIR / "node_modules" / "pusher-js" / "dist" / "web" / "pusher.min.js"
        script = web.read_bytes()
        self.reported: list[str] = []
        done = threading.Event()
        page = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                if path == "/report":
                    page.reported.append(unquote(query))
                    done.set()
                    body, kind = b"", "text/plain"
                elif path == "/hold.js":
                    done.wait(30)
                    body, kind = b"", "text/javascript"
                elif path == "/pusher.min.js":
                    body, kind = script, "text/javascript"
                else:
                    body, kind = html.encode(), "text/html"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (scripts/test.sh)")
def test_a_real_browser_page_authorizes_cross_origin(soketi: SoketiServer, tmp_path: Path) -> None:
    page_port = free_port()
    gateway = GatewayProcess(
        gateway_env(soketi, REALTIME_CORS_ORIGINS=f"http://127.0.0.1:{page_port}")
    ).start(tmp_path)
    page = None
    try:
        html = PAGE % {
            "key": json.dumps(soketi.key),
            "ws_port": soketi.port,
            "auth": json.dumps(f"{gateway.base}/auth"),
            "token": json.dumps(token()),
            "channel": json.dumps(DM),
        }
        page = PageServer(html, page_port)
        done = subprocess.run(
            [
                CHROMIUM,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                f"--user-data-dir={tmp_path / 'chromium'}",
                "--dump-dom",
                f"http://127.0.0.1:{page_port}/",
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )
        log = gateway.log()
    finally:
        if page is not None:
            page.close()
        gateway.stop()
    assert page.reported == ["subscribed"], (page.reported, done.stderr[-800:], log)
    shown = re.search(r'<div id="result">([^<]*)</div>', done.stdout)
    assert shown is not None and shown.group(1) == "subscribed"
    access = [
        json.loads(line.split("rtctl.gateway.access: ", 1)[1])
        for line in log.splitlines()
        if "rtctl.gateway.access: " in line
    ]
    assert [(r["method"], r["status"]) for r in access if r["path"] == "/realtime/auth"] == [
        ("OPTIONS", 200),  # the browser's preflight for X-CSRF-TOKEN / X-Socket-ID
        ("POST", 200),
    ]
