"""Errors a client can see: one enum of codes, one table of HTTP statuses.

Both roles use ``ErrorCode``: the coordinator puts one in each failed reply,
and the front end raises the ``PackratError`` it maps to, so a coordinator
failure reaches the client with its own code and status, never as a bare
500.  One ``write_error`` in the front end renders every error as
``{"success": false, "error": code, "message": sentence}``; ``log_message``
stays in the server log.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    INVALID_KEY = "invalid_key"
    MALFORMED_MULTIPART = "malformed_multipart"
    MISSING_FIELD = "missing_field"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    INVALID_ACTION_RESULT = "invalid_action_result"  # an ac/ entry Bazel could not use
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    CROSS_SITE = "cross_site"  # a write a browser sent for another site's page
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    ALREADY_STORED = "already_stored"  # an upload that may not replace what is stored (Nx)
    TOO_LARGE = "too_large"
    RANGE_NOT_SATISFIABLE = "range_not_satisfiable"
    INTERNAL_ERROR = "internal_error"
    IO_ERROR = "io_error"  # the coordinator's file operation failed
    INVALID_MESSAGE = "invalid_message"  # a front end sent the coordinator nonsense
    COORDINATOR_UNAVAILABLE = "coordinator_unavailable"
    STALE = "stale"  # the request expired before the coordinator ran it
    STAGING_MISSING = "staging_missing"  # the staged upload vanished before its commit
    OUTCOME_UNKNOWN = "outcome_unknown"  # the coordinator claimed an upload, then fell silent
    TOO_BUSY = "too_busy"
    INSUFFICIENT_STORAGE = "insufficient_storage"
    OBJECTSTORE_UNAVAILABLE = "objectstore_unavailable"  # a DELETE could not reach the store


STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.INVALID_KEY: 400,
    ErrorCode.MALFORMED_MULTIPART: 400,
    ErrorCode.MISSING_FIELD: 400,
    ErrorCode.CHECKSUM_MISMATCH: 400,
    ErrorCode.INVALID_ACTION_RESULT: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.CROSS_SITE: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.ALREADY_STORED: 409,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.RANGE_NOT_SATISFIABLE: 416,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.IO_ERROR: 500,
    ErrorCode.INVALID_MESSAGE: 500,
    ErrorCode.COORDINATOR_UNAVAILABLE: 503,
    ErrorCode.STALE: 503,
    ErrorCode.STAGING_MISSING: 503,
    ErrorCode.OUTCOME_UNKNOWN: 503,
    ErrorCode.TOO_BUSY: 503,
    ErrorCode.INSUFFICIENT_STORAGE: 507,
    ErrorCode.OBJECTSTORE_UNAVAILABLE: 503,
}
RETRY_AFTER_SECONDS = 1  # sent with every 503: each of them is worth retrying soon


class PackratError(Exception):
    """An error with its ``code`` (hence its status) and the sentence shown to clients."""

    code = ErrorCode.INTERNAL_ERROR

    def __init__(
        self, message: str, log_message: str | None = None, code: ErrorCode | None = None
    ) -> None:
        super().__init__(log_message or message)
        if code is not None:
            self.code = code
        self.message = message
        self.log_message = log_message or message
        self.headers: dict[str, str] = {}
        if self.status == 503:
            self.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)

    @property
    def status(self) -> int:
        return STATUS[self.code]


class BadRequest(PackratError):
    code = ErrorCode.BAD_REQUEST


class MalformedMultipart(PackratError):
    code = ErrorCode.MALFORMED_MULTIPART


class MissingField(PackratError):
    code = ErrorCode.MISSING_FIELD


class ChecksumMismatch(PackratError):
    code = ErrorCode.CHECKSUM_MISMATCH


class InvalidActionResult(PackratError):
    """An ``ac/`` upload that is no ActionResult, or names blobs that are not stored."""

    code = ErrorCode.INVALID_ACTION_RESULT


class Unauthorized(PackratError):
    """No credentials, or credentials that match nobody: 401 with a challenge."""

    code = ErrorCode.UNAUTHORIZED

    def __init__(self, message: str, challenges: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.challenges = challenges  # one WWW-Authenticate header each


class Forbidden(PackratError):
    """Valid credentials without the right the request needs."""

    code = ErrorCode.FORBIDDEN


class CrossSiteRequest(PackratError):
    """A state-changing request a browser sent for another site's page (``crosssite``)."""

    code = ErrorCode.CROSS_SITE


class NotFound(PackratError):
    code = ErrorCode.NOT_FOUND


class AlreadyStored(PackratError):
    """An upload to a key whose object may not be replaced (Nx's records); nothing stored."""

    code = ErrorCode.ALREADY_STORED


class RangeNotSatisfiable(PackratError):
    """A ``Range`` that starts past the end of the object."""

    code = ErrorCode.RANGE_NOT_SATISFIABLE

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.headers["Content-Range"] = f"bytes */{size}"


class TooLarge(PackratError):
    """Larger than ``max_file_size``, or than the whole cache."""

    code = ErrorCode.TOO_LARGE


class CoordinatorUnavailable(PackratError):
    code = ErrorCode.COORDINATOR_UNAVAILABLE


class OutcomeUnknown(PackratError):
    """A commit the coordinator took but did not confirm in time: stored or not, unknown."""

    code = ErrorCode.OUTCOME_UNKNOWN


class TooBusy(PackratError):
    """This front end already receives ``max_uploads`` uploads."""

    code = ErrorCode.TOO_BUSY


class InsufficientStorage(PackratError):
    code = ErrorCode.INSUFFICIENT_STORAGE


class ObjectStoreUnavailable(PackratError):
    """A ``DELETE`` could not be applied to the object store; nothing was deleted."""

    code = ErrorCode.OBJECTSTORE_UNAVAILABLE
