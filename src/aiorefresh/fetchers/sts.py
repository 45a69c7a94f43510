"""STS fetchers: AssumeRole (with MFA), GetSessionToken (with MFA), AssumeRoleWithWebIdentity.

Each keeps one private STS client per event loop, created from a *source* aiobotocore session
(the default chain, explicit keys, or a parent session when roles are chained) and reused for
every refresh. That client is never the one a user gets from ``session.client("sts")``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import re
import secrets
import threading
import warnings
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from aiobotocore.session import AioSession
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from .._types import TemporaryCredentials
from ..errors import (
    ConfigurationError,
    CredentialRefreshError,
    NonRecoverableCredentialError,
    NonRecoverableMFAError,
    ValidationError,
)
from ..mfa import (
    DEFAULT_COMMAND_TIMEOUT,
    MAX_REUSE_WAIT,
    MFATokenProvider,
    make_mfa_provider,
    validate_token_code,
)
from .custom import is_async_callable

__all__ = [
    "CHAINED_MAX_DURATION",
    "AssumeRoleFetcher",
    "SessionTokenFetcher",
    "WebIdentityFetcher",
    "cap_chained_duration",
    "validate_assume_role_kwargs",
    "validate_session_token_kwargs",
    "validate_sts_client_kwargs",
    "validate_web_identity_kwargs",
]

logger = logging.getLogger("aiorefresh")

_ROLE_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
_NON_RECOVERABLE_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ValidationError",
        "MalformedPolicyDocument",
        "PackedPolicyTooLarge",
        "RegionDisabledException",
    }
)
CHAINED_MAX_DURATION = 3600

_ASSUME_ROLE_TYPES: dict[str, type | tuple[type, ...]] = {
    "RoleArn": str,
    "RoleSessionName": str,
    "PolicyArns": list,
    "Policy": str,
    "DurationSeconds": int,
    "Tags": list,
    "TransitiveTagKeys": list,
    "ExternalId": str,
    "SerialNumber": str,
    "TokenCode": str,
    "SourceIdentity": str,
    "ProvidedContexts": list,
}
_SESSION_TOKEN_TYPES: dict[str, type | tuple[type, ...]] = {
    "DurationSeconds": int,
    "SerialNumber": str,
    "TokenCode": str,
}
_WEB_IDENTITY_TYPES: dict[str, type | tuple[type, ...]] = {
    "RoleArn": str,
    "RoleSessionName": str,
    "DurationSeconds": int,
    "Policy": str,
    "PolicyArns": list,
    "ProviderId": str,
}
_CLIENT_TYPES: dict[str, type | tuple[type, ...]] = {
    "region_name": str,
    "endpoint_url": str,
    "api_version": str,
    "use_ssl": bool,
    "verify": (bool, str),
    "config": object,
    "aws_access_key_id": str,
    "aws_secret_access_key": str,
    "aws_session_token": str,
    "aws_account_id": str,
}


def _check_mapping(
    value: object, parameter: str, types: Mapping[str, type | tuple[type, ...]]
) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(f"{parameter} must be a dict, got {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in types)
    if unknown:
        raise ConfigurationError(
            f"{parameter} has unknown key(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(types))}"
        )
    for key, item in value.items():
        expected = types[key]
        if item is None:
            continue
        bad_bool = isinstance(item, bool) and expected is int
        if bad_bool or not isinstance(item, expected):
            names = (
                expected.__name__
                if isinstance(expected, type)
                else " or ".join(t.__name__ for t in expected)
            )
            raise ValidationError(
                f"{parameter}[{key!r}] must be {names}, got {type(item).__name__}"
            )
    return {k: v for k, v in value.items() if v is not None}


def _check_role_arn(arn: object, parameter: str) -> str:
    if not isinstance(arn, str):
        raise ValidationError(f"{parameter}['RoleArn'] is required: an IAM role ARN")
    if not _ROLE_ARN.match(arn):
        raise ConfigurationError(
            f"{parameter}['RoleArn'] must look like arn:<partition>:iam::<12-digit account>:"
            f"role/<name>, got {arn!r}"
        )
    return arn


def _check_duration(params: dict[str, Any], parameter: str, low: int, high: int) -> None:
    duration = params.get("DurationSeconds")
    if duration is not None and not low <= duration <= high:
        raise ConfigurationError(
            f"{parameter}['DurationSeconds'] must be between {low} and {high}, got {duration}"
        )


def _check_session_name(params: dict[str, Any], parameter: str) -> None:
    name = params.get("RoleSessionName")
    if name is None:
        params["RoleSessionName"] = f"aiorefresh-{secrets.token_hex(4)}"
    elif not _SESSION_NAME.match(name):
        raise ConfigurationError(
            f"{parameter}['RoleSessionName'] must be 2-64 characters of letters, digits "
            f"and +=,.@_-, got {name!r}"
        )


def _check_list_of_dicts(params: dict[str, Any], key: str, parameter: str, keys: set[str]) -> None:
    items = params.get(key)
    if items is None:
        return
    for item in items:
        if not isinstance(item, Mapping) or not keys <= set(item):
            raise ValidationError(
                f"{parameter}[{key!r}] must be a list of dicts with keys {sorted(keys)}"
            )


def validate_assume_role_kwargs(
    value: object, *, parameter: str = "assume_role_kwargs"
) -> dict[str, Any]:
    """Check AssumeRole parameters before any network call; fills in ``RoleSessionName``."""
    params = _check_mapping(value, parameter, _ASSUME_ROLE_TYPES)
    _check_role_arn(params.get("RoleArn"), parameter)
    _check_session_name(params, parameter)
    _check_duration(params, parameter, 900, 43200)
    _check_list_of_dicts(params, "PolicyArns", parameter, {"arn"})
    _check_list_of_dicts(params, "Tags", parameter, {"Key", "Value"})
    if "TokenCode" in params:
        validate_token_code(params["TokenCode"], parameter=f"{parameter}['TokenCode']")
    return params


def validate_session_token_kwargs(
    value: object, *, parameter: str = "session_token_kwargs"
) -> dict[str, Any]:
    """Check GetSessionToken parameters before any network call."""
    params = _check_mapping(value if value is not None else {}, parameter, _SESSION_TOKEN_TYPES)
    _check_duration(params, parameter, 900, 129600)
    if "TokenCode" in params:
        validate_token_code(params["TokenCode"], parameter=f"{parameter}['TokenCode']")
    return params


def validate_web_identity_kwargs(
    value: object, *, parameter: str = "web_identity_kwargs"
) -> dict[str, Any]:
    """Check AssumeRoleWithWebIdentity parameters before any network call."""
    params = _check_mapping(value, parameter, _WEB_IDENTITY_TYPES)
    _check_role_arn(params.get("RoleArn"), parameter)
    _check_session_name(params, parameter)
    _check_duration(params, parameter, 900, 43200)
    _check_list_of_dicts(params, "PolicyArns", parameter, {"arn"})
    return params


def validate_sts_client_kwargs(
    value: object, *, parameter: str = "sts_client_kwargs"
) -> dict[str, Any]:
    """Check the private STS client's options (region, endpoint, config, explicit keys)."""
    if value is None:
        return {}
    params = _check_mapping(value, parameter, _CLIENT_TYPES)
    if ("aws_access_key_id" in params) != ("aws_secret_access_key" in params):
        raise ConfigurationError(
            f"{parameter}: aws_access_key_id and aws_secret_access_key must be given together"
        )
    return params


