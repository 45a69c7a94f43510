"""STS fetchers: AssumeRole (with MFA), GetSessionToken (with MFA), AssumeRoleWithWebIdentity.

A fetcher's *source* is a refresh engine (the default chain, explicit keys, or a parent
session's engine when roles are chained): its private STS client, one per event loop, signs
with that engine's credentials and is reused for every refresh. That client is never the one a
user gets from ``session.client("sts")``. Options are checked by `._sts_options` first.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import warnings
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from .. import _aiobotocore
from .._cache import (
    MIN_REMAINING,
    assume_role_cache_key,
    assumed_role_account,
    credentials_from_entry,
    entry_from_credentials,
)
from .._types import Clock, CredentialCache, TemporaryCredentials
from .._util import call_user, utc_now
from ..errors import (
    ConfigurationError,
    CredentialRefreshError,
    NonRecoverableCredentialError,
    NonRecoverableMFAError,
    ValidationError,
)
from ..mfa import MFATokenProvider, MFATokenProviderLike, make_mfa_provider
from ._sts_options import (
    CHAINED_MAX_DURATION,
    cap_chained_duration,
    validate_assume_role_kwargs,
    validate_session_token_kwargs,
    validate_sts_client_kwargs,
    validate_web_identity_kwargs,
)

if TYPE_CHECKING:
    from .._engine import RefreshEngine

__all__ = [
    "CHAINED_MAX_DURATION",
    "AssumeRoleFetcher",
    "SessionTokenFetcher",
    "WebIdentityFetcher",
    "cap_chained_duration",
    "shared_mfa_provider",
    "validate_assume_role_kwargs",
    "validate_session_token_kwargs",
    "validate_sts_client_kwargs",
    "validate_web_identity_kwargs",
]

logger = logging.getLogger("aiorefresh")


class _STSFetcher:
    """Shared plumbing: the private per-loop STS client and the error mapping."""

    action = ""
    method = "sts"

    def __init__(
        self,
        *,
        source: RefreshEngine | None,
        client_kwargs: Mapping[str, Any] | None,
        profile_name: str | None = None,
        unsigned: bool = False,
    ) -> None:
        self.client_kwargs = validate_sts_client_kwargs(client_kwargs)
        """The private STS client's options, as given (children of a chain inherit them)."""
        kwargs = dict(self.client_kwargs)
        if unsigned:
            kwargs["config"] = _aiobotocore.unsigned_config(kwargs.get("config"))
        self.source = source
        """The engine whose credentials sign the STS calls (``None``: unsigned or own keys)."""
        self._profile_name = profile_name

        def session_factory() -> Any:
            if source is None:
                return _aiobotocore.new_session(profile_name=profile_name)
            return _aiobotocore.engine_session(source, profile_name=profile_name)

        self._client = _aiobotocore.PrivateClient("sts", session_factory, kwargs)

    async def _call(self, **params: Any) -> TemporaryCredentials:
        client = await self._client.get()
        what = f"STS {self.action}"
        try:
            answer = await getattr(client, _snake(self.action))(**params)
        except Exception as exc:
            error = _aiobotocore.classify(exc, what)
            if error is exc:
                raise
            raise error from exc
        creds = answer.get("Credentials")
        if not isinstance(creds, Mapping):
            raise NonRecoverableCredentialError(f"{what} answered without Credentials")
        account = assumed_role_account(answer)
        mapping = dict(creds)
        if account is not None:
            mapping["AccountId"] = account
        try:
            return TemporaryCredentials.from_mapping(mapping, source=what)
        except CredentialRefreshError as exc:
            raise NonRecoverableCredentialError(str(exc)) from exc

    async def aclose(self) -> None:
        """Close this loop's private STS client (other loops close theirs, or at shutdown)."""
        await self._client.aclose()


