"""The one module that touches aiobotocore's and botocore's private internals.

Each private name used here is listed in ``PRIVATE_SURFACE`` and checked by
``tests/test_aiobotocore_surface.py`` on both aiobotocore lines, so an upstream change of
shape fails loudly in CI instead of silently in production.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiobotocore.credentials import AioDeferredRefreshableCredentials
from aiobotocore.session import AioSession
from botocore.credentials import ReadOnlyCredentials

from ._types import TemporaryCredentials

if TYPE_CHECKING:
    from .credentials import RefreshEngine

__all__ = [
    "PRIVATE_SURFACE",
    "EngineCredentials",
    "credentials_expiry",
    "freeze",
    "install_credentials",
    "new_aiosession",
    "refuse_mfa_prompts",
    "session_credentials",
]

PRIVATE_SURFACE: dict[str, tuple[str, ...]] = {
    # AioSession.get_credentials() returns _credentials when it is set, else runs the chain.
    "aiobotocore.session.AioSession": ("_credentials",),
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
}


def freeze(creds: TemporaryCredentials) -> ReadOnlyCredentials:
    """botocore's immutable credentials tuple, which the request signer consumes."""
    return ReadOnlyCredentials(creds.access_key, creds.secret_key, creds.token, creds.account_id)


class EngineCredentials(AioDeferredRefreshableCredentials):  # type: ignore[misc]
    """aiobotocore refreshable credentials whose refresh decisions are aiorefresh's engine.

    aiobotocore's own windows (fixed 15/10 minutes), lock (bound to one event loop) and
    refresh path are bypassed: every read goes through the engine's lock-free fast path.
    """

    def __init__(self, engine: RefreshEngine, method: str) -> None:
        super().__init__(refresh_using=self._refuse, method=method, time_fetcher=engine.clock)
        self._engine = engine

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
        creds = await self._engine.get()
        self._access_key = creds.access_key
        self._secret_key = creds.secret_key
        self._token = creds.token
        self._account_id = creds.account_id
        self._expiry_time = creds.expiry_time
        self._frozen_credentials = freeze(creds)

    def refresh_needed(self, refresh_in: float | None = None) -> bool:
        current = self._engine.current
        return current is None or self._engine.clock() >= current.expiry_time

    def __repr__(self) -> str:
        return f"<EngineCredentials method={self.method!r}>"


def new_aiosession(
    *, profile_name: str | None = None, region_name: str | None = None
) -> AioSession:
    """A fresh aiobotocore session (no I/O until credentials or config are asked for)."""
    session = AioSession(profile=profile_name)
    if region_name is not None:
        session.set_config_variable("region", region_name)
    return session


def install_credentials(session: AioSession, credentials: Any) -> None:
    """Make ``session`` hand out ``credentials`` without running its provider chain."""
    session._credentials = credentials


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


def session_credentials(session: AioSession) -> Any:
    """The credentials object ``session`` holds now, without resolving the chain."""
    return session._credentials
