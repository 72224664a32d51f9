"""The front door of a cluster: HAProxy's configuration, and what its stats socket says.

Why HAProxy and these settings (see docs/cluster.md):
- clients know one host and port, so one address must balance both the WebSocket upgrade and the
  HTTP API; ``balance leastconn`` spreads long-lived sockets evenly;
- every node's ``/ready`` is health-checked each second and two failures take it out, so a dead
  node stops receiving new clients within about two seconds; ``option redispatch`` sends a
  connection that hits a dead node to another one at once;
- HAProxy needs two descriptors per proxied connection plus a few of its own, and refuses to
  start when ``maxconn`` does not fit the open-files limit ("Cannot raise FD limit"), so the
  default ``maxconn`` is derived from that limit; several processes can share one front port
  (HAProxy binds with SO_REUSEPORT) when one process is not enough;
- each response says which node served it (``X-Rtctl-Node``), so checks can tell where a socket
  landed; rtctl runs it in the foreground (``-db``) and tracks it by PID, like every process.
"""

from __future__ import annotations

import contextlib
import csv
import io
import resource
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rtctl.errors import EnvironmentProblem

NODE_HEADER = "X-Rtctl-Node"
BACKEND = "soketi"
FRONTEND = "realtime"
# Descriptors HAProxy uses besides two per connection: measured 26 with one listener, the stats
# socket and the health checks ("Cannot raise FD limit to 20006" at maxconn 9990); kept generous.
FD_OVERHEAD = 100
SOCKET_ENV = "RTCTL_HAPROXY_SOCKET"  # each process of one config gets its own stats socket
INSTALL_HINT = "apt-get install -y haproxy"


@dataclass(frozen=True)
class Server:
    name: str  # node-1, node-2, ...
    host: str
    port: int


def binary() -> str:
    """The haproxy executable, or exit 8 with the install command."""
    from rtctl.runtime.cluster import find_program

    found = find_program("haproxy")
    if found is None:
        raise EnvironmentProblem(
            "haproxy (the front door of a cluster) was not found",
            hint=f"install it: {INSTALL_HINT} (or run one node: RTCTL_SOKETI_NODES=1)",
        )
    return found


def open_files_limit() -> int:
    """The hard open-files limit a process started from here can raise itself to."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1_048_576 if hard == resource.RLIM_INFINITY else int(hard)


def default_maxconn(open_files: int | None = None) -> int:
    """The most connections one HAProxy process can hold under the open-files limit."""
    limit = open_files_limit() if open_files is None else open_files
    return max(1, (limit - FD_OVERHEAD) // 2)


def files_needed(maxconn: int) -> int:
    """What HAProxy asks the kernel for at start with this maxconn (two per connection + own)."""
    return 2 * maxconn + FD_OVERHEAD


def render(
    *,
    bind_host: str,
    bind_port: int,
    servers: Sequence[Server],
    maxconn: int,
    tls_pem: str | None = None,
    docker: bool = False,
) -> str:
    """The front door's haproxy.cfg. ``docker``: servers are compose service names resolved by
    Docker's DNS, and the stats socket is left out (nothing on the host could reach it)."""
    bind = f"{'[' + bind_host + ']' if ':' in bind_host else bind_host}:{bind_port}"
    if tls_pem:
        bind += f" ssl crt {tls_pem}"
    lines = [
        "# The front door of an rtctl cluster (written by rtctl; regenerated on every start).",
        "global",
        f"  maxconn {maxconn}",
        "  nbthread 1",
    ]
    if not docker:
        lines.append(f'  stats socket "${{{SOCKET_ENV}}}" mode 600 level admin')
    else:
        lines += ["", "resolvers docker", "  nameserver dns 127.0.0.11:53", "  hold valid 5s"]
    lines += [
        "",
        "defaults",
        "  mode http",
        "  timeout connect 5s",
        "  timeout client 120s",
        "  timeout server 120s",
        "  # WebSockets live for hours; Pusher's own pings keep them busy every 30-120 s",
        "  timeout tunnel 1h",
        "  timeout http-request 10s",
        "  option redispatch",
        "  retries 2",
        "",
        f"frontend {FRONTEND}",
        f"  bind {bind}",
        f"  maxconn {maxconn}",
        f"  default_backend {BACKEND}",
        "",
        f"backend {BACKEND}",
        "  balance leastconn",
        "  option httpchk",
        "  # uWS does not answer an HTTP/1.0 check without a Host header: send a real request",
        "  http-check send meth GET uri /ready ver HTTP/1.1 hdr Host localhost",
        "  http-check expect status 200",
        f"  http-response set-header {NODE_HEADER} %s",
        "  default-server inter 1s fastinter 250ms downinter 1s fall 2 rise 2"
        + (" resolvers docker init-addr libc,none" if docker else ""),
    ]
    lines += [f"  server {server.name} {server.host}:{server.port} check" for server in servers]
    return "\n".join(lines) + "\n"


# --- the stats socket ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerState:
    """One node as one HAProxy process sees it."""

    name: str
    status: str  # UP, DOWN, "UP 1/2" (going down), "DOWN 1/2" (coming up), MAINT, ...
    current: int  # connections open through this process now
    total: int  # connections ever sent there
    check: str  # the last health check's result, e.g. L7OK, L4CON

    @property
    def up(self) -> bool:
        return self.status.startswith("UP")


def ask(socket_path: Path, command: str, timeout: float = 2.0) -> str:
    """One command on a stats socket; '' when it does not answer."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(socket_path))
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")
    return ""


def parse_stat(text: str) -> list[ServerState]:
    """The backend's servers from ``show stat`` (CSV whose header starts with '# ')."""
    if not text.startswith("# "):
        return []
    rows = csv.DictReader(io.StringIO(text[2:]))
    states = []
    for row in rows:
        if row.get("pxname") != BACKEND or row.get("svname") in ("BACKEND", "FRONTEND", None):
            continue
        states.append(
            ServerState(
                name=row["svname"],
                status=row.get("status") or "",
                current=int(row.get("scur") or 0),
                total=int(row.get("stot") or 0),
                check=row.get("check_status") or "",
            )
        )
    return states


def server_states(socket_path: Path, timeout: float = 2.0) -> list[ServerState] | None:
    """Every node's state in one HAProxy process, or None when its socket does not answer."""
    text = ask(socket_path, "show stat", timeout)
    return parse_stat(text) if text else None
