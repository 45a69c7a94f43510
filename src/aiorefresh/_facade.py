"""aioboto3.Session's calls on a `RefreshableSession`: clients, resources, configuration.

Spelled out with ``create_client``'s parameters, in its order, so editors and type checkers
show them; each delegates to the session's pool or its aiobotocore session.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiobotocore.session import AioSession

    from . import _aiobotocore
    from ._clients import ClientPool

__all__ = ["Aioboto3Calls"]


class Aioboto3Calls:
    """The client, resource and configuration calls of ``aioboto3.Session``."""

    pool: ClientPool
    _aiosession: AioSession
    _opener: _aiobotocore.ClientOpener
    _explicit_region: str | None
    _region_cache: str | None
    _profile_name: str | None

    def _check_open(self) -> None:
        raise NotImplementedError

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
        self._opener.aioboto3_session(required=True)
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

    # -- configuration ---------------------------------------------------------------------

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
        return list(self._opener.aioboto3_session(required=True).get_available_resources())

    def get_partition_for_region(self, region_name: str) -> str:
        """The partition a region belongs to (``aws``, ``aws-cn``, ``aws-us-gov``, ...)."""
        return str(self._aiosession.get_partition_for_region(region_name))

    @property
    def events(self) -> Any:
        """The event emitter of the aiobotocore session (register handlers as with aioboto3)."""
        return self._aiosession.get_component("event_emitter")

    @property
    def botocore_session(self) -> AioSession:
        """The aiobotocore session underneath, whose credentials are this session's."""
        return self._aiosession
