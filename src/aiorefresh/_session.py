"""``RefreshableSession``: one class, composed with a fetcher, over aioboto3.Session's calls.

The method table (`aiorefresh._methods`) turns the flat, compatible keywords into a fetcher;
``fetcher=`` takes one directly (as httpx's ``transport=``). The engine decides when to call
it; the adapter makes aiobotocore sign with the engine's credentials; the pool leases clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from aiobotocore.session import AioSession

from . import _aiobotocore
from ._cache import check_credential_cache
from ._chaining import ChainingCalls
from ._clients import ClientPool
from ._engine import RefreshEngine, RefreshStats
from ._facade import Aioboto3Calls
from ._fanout import FanOutCalls
from ._fetchers.chain import StaticFetcher
from ._handoff import HandoffCalls
from ._identity import IdentityCalls
from ._loops import LoopScope, PerLoop
from ._methods import (
    METHODS,
    OPTION_DEFAULTS,
    BuildContext,
    choose_method,
    given_options,
    row_options,
)
from ._options import (
    PoolOptions,
    RefreshOptions,
    SessionOptions,
    check_session_arguments,
    warn_if_endpoints_differ,
)
from ._sources import Sources
from ._types import (
    AssumeRoleConfig,
    Clock,
    CredentialFetcher,
    Identity,
    STSClientConfig,
    TemporaryCredentials,
)
from ._util import check_bool, signature_accepts
from .errors import (
    ConfigurationError,
    NoCredentialsFound,
    SessionClosedError,
    ValidationError,
)
from .mfa import MFATokenProviderLike

if sys.version_info >= (3, 11):  # pragma: no cover - version-dependent import
    from typing import Unpack
else:  # pragma: no cover
    from typing_extensions import Unpack

if TYPE_CHECKING:
    import os

    from ._fetchers.iot import PEMSource

__all__ = ["RefreshableSession"]

logger = logging.getLogger("aiorefresh")

T = TypeVar("T")


class RefreshableSession(Aioboto3Calls, ChainingCalls, IdentityCalls, HandoffCalls, FanOutCalls):
    """A drop-in for ``aioboto3.Session`` whose credentials refresh themselves.

    Use it with ``async with`` (or call `aclose` yourself). Clients come from a pool:
    ``async with session.client("s3") as s3`` leases the one client of that configuration.
    ``method`` says how credentials are fetched; ``fetcher=`` plugs in your own.
    """

    # The overloads show each method's options only (editors, mypy); the last one is the
    # implementation's full signature.
    @overload
    def __init__(
        self,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        region_name: str | None = None,
        botocore_session: AioSession | None = None,
        profile_name: str | None = None,
        aws_account_id: str | None = None,
        *,
        method: Literal["default"] | None = None,
        mfa_token_provider: MFATokenProviderLike | None = None,
        mfa_token_provider_kwargs: Mapping[str, Any] | None = None,
        sts_client_kwargs: STSClientConfig | Mapping[str, Any] | None = None,
        **options: Unpack[SessionOptions],
    ) -> None: ...
    @overload
    def __init__(
        self,
        *,
        method: Literal["custom"] | None = None,
        custom_credentials_method: Callable[..., Any],
        custom_credentials_method_args: Mapping[str, Any] | None = None,
        region_name: str | None = None,
        botocore_session: AioSession | None = None,
        profile_name: str | None = None,
        **options: Unpack[SessionOptions],
    ) -> None: ...
    @overload
    def __init__(
        self,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        region_name: str | None = None,
        botocore_session: AioSession | None = None,
        profile_name: str | None = None,
        aws_account_id: str | None = None,
        *,
        method: Literal["sts"] | None = None,
        assume_role_kwargs: AssumeRoleConfig | Mapping[str, Any],
        sts_client_kwargs: STSClientConfig | Mapping[str, Any] | None = None,
        mfa_token_provider: MFATokenProviderLike | None = None,
        mfa_token_provider_kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[SessionOptions],
    ) -> None: ...
    @overload
    def __init__(
        self,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        region_name: str | None = None,
        botocore_session: AioSession | None = None,
        profile_name: str | None = None,
        aws_account_id: str | None = None,
        *,
        method: Literal["session_token"],
        session_token_kwargs: Mapping[str, Any] | None = None,
        sts_client_kwargs: STSClientConfig | Mapping[str, Any] | None = None,
        mfa_token_provider: MFATokenProviderLike | None = None,
        mfa_token_provider_kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[SessionOptions],
    ) -> None: ...
    @overload
    def __init__(
        self,
        *,
        method: Literal["web_identity"] | None = None,
        web_identity_kwargs: Mapping[str, Any],
        web_identity_token: str | os.PathLike[str] | Callable[[], Any] | None = None,
        sts_client_kwargs: STSClientConfig | Mapping[str, Any] | None = None,
        region_name: str | None = None,
        botocore_session: AioSession | None = None,
        profile_name: str | None = None,
        **options: Unpack[SessionOptions],
    ) -> None: ...
    @overload
    def __init__(
        self,
        *,
        method: Literal["iot"] | None = None,
        role_alias: str,
        certificate: PEMSource,
        private_key: PEMSource,
        endpoint: str | None = None,
        private_key_password: str | bytes | None = None,
        thing_name: str | None = None,
        ca: PEMSource | None = None,
        duration_seconds: int | None = None,
        timeout: float = 10.0,
        verify_peer: bool = True,
        discover_endpoint: bool = False,
        region_name: str | None = None,
        botocore_session: AioSession | None = None,
        profile_name: str | None = None,
        **options: Unpack[SessionOptions],
    ) -> None: ...
    @overload
    def __init__(
        self,
        *,
        fetcher: CredentialFetcher,
        region_name: str | None = None,
        botocore_session: AioSession | None = None,
        profile_name: str | None = None,
        **options: Unpack[SessionOptions],
    ) -> None: ...
    def __init__(
        self,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        region_name: str | None = None,
        botocore_session: AioSession | None = None,
        profile_name: str | None = None,
        aws_account_id: str | None = None,
        *,
        method: str | None = None,
        fetcher: CredentialFetcher | None = None,
        custom_credentials_method: Callable[..., Any] | None = None,
        custom_credentials_method_args: Mapping[str, Any] | None = None,
        assume_role_kwargs: AssumeRoleConfig | Mapping[str, Any] | None = None,
        sts_client_kwargs: STSClientConfig | Mapping[str, Any] | None = None,
        session_token_kwargs: Mapping[str, Any] | None = None,
        web_identity_kwargs: Mapping[str, Any] | None = None,
        web_identity_token: str | os.PathLike[str] | Callable[[], Any] | None = None,
        mfa_token_provider: MFATokenProviderLike | None = None,
        mfa_token_provider_kwargs: Mapping[str, Any] | None = None,
        endpoint: str | None = None,
        role_alias: str | None = None,
        certificate: PEMSource | None = None,
        private_key: PEMSource | None = None,
        private_key_password: str | bytes | None = None,
        thing_name: str | None = None,
        ca: PEMSource | None = None,
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
        on_refresh: Callable[[Any], object] | None = None,
        credential_cache: Any = None,
        max_clients: int | None = None,
        eviction_policy: Literal["LRU", "LFU"] = "LRU",
        idle_timeout: float | None = None,
        close_timeout: float = 10.0,
        default_client_kwargs: Mapping[str, Any] | None = None,
        botocore_session_owner: bool = False,
        http_backend: str | None = None,
    ) -> None:
        """Check every option (no I/O, no running loop needed) and wire the session.

        The first seven parameters are ``aioboto3.Session``'s, in its order; everything else
        is keyword-only. ``method`` picks how credentials are fetched (``"custom"``,
        ``"default"``, ``"sts"``, ``"session_token"``, ``"web_identity"``, ``"iot"``;
        ``None`` infers it from the options given) and only that method's options are
        accepted; ``fetcher`` replaces the method with any object whose ``async __call__()``
        returns `TemporaryCredentials`. The refresh options (``advisory_timeout``,
        ``mandatory_timeout``, ``refresh_jitter``, ``refresh_timeout``, ``clock``,
        ``on_refresh``, ``defer_refresh``, ``retry_on_expired_token``) and the pool options
        (``max_clients``, ``eviction_policy``, ``idle_timeout``, ``close_timeout``,
        ``default_client_kwargs``) apply to every method. A ``botocore_session`` you pass is
        given back as it was on close unless ``botocore_session_owner=True``.
        """
        arguments = dict(locals())  # the parameters, before anything else is bound
        # Set before anything can raise, so repr and close work on a half-built session.
        self.method = "unknown"
        """The credential method in use (``"sts"``, ``"iot"``, ... or the fetcher's)."""
        self._parent: RefreshableSession | None = None
        self._children: set[RefreshableSession] = set()
        self._adopted: _aiobotocore.AdoptedSession | None = None
        self._closed_somewhere = False
        self._scopes: PerLoop[LoopScope] = PerLoop(LoopScope)
        self._owned_engines: list[RefreshEngine] = []

        method_options = {name: arguments[name] for name in OPTION_DEFAULTS}
        given = given_options(method_options)
        refresh = RefreshOptions.checked(
            advisory_timeout=advisory_timeout,
            mandatory_timeout=mandatory_timeout,
            refresh_jitter=refresh_jitter,
            refresh_timeout=refresh_timeout,
            clock=clock,
            on_refresh=on_refresh,
            defer_refresh=defer_refresh,
            retry_on_expired_token=retry_on_expired_token,
        )
        pool_options = PoolOptions.checked(
            max_clients=max_clients,
            eviction_policy=eviction_policy,
            idle_timeout=idle_timeout,
            close_timeout=close_timeout,
            default_client_kwargs=default_client_kwargs,
        )
        keys = check_session_arguments(
            aws_access_key_id,
            aws_secret_access_key,
            aws_session_token,
            region_name,
            botocore_session,
            profile_name,
            aws_account_id,
        )
        check_bool("botocore_session_owner", botocore_session_owner)
        self._credential_cache = check_credential_cache(credential_cache)
        if http_backend not in (None, "aiohttp"):
            raise ConfigurationError(
                f"http_backend must be None or 'aiohttp' in this release, got {http_backend!r}"
            )
        if fetcher is not None:
            if method is not None or given:
                named = ", ".join((["method"] if method is not None else []) + sorted(given))
                raise ConfigurationError(
                    f"fetcher= replaces the credential method: do not pass {named} with it"
                )
            if not callable(fetcher):
                raise ValidationError(
                    "fetcher must be an object with async __call__() returning "
                    f"TemporaryCredentials, got {type(fetcher).__name__}"
                )
            why = signature_accepts(fetcher, {})
            if why is not None:
                raise ValidationError(
                    "fetcher must be callable with no arguments (async __call__() returning "
                    f"TemporaryCredentials): {why}"
                )
            if keys is not None:
                raise ConfigurationError(
                    "explicit aws_access_key_id/aws_secret_access_key are not used with "
                    "fetcher=: the fetcher is the only source of credentials"
                )
            name = getattr(fetcher, "method", None)
            self.method = name if isinstance(name, str) else "custom"
        else:
            row = choose_method(method, given)
            if keys is not None and not row.source_keys:
                raise ConfigurationError(
                    f"explicit aws_access_key_id/aws_secret_access_key are not used by method "
                    f"{row.name!r}; its credentials come from the method's own options"
                )
            self.method = row.name

        self._refresh = refresh
        self._pool_options = pool_options
        self._profile_name = profile_name
        self._explicit_region = region_name
        self._region_cache: str | None = None
        if botocore_session is not None:
            self._adopted = _aiobotocore.AdoptedSession(
                botocore_session, owner=botocore_session_owner
            )
            self._aiosession = botocore_session
            if profile_name is not None:
                self._adopted.set_config("profile", profile_name)
            if region_name is not None:
                self._adopted.set_config("region", region_name)
        else:
            self._aiosession = _aiobotocore.new_session(
                profile_name=profile_name, region_name=region_name
            )
        # An explicit name must exist; AWS_PROFILE too, unless it names botocore's "default".
        named = profile_name if profile_name is not None else self._aiosession.profile
        implicit_default = profile_name is None and named == "default"
        if (
            named is not None
            and not implicit_default
            and named not in self._aiosession.available_profiles
        ):
            where = "profile_name" if profile_name is not None else "AWS_PROFILE"
            raise ConfigurationError(
                f"{where} {named!r} is not in the shared config or credentials "
                "files (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE)"
            )
        warn_if_endpoints_differ(given.get("sts_client_kwargs"), pool_options)
        if fetcher is None:
            # Nothing the fetchers keep may reach the session (see `Sources`).
            sources = Sources(
                self._aiosession,
                adopted=self._adopted,
                profile_name=profile_name,
                region_name=region_name,
                keys=keys,
                refresh=refresh,
                owned_engines=self._owned_engines,
                credential_cache=self._credential_cache,
                method_options=given,
            )
            context = BuildContext(
                profile_name=profile_name,
                region_name=region_name,
                clock=refresh.clock,
                source_fetcher=sources.fetcher,
                source=sources.engine,
                credential_cache=self._credential_cache,
            )
            row = METHODS[self.method]
            fetcher = row.build(context, row_options(row, given))
        self._fetcher = fetcher
        self._engine = refresh.engine(
            fetcher, name=f"{self.method} credentials", freeze=_aiobotocore.freeze
        )
        self._owned_engines.append(self._engine)
        if isinstance(fetcher, StaticFetcher):
            self._engine.seed(fetcher.credentials)
        self._credentials = _aiobotocore.EngineCredentials(
            self._engine, f"aiorefresh-{self.method}"
        )
        _aiobotocore.install_credentials(self._aiosession, self._credentials)
        if refresh.retry_on_expired_token:
            retry = _aiobotocore.ExpiredTokenRetry(self._engine, self.method)
            uninstall = retry.install(self._aiosession)
            if self._adopted is not None:
                self._adopted.on_release(uninstall)
        self._opener = _aiobotocore.ClientOpener(self._aiosession)
        self.pool = ClientPool(
            self._opener,
            max_clients=pool_options.max_clients,
            eviction_policy=pool_options.eviction_policy,
            idle_timeout=pool_options.idle_timeout,
            close_timeout=pool_options.close_timeout,
            clock=refresh.clock,
            default_region=region_name,
            default_client_kwargs=pool_options.default_client_kwargs,
            name=f"{self.method} session pool",
        )
        """The session's client pool (``stats()``, ``clear()``)."""
        self._identity: tuple[str, Identity] | None = None
        self._identity_locks: PerLoop[asyncio.Lock] = PerLoop(lambda loop: asyncio.Lock())

    # -- credentials -----------------------------------------------------------------------

    async def refreshable_credentials(self) -> TemporaryCredentials:
        """The credentials the session hands out now, refreshed first if they are due."""
        return await self._engine.get()

    async def get_credentials(self) -> Any:
        """The refreshable credentials object itself, as ``aioboto3.Session`` returns it.

        It is an aiobotocore ``AioDeferredRefreshableCredentials`` whose reads go through this
        session's engine: ``await creds.get_frozen_credentials()`` never returns expired keys.
        For the default method it is ``None`` when the chain finds no credentials, as
        aioboto3's is (the chain is asked once here, like aioboto3 asks it).
        """
        if self.method == "default" and self._engine.current is None:
            try:
                await self._engine.get()
            except NoCredentialsFound:
                return None
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
        return self._refresh.clock

    @property
    def fetcher(self) -> CredentialFetcher:
        """The fetcher the engine calls (the method's, or the one passed as ``fetcher=``)."""
        return self._fetcher

    @property
    def assume_role_kwargs(self) -> dict[str, Any]:
        """The AssumeRole parameters in use (``RoleSessionName`` filled in); ``{}`` for other
        methods."""
        params = getattr(self._fetcher, "params", None)
        return dict(params) if self.method == "sts" and isinstance(params, Mapping) else {}

    # -- lifecycle -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if not self._closed_somewhere:  # the hot path: never closed anywhere
            return
        scope = self._scopes.peek()
        if scope is not None and scope.closed:
            raise SessionClosedError(
                "the session was closed on this event loop; create a new session after aclose()"
            )

    async def __aenter__(self) -> RefreshableSession:
        self._check_open()
        if not self._refresh.defer_refresh:
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
        on this loop; other loops keep theirs (close each, or they close at that loop's
        shutdown). A cancelled ``aclose()`` keeps closing in the background; calling it again
        waits for it. A ``botocore_session`` you passed is handed back once every loop that
        used the session has closed it.
        """
        self._closed_somewhere = True
        await self._scopes.get().close(self._close_here)

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
            for engine in self._owned_engines:
                await engine.aclose()
                close = getattr(engine.fetcher, "aclose", None)
                if close is not None:
                    await close()
            if self._adopted is not None and all(s.closed for s in self._scopes.values()):
                self._adopted.release()

    @property
    def closed(self) -> bool:
        """Whether `aclose` has run on this event loop (outside a loop: on any loop)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._closed_somewhere
        scope = self._scopes.peek()
        return scope is not None and scope.closed

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<RefreshableSession method={self.method!r} {state}>"
