"""The adapter: the one module that knows aiobotocore's and botocore's shapes.

Credentials objects, sessions, client open/close, the private STS client, the ExpiredToken
hook (event names, handler arguments, response tuples), Config merging and the classification
of botocore errors all live here. Each private name used is listed in ``PRIVATE_SURFACE`` and
checked by ``tests/test_aiobotocore_surface.py`` on both aiobotocore lines, so an upstream
change of shape fails loudly in CI instead of silently in production.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioDeferredRefreshableCredentials
from aiobotocore.session import AioSession
from botocore import UNSIGNED
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
)
from botocore.parsers import ResponseParserError

from .._loops import PerLoop
from .._types import NEVER, TemporaryCredentials
from .._util import short
from ..errors import (
    CredentialRefreshError,
    NoCredentialsFound,
    NonRecoverableCredentialError,
    NonRecoverableMFAError,
)
from ._loaders import build_off_loop, emitter_copy, share_loaded_data, shared_loader

if TYPE_CHECKING:
    from .._engine import RefreshEngine

__all__ = [
    "CLASSIFICATION",
    "NON_RECOVERABLE_CODES",
    "POOLED_MAX_CONNECTIONS",
    "PRIVATE_SURFACE",
    "AdoptedSession",
    "ClientOpener",
    "EngineCredentials",
    "ExpiredTokenRetry",
    "PrivateClient",
    "build_off_loop",
    "classify",
    "credentials_expiry",
    "engine_session",
    "freeze",
    "install_credentials",
    "new_session",
    "pooled_config",
    "refuse_mfa_prompts",
    "session_credentials",
    "shared_loader",
]

logger = logging.getLogger("aiorefresh")

PRIVATE_SURFACE: dict[str, tuple[str, ...]] = {
    # AioSession.get_credentials() returns _credentials when it is set, else runs the chain;
    # new sessions share loaded data through lazy registrations in the component locators.
    "aiobotocore.session.AioSession": ("_credentials", "_components", "_internal_components"),
    # The assume-role provider of the chain asks its _prompter (getpass by default) for MFA codes.
    "aiobotocore.credentials.AioAssumeRoleProvider": ("_prompter",),
    # The deferred credentials keep these fields; get_access_key() etc. read them after _refresh().
    "aiobotocore.credentials.AioDeferredRefreshableCredentials": (
        "_refresh",
        "_access_key",
        "_secret_key",
        "_token",
        "_account_id",
        "_expiry_time",
        "_frozen_credentials",
    ),
    # Which options a Config was given explicitly (so a pooled client's default can yield).
    "botocore.config.Config": ("_user_provided_options",),
}

try:  # the class itself, taken now: code (and tests) may later patch aioboto3.Session with ours
    from aioboto3.session import Session as _AIOBOTO3_SESSION
except ImportError:  # pragma: no cover - line B has no aioboto3
    _AIOBOTO3_SESSION = None

POOLED_MAX_CONNECTIONS = 50
"""Connections of a pooled client when its Config does not say: botocore's default of 10 would
make 40 tasks sharing one client queue behind 10 sockets."""


# -- credentials ------------------------------------------------------------------------------


def freeze(creds: TemporaryCredentials) -> ReadOnlyCredentials:
    """botocore's immutable credentials tuple, which the request signer consumes."""
    return ReadOnlyCredentials(creds.access_key, creds.secret_key, creds.token, creds.account_id)


