"""``RefreshableSession``: aioboto3.Session's calls over refreshing credentials and pooled clients.

Calling ``RefreshableSession(...)`` returns the subclass registered for the method (given or
inferred from the options), so ``isinstance(s, RefreshableSession)`` always holds. Third
parties register a method with ``class MySession(RefreshableSession, method="mine")``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import re
import threading
import weakref
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, ClassVar

from aiobotocore.session import AioSession

from . import _aiobotocore
from ._types import CredentialFetcher, Identity, TemporaryCredentials
from .credentials import Clock, RefreshEngine, RefreshEvent, RefreshStats, utc_now
from .errors import (
    ConfigurationError,
    SessionClosedError,
    ValidationError,
)
from .fetchers.chain import ChainFetcher
from .fetchers.custom import CustomFetcher
from .pool import ClientPool

__all__ = [
    "CustomRefreshableSession",
    "DefaultRefreshableSession",
    "IoTRefreshableSession",
    "RefreshableSession",
    "STSRefreshableSession",
    "SessionTokenRefreshableSession",
    "WebIdentityRefreshableSession",
]

logger = logging.getLogger("aiorefresh")

# Method options and their defaults: an option counts as given when it differs from its default.
_METHOD_OPTION_DEFAULTS: dict[str, Any] = {
    "custom_credentials_method": None,
    "custom_credentials_method_args": None,
    "assume_role_kwargs": None,
    "sts_client_kwargs": None,
    "session_token_kwargs": None,
    "web_identity_kwargs": None,
    "web_identity_token": None,
    "mfa_token_provider": None,
    "mfa_token_provider_kwargs": None,
    "endpoint": None,
    "role_alias": None,
    "certificate": None,
    "private_key": None,
    "private_key_password": None,
    "thing_name": None,
    "ca": None,
    "duration_seconds": None,
    "timeout": 10.0,
    "verify_peer": True,
    "discover_endpoint": False,
}

# Which given option implies which method, for method=None.
_INFERENCE: tuple[tuple[str, str], ...] = (
    ("custom_credentials_method", "custom"),
    ("assume_role_kwargs", "sts"),
    ("session_token_kwargs", "session_token"),
    ("web_identity_kwargs", "web_identity"),
    ("web_identity_token", "web_identity"),
    ("role_alias", "iot"),
    ("certificate", "iot"),
    ("private_key", "iot"),
    ("endpoint", "iot"),
    ("discover_endpoint", "iot"),
)

_DEFAULT_METHOD = "default"
_SIGNING_KEY = "aiorefresh_signing_key"
_CREDENTIAL_SCOPE = re.compile(r"Credential=([A-Z0-9]+)/")


def _remember_signing_key(request: Any = None, **kwargs: Any) -> None:
    """Note which access key signed a request, so an ExpiredToken answer can be matched."""
    if request is None:
        return
    header = request.headers.get("Authorization")
    if isinstance(header, bytes):
        header = header.decode("ascii", "replace")
    match = _CREDENTIAL_SCOPE.search(header or "")
    if match is not None and isinstance(getattr(request, "context", None), dict):
        request.context[_SIGNING_KEY] = match.group(1)


_EXPIRED_TOKEN_CODES = frozenset({"ExpiredToken", "ExpiredTokenException"})


def _is_given(name: str, value: Any) -> bool:
    default = _METHOD_OPTION_DEFAULTS[name]
    return value is not default and value != default


def _infer_method(options: Mapping[str, Any]) -> str:
    methods: dict[str, str] = {}
    for name, method in _INFERENCE:
        if name in options and _is_given(name, options[name]):
            methods.setdefault(method, name)
    if len(methods) > 1:
        clues = ", ".join(f"{opt} ({m})" for m, opt in methods.items())
        raise ConfigurationError(
            f"options of more than one method were given: {clues}; pass method= explicitly "
            "and only that method's options"
        )
    return next(iter(methods), _DEFAULT_METHOD)


def _check_number(
    name: str, value: object, *, allow_none: bool = True, positive: bool = False
) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        expected = "a number of seconds" + (" or None" if allow_none else "")
        raise ValidationError(f"{name} must be {expected}, got {type(value).__name__}")
    number = float(value)
    if math.isnan(number) or number < 0 or (positive and number == 0):
        raise ConfigurationError(
            f"{name} must be {'positive' if positive else 'non-negative'}, got {value!r}"
        )
    return number


def _check_optional_str(name: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"{name} must be a str or None, got {type(value).__name__}")
    return value


class _SessionClientFactory:
    """Creates and closes the pool's clients and resources from one aiobotocore session."""

    def __init__(self, session: RefreshableSession) -> None:
        self._session = weakref.proxy(session)

    async def create(self, kind: str, kwargs: dict[str, Any]) -> Any:
        if kind == "resource":
            ctx = self._session._aioboto3_session().resource(**kwargs)
        else:
            ctx = self._session._aiosession.create_client(**kwargs)
        return await ctx.__aenter__()

    async def close(self, kind: str, client: Any) -> None:
        await client.__aexit__(None, None, None)


