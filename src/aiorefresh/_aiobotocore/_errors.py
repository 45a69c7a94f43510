"""How a failed botocore credentials call is reported: the classification table."""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
)
from botocore.parsers import ResponseParserError

from .._util import short
from ..errors import (
    CredentialRefreshError,
    NoCredentialsFound,
    NonRecoverableCredentialError,
    NonRecoverableMFAError,
)

__all__ = ["client_error_code", "CLASSIFICATION", "NON_RECOVERABLE_CODES", "classify"]

NON_RECOVERABLE_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ValidationError",
        "MalformedPolicyDocument",
        "PackedPolicyTooLarge",
        "RegionDisabledException",
        "InvalidIdentityToken",
        "IDPRejectedClaim",
    }
)
"""AWS error codes that retrying cannot fix."""

CLASSIFICATION: tuple[tuple[type[BaseException], type[CredentialRefreshError], str], ...] = (
    (ParamValidationError, NonRecoverableCredentialError, "botocore refused the parameters"),
    (ResponseParserError, NonRecoverableCredentialError, "the answer is not a service document"),
    (NoRegionError, NonRecoverableCredentialError, "no region is configured"),
    (NoCredentialsError, NoCredentialsFound, "no credentials to sign the call with"),
    (BotoCoreError, CredentialRefreshError, ""),
)
"""How a botocore failure of a credentials call is reported, first match wins. ``ClientError``
answers go by ``NON_RECOVERABLE_CODES`` (an AccessDenied about MFA is a
`NonRecoverableMFAError`); any other exception raised inside botocore's response parsers
(an HTML page answered with 200) is non-recoverable like ``ResponseParserError``; everything
else is transient. Only the last row quotes botocore's
message (connection errors): the others could quote a parameter value or an answer body."""


def classify(exc: BaseException, what: str) -> CredentialRefreshError:
    """The aiorefresh error for a failed credentials call ``what`` (e.g. ``STS AssumeRole``),
    with ``exc`` chained; the message never quotes an answer body."""
    if isinstance(exc, CredentialRefreshError):
        return exc  # a source engine's own failure: already classified
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        message = str(error.get("Message") or "")
        request_id = exc.response.get("ResponseMetadata", {}).get("RequestId")
        text = f"{what} failed: {code}: {message}" + (
            f" (request id {request_id})" if request_id else ""
        )
        cls: type[CredentialRefreshError] = CredentialRefreshError
        if code == "AccessDenied" and ("MultiFactorAuthentication" in message or "MFA" in message):
            cls = NonRecoverableMFAError
        elif code in NON_RECOVERABLE_CODES:
            cls = NonRecoverableCredentialError
        err = cls(text, code=code, request_id=request_id)
    elif _raised_by_parser(exc):  # e.g. a KeyError parsing an HTML page answered with 200
        err = NonRecoverableCredentialError(
            f"{what} failed: the answer is not a service document ({type(exc).__name__})"
        )
    else:
        for exc_type, cls, meaning in CLASSIFICATION:
            if isinstance(exc, exc_type):
                detail = f"{meaning} ({type(exc).__name__})" if meaning else _describe(exc)
                err = cls(f"{what} failed: {detail}")
                break
        else:
            err = CredentialRefreshError(f"{what} failed: {type(exc).__name__}")
    err.__cause__ = exc
    return err


def _raised_by_parser(exc: BaseException) -> bool:
    """Whether ``exc`` came out of botocore's response parsers (not a botocore error type)."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__") in ("botocore.parsers", "aiobotocore.parsers"):
            return True
        tb = tb.tb_next
    return False


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {short(exc)}"


def client_error_code(exc: BaseException) -> str | None:
    """The AWS error code of a service's error answer (``ClientError``), else ``None``."""
    if not isinstance(exc, ClientError):
        return None
    code = exc.response.get("Error", {}).get("Code")
    return code if isinstance(code, str) else "Unknown"
