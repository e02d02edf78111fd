"""Exceptions raised by the moat SDK, one per kind of failure.

Every error libmoat reports carries an errno-style ``code`` and a ``kind``
(moat/result.h's ErrorKind); the class is chosen by the kind, so callers
branch on the type and never on the message::

    try:
        moat.Sandbox.open("web")
    except moat.NotFoundError:
        ...
"""
from __future__ import annotations

import builtins


class MoatError(Exception):
    """Any failure reported by libmoat."""

    def __init__(self, message: str, code: int = 0, kind: str = "unknown"):
        super().__init__(message)
        self.message = message
        self.code = code
        self.kind = kind


class NotFoundError(MoatError, LookupError):
    """No such sandbox, image, file or volume (ENOENT, ESRCH)."""


class AlreadyExistsError(MoatError):
    """The name is taken (EEXIST)."""


class InvalidArgumentError(MoatError, ValueError):
    """Bad input: options, paths, rules (EINVAL and relatives)."""


class BusyError(MoatError):
    """Another operation holds it; try again (EBUSY, EAGAIN)."""


class NotRunningError(MoatError):
    """The sandbox is not running, or the handle is closed (ENOTCONN)."""


class TimedOutError(MoatError, builtins.TimeoutError):
    """A wait ran out of time (ETIMEDOUT)."""


class InterruptedError(MoatError):  # noqa: A001 - the SDK's own kind
    """A wait was cancelled (EINTR, ECANCELED)."""


class PermissionDeniedError(MoatError, PermissionError):
    """EACCES, EPERM."""


class ResourceExhaustedError(MoatError):
    """No space, memory or descriptors left (ENOSPC, ENOMEM, ...)."""


class UnsupportedError(MoatError):
    """Not supported here (ENOSYS, ENOTSUP)."""


class ProtocolError(MoatError):
    """A peer (the guest, a registry) sent something wrong."""


class IoError(MoatError, OSError):
    """Any other system error."""


class CommandTimedOut(TimedOutError):
    """A command ran past its ``timeout`` and was killed. ``result`` holds
    what it wrote until then (like subprocess.TimeoutExpired)."""

    def __init__(self, message: str, result):
        super().__init__(message, code=110, kind="timed_out")
        self.result = result


_BY_KIND = {
    "not_found": NotFoundError,
    "already_exists": AlreadyExistsError,
    "invalid_argument": InvalidArgumentError,
    "busy": BusyError,
    "not_running": NotRunningError,
    "timed_out": TimedOutError,
    "interrupted": InterruptedError,
    "permission_denied": PermissionDeniedError,
    "resource_exhausted": ResourceExhaustedError,
    "unsupported": UnsupportedError,
    "protocol": ProtocolError,
    "io": IoError,
}


def error_for(message: str, code: int, kind: str) -> MoatError:
    """The exception of the class ``kind`` names."""
    cls = _BY_KIND.get(kind, MoatError)
    err = cls.__new__(cls)
    MoatError.__init__(err, message, code, kind)
    return err