class RefreshableSession:
    """A drop-in for ``aioboto3.Session`` whose credentials refresh themselves.

    Use it with ``async with`` (or call `aclose` yourself). Clients come from a pool:
    ``async with session.client("s3") as s3`` leases the one client of that configuration.
    """

    method: ClassVar[str] = ""
    """The credential method this class implements."""
    _registry: ClassVar[dict[str, type[RefreshableSession]]] = {}
    _accepted_options: ClassVar[frozenset[str]] = frozenset()
    _source_keys_allowed: ClassVar[bool] = False
    _parent: RefreshableSession | None = None

    def __init_subclass__(cls, method: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if method is not None:
            if not isinstance(method, str) or not method.isidentifier():
                raise ValidationError(
                    f"method must be an identifier-like str, got {method!r} for {cls.__name__}"
                )
            cls.method = method
            RefreshableSession._registry[method] = cls

    def __new__(cls, method: str | None = None, **kwargs: Any) -> RefreshableSession:
        if cls is RefreshableSession:
            if method is None:
                method = _infer_method(kwargs)
            target = RefreshableSession._registry.get(method) if isinstance(method, str) else None
            if target is None:
                allowed = ", ".join(repr(m) for m in sorted(RefreshableSession._registry))
                raise ValidationError(f"method must be one of {allowed} or None, got {method!r}")
            return super().__new__(target)
        if method is not None and method != cls.method:
            raise ValidationError(
                f"{cls.__name__} implements method {cls.method!r}, got method={method!r}"
            )
        return super().__new__(cls)

    def __init__(
        self,
        method: str | None = None,
        *,
        custom_credentials_method: Callable[..., Any] | None = None,
        custom_credentials_method_args: Mapping[str, Any] | None = None,
        assume_role_kwargs: Mapping[str, Any] | None = None,
        sts_client_kwargs: Mapping[str, Any] | None = None,
        session_token_kwargs: Mapping[str, Any] | None = None,
        web_identity_kwargs: Mapping[str, Any] | None = None,
        web_identity_token: Any = None,
        mfa_token_provider: Any = None,
        mfa_token_provider_kwargs: Mapping[str, Any] | None = None,
        endpoint: str | None = None,
        role_alias: str | None = None,
        certificate: Any = None,
        private_key: Any = None,
        private_key_password: str | bytes | None = None,
        thing_name: str | None = None,
        ca: Any = None,
        duration_seconds: int | None = None,
        timeout: float = 10.0,
        verify_peer: bool = True,
        discover_endpoint: bool = False,
        defer_refresh: bool = True,
        advisory_timeout: float | None = None,
        mandatory_timeout: float | None = None,
        refresh_jitter: float = 0.0,
        refresh_timeout: float | None = 30.0,
        retry_on_expired_token: bool = True,
        clock: Clock | None = None,
        on_refresh: Callable[[RefreshEvent], object] | None = None,
        credential_cache: Any = None,
        max_clients: int | None = None,
        eviction_policy: str = "LRU",
        idle_timeout: float | None = None,
        close_timeout: float = 10.0,
        default_client_kwargs: Mapping[str, Any] | None = None,
        region_name: str | None = None,
        profile_name: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        botocore_session: AioSession | None = None,
        aws_account_id: str | None = None,
        http_backend: str | None = None,
    ) -> None:
        """Validate every option (no I/O, no running loop needed) and wire the session.

        ``method`` picks how credentials are fetched (``"custom"``, ``"sts"``,
        ``"session_token"``, ``"web_identity"``, ``"iot"``, ``"default"``; ``None`` infers it
        from the options given). Only the chosen method's options are accepted. The refresh
        options (``advisory_timeout``, ``mandatory_timeout``, ``refresh_jitter``,
        ``refresh_timeout``, ``clock``, ``on_refresh``, ``defer_refresh``) and the pool options
        (``max_clients``, ``eviction_policy``, ``idle_timeout``, ``close_timeout``,
        ``default_client_kwargs``) apply to every method; the rest mirror ``aioboto3.Session``.
        See the documentation pages "Credential methods", "Refresh semantics" and "Client pool".
        """
        options: dict[str, Any] = {
            "custom_credentials_method": custom_credentials_method,
            "custom_credentials_method_args": custom_credentials_method_args,
            "assume_role_kwargs": assume_role_kwargs,
            "sts_client_kwargs": sts_client_kwargs,
            "session_token_kwargs": session_token_kwargs,
            "web_identity_kwargs": web_identity_kwargs,
            "web_identity_token": web_identity_token,
            "mfa_token_provider": mfa_token_provider,
            "mfa_token_provider_kwargs": mfa_token_provider_kwargs,
            "endpoint": endpoint,
            "role_alias": role_alias,
            "certificate": certificate,
            "private_key": private_key,
            "private_key_password": private_key_password,
            "thing_name": thing_name,
            "ca": ca,
            "duration_seconds": duration_seconds,
            "timeout": timeout,
            "verify_peer": verify_peer,
            "discover_endpoint": discover_endpoint,
        }
        given = {name for name, value in options.items() if _is_given(name, value)}
        foreign = sorted(given - self._accepted_options)
        if foreign:
            raise ConfigurationError(
                f"{', '.join(foreign)} {'is' if len(foreign) == 1 else 'are'} not an option of "
                f"method {self.method!r}"
            )
        for name in ("defer_refresh", "retry_on_expired_token"):
            if not isinstance(locals()[name], bool):
                raise ValidationError(f"{name} must be a bool, got {type(locals()[name]).__name__}")
        advisory = _check_number("advisory_timeout", advisory_timeout)
        mandatory = _check_number("mandatory_timeout", mandatory_timeout)
        if advisory is not None and mandatory is not None and mandatory > advisory:
            raise ConfigurationError(
                f"mandatory_timeout ({mandatory_timeout}) must not exceed advisory_timeout "
                f"({advisory_timeout})"
            )
        jitter = _check_number("refresh_jitter", refresh_jitter, allow_none=False)
        if jitter is not None and jitter >= 1:
            raise ConfigurationError(f"refresh_jitter must be a fraction in [0, 1), got {jitter}")
        refresh_limit = _check_number("refresh_timeout", refresh_timeout, positive=True)
        if clock is not None:
            now = clock() if callable(clock) else None
            if not isinstance(now, datetime) or now.utcoffset() is None:
                raise ValidationError(
                    "clock must be a callable returning a timezone-aware datetime, got "
                    f"{type(clock).__name__} returning {type(now).__name__}"
                    + (" (naive)" if isinstance(now, datetime) else "")
                )
        if on_refresh is not None and not callable(on_refresh):
            raise ValidationError(f"on_refresh must be callable, got {type(on_refresh).__name__}")
        if credential_cache is not None:
            raise ConfigurationError(
                "credential_cache is not supported yet (it arrives with the AWS CLI cache); "
                "pass None"
            )
        if http_backend not in (None, "aiohttp"):
            raise ConfigurationError(
                f"http_backend must be None or 'aiohttp' in this release, got {http_backend!r}"
            )
        for name, value in (
            ("region_name", region_name),
            ("profile_name", profile_name),
            ("aws_access_key_id", aws_access_key_id),
            ("aws_secret_access_key", aws_secret_access_key),
            ("aws_session_token", aws_session_token),
            ("aws_account_id", aws_account_id),
        ):
            _check_optional_str(name, value)
        if (aws_access_key_id is None) != (aws_secret_access_key is None):
            raise ConfigurationError(
                "aws_access_key_id and aws_secret_access_key must be given together"
            )
        if aws_access_key_id is not None and not self._source_keys_allowed:
            raise ConfigurationError(
                f"explicit aws_access_key_id/aws_secret_access_key are not used by method "
                f"{self.method!r}; its credentials come from the method's own options"
            )
        if botocore_session is not None and not isinstance(botocore_session, AioSession):
            raise ValidationError(
                "botocore_session must be an aiobotocore.session.AioSession, got "
                f"{type(botocore_session).__name__}"
            )
        if default_client_kwargs is not None and not isinstance(default_client_kwargs, Mapping):
            raise ValidationError(
                "default_client_kwargs must be a mapping of client options, got "
                f"{type(default_client_kwargs).__name__}"
            )

        self._clock: Clock = clock or utc_now
        self._profile_name = profile_name
        self._explicit_region = region_name
        self._region_cache: str | None = None
        self._source_keys = (
            None
            if aws_access_key_id is None
            else (aws_access_key_id, aws_secret_access_key, aws_session_token, aws_account_id)
        )
        self._defer_refresh = defer_refresh
        self._options = {name: options[name] for name in given}
        # What a child of assume_role() inherits.
        self._inherited: dict[str, Any] = {
            "advisory_timeout": advisory_timeout,
            "mandatory_timeout": mandatory_timeout,
            "refresh_jitter": refresh_jitter,
            "refresh_timeout": refresh_timeout,
            "retry_on_expired_token": retry_on_expired_token,
            "clock": self._clock,
            "on_refresh": on_refresh,
            "max_clients": max_clients,
            "eviction_policy": eviction_policy,
            "idle_timeout": idle_timeout,
            "close_timeout": close_timeout,
            "default_client_kwargs": default_client_kwargs,
        }
        self._aioboto3: Any = None
        self._closing: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._children: set[RefreshableSession] = set()
        self._identity: tuple[str, Identity] | None = None
        self._identity_guard = threading.Lock()
        self._identity_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._adopted_credentials: Any = (
            None if botocore_session is None else _aiobotocore.session_credentials(botocore_session)
        )

        # Everything is validated before anything is touched: the pool, then the method.
        self.pool = ClientPool(
            _SessionClientFactory(self),
            max_clients=max_clients,
            eviction_policy=eviction_policy,  # type: ignore[arg-type]
            idle_timeout=idle_timeout,
            close_timeout=close_timeout,
            clock=self._clock,
            default_region=region_name,
            default_client_kwargs=default_client_kwargs,
            name=f"{type(self).__name__} pool",
        )
        """The session's client pool (``stats()``, ``clear()``)."""
        fetcher = self._make_fetcher(self._options)
        self._engine = RefreshEngine(
            fetcher,
            advisory_timeout=advisory,
            mandatory_timeout=mandatory,
            refresh_jitter=jitter or 0.0,
            refresh_timeout=self._refresh_budget(refresh_limit),
            clock=self._clock,
            on_refresh=on_refresh,
            freeze=_aiobotocore.freeze,
            name=f"{self.method} credentials",
        )
        self._credentials = _aiobotocore.EngineCredentials(
            self._engine, f"aiorefresh-{self.method}"
        )
        self._aiosession: AioSession = botocore_session or _aiobotocore.new_aiosession(
            profile_name=profile_name, region_name=region_name
        )
        if botocore_session is not None:
            if profile_name is not None:
                botocore_session.set_config_variable("profile", profile_name)
            if region_name is not None:
                botocore_session.set_config_variable("region", region_name)
        _aiobotocore.install_credentials(self._aiosession, self._credentials)
        if retry_on_expired_token:
            emitter = self._aiosession.get_component("event_emitter")
            # after the signer, which is also a request-created handler
            emitter.register_last("request-created", _remember_signing_key)
            emitter.register_first("needs-retry", self._retry_expired_token)

    # -- method hooks ----------------------------------------------------------------------

    def _make_fetcher(self, options: Mapping[str, Any]) -> CredentialFetcher:
        """Build the fetcher from this method's validated options (no I/O)."""
        raise NotImplementedError

    async def _aclose_method(self) -> None:
        """Release what the method owns (private clients, HTTP sessions) on this loop."""

    def _source_session(self) -> AioSession:
        """A plain aiobotocore session for source credentials: the default chain or keys."""
        source = _aiobotocore.new_aiosession(
            profile_name=self._profile_name, region_name=self._explicit_region
        )
        if self._source_keys is not None:
            source.set_credentials(*self._source_keys)
        elif self._adopted_credentials is not None:
            _aiobotocore.install_credentials(source, self._adopted_credentials)
        else:
            _aiobotocore.refuse_mfa_prompts(source, self._refuse_prompt)
        return source

    def _refuse_prompt(self, prompt: str) -> str:
        from .errors import NonRecoverableMFAError

        raise NonRecoverableMFAError(
            f"profile {self.profile_name!r} asks for an MFA code ({prompt.strip().rstrip(':')}); "
            "aiorefresh never blocks the event loop on a prompt: use method='sts' with "
            "assume_role_kwargs (RoleArn, SerialNumber) and mfa_token_provider instead"
        )

    # -- credentials -----------------------------------------------------------------------

    async def refreshable_credentials(self) -> TemporaryCredentials:
        """The credentials the session hands out now, refreshed first if they are due."""
        return await self._engine.get()

    async def get_credentials(self) -> Any:
        """The refreshable credentials object itself, as ``aioboto3.Session`` returns it.

        It is an aiobotocore ``AioDeferredRefreshableCredentials`` whose reads go through this
        session's engine: ``await creds.get_frozen_credentials()`` never returns expired keys.
        """
        return self._credentials

    async def refresh(self, *, force: bool = True) -> TemporaryCredentials:
        """Refresh now (``force=True``), or only if the windows say so; raises on failure."""
        self._check_open()
        return await self._engine.refresh(force=force)

    def invalidate(self) -> None:
        """Mark the current credentials unusable: the next use waits for a fresh fetch."""
        self._engine.invalidate()

    def refresh_stats(self) -> RefreshStats:
        """Counters of the refresh engine: refreshes, failures, last refresh, next due."""
        return self._engine.stats()

    @property
    def clock(self) -> Clock:
        """The clock that drives every expiry and backoff decision of this session."""
        return self._clock

    def _refresh_budget(self, refresh_timeout: float | None) -> float | None:
        """Seconds a whole refresh may take (methods that ask a person add their share)."""
        return refresh_timeout

    async def _retry_expired_token(self, **kwargs: Any) -> int | None:
        # botocore asks every needs-retry handler; the first non-None answer is the delay.
        response = kwargs.get("response")
        if kwargs.get("attempts") != 1 or not response:
            return None
        parsed = response[1] if isinstance(response, tuple) and len(response) > 1 else None
        code = (parsed or {}).get("Error", {}).get("Code") if isinstance(parsed, dict) else None
        if code not in _EXPIRED_TOKEN_CODES:
            return None
        context = (kwargs.get("request_dict") or {}).get("context") or {}
        signed_with = context.get(_SIGNING_KEY)
        if signed_with is None:
            return None
        if not self._engine.issued(signed_with):
            return None  # a client with explicit keys: nothing of ours to refresh
        if self._engine.invalidate(signed_with):
            logger.info("%s: AWS answered %s; refreshing and retrying once", self.method, code)
        return 0

    # -- identity --------------------------------------------------------------------------

    async def whoami(self) -> Identity:
        """Who the session's credentials are (STS GetCallerIdentity), cached until they change."""
        creds = await self._engine.get()
        cached = self._identity
        if cached is not None and cached[0] == creds.access_key:
            return cached[1]
        loop = asyncio.get_running_loop()
        with self._identity_guard:
            lock = self._identity_locks.get(loop)
            if lock is None:
                lock = self._identity_locks[loop] = asyncio.Lock()
        async with lock:  # one GetCallerIdentity however many tasks ask at once
            cached = self._identity
            if cached is not None and cached[0] == creds.access_key:
                return cached[1]
            async with self.client("sts") as sts:
                answer = await sts.get_caller_identity()
            identity = Identity(
                account_id=answer["Account"], arn=answer["Arn"], user_id=answer["UserId"]
            )
            self._identity = (creds.access_key, identity)
            return identity

    async def get_identity(self) -> Identity:
        """The same as `whoami` (the name boto3-refresh-session users know)."""
        return await self.whoami()

    # -- role chaining ---------------------------------------------------------------------

    async def assume_role(
        self,
        RoleArn: str,
        *,
        sts_client_kwargs: Mapping[str, Any] | None = None,
        mfa_token_provider: Any = None,
        mfa_token_provider_kwargs: Mapping[str, Any] | None = None,
        **assume_role_kwargs: Any,
    ) -> STSRefreshableSession:
        """A session for ``RoleArn`` whose source is this session's refreshing credentials.

        Chains (A -> B -> C) keep renewing for as long as the process lives; AWS caps a chained
        session at one hour, so a longer ``DurationSeconds`` is capped with a warning. Closing
        this session closes the child.
        """
        self._check_open()
        kwargs = {"RoleArn": RoleArn, **assume_role_kwargs}
        if sts_client_kwargs is None and isinstance(self, _STSSessionMixin):
            inherited = self._options.get("sts_client_kwargs") or {}
            sts_client_kwargs = {
                k: v for k, v in inherited.items() if not k.startswith("aws_")
            } or None
        child = object.__new__(STSRefreshableSession)
        child._parent = self
        child.__init__(  # type: ignore[misc]
            assume_role_kwargs=kwargs,
            sts_client_kwargs=sts_client_kwargs,
            mfa_token_provider=mfa_token_provider,
            mfa_token_provider_kwargs=mfa_token_provider_kwargs,
            region_name=self._explicit_region or self.region_name,
            **self._inherited,
        )
        self._children.add(child)
        return child

    # -- clients ---------------------------------------------------------------------------

    def client(
        self,
        service_name: str,
        region_name: str | None = None,
        api_version: str | None = None,
        use_ssl: bool = True,
        verify: bool | str | None = None,
        endpoint_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        config: Any = None,
        aws_account_id: str | None = None,
    ) -> AbstractAsyncContextManager[Any]:
        """Lease the pooled client for this configuration: ``async with session.client("s3")``.

        Leaving the block releases the lease; the client stays open for the next task.
        """
        self._check_open()
        return self.pool.lease(
            service_name,
            region_name,
            api_version,
            use_ssl,
            verify,
            endpoint_url,
            aws_access_key_id,
            aws_secret_access_key,
            aws_session_token,
            config,
            aws_account_id,
        )

    async def get_client(
        self,
        service_name: str,
        region_name: str | None = None,
        api_version: str | None = None,
        use_ssl: bool = True,
        verify: bool | str | None = None,
        endpoint_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        config: Any = None,
        aws_account_id: str | None = None,
    ) -> Any:
        """A pinned client for code that keeps clients in attributes; closed by `aclose`."""
        self._check_open()
        return await self.pool.get(
            service_name,
            region_name,
            api_version,
            use_ssl,
            verify,
            endpoint_url,
            aws_access_key_id,
            aws_secret_access_key,
            aws_session_token,
            config,
            aws_account_id,
        )

    def resource(
        self,
        service_name: str,
        region_name: str | None = None,
        api_version: str | None = None,
        use_ssl: bool = True,
        verify: bool | str | None = None,
        endpoint_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        config: Any = None,
    ) -> AbstractAsyncContextManager[Any]:
        """Lease the pooled aioboto3 resource for this configuration (needs the aioboto3 extra)."""
        self._check_open()
        self._aioboto3_session()
        return self.pool.lease(
            service_name,
            region_name,
            api_version,
            use_ssl,
            verify,
            endpoint_url,
            aws_access_key_id,
            aws_secret_access_key,
            aws_session_token,
            config,
            kind="resource",
        )

    def _aioboto3_session(self) -> Any:
        if self._aioboto3 is None:
            try:
                import aioboto3
            except ImportError:
                raise ConfigurationError(
                    "resource() needs aioboto3: pip install 'aiorefresh[aioboto3]'"
                ) from None
            self._aioboto3 = aioboto3.Session(botocore_session=self._aiosession)
        return self._aioboto3

    # -- aioboto3.Session's configuration calls --------------------------------------------

    @property
    def region_name(self) -> str | None:
        """The session's default region (explicit, else from the environment or profile)."""
        if self._region_cache is None:
            region = self._aiosession.get_config_variable("region")
            self._region_cache = region if isinstance(region, str) else None
        return self._region_cache

    @property
    def profile_name(self) -> str:
        """The profile the session reads configuration from."""
        return self._profile_name or self._aiosession.profile or "default"

    @property
    def available_profiles(self) -> list[str]:
        """Profiles found in the shared config and credentials files."""
        return list(self._aiosession.available_profiles)

    def get_available_services(self) -> list[str]:
        """Service names the installed botocore data knows."""
        return list(self._aiosession.get_available_services())

    async def get_available_regions(
        self, service_name: str, partition_name: str = "aws", allow_non_regional: bool = False
    ) -> list[str]:
        """Regions where ``service_name`` has an endpoint in ``partition_name``."""
        regions = await self._aiosession.get_available_regions(
            service_name, partition_name, allow_non_regional
        )
        return list(regions)

    def get_available_partitions(self) -> list[str]:
        """Partition names (aws, aws-cn, aws-us-gov, ...)."""
        return list(self._aiosession.get_available_partitions())

    def get_available_resources(self) -> list[str]:
        """Services that have aioboto3 resources (needs the aioboto3 extra)."""
        return list(self._aioboto3_session().get_available_resources())

    @property
    def botocore_session(self) -> AioSession:
        """The aiobotocore session underneath, whose credentials are this session's."""
        return self._aiosession

    # -- lifecycle -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if not self._closing:  # the hot path: never closed anywhere
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if loop in self._closing:
            raise SessionClosedError(
                f"{type(self).__name__} was closed on this event loop; "
                "create a new session after aclose()"
            )

    async def __aenter__(self) -> RefreshableSession:
        self._check_open()
        if not self._defer_refresh:
            try:
                await self._engine.refresh(force=False)
            except BaseException:
                await self.aclose()
                raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close what the session holds on this event loop: children, pooled clients, the
        method's private clients, and the engine's tasks. Afterwards the session refuses work
        on this loop; other loops keep theirs until they call ``aclose()`` too.

        Call it before each event loop ends: clients of a closed loop cannot be closed. A
        cancelled ``aclose()`` keeps closing in the background; calling it again waits for it.
        """
        loop = asyncio.get_running_loop()
        closing = self._closing.get(loop)
        if closing is True:
            return
        if closing is None:
            closing = self._closing[loop] = loop.create_task(self._close_here())
            closing.add_done_callback(lambda _: self._closing.__setitem__(loop, True))
        await asyncio.shield(closing)

    async def _close_here(self) -> None:
        for child in list(self._children):
            with contextlib.suppress(Exception):
                await child.aclose()
        self._children.clear()
        if self._parent is not None:
            self._parent._children.discard(self)
        try:
            await self.pool.aclose()
        finally:
            try:
                await self._engine.aclose()
            finally:
                await self._aclose_method()

    @property
    def closed(self) -> bool:
        """Whether `aclose` has run on this event loop (outside a loop: on any loop)."""
        try:
            return asyncio.get_running_loop() in self._closing
        except RuntimeError:
            return len(self._closing) > 0

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<{type(self).__name__} method={self.method!r} {state}>"


class CustomRefreshableSession(RefreshableSession, method="custom"):
    """Credentials from your own async or sync callable (``custom_credentials_method``)."""

    _accepted_options = frozenset({"custom_credentials_method", "custom_credentials_method_args"})

    def _make_fetcher(self, options: Mapping[str, Any]) -> CredentialFetcher:
        method = options.get("custom_credentials_method")
        if method is None:
            raise ValidationError(
                "custom_credentials_method is required for method 'custom': a callable "
                "returning credentials"
            )
        return CustomFetcher(method, options.get("custom_credentials_method_args"))


class DefaultRefreshableSession(RefreshableSession, method="default"):
    """Credentials from aiobotocore's default chain (environment, profile, container, IMDS),
    resolved once per session and kept fresh by the same engine as every other method."""

    _source_keys_allowed = True

    def _make_fetcher(self, options: Mapping[str, Any]) -> CredentialFetcher:
        self._chain = ChainFetcher(self._source_session)
        return self._chain

    async def _aclose_method(self) -> None:
        self._chain.forget_loop()


class IoTRefreshableSession(RefreshableSession, method="iot"):
    """Credentials from the AWS IoT credentials provider, authenticated by an X.509 certificate
    over mutual TLS (natively on the event loop: aiohttp and ``ssl``, no awscrt)."""

    _accepted_options = frozenset(
        {
            "endpoint",
            "role_alias",
            "certificate",
            "private_key",
            "private_key_password",
            "thing_name",
            "ca",
            "duration_seconds",
            "timeout",
            "verify_peer",
            "discover_endpoint",
        }
    )

    def _make_fetcher(self, options: Mapping[str, Any]) -> CredentialFetcher:
        from .fetchers import iot

        config = iot.validate_iot_options(
            endpoint=options.get("endpoint"),
            role_alias=options.get("role_alias"),
            certificate=options.get("certificate"),
            private_key=options.get("private_key"),
            thing_name=options.get("thing_name"),
            ca=options.get("ca"),
            private_key_password=options.get("private_key_password"),
            duration_seconds=options.get("duration_seconds"),
            timeout=options.get("timeout", 10.0),
            verify_peer=options.get("verify_peer", True),
            discover_endpoint=options.get("discover_endpoint", False),
        )
        discover = None
        if config.endpoint is None:
            discover = functools.partial(
                iot.discover_credentials_endpoint, region_name=self._explicit_region
            )
        self._iot_fetcher = iot.IoTCredentialFetcher(config, discover=discover)
        return self._iot_fetcher

    async def _aclose_method(self) -> None:
        await self._iot_fetcher.aclose()


class _STSSessionMixin(RefreshableSession):
    """What the three STS methods share: source credentials, the private client, closing."""

    _source_keys_allowed = True
    _sts_fetcher: Any

    def _sts_source(self) -> AioSession:
        if self._parent is not None:
            return self._parent._aiosession
        return self._source_session()

    def _client_kwargs(self, options: Mapping[str, Any]) -> dict[str, Any]:
        from .fetchers.sts import validate_sts_client_kwargs

        kwargs = validate_sts_client_kwargs(options.get("sts_client_kwargs"))
        kwargs.setdefault("region_name", self._explicit_region)
        if kwargs["region_name"] is None:
            del kwargs["region_name"]
        return kwargs

    async def _aclose_method(self) -> None:
        await self._sts_fetcher.aclose()

    def _refresh_budget(self, refresh_timeout: float | None) -> float | None:
        if refresh_timeout is None:
            return None
        return refresh_timeout + float(getattr(self._sts_fetcher, "mfa_budget", 0.0))


class STSRefreshableSession(_STSSessionMixin, method="sts"):
    """Assumes an IAM role with STS AssumeRole and keeps renewing it, MFA included."""

    _accepted_options = frozenset(
        {
            "assume_role_kwargs",
            "sts_client_kwargs",
            "mfa_token_provider",
            "mfa_token_provider_kwargs",
        }
    )

    def _make_fetcher(self, options: Mapping[str, Any]) -> CredentialFetcher:
        from .fetchers.sts import (
            AssumeRoleFetcher,
            cap_chained_duration,
            validate_assume_role_kwargs,
        )

        if options.get("assume_role_kwargs") is None:
            raise ValidationError(
                "assume_role_kwargs is required for method 'sts' (RoleArn at least)"
            )
        params = validate_assume_role_kwargs(options["assume_role_kwargs"])
        if self._parent is not None:
            cap_chained_duration(params)
        self._sts_fetcher = AssumeRoleFetcher(
            params,
            source=self._sts_source,
            client_kwargs=self._client_kwargs(options),
            mfa_token_provider=options.get("mfa_token_provider"),
            mfa_token_provider_kwargs=options.get("mfa_token_provider_kwargs"),
            clock=self._clock,
        )
        return self._sts_fetcher  # type: ignore[no-any-return]

    @property
    def assume_role_kwargs(self) -> dict[str, Any]:
        """The AssumeRole parameters in use (``RoleSessionName`` filled in)."""
        return dict(self._sts_fetcher.params)


class SessionTokenRefreshableSession(_STSSessionMixin, method="session_token"):
    """Temporary credentials of an IAM user (STS GetSessionToken), typically MFA-protected."""

    _accepted_options = frozenset(
        {
            "session_token_kwargs",
            "sts_client_kwargs",
            "mfa_token_provider",
            "mfa_token_provider_kwargs",
        }
    )

    def _make_fetcher(self, options: Mapping[str, Any]) -> CredentialFetcher:
        from .fetchers.sts import SessionTokenFetcher, validate_session_token_kwargs

        self._sts_fetcher = SessionTokenFetcher(
            validate_session_token_kwargs(options.get("session_token_kwargs")),
            source=self._sts_source,
            client_kwargs=self._client_kwargs(options),
            mfa_token_provider=options.get("mfa_token_provider"),
            mfa_token_provider_kwargs=options.get("mfa_token_provider_kwargs"),
            clock=self._clock,
        )
        return self._sts_fetcher  # type: ignore[no-any-return]


class WebIdentityRefreshableSession(_STSSessionMixin, method="web_identity"):
    """A role assumed with a web identity token (OIDC, EKS IRSA), called unsigned."""

    _accepted_options = frozenset(
        {"web_identity_kwargs", "web_identity_token", "sts_client_kwargs"}
    )

    def _make_fetcher(self, options: Mapping[str, Any]) -> CredentialFetcher:
        from .fetchers.sts import WebIdentityFetcher, validate_web_identity_kwargs

        if options.get("web_identity_kwargs") is None:
            raise ValidationError(
                "web_identity_kwargs is required for method 'web_identity' (RoleArn at least)"
            )
        self._sts_fetcher = WebIdentityFetcher(
            validate_web_identity_kwargs(options["web_identity_kwargs"]),
            options.get("web_identity_token"),
            source=self._sts_source,
            client_kwargs=self._client_kwargs(options),
        )
        return self._sts_fetcher  # type: ignore[no-any-return]
