"""Errors a client can see: each carries its HTTP status and a short code.

Handlers raise these; one ``write_error`` renders them as
``{"success": false, "error": code, "message": sentence}``.  ``log_message``
stays in the server log, like Tornado's ``HTTPError``.
"""

from __future__ import annotations

from tornado.web import HTTPError


class PackratError(HTTPError):
    """Base class: ``status``, ``code`` and the sentence shown to the client.

    A Tornado ``HTTPError``, so Tornado logs it as a client error (not a
    500 with a traceback) and hands it to the one ``write_error``.
    """

    status = 500
    code = "internal_error"

    def __init__(self, message: str, log_message: str | None = None) -> None:
        super().__init__(self.status, (log_message or message).replace("%", "%%"))
        self.message = message
        self.headers: dict[str, str] = {}


class BadRequest(PackratError):
    status = 400
    code = "bad_request"


class InvalidKeyError(BadRequest):
    code = "invalid_key"


class MalformedMultipart(BadRequest):
    code = "malformed_multipart"


class MissingField(BadRequest):
    code = "missing_field"


class ChecksumMismatch(BadRequest):
    code = "checksum_mismatch"


class Unauthorized(PackratError):
    """No credentials, or credentials that match nobody: 401 with a challenge."""

    status = 401
    code = "unauthorized"

    def __init__(self, message: str, challenges: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.challenges = challenges  # one WWW-Authenticate header each


class Forbidden(PackratError):
    """Valid credentials without the right the request needs."""

    status = 403
    code = "forbidden"


class NotFound(PackratError):
    status = 404
    code = "not_found"


class RangeNotSatisfiable(PackratError):
    """A ``Range`` that starts past the end of the object."""

    status = 416
    code = "range_not_satisfiable"

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.headers["Content-Range"] = f"bytes */{size}"


class TooLarge(PackratError):
    """Larger than ``max_file_size``, or than the whole cache."""

    status = 413
    code = "too_large"


class CoordinatorUnavailable(PackratError):
    status = 503
    code = "coordinator_unavailable"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.headers["Retry-After"] = str(retry_after)


class TooBusy(PackratError):
    """This front end already runs ``max_uploads`` uploads."""

    status = 503
    code = "too_busy"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.headers["Retry-After"] = str(retry_after)


class InsufficientStorage(PackratError):
    status = 507
    code = "insufficient_storage"


# Coordinator error codes (protocol replies) -> what the client sees.
COORDINATOR_ERRORS: dict[str, type[PackratError]] = {
    "too_large": TooLarge,
    "not_found": NotFound,
    "stale": CoordinatorUnavailable,
    "insufficient_storage": InsufficientStorage,
}