class EngineCredentials(AioDeferredRefreshableCredentials):  # type: ignore[misc]
    """aiobotocore refreshable credentials whose refresh decisions are aiorefresh's engine.

    aiobotocore's own windows (fixed 15/10 minutes), lock (bound to one event loop) and
    refresh path are bypassed: every read goes through the engine's lock-free fast path, and
    keeps ``_access_key``, ``_expiry_time`` and the rest current, as aiobotocore's reads do.
    Keys that never expire (explicit static keys) also read synchronously
    (``creds.access_key``), as aioboto3's static credentials do.
    """

    def __init__(self, engine: RefreshEngine, method: str) -> None:
        super().__init__(refresh_using=self._refuse, method=method, time_fetcher=engine.clock)
        self._engine = engine
        current = engine.current
        if current is not None:
            self._adopt(current)

    @staticmethod
    def _refuse() -> None:  # pragma: no cover - never called: _refresh is replaced
        raise RuntimeError("aiorefresh credentials are refreshed by their engine")

    @property
    def engine(self) -> RefreshEngine:
        """The engine behind these credentials."""
        return self._engine

    async def get_frozen_credentials(self) -> ReadOnlyCredentials:
        frozen: ReadOnlyCredentials = await self._engine.get_frozen()
        if frozen is not self._frozen_credentials:
            current = self._engine.current
            if current is not None:
                self._adopt(current, frozen)
        return frozen

    async def _refresh(self) -> None:
        creds = await self._engine.get()
        if creds.access_key != self._access_key or creds.expiry_time != self._expiry_time:
            self._adopt(creds)

    def _adopt(self, creds: TemporaryCredentials, frozen: Any = None) -> None:
        self._access_key = creds.access_key
        self._secret_key = creds.secret_key
        self._token = creds.token
        self._account_id = creds.account_id
        self._expiry_time = None if creds.expiry_time == NEVER else creds.expiry_time
        self._frozen_credentials = frozen if frozen is not None else freeze(creds)

    def refresh_needed(self, refresh_in: float | None = None) -> bool:
        return self._engine.needs_refresh(refresh_in)

    def _seconds_remaining(self) -> float:
        expiry = self._expiry_time
        if expiry is None:
            return float("inf")
        return float((expiry - self._time_fetcher()).total_seconds())

    def _static_value(self, name: str) -> Any:
        current = self._engine.current
        if current is not None and current.expiry_time == NEVER:
            return getattr(current, name)
        raise NotImplementedError(
            f"refreshable credentials have no synchronous {name}: await "
            f"get_{name}() or get_frozen_credentials() instead"
        )

    # botocore's setters write the fields; the getters work for keys that never expire.
    access_key = property(
        lambda self: self._static_value("access_key"),
        lambda self, value: setattr(self, "_access_key", value),
    )
    secret_key = property(
        lambda self: self._static_value("secret_key"),
        lambda self, value: setattr(self, "_secret_key", value),
    )
    token = property(
        lambda self: self._static_value("token"),
        lambda self, value: setattr(self, "_token", value),
    )

    def __repr__(self) -> str:
        return f"<EngineCredentials method={self.method!r}>"


def install_credentials(session: AioSession, credentials: Any) -> None:
    """Make ``session`` hand out ``credentials`` without running its provider chain."""
    session._credentials = credentials


def session_credentials(session: AioSession) -> Any:
    """The credentials object ``session`` holds now, without resolving the chain."""
    return session._credentials


def credentials_expiry(credentials: Any) -> datetime | None:
    """When botocore credentials expire (``None`` for static keys)."""
    expiry = getattr(credentials, "_expiry_time", None)
    return expiry if isinstance(expiry, datetime) else None


def refuse_mfa_prompts(session: AioSession, refuse: Callable[[str], str]) -> None:
    """Replace the chain's blocking MFA prompt (``getpass``) with ``refuse``, which raises.

    A role profile with ``mfa_serial`` would otherwise block the event loop on a terminal read.
    """
    resolver = session.get_component("credential_provider")
    provider = resolver.get_provider("assume-role") if resolver is not None else None
    if provider is not None and hasattr(provider, "_prompter"):
        provider._prompter = refuse


# -- sessions ---------------------------------------------------------------------------------


def new_session(*, profile_name: str | None = None, region_name: str | None = None) -> AioSession:
    """A fresh aiobotocore session (no I/O until credentials or config are asked for).

    It shares the process's loaded models, endpoint data and built-in handlers (`_loaders`):
    a session costs a few hundred microseconds and kilobytes, not milliseconds and megabytes.
    """
    session = AioSession(
        profile=profile_name, event_hooks=emitter_copy(), include_builtin_handlers=False
    )
    share_loaded_data(session)
    if region_name is not None:
        session.set_config_variable("region", region_name)
    return session


def engine_session(
    engine: RefreshEngine,
    *,
    profile_name: str | None = None,
    region_name: str | None = None,
) -> AioSession:
    """A session whose credentials are ``engine``'s: how a source engine signs its calls."""
    session = new_session(profile_name=profile_name, region_name=region_name)
    install_credentials(session, EngineCredentials(engine, f"aiorefresh-{engine.name}"))
    return session


