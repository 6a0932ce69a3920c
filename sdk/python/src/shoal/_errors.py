"""Errors raised by the Shoal client.

Every error is a :class:`ShoalError`. Answers of the server carry its HTTP ``status``, its stable
``code`` (``not_found``, ``conflict``, ``invalid_argument``, ``unauthorized``, ...) and a
``message`` that says what went wrong and what to do about it. Errors that happen before an answer
arrives (no configuration, server not reachable, timeout) have ``status`` ``None``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from ._models import CommandResult


class ShoalError(Exception):
    """Base class of every error this package raises."""

    def __init__(self, status: int | None, code: str, message: str) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message

    def __str__(self) -> str:
        if self.status is None:
            return self.message
        return f"{self.message} ({self.status} {self.code})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, message={self.message!r})"


class InvalidArgument(ShoalError):
    """400, 415 or 422: the request was refused as invalid and changed nothing."""


class Unauthorized(ShoalError):
    """401: the API key is missing or unknown."""


class PermissionDenied(ShoalError):
    """403 ``permission_denied``: the sandbox's filesystem refused a file operation (``EACCES``,
    ``EPERM``, a read-only filesystem)."""


class NotFound(ShoalError):
    """404: no network or sandbox with that id or name (or no such endpoint)."""


class Conflict(ShoalError):
    """409: a name is taken, a network still has members, a sandbox is not running, ..."""


class ServerError(ShoalError):
    """5xx: the server or its node could not do it; the message quotes what failed."""


class Unavailable(ServerError):
    """503: the server is temporarily unavailable (raised after the retries are used up)."""


class ConfigError(ShoalError):
    """No API key could be found, or the client config file is unreadable."""

    def __init__(self, message: str) -> None:
        super().__init__(None, "config", message)


class TransportError(ShoalError):
    """No answer from the server: it could not be reached or took too long."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(None, code, message)


class ConnectError(TransportError):
    """The server could not be reached (is ``shoal up`` running? is the URL right?)."""

    def __init__(self, message: str) -> None:
        super().__init__("connect", message)


class Timeout(TransportError):
    """The server did not answer within the client's timeout."""

    def __init__(self, message: str) -> None:
        super().__init__("timeout", message)


class CommandError(ShoalError):
    """Raised by ``Sandbox.run(..., check=True)`` when the command exits non-zero or times out."""

    def __init__(self, result: CommandResult, argv: list[str]) -> None:
        how = "timed out" if result.timed_out else f"exited with {result.exit_code}"
        tail = result.stderr.strip()[-500:]
        message = f"command {argv!r} {how}" + (f": {tail}" if tail else "")
        super().__init__(None, "command_failed", message)
        self.result = result
        self.argv = argv


_BY_STATUS: dict[int, type[ShoalError]] = {
    400: InvalidArgument,
    401: Unauthorized,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    415: InvalidArgument,
    422: InvalidArgument,
    503: Unavailable,
}

_BY_CODE: dict[str, type[ShoalError]] = {
    "invalid_argument": InvalidArgument,
    "unauthorized": Unauthorized,
    "permission_denied": PermissionDenied,
    "not_found": NotFound,
    "conflict": Conflict,
    "unavailable": Unavailable,
}


def error_from_response(resp: httpx.Response) -> ShoalError:
    """Turns an error answer (``{"error": {"code", "message"}}``) into the matching exception."""
    status = resp.status_code
    code = "unknown"
    message = ""
    try:
        body = resp.json()
        detail = body["error"]
        code = str(detail["code"])
        message = str(detail["message"])
    except Exception:  # not the API's error shape (e.g. 405 with an empty body, a proxy's page)
        text = resp.text.strip()
        message = f"HTTP {status} {resp.reason_phrase}" + (f": {text[:500]}" if text else "")
    cls = _BY_STATUS.get(status) or _BY_CODE.get(code)
    if cls is None:
        cls = ServerError if status >= 500 else ShoalError
    return cls(status, code, message)
