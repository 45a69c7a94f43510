"""retry_on_expired_token: an ExpiredToken answer refreshes the credentials and retries once."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from aiorefresh import RefreshableSession
from aiorefresh.testing import CountingFetcher, STSStandIn


async def test_expired_token_answer_refreshes_and_retries_once(
    aws_env: Any, sts_standin: STSStandIn, counting_fetcher: CountingFetcher
) -> None:
    async with RefreshableSession(
        custom_credentials_method=counting_fetcher, clock=counting_fetcher.clock
    ) as session:
        async with session.client("sts", endpoint_url=sts_standin.endpoint_url) as sts:
            await sts.get_caller_identity()
            sts_standin.script("expired_token", action="GetCallerIdentity")
            await sts.get_caller_identity()
    calls = [r for r in sts_standin.requests if r.action == "GetCallerIdentity"]
    assert [r.access_key for r in calls] == ["ASIATEST000001", "ASIATEST000001", "ASIATEST000002"]
    assert counting_fetcher.calls == 2


async def test_second_expired_token_answer_is_raised(
    aws_env: Any, sts_standin: STSStandIn, counting_fetcher: CountingFetcher
) -> None:
    async with RefreshableSession(
        custom_credentials_method=counting_fetcher, clock=counting_fetcher.clock
    ) as session:
        sts_standin.script(*["expired_token"] * 10, action="GetCallerIdentity")
        async with session.client("sts", endpoint_url=sts_standin.endpoint_url) as sts:
            with pytest.raises(ClientError, match="ExpiredToken"):
                await sts.get_caller_identity()
    assert counting_fetcher.calls == 2


async def test_retry_can_be_turned_off(
    aws_env: Any, sts_standin: STSStandIn, counting_fetcher: CountingFetcher
) -> None:
    async with RefreshableSession(
        custom_credentials_method=counting_fetcher,
        clock=counting_fetcher.clock,
        retry_on_expired_token=False,
        default_client_kwargs={"config": _no_retries()},
    ) as session:
        sts_standin.script("expired_token", action="GetCallerIdentity")
        async with session.client("sts", endpoint_url=sts_standin.endpoint_url) as sts:
            with pytest.raises(ClientError, match="ExpiredToken"):
                await sts.get_caller_identity()
    assert counting_fetcher.calls == 1


def _no_retries() -> Any:
    from aiobotocore.config import AioConfig

    return AioConfig(retries={"total_max_attempts": 1})
