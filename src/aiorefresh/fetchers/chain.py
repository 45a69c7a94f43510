"""Source credentials from aiobotocore's default provider chain, resolved once per event loop."""

from __future__ import annotations

import asyncio
import threading
import weakref
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

    The chain (environment, shared files, container, instance metadata) runs once per event
    loop: aiobotocore's resolved providers refresh behind an ``asyncio.Lock`` that belongs to
    one loop, so each loop gets its own. After that each call reads the resolved provider,
    which refreshes itself when it can expire. Static keys never expire.
    """

    def __init__(self, source: Callable[[], AioSession]) -> None:
        self._source_factory = source
        self._lock = threading.Lock()
        self._resolved: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    async def __call__(self) -> TemporaryCredentials:
        loop = asyncio.get_running_loop()
        with self._lock:
            creds = self._resolved.get(loop)
        if creds is None:
            creds = await self._source_factory().get_credentials()
            if creds is None:
                raise CredentialRefreshError(
                    "no AWS credentials found in the default chain (environment, shared "
                    "credentials and config files, container or instance metadata)"
                )
            with self._lock:
                self._resolved[loop] = creds
        frozen = await creds.get_frozen_credentials()
        return TemporaryCredentials(
            access_key=frozen.access_key,
            secret_key=frozen.secret_key,
            token=frozen.token,
            expiry_time=_aiobotocore.credentials_expiry(creds) or _NEVER,
            account_id=getattr(frozen, "account_id", None),
        )

    def forget_loop(self) -> None:
        """Drop what was resolved for the running loop (it is being closed)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._resolved.pop(loop, None)