def _error_from_client_error(exc: ClientError, action: str) -> CredentialRefreshError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "Unknown")
    message = str(error.get("Message") or "")
    request_id = exc.response.get("ResponseMetadata", {}).get("RequestId")
    text = f"STS {action} failed: {code}: {message}" + (
        f" (request id {request_id})" if request_id else ""
    )
    if code == "AccessDenied" and ("MultiFactorAuthentication" in message or "MFA" in message):
        cls: type[CredentialRefreshError] = NonRecoverableMFAError
    elif code in _NON_RECOVERABLE_CODES:
        cls = NonRecoverableCredentialError
    else:
        cls = CredentialRefreshError
    err = cls(text, code=code, request_id=request_id)
    err.__cause__ = exc
    return err


class _STSFetcher:
    """Shared plumbing: the private per-loop STS client and the error mapping."""

    action = ""

    def __init__(
        self,
        *,
        source: Callable[[], AioSession],
        client_kwargs: Mapping[str, Any],
        unsigned: bool = False,
    ) -> None:
        self._source_factory = source
        self._client_kwargs = dict(client_kwargs)
        self._unsigned = unsigned
        self._lock = threading.Lock()
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    async def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(loop)
        if client is not None:
            return client
        kwargs = dict(self._client_kwargs)
        if self._unsigned:
            from botocore import UNSIGNED
            from botocore.config import Config

            unsigned = Config(signature_version=UNSIGNED)
            given = kwargs.get("config")
            kwargs["config"] = given.merge(unsigned) if given is not None else unsigned
        # A source session per loop: aiobotocore's credential locks belong to one loop.
        client = await self._source_factory().create_client("sts", **kwargs).__aenter__()
        with self._lock:
            for dead in [owner for owner in self._clients if owner.is_closed()]:
                del self._clients[dead]  # its client cannot be closed any more
            self._clients[loop] = client
        return client

    async def _call(self, **params: Any) -> TemporaryCredentials:
        client = await self._client()
        try:
            answer = await getattr(client, _snake(self.action))(**params)
        except ClientError as exc:
            raise _error_from_client_error(exc, self.action) from exc
        except ResponseParserError as exc:
            raise NonRecoverableCredentialError(
                f"STS {self.action} answered something that is not an STS document: "
                f"{type(exc).__name__}"
            ) from exc
        except BotoCoreError as exc:
            raise CredentialRefreshError(
                f"STS {self.action} failed: {type(exc).__name__}: {exc}"
            ) from exc
        creds = answer.get("Credentials")
        if not isinstance(creds, Mapping):
            raise NonRecoverableCredentialError(f"STS {self.action} answered without Credentials")
        account = None
        user = answer.get("AssumedRoleUser")
        if isinstance(user, Mapping) and isinstance(user.get("Arn"), str):
            parts = user["Arn"].split(":")
            account = parts[4] if len(parts) > 4 and parts[4] else None
        mapping = dict(creds)
        if account is not None:
            mapping["AccountId"] = account
        try:
            return TemporaryCredentials.from_mapping(mapping, source=f"STS {self.action}")
        except CredentialRefreshError as exc:
            raise NonRecoverableCredentialError(str(exc)) from exc

    async def aclose(self) -> None:
        """Close this loop's private STS client (each loop closes its own)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.pop(loop, None)
        if client is not None:
            await client.__aexit__(None, None, None)


def _snake(action: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()


class _MFA:
    """Where the TokenCode of each call comes from: a provider, or a static code used once."""

    def __init__(
        self,
        params: dict[str, Any],
        provider: Any,
        provider_kwargs: Mapping[str, Any] | None,
        *,
        clock: Callable[[], datetime] | None,
        parameter: str,
    ) -> None:
        self._static: str | None = params.pop("TokenCode", None)
        self._serial: str | None = params.get("SerialNumber")
        self._provider: MFATokenProvider | None = None
        if provider is not None:
            if self._serial is None:
                raise ConfigurationError(
                    f"mfa_token_provider needs {parameter}['SerialNumber'] (the MFA device ARN)"
                )
            if self._static is not None:
                warnings.warn(
                    f"{parameter}['TokenCode'] is ignored: mfa_token_provider supplies a "
                    "fresh code on every refresh",
                    UserWarning,
                    stacklevel=5,
                )
                self._static = None
            self._provider = make_mfa_provider(provider, provider_kwargs, clock=clock)
        elif provider_kwargs is not None:
            raise ConfigurationError("mfa_token_provider_kwargs needs mfa_token_provider")
        self._used_static = False

    async def code(self) -> str | None:
        if self._serial is None:
            return None
        if self._provider is not None:
            return await self._provider()
        if self._static is not None and not self._used_static:
            self._used_static = True
            return self._static
        raise NonRecoverableMFAError(
            "this refresh needs a new MFA code: a static TokenCode serves the first call only; "
            "pass mfa_token_provider to refresh MFA-protected credentials"
        )


class _MFAFetcher(_STSFetcher):
    """An STS call whose parameters may need a fresh MFA code on every call."""

    parameter = ""

    def __init__(
        self,
        params: Mapping[str, Any],
        *,
        source: Callable[[], AioSession],
        client_kwargs: Mapping[str, Any],
        mfa_token_provider: Any = None,
        mfa_token_provider_kwargs: Mapping[str, Any] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(source=source, client_kwargs=client_kwargs)
        self.params = dict(params)
        self._mfa = _MFA(
            self.params,
            mfa_token_provider,
            mfa_token_provider_kwargs,
            clock=clock,
            parameter=self.parameter,
        )
        self.mfa_budget = 0.0
        """Seconds an MFA provider may add to a refresh (its timeout and a TOTP step wait)."""
        if mfa_token_provider is not None:
            timeout = (mfa_token_provider_kwargs or {}).get("timeout", DEFAULT_COMMAND_TIMEOUT)
            # a reused code means: ask, wait for the next TOTP step, ask again
            self.mfa_budget = 2 * float(timeout) + MAX_REUSE_WAIT

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params.get('RoleArn', '')!r})"

    async def __call__(self) -> TemporaryCredentials:
        params = dict(self.params)
        code = await self._mfa.code()
        if code is not None:
            params["TokenCode"] = code
        return await self._call(**params)


class AssumeRoleFetcher(_MFAFetcher):
    """STS AssumeRole, asking the MFA provider for a code on every call when MFA is required."""

    action = "AssumeRole"
    parameter = "assume_role_kwargs"


class SessionTokenFetcher(_MFAFetcher):
    """STS GetSessionToken for IAM users, with the same MFA provider as AssumeRole."""

    action = "GetSessionToken"
    parameter = "session_token_kwargs"


TokenSource = Callable[[], Any]


class WebIdentityFetcher(_STSFetcher):
    """STS AssumeRoleWithWebIdentity, unsigned (EKS IRSA style); the token file is re-read
    on every refresh (asynchronously), or the token comes from an async or sync callable."""

    action = "AssumeRoleWithWebIdentity"

    def __init__(
        self,
        params: Mapping[str, Any],
        token: str | os.PathLike[str] | TokenSource | None,
        *,
        source: Callable[[], AioSession],
        client_kwargs: Mapping[str, Any],
    ) -> None:
        super().__init__(source=source, client_kwargs=client_kwargs, unsigned=True)
        self.params = dict(params)
        if token is None:
            env_file = os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE")
            if not env_file:
                raise ConfigurationError(
                    "web_identity_token is required (a token file path or a callable), or set "
                    "AWS_WEB_IDENTITY_TOKEN_FILE"
                )
            token = env_file
        if isinstance(token, (str, os.PathLike)):
            self._path: Path | None = Path(token).expanduser()
            self._token_func: TokenSource | None = None
        elif callable(token):
            self._path = None
            self._token_func = token
        else:
            raise ValidationError(
                "web_identity_token must be a file path (str or Path) or a callable returning "
                f"the token, got {type(token).__name__}"
            )

    async def _token(self) -> str:
        text: Any
        if self._path is not None:
            try:
                text = await anyio.Path(self._path).read_text()
            except OSError as exc:
                raise CredentialRefreshError(
                    f"cannot read web identity token file {str(self._path)!r}: "
                    f"{exc.strerror or type(exc).__name__}"
                ) from exc
        else:
            assert self._token_func is not None
            if is_async_callable(self._token_func):
                text = await self._token_func()
            else:
                text = await anyio.to_thread.run_sync(self._token_func, abandon_on_cancel=True)
                if inspect.isawaitable(text):
                    text = await text
        if isinstance(text, bytes):
            text = text.decode()
        if not isinstance(text, str) or not text.strip():
            raise CredentialRefreshError("web identity token is empty or not a str")
        return text.strip()

    async def __call__(self) -> TemporaryCredentials:
        token = await self._token()
        return await self._call(WebIdentityToken=token, **self.params)


def cap_chained_duration(params: dict[str, Any]) -> None:
    """AWS caps role-chained sessions at one hour: cap DurationSeconds and warn if it was more."""
    duration = params.get("DurationSeconds")
    if duration is not None and duration > CHAINED_MAX_DURATION:
        warnings.warn(
            f"DurationSeconds {duration} capped at {CHAINED_MAX_DURATION}: AWS limits "
            "role-chained sessions to one hour",
            UserWarning,
            stacklevel=3,
        )
        params["DurationSeconds"] = CHAINED_MAX_DURATION
