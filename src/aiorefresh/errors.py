"""The exception tree of aiorefresh.

```
AiorefreshError
├── ValidationError (also TypeError)          wrong type, missing required option, unknown key
├── ConfigurationError (also ValueError)      inconsistent options, missing extra, no event loop
├── CredentialRefreshError (also botocore CredentialRetrievalError)   a refresh failed
│   ├── NoCredentialsFound (also botocore NoCredentialsError)
│   ├── NonRecoverableCredentialError
│   │   ├── NonRecoverableMFAError (also MFAError)
│   │   └── NonRecoverableIoTError (also IoTCredentialError)
│   ├── MFAError
│   └── IoTCredentialError                    .status_code
├── PoolError
└── SessionClosedError
```

Code written for botocore keeps working: a refresh failure is also a
``botocore.exceptions.CredentialRetrievalError`` (and so a ``BotoCoreError``), and "no
credentials anywhere" is also a ``NoCredentialsError``. Every message names the parameter or
operation at fault and what was expected, and never contains a secret (secret key, session
token, MFA code) nor any part of an answer body that could hold one.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import CredentialRetrievalError, NoCredentialsError

__all__ = [
    "AiorefreshError",
    "ConfigurationError",
    "CredentialRefreshError",
    "IoTCredentialError",
    "MFAError",
    "NoCredentialsFound",
    "NonRecoverableCredentialError",
    "NonRecoverableIoTError",
    "NonRecoverableMFAError",
    "PoolError",
    "SessionClosedError",
    "ValidationError",
]


class AiorefreshError(Exception):
    """Base class of every error aiorefresh raises on purpose."""


class ValidationError(AiorefreshError, TypeError):
    """An option has the wrong type, a required option is missing, or a key is unknown."""


class ConfigurationError(AiorefreshError, ValueError):
    """Options are inconsistent or out of range, an extra is missing, or there is no loop."""


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class CredentialRefreshError(AiorefreshError, CredentialRetrievalError):  # type: ignore[misc]
    """Fetching credentials failed; the underlying error is chained as ``__cause__``.

    Also a botocore ``CredentialRetrievalError``. ``code`` and ``request_id`` carry the AWS
    error code and request id when a service answered with one.
    """

    def __init__(
        self, message: str, *, code: str | None = None, request_id: str | None = None
    ) -> None:
        Exception.__init__(self, message)
        self.code = code
        self.request_id = request_id
        # what botocore's BotoCoreError keeps; its fmt names provider and error_msg
        self.kwargs = {"provider": "aiorefresh", "error_msg": message}

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class NoCredentialsFound(CredentialRefreshError, NoCredentialsError):  # type: ignore[misc]
    """No credentials anywhere (the default chain found none); also botocore's
    ``NoCredentialsError``."""


class NonRecoverableCredentialError(CredentialRefreshError):
    """A refresh failed in a way that retrying cannot fix (access denied, malformed answer)."""


class MFAError(CredentialRefreshError):
    """The MFA token provider failed or returned something that is not one 6-digit code."""


class NonRecoverableMFAError(MFAError, NonRecoverableCredentialError):
    """An MFA failure that retrying cannot fix (a code AWS rejected, no provider to ask)."""


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


class NonRecoverableIoTError(IoTCredentialError, NonRecoverableCredentialError):
    """The credentials provider refused in a way that retrying cannot fix (401/403, bad answer)."""


class PoolError(AiorefreshError):
    """The client pool cannot serve a lease."""


class SessionClosedError(AiorefreshError):
    """The session (or its pool) was closed with ``aclose()`` on this loop and cannot be used."""