class AdoptedSession:
    """A caller's ``botocore_session`` that aiorefresh uses without owning it.

    Taking it installs our credentials (and configuration); `release` puts back exactly what
    was there, so the caller's object is as it was once the session is closed. With
    ``owner=True`` the session is ours to keep as we left it (aiohttp's ``connector_owner``).
    """

    def __init__(self, session: AioSession, *, owner: bool) -> None:
        self.session = session
        self.owner = owner
        self._saved_credentials = session._credentials
        self._saved_config: dict[str, Any] = {}
        self._undo: list[Callable[[], None]] = []

    @property
    def original_credentials(self) -> Any:
        """The credentials the caller's session held before we took it (may be ``None``)."""
        return self._saved_credentials

    def set_config(self, name: str, value: str) -> None:
        """Set a config variable, remembering the caller's value."""
        if name not in self._saved_config:
            self._saved_config[name] = self.session.instance_variables().get(name)
        self.session.set_config_variable(name, value)

    def on_release(self, undo: Callable[[], None]) -> None:
        """Run ``undo`` on `release` (for hooks registered on the caller's emitter)."""
        self._undo.append(undo)

    def release(self) -> None:
        """Give the session back as it was (nothing to do when we own it)."""
        if self.owner:
            return
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        self.session._credentials = self._saved_credentials
        for name, value in self._saved_config.items():
            self.session.set_config_variable(name, value)
        self._saved_config.clear()


# -- clients ----------------------------------------------------------------------------------


def pooled_config(config: Any) -> Any:
    """``config`` for a client shared by many tasks: more connections unless the user chose."""
    if config is None:
        return AioConfig(max_pool_connections=POOLED_MAX_CONNECTIONS)
    provided = getattr(config, "_user_provided_options", {})
    if "max_pool_connections" in provided:
        return config
    return config.merge(AioConfig(max_pool_connections=POOLED_MAX_CONNECTIONS))


def unsigned_config(config: Any) -> Any:
    """``config`` for calls that must not be signed (AssumeRoleWithWebIdentity)."""
    unsigned = AioConfig(signature_version=UNSIGNED)
    return unsigned if config is None else config.merge(unsigned)


async def open_client(session: AioSession, kwargs: Mapping[str, Any]) -> Any:
    """A ready (entered) aiobotocore client for ``create_client(**kwargs)``, built in a worker
    thread (`build_off_loop`): a service's first client never stalls the event loop."""
    return await build_off_loop(lambda: session.create_client(**kwargs).__aenter__(), close_client)


async def close_client(client: Any) -> None:
    """Close a client made by `open_client` (its HTTP session included)."""
    await client.__aexit__(None, None, None)


_exit = close_client  # resources close the same way


class ClientOpener:
    """Opens and closes a session's pooled clients and resources.

    With aioboto3 installed, clients come from an ``aioboto3.Session`` over the same
    aiobotocore session, so a pooled S3 client has aioboto3's transfer methods from the first
    call, exactly as ``aioboto3.Session().client("s3")`` has.
    """

    def __init__(self, session: AioSession) -> None:
        self._session = session
        self._aioboto3: Any = None

    def aioboto3_session(self, *, required: bool) -> Any:
        """The ``aioboto3.Session`` over our session; ``None`` (or an error) without aioboto3."""
        if self._aioboto3 is None:
            if _AIOBOTO3_SESSION is None:
                if not required:
                    return None
                from ..errors import ConfigurationError

                raise ConfigurationError(
                    "resource() needs aioboto3: pip install 'aiorefresh[aioboto3]'"
                )
            self._aioboto3 = _AIOBOTO3_SESSION(botocore_session=self._session)
            # Each boto3 Session appends its models' folder to the (shared) loader: keep one.
            paths = self._session.get_component("data_loader").search_paths
            paths[:] = dict.fromkeys(paths)
        return self._aioboto3

    async def create(self, kind: str, kwargs: dict[str, Any]) -> Any:
        """A ready client (or resource), built off the event loop (`build_off_loop`)."""
        kwargs = dict(kwargs)
        kwargs["config"] = pooled_config(kwargs.get("config"))
        if kind == "resource":
            resources = self.aioboto3_session(required=True)
            return await build_off_loop(lambda: resources.resource(**kwargs).__aenter__(), _exit)
        boto3_session = self.aioboto3_session(required=False)
        if boto3_session is None:
            return _shared(await open_client(self._session, kwargs))
        client = await build_off_loop(lambda: boto3_session.client(**kwargs).__aenter__(), _exit)
        return _shared(client)

    async def close(self, kind: str, client: Any) -> None:
        if kind == "resource":
            await client.__aexit__(None, None, None)
        else:
            await client.close()


