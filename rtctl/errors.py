"""Typed errors and the closed set of exit codes.

Core code raises these; the CLI's single error boundary turns them into one line on stderr,
a hint, and the exit code below. Nothing here knows about Typer or rich.
"""

from __future__ import annotations

import os
from enum import IntEnum


class ExitCode(IntEnum):
    """Every exit code rtctl uses. Documented in the README; tests assert them."""

    OK = 0
    FAILED = 1  # a check or gate failed (doctor, status unhealthy, smoke, bench thresholds)
    USAGE = 2  # bad command line or input (also Typer's own usage errors)
    CONFIG = 3  # configuration missing, malformed or inconsistent
    UNREACHABLE = 4  # the server cannot be reached
    AUTH = 5  # credentials or a signature were rejected (wrong key/secret, 401/403, 4001)
    TIMEOUT = 6  # nothing (or not everything) arrived in time
    REJECTED = 7  # the server refused the request (4xx in Soketi's body, limits, pusher:error)
    ENVIRONMENT = 8  # a missing or broken prerequisite (Node, npm, Docker, native addon)
    CONFLICT = 9  # existing state in the way (file exists, port busy, another server)
    SERVER_DIED = 10  # the server exited or crashed while we used it
    INTERRUPTED = 130  # Ctrl-C


class RtctlError(Exception):
    """Base class: a message for users, an optional hint, and an exit code."""

    exit_code: ExitCode = ExitCode.FAILED
    code: str = "error"  # stable machine-readable identifier for --json output

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "exit_code": int(self.exit_code),
        }


class UsageError(RtctlError):
    exit_code = ExitCode.USAGE
    code = "usage"


class InvalidInput(UsageError):
    """Input that would be refused by Pusher (names, sizes, JSON)."""

    code = "invalid_input"


class ConfigError(RtctlError):
    exit_code = ExitCode.CONFIG
    code = "config"


class Unreachable(RtctlError):
    exit_code = ExitCode.UNREACHABLE
    code = "unreachable"


class AuthRejected(RtctlError):
    exit_code = ExitCode.AUTH
    code = "auth_rejected"


class TimedOut(RtctlError):
    exit_code = ExitCode.TIMEOUT
    code = "timeout"


class ServerRejected(RtctlError):
    """The server answered, and refused. ``status`` is the real status (from Soketi's body)."""

    exit_code = ExitCode.REJECTED
    code = "rejected"

    def __init__(self, message: str, hint: str | None = None, status: int | None = None) -> None:
        super().__init__(message, hint)
        self.status = status

    def to_dict(self) -> dict[str, object]:
        data = super().to_dict()
        data["status"] = self.status
        return data


class EnvironmentProblem(RtctlError):
    exit_code = ExitCode.ENVIRONMENT
    code = "environment"


class Conflict(RtctlError):
    exit_code = ExitCode.CONFLICT
    code = "conflict"


class ServerDied(RtctlError):
    exit_code = ExitCode.SERVER_DIED
    code = "server_died"


class CheckFailed(RtctlError):
    """A check or gate failed (a smoke check, a condition a command was asked to verify)."""

    exit_code = ExitCode.FAILED
    code = "failed"


class ReportPrinted(RtctlError):
    """A report-style command (doctor, status, smoke, bench) printed its report, which is its data
    (the one JSON document in --json mode), and the report says something failed. The boundary
    adds only the verdict (``error:``/``hint:`` on stderr) and exits with ``exit_code``."""

    code = "report_failed"

    def __init__(
        self, message: str, hint: str | None = None, exit_code: ExitCode = ExitCode.FAILED
    ) -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code


class Interrupted(RtctlError):
    """Ctrl-C: the command stopped where it was (exit 130)."""

    exit_code = ExitCode.INTERRUPTED
    code = "interrupted"


DEBUG_ENV = "RTCTL_DEBUG"


def internal_error(error: BaseException) -> RtctlError:
    """What a bug in rtctl looks like to a user: its type and text, and how to see more.
    With RTCTL_DEBUG set the traceback goes to stderr first."""
    if os.environ.get(DEBUG_ENV):
        import traceback

        traceback.print_exception(error)
    return RtctlError(
        f"unexpected {type(error).__name__}: {error}",
        hint=f"this is a bug in rtctl; set {DEBUG_ENV}=1 to see the traceback and report it",
    )


# Why a file-system call failed, in the words a user needs (errno names are not for people).
_FILESYSTEM_REASONS = {
    "ENOSPC": "no space left on the device",
    "EDQUOT": "the disk quota is exhausted",
    "EFBIG": "the file is larger than this process may write",
    "EROFS": "the file system is read-only",
    "EACCES": "permission denied",
    "EPERM": "operation not permitted",
    "ENOTDIR": "a part of the path is a file, not a folder",
    "EISDIR": "it is a folder, not a file",
    "EEXIST": "something else already exists there",
    "ENOENT": "no such file or folder",
    "ENAMETOOLONG": "the name is too long",
    "ELOOP": "too many symbolic links",
    "EMFILE": "too many open files",
    "EIO": "an input/output error (a failing disk?)",
}


def filesystem_problem(
    error: OSError, action: str = "use", path: str | os.PathLike[str] | None = None
) -> EnvironmentProblem:
    """One line naming the path and the reason for a failed file-system call (exit 8)."""
    import errno as errnos

    name = errnos.errorcode.get(error.errno or 0, "")
    reason = _FILESYSTEM_REASONS.get(name) or (error.strerror or str(error)).lower()
    where = path if path is not None else error.filename
    target = f" {os.fsdecode(where)}" if where is not None else ""
    return EnvironmentProblem(
        f"cannot {action}{target}: {reason}",
        hint="check that the path is a writable folder (or file) and that the disk has space; "
        "RTCTL_STATE_DIR and RTCTL_CACHE_DIR choose other folders",
    )