def _snake(action: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()


def shared_mfa_provider(
    params: Mapping[str, Any],
    provider: MFATokenProviderLike | None,
    provider_kwargs: Mapping[str, Any] | None,
    *,
    clock: Clock | None,
    parameter: str = "assume_role_kwargs",
) -> MFATokenProvider | None:
    """The `MFATokenProvider` for ``provider`` (None without one), checked against the STS
    ``params`` (named ``parameter`` in messages), which must name the MFA device.

    Whoever hands one provider to several fetchers (a fleet's children, the links of a role
    chain) makes it once, here, and passes the result: a provider made earlier is returned
    unchanged, so its calls take turns and its reuse guard sees every code (STS refuses a
    TOTP code sent twice).
    """
    if provider is None:
        if provider_kwargs is not None:
            raise ConfigurationError("mfa_token_provider_kwargs needs mfa_token_provider")
        return None
    if params.get("SerialNumber") is None:
        raise ConfigurationError(
            f"mfa_token_provider needs {parameter}['SerialNumber'] (the MFA device ARN)"
        )
    return make_mfa_provider(provider, provider_kwargs, clock=clock)


class _MFA:
    """Where the TokenCode of each call comes from: a provider, or a static code used once."""

    def __init__(
        self,
        params: dict[str, Any],
        provider: Any,
        provider_kwargs: Mapping[str, Any] | None,
        *,
        clock: Clock | None,
        parameter: str,
    ) -> None:
        self._static: str | None = params.pop("TokenCode", None)
        self._serial: str | None = params.get("SerialNumber")
        self._provider = shared_mfa_provider(
            params, provider, provider_kwargs, clock=clock, parameter=parameter
        )
        if self._provider is not None and self._static is not None:
            warnings.warn(
                f"{parameter}['TokenCode'] is ignored: mfa_token_provider supplies a "
                "fresh code on every refresh",
                UserWarning,
                stacklevel=5,
            )
            self._static = None
        self._used_static = False
        self.required_message: str | None = None
        """What to say when a code is needed and there is none (instead of the generic hint)."""

    async def code(self) -> str | None:
        if self._serial is None:
            return None
        if self._provider is not None:
            return await self._provider()
        if self._static is not None and not self._used_static:
            self._used_static = True
            return self._static
        raise NonRecoverableMFAError(
            self.required_message
            or "this refresh needs a new MFA code: a static TokenCode serves the first call "
            "only; pass mfa_token_provider to refresh MFA-protected credentials"
        )


class _MFAFetcher(_STSFetcher):
    """An STS call whose parameters may need a fresh MFA code on every call."""

    parameter = ""

    def __init__(
        self,
        params: Mapping[str, Any],
        *,
        source: RefreshEngine | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        mfa_token_provider: MFATokenProviderLike | None = None,
        mfa_token_provider_kwargs: Mapping[str, Any] | None = None,
        clock: Clock | None = None,
        profile_name: str | None = None,
    ) -> None:
        self.params = self._validate(params)
        self._mfa = _MFA(
            self.params,
            mfa_token_provider,
            mfa_token_provider_kwargs,
            clock=clock,
            parameter=self.parameter,
        )
        super().__init__(source=source, client_kwargs=client_kwargs, profile_name=profile_name)

    def _validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params.get('RoleArn', '')!r})"

    async def __call__(self) -> TemporaryCredentials:
        params = dict(self.params)
        code = await self._mfa.code()
        if code is not None:
            params["TokenCode"] = code
        return await self._call(**params)


