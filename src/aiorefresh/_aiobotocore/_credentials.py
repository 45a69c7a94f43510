"""Credentials shapes: the engine-backed aiobotocore credentials object and its installation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiobotocore.credentials import AioDeferredRefreshableCredentials
from aiobotocore.session import AioSession
from botocore.credentials import ReadOnlyCredentials

from .._types import NEVER, TemporaryCredentials

if TYPE_CHECKING:
    from .._engine import RefreshEngine

__all__ = [
    "EngineCredentials",
    "credentials_expiry",
    "freeze",
    "install_credentials",
    "refuse_mfa_prompts",
    "session_credentials",
]


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
        engine.subscribe(self._adopt)  # fields follow every new set, at no cost to reads

    @staticmethod
    def _refuse() -> None:  # pragma: no cover - never called: _refresh is replaced
        raise RuntimeError("aiorefresh credentials are refreshed by their engine")

    @property
    def engine(self) -> RefreshEngine:
        """The engine behind these credentials."""
        return self._engine

    async def get_frozen_credentials(self) -> ReadOnlyCredentials:
        frozen: ReadOnlyCredentials = await self._engine.get_frozen()
        return frozen

    async def _refresh(self) -> None:
        await self._engine.get()  # a new set reaches _adopt through the subscription

    def _adopt(self, creds: TemporaryCredentials, frozen: Any = None) -> None:
        self._access_key = creds.access_key
        self._secret_key = creds.secret_key
        self._token = creds.token
        self._account_id = creds.account_id
        self._expiry_time = None if creds.expiry_time == NEVER else creds.expiry_time
        ready = isinstance(frozen, ReadOnlyCredentials)
        self._frozen_credentials = frozen if ready else freeze(creds)

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