def _shared(client: Any) -> Any:
    """``client``, made safe to share: ``async with client:`` no longer closes it.

    A pooled or pinned client belongs to the session, which closes it; a task entering it
    must not close it for every other task (aiobotocore 2.x would, silently; 3.x fails an
    assertion). Its class becomes a subclass whose ``__aenter__``/``__aexit__`` do nothing;
    ``isinstance`` and every method are unchanged. The pool closes it with ``close()``.
    """
    cls = type(client)

    async def aenter(self: Any) -> Any:
        return self

    async def aexit(self: Any, *exc_info: object) -> None:
        return None

    client.__class__ = type(
        cls.__name__,
        (cls,),
        {"__aenter__": aenter, "__aexit__": aexit, "__module__": cls.__module__},
    )
    return client


class PrivateClient:
    """One client per event loop that only aiorefresh uses (the STS client of a fetcher).

    Made on first use on each loop from ``session_factory()``, reused for every call there,
    closed by `aclose` or when its loop shuts down.
    """

    def __init__(
        self, service: str, session_factory: Callable[[], AioSession], kwargs: Mapping[str, Any]
    ) -> None:
        self._service = service
        self._session_factory = session_factory
        self._kwargs = dict(kwargs)
        self._clients: PerLoop[_Slot] = PerLoop(lambda loop: _Slot(), on_shutdown=_Slot.aclose)

    async def get(self) -> Any:
        """This loop's client (created on first use)."""
        slot = self._clients.get()
        if slot.client is None:
            client = await open_client(
                self._session_factory(), {"service_name": self._service, **self._kwargs}
            )
            if not slot.take(client):  # another task of this loop won the race
                await close_client(client)
        return slot.client

    async def aclose(self) -> None:
        """Close this loop's client (other loops close theirs, or at their shutdown)."""
        slot = self._clients.pop()
        if slot is not None:
            await slot.aclose()


class _Slot:
    __slots__ = ("client",)

    def __init__(self) -> None:
        self.client: Any = None

    def take(self, client: Any) -> bool:
        """Keep ``client`` unless the slot already has one; returns whether it was kept."""
        if self.client is not None:
            return False
        self.client = client
        return True

    async def aclose(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await close_client(client)


# -- the ExpiredToken retry -------------------------------------------------------------------

_SIGNING_KEY = "aiorefresh_signing_key"
_CREDENTIAL_SCOPE = re.compile(r"Credential=([A-Z0-9]+)/")
EXPIRED_TOKEN_CODES = frozenset({"ExpiredToken", "ExpiredTokenException"})
REQUEST_CREATED = "request-created"
NEEDS_RETRY = "needs-retry"


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


def error_code(response: object) -> str | None:
    """The AWS error code of a ``needs-retry`` response tuple ``(http, parsed)``, if any."""
    parsed = response[1] if isinstance(response, tuple) and len(response) > 1 else None
    if not isinstance(parsed, dict):
        return None
    error = parsed.get("Error")
    code = error.get("Code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


class ExpiredTokenRetry:
    """Retries a request once, with fresh credentials, when AWS answers ExpiredToken for keys
    the engine issued (keys revoked or expired early); other keys are left alone."""

    def __init__(self, engine: RefreshEngine, name: str) -> None:
        self._engine = engine
        self._name = name

    def install(self, session: AioSession) -> Callable[[], None]:
        """Register on ``session``'s emitter; returns the function that unregisters."""
        emitter = session.get_component("event_emitter")
        # after the signer, which is also a request-created handler
        emitter.register_last(REQUEST_CREATED, _remember_signing_key)
        emitter.register_first(NEEDS_RETRY, self.handle)

        def uninstall() -> None:
            emitter.unregister(REQUEST_CREATED, _remember_signing_key)
            emitter.unregister(NEEDS_RETRY, self.handle)

        return uninstall

    async def handle(self, **kwargs: Any) -> int | None:
        """botocore asks every needs-retry handler; the first non-None answer is the delay."""
        response = kwargs.get("response")
        if kwargs.get("attempts") != 1 or not response:
            return None
        code = error_code(response)
        if code not in EXPIRED_TOKEN_CODES:
            return None
        context = (kwargs.get("request_dict") or {}).get("context") or {}
        signed_with = context.get(_SIGNING_KEY)
        if signed_with is None or not self._engine.issued(signed_with):
            return None  # a client with explicit keys: nothing of ours to refresh
        if self._engine.invalidate(signed_with):
            logger.info("%s: AWS answered %s; refreshing and retrying once", self._name, code)
        return 0


# -- errors -----------------------------------------------------------------------------------

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