class AssumeRoleFetcher(_MFAFetcher):
    """STS AssumeRole, asking the MFA provider for a code on every call when MFA is required.

    ``source`` is the engine whose credentials call STS (a parent session's, for chaining).
    With ``credential_cache``, the entry under the AWS CLI's key for these parameters
    (``cache_key``) is tried before STS is called and before an MFA code is asked for, and
    every answer is stored there. An entry is used only while it has a minute or more left
    and is newer than what this fetcher handed out last: a second process, or the AWS CLI,
    reuses credentials one of them got with an MFA code, while ``refresh()`` and an
    ExpiredToken answer still make a new AssumeRole. ``mfa_required_message`` replaces the
    error text for "an MFA code is needed and there is no provider".
    """

    action = "AssumeRole"
    parameter = "assume_role_kwargs"

    def __init__(
        self,
        params: Mapping[str, Any],
        *,
        source: RefreshEngine | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        mfa_token_provider: MFATokenProviderLike | None = None,
        mfa_token_provider_kwargs: Mapping[str, Any] | None = None,
        clock: Clock | None = None,
        profile_name: str | None = None,
        credential_cache: CredentialCache | None = None,
        mfa_required_message: str | None = None,
    ) -> None:
        named = isinstance(params, Mapping) and params.get("RoleSessionName") is not None
        super().__init__(
            params,
            source=source,
            client_kwargs=client_kwargs,
            mfa_token_provider=mfa_token_provider,
            mfa_token_provider_kwargs=mfa_token_provider_kwargs,
            clock=clock,
            profile_name=profile_name,
        )
        self.cache_key = assume_role_cache_key(self.params, generated_name=not named)
        """The AWS CLI's cache key for these parameters (a generated session name left out)."""
        self.credential_cache = credential_cache
        """Where answers are kept and looked up first (``None``: nowhere)."""
        self._mfa.required_message = mfa_required_message
        self._clock: Clock = clock or utc_now
        self._handed_out: collections.deque[str] = collections.deque(maxlen=8)
        self._newest: datetime | None = None

    def _validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return validate_assume_role_kwargs(params)

    async def __call__(self) -> TemporaryCredentials:
        cached = await self._from_cache()
        if cached is not None:
            return cached
        creds = await super().__call__()
        self._hand_out(creds)
        await self._store(creds)
        return creds

    def _hand_out(self, creds: TemporaryCredentials) -> None:
        self._handed_out.append(creds.access_key)
        if self._newest is None or creds.expiry_time > self._newest:
            self._newest = creds.expiry_time

    async def _from_cache(self) -> TemporaryCredentials | None:
        cache = self.credential_cache
        if cache is None:
            return None
        try:
            entry = await cache.get(self.cache_key)
        except Exception as exc:
            logger.warning("%r: reading the credential cache failed (%s)", self, _reason(exc))
            return None
        if entry is None:
            return None
        creds = credentials_from_entry(entry, key=self.cache_key)
        if creds is None:
            return None
        if creds.expiry_time - self._clock() < MIN_REMAINING:
            logger.debug("%r: the cached credentials are too close to expiry", self)
            return None
        if creds.access_key in self._handed_out or (
            self._newest is not None and creds.expiry_time <= self._newest
        ):
            return None  # what we handed out already: a refresh wants new credentials
        self._hand_out(creds)
        logger.debug("%r: credentials from cache entry %s", self, self.cache_key)
        return creds

    async def _store(self, creds: TemporaryCredentials) -> None:
        cache = self.credential_cache
        if cache is None:
            return
        try:
            await cache.set(self.cache_key, entry_from_credentials(creds))
        except Exception as exc:
            logger.warning(
                "%r: storing credentials in the credential cache failed (%s)", self, _reason(exc)
            )


def _reason(exc: BaseException) -> str:
    """A cache failure in words that cannot hold cached content: the type, an OS reason."""
    strerror = getattr(exc, "strerror", None)
    return f"{type(exc).__name__}: {strerror}" if isinstance(strerror, str) else type(exc).__name__


class SessionTokenFetcher(_MFAFetcher):
    """STS GetSessionToken for IAM users, with the same MFA provider as AssumeRole."""

    action = "GetSessionToken"
    method = "session_token"
    parameter = "session_token_kwargs"

    def _validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return validate_session_token_kwargs(params)


TokenSource = Callable[[], Any]
"""A sync or async callable returning the web identity token (``str`` or ``bytes``)."""


class WebIdentityFetcher(_STSFetcher):
    """STS AssumeRoleWithWebIdentity, unsigned (EKS IRSA style); the token file is re-read
    on every refresh (asynchronously), or the token comes from an async or sync callable."""

    action = "AssumeRoleWithWebIdentity"
    method = "web_identity"

    def __init__(
        self,
        params: Mapping[str, Any],
        token: str | os.PathLike[str] | TokenSource | None = None,
        *,
        client_kwargs: Mapping[str, Any] | None = None,
        profile_name: str | None = None,
    ) -> None:
        self.params = validate_web_identity_kwargs(params)
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
        super().__init__(
            source=None, client_kwargs=client_kwargs, profile_name=profile_name, unsigned=True
        )

    def __repr__(self) -> str:
        return f"WebIdentityFetcher({self.params['RoleArn']!r})"

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
            text = await call_user(self._token_func)
        if isinstance(text, bytes):
            text = text.decode()
        if not isinstance(text, str) or not text.strip():
            raise CredentialRefreshError("web identity token is empty or not a str")
        return text.strip()

    async def __call__(self) -> TemporaryCredentials:
        token = await self._token()
        return await self._call(WebIdentityToken=token, **self.params)
