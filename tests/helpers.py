"""Test helpers: running the real CLI, and real native Soketi servers (the pytest plugin's
LocalSoketi; free_port, fresh_credentials and write_env come from it too)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from rtctl.cli.app import app
from rtctl.testing.server import LocalSoketi, free_port, fresh_credentials, local_env, write_env

REPO = Path(__file__).resolve().parent.parent
TEST_CACHE = REPO / ".cache" / "rtctl-test"
JS_DIR = REPO / "tests" / "js"

__all__ = ["free_port", "fresh_credentials", "write_env"]  # imported from here by the tests


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(args: Sequence[str], input: str | None = None) -> CliResult:
    """Run rtctl in-process through Typer's runner (the error boundary included)."""
    result = CliRunner().invoke(app, list(args), input=input, catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


def run_rtctl(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real entry point in a subprocess (`python -m rtctl`)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "rtctl", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def unprivileged_runner() -> list[str] | None:
    """A way to run Python as a user who cannot read a root-only file, or None."""
    if os.geteuid() != 0:
        return [sys.executable]
    setpriv = shutil.which("setpriv")
    system_python = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    try:
        import pwd

        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return None
    if not setpriv or not system_python.exists():
        return None
    return [
        setpriv,
        f"--reuid={nobody.pw_uid}",
        f"--regid={nobody.pw_gid}",
        "--clear-groups",
        str(system_python),
    ]


def run_unprivileged(
    runner: list[str], args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m rtctl ARGS` as an unprivileged user (see unprivileged_runner): the venv's
    packages come through PYTHONPATH, as the user may not enter the venv's folder."""
    import sysconfig

    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd),
        "NO_COLOR": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), sysconfig.get_paths()["purelib"]]),
        **(env or {}),
    }
    return subprocess.run(
        [*runner, "-m", "rtctl", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


class SoketiServer(LocalSoketi):
    """The plugin's LocalSoketi, always installed from and run out of the tests' shared cache."""

    def start(self, timeout: float = 30) -> SoketiServer:
        os.environ["RTCTL_CACHE_DIR"] = str(TEST_CACHE)
        super().start(timeout)
        return self


def make_server(state: Path, **overrides: str) -> SoketiServer:
    return SoketiServer(env=local_env(**overrides), state=state)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A throwaway CA-flagged certificate for 127.0.0.1 and its key: (cert, key) paths."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class PusherStandIn:
    """A TLS Soketi with a self-signed certificate standing in for Pusher's hosts."""

    server: SoketiServer
    cert: Path

    def env(self, trust: bool = True, **extra: str) -> dict[str, str]:
        """.env values for provider=pusher pointed at the stand-in (its CA trusted or not)."""
        values = {
            "REALTIME_PROVIDER": "pusher",
            "PUSHER_APP_CLUSTER": "eu",
            # stands in for ws-eu.pusher.com / api-eu.pusher.com
            "RTCTL_PUSHER_ENDPOINT": f"127.0.0.1:{self.server.port}",
            "PUSHER_APP_ID": self.server.app_id,
            "PUSHER_APP_KEY": self.server.key,
            "PUSHER_APP_SECRET": self.server.secret,
        }
        if trust:
            values["RTCTL_CA_BUNDLE"] = str(self.cert)
        return {**values, **extra}
