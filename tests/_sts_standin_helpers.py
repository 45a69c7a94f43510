"""Shared by the STSStandIn tests (test_sts_standin*.py), and loaded by conftest.py as a plugin
for its ``sts`` fixture (a running stand-in on the frozen clock): real aiobotocore STS clients
and unsigned raw POSTs pointed at a stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from aiorefresh.testing import AWS_TEST_ENV, FrozenClock, STSStandIn

ROLE_ARN = "arn:aws:iam::210987654321:role/team/Deployer"
USER_KEY = AWS_TEST_ENV["AWS_ACCESS_KEY_ID"]
USER_SECRET = AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"]
NO_RETRIES = AioConfig(retries={"max_attempts": 0})


@pytest.fixture
async def sts(frozen_clock: FrozenClock) -> AsyncIterator[STSStandIn]:
    async with STSStandIn(clock=frozen_clock) as standin:
        yield standin


@asynccontextmanager
async def client_for(
    standin: STSStandIn,
    *,
    access_key: str = USER_KEY,
    secret_key: str = USER_SECRET,
    token: str | None = None,
    config: AioConfig = NO_RETRIES,
) -> AsyncIterator[Any]:
    """A real aiobotocore STS client pointed at the stand-in."""
    session = AioSession()
    async with session.create_client(
        "sts",
        region_name="us-east-1",
        endpoint_url=standin.endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=token,
        config=config,
    ) as client:
        yield client


async def post(standin: STSStandIn, action: str = "GetCallerIdentity") -> tuple[int, str]:
    """An unsigned raw POST: the status and body, whatever the stand-in answers."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(standin.endpoint_url, data={"Action": action}) as response,
    ):
        return response.status, await response.text()


async def assume_role(standin: STSStandIn, **params: Any) -> dict[str, Any]:
    async with client_for(standin) as client:
        answer: dict[str, Any] = await client.assume_role(
            RoleArn=ROLE_ARN, RoleSessionName="ci", **params
        )
        return answer
