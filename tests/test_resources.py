"""aioboto3 resources through the pool (line A), and the clear error without the extra (line B)."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from aiorefresh import ConfigurationError, RefreshableSession
from aiorefresh.testing import CountingFetcher, MotoServer

HAS_AIOBOTO3 = importlib.util.find_spec("aioboto3") is not None


def session_for(fetcher: CountingFetcher, endpoint: str) -> Any:
    return RefreshableSession(
        custom_credentials_method=fetcher,
        clock=fetcher.clock,
        region_name="us-east-1",
        default_client_kwargs={"endpoint_url": endpoint},
    )


@pytest.mark.skipif(not HAS_AIOBOTO3, reason="resources need the aioboto3 extra (line A)")
async def test_resource_is_pooled_and_signs_with_session_credentials(
    aws_env: Any, moto_server: MotoServer, counting_fetcher: CountingFetcher
) -> None:
    async with session_for(counting_fetcher, moto_server.endpoint_url) as session:
        async with session.resource("s3") as s3:
            bucket = await s3.create_bucket(Bucket="aiorefresh-resource")
            await bucket.put_object(Key="hello", Body=b"world")
        async with session.resource("s3") as again:
            assert again is s3
            names = [o.key async for o in (await again.Bucket("aiorefresh-resource")).objects.all()]
        assert names == ["hello"]
        assert session.pool.stats().creations == 1
    assert counting_fetcher.calls == 1


@pytest.mark.skipif(not HAS_AIOBOTO3, reason="resources need the aioboto3 extra (line A)")
async def test_resources_and_clients_are_different_pool_entries(
    aws_env: Any, moto_server: MotoServer, counting_fetcher: CountingFetcher
) -> None:
    async with session_for(counting_fetcher, moto_server.endpoint_url) as session:
        async with session.resource("s3") as resource, session.client("s3") as client:
            assert resource is not client
        assert session.pool.stats().creations == 2
        assert "s3" in session.get_available_resources()


@pytest.mark.skipif(HAS_AIOBOTO3, reason="checks the error shown when aioboto3 is missing")
async def test_resource_without_aioboto3_names_the_extra(
    counting_fetcher: CountingFetcher,
) -> None:
    async with session_for(counting_fetcher, "http://127.0.0.1:9") as session:
        with pytest.raises(ConfigurationError, match=r"aiorefresh\[aioboto3\]"):
            session.resource("s3")
