"""The exception tree of aiorefresh.

Every message names the parameter or operation at fault and what was expected, and never
contains a secret (secret key, session token, MFA code).
"""

from __future__ import annotations

__all__ = [
    "AiorefreshError",
    "ConfigurationError",
    "CredentialRefreshError",
    "EventLoopMismatchError",
    "IoTCredentialError",
    "MFAError",
    "NonRecoverableCredentialError",
    "PoolError",
    "SessionClosedError",
    "ValidationError",
]


class AiorefreshError(Exception):
    """Base class of every error aiorefresh raises on purpose."""


class ValidationError(AiorefreshError, TypeError):
    """An option has the wrong type, or a required option is missing."""


class ConfigurationError(AiorefreshError, ValueError):
    """Options are inconsistent with each other, out of range, or need a missing extra."""


class CredentialRefreshError(AiorefreshError):
    """Fetching credentials failed; the underlying error is chained as ``__cause__``.

    ``code`` and ``request_id`` carry the AWS error code and request id when a service
    answered with one.
    """

    def __init__(
        self, message: str, *, code: str | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id


class NonRecoverableCredentialError(CredentialRefreshError):
    """A refresh failed in a way that retrying cannot fix (access denied, rejected MFA code)."""


class MFAError(CredentialRefreshError):
    """The MFA token provider failed or returned something that is not one 6-digit code."""


class IoTCredentialError(CredentialRefreshError):
    """The AWS IoT credentials provider refused or failed; ``status_code`` is the HTTP status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code, request_id=request_id)
        self.status_code = status_code


class PoolError(AiorefreshError):
    """The client pool cannot serve a lease."""


class SessionClosedError(PoolError):
    """The session (or its pool) was closed with ``aclose()`` and cannot be used any more."""


class EventLoopMismatchError(AiorefreshError, RuntimeError):
    """An object that belongs to one event loop was used on another."""
