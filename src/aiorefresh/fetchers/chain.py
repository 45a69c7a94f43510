"""Source credentials from aiobotocore's default provider chain, resolved once per session."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from aiobotocore.session import AioSession

from .. import _aiobotocore
from .._types import TemporaryCredentials
from ..errors import CredentialRefreshError

__all__ = ["ChainFetcher"]

_NEVER = datetime.max.replace(tzinfo=timezone.utc)


class ChainFetcher:
    """Reads credentials from a plain aiobotocore session's provider chain.

    The chain (environment, shared files, container, instance metadata) runs once; after that
    each call reads the resolved provider, which refreshes itself when it can expire. Static
    keys never expire.
    """

    def __init__(self, source: Callable[[], AioSession]) -> None:
        self._source_factory = source
        self._source: AioSession | None = None
        self._resolved: Any = None

    @property
    def source_session(self) -> AioSession:
        """The plain aiobotocore session the chain runs in (created on first use, no I/O)."""
        if self._source is None:
            self._source = self._source_factory()
        return self._source

    async def __call__(self) -> TemporaryCredentials:
        creds = self._resolved
        if creds is None:
            creds = await self.source_session.get_credentials()
            if creds is None:
                raise CredentialRefreshError(
                    "no AWS credentials found in the default chain (environment, shared "
                    "credentials and config files, container or instance metadata)"
                )
            self._resolved = creds
        frozen = await creds.get_frozen_credentials()
        return TemporaryCredentials(
            access_key=frozen.access_key,
            secret_key=frozen.secret_key,
            token=frozen.token,
            expiry_time=_aiobotocore.credentials_expiry(creds) or _NEVER,
            account_id=getattr(frozen, "account_id", None),
        )
