"""Credentials from aiobotocore's default provider chain, and from static keys."""

from __future__ import annotations

from collections.abc import Callable

import anyio.to_thread
from aiobotocore.session import AioSession

from .. import _aiobotocore
from .._types import NEVER, TemporaryCredentials
from ..errors import NoCredentialsFound

__all__ = ["ChainFetcher", "StaticFetcher"]


class ChainFetcher:
    """Reads credentials from a fresh aiobotocore session's provider chain on every call.

    The chain (environment, shared files, SSO, process, container, instance metadata) is
    resolved anew each time the engine asks, so credentials that can expire are fetched anew
    by `refresh()` and after an ExpiredToken answer, and nothing of one event loop is reused
    on another. The session (and its config files) is made in a worker thread: reading files
    never blocks the event loop.
    """

    method = "default"

    def __init__(self, source: Callable[[], AioSession]) -> None:
        self._source_factory = source

    def __repr__(self) -> str:
        return "ChainFetcher()"

    def _prepared_session(self) -> AioSession:
        session = self._source_factory()
        session.full_config  # noqa: B018 - parse the shared config files here, off the loop
        return session

    async def __call__(self) -> TemporaryCredentials:
        session = await anyio.to_thread.run_sync(self._prepared_session)
        creds = await session.get_credentials()
        if creds is None:
            raise NoCredentialsFound(
                "no AWS credentials found in the default chain (environment, shared "
                "credentials and config files, SSO, process, container or instance metadata)"
            )
        frozen = await creds.get_frozen_credentials()
        return TemporaryCredentials(
            access_key=frozen.access_key,
            secret_key=frozen.secret_key,
            token=frozen.token,
            expiry_time=_aiobotocore.credentials_expiry(creds) or NEVER,
            account_id=getattr(frozen, "account_id", None),
        )


class StaticFetcher:
    """Long-term keys given explicitly (``aws_access_key_id``...): they never expire."""

    method = "default"

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        token: str | None = None,
        account_id: str | None = None,
    ) -> None:
        self.credentials = TemporaryCredentials(
            access_key=access_key, secret_key=secret_key, token=token, account_id=account_id
        )
        """The keys, which never expire."""

    def __repr__(self) -> str:
        return f"StaticFetcher({self.credentials.access_key!r})"

    async def __call__(self) -> TemporaryCredentials:
        return self.credentials
