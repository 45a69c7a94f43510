"""The iot method through RefreshableSession: engine, pool and lifecycle over real mTLS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from aiorefresh import (
    ConfigurationError,
    IoTCredentialError,
    RefreshableSession,
)
from aiorefresh.testing import FrozenClock, IoTCredentialsServer


@pytest.fixture
async def iot_server(frozen_clock: FrozenClock) -> AsyncIterator[IoTCredentialsServer]:
    async with IoTCredentialsServer(
        role_alias="edge-role", clock=frozen_clock, lifetime=timedelta(hours=1)
    ) as server:
        yield server


def iot_session(server: IoTCredentialsServer, clock: FrozenClock, **kwargs: Any) -> Any:
    return RefreshableSession(
        endpoint=server.endpoint,
        role_alias="edge-role",
        certificate=server.client_cert_pem,
        private_key=server.client_key_pem,
        ca=server.ca_pem,
        clock=clock,
        **kwargs,
    )


async def test_iot_method_is_inferred_and_fetches_over_mtls(
    iot_server: IoTCredentialsServer, frozen_clock: FrozenClock
) -> None:
    async with iot_session(iot_server, frozen_clock) as session:
        assert type(session) is RefreshableSession
        assert session.method == "iot"
        creds = await session.refreshable_credentials()
    assert creds.expiry_time == frozen_clock() + timedelta(hours=1)
    assert iot_server.count() == 1


async def test_thousand_concurrent_callers_make_one_request(
    iot_server: IoTCredentialsServer, frozen_clock: FrozenClock
) -> None:
    async with iot_session(iot_server, frozen_clock) as session:
        results = await asyncio.gather(*(session.refreshable_credentials() for _ in range(1000)))
    assert len({r.access_key for r in results}) == 1
    assert iot_server.count() == 1


async def test_refresh_cycles_on_the_injected_clock(
    iot_server: IoTCredentialsServer, frozen_clock: FrozenClock
) -> None:
    async with iot_session(iot_server, frozen_clock) as session:
        keys = set()
        for _ in range(4):
            creds = await session.refreshable_credentials()
            keys.add(creds.access_key)
            frozen_clock.set(creds.expiry_time - timedelta(seconds=30))  # mandatory window
        assert len(keys) == 4
    assert iot_server.count() == 4


async def test_certificate_files_work_through_the_session(
    iot_server: IoTCredentialsServer, frozen_clock: FrozenClock, tmp_path: Path
) -> None:
    files = iot_server.write_files(tmp_path)
    async with RefreshableSession(
        method="iot",
        endpoint=iot_server.endpoint,
        role_alias="edge-role",
        certificate=files.certificate,
        private_key=files.private_key,
        ca=files.ca,
        clock=frozen_clock,
    ) as session:
        await session.refreshable_credentials()


async def test_forbidden_answer_is_non_recoverable_iot_error(
    iot_server: IoTCredentialsServer, frozen_clock: FrozenClock
) -> None:
    async with RefreshableSession(
        endpoint=iot_server.endpoint,
        role_alias="not-the-alias",
        certificate=iot_server.client_cert_pem,
        private_key=iot_server.client_key_pem,
        ca=iot_server.ca_pem,
        clock=frozen_clock,
    ) as session:
        with pytest.raises(IoTCredentialError) as info:
            await session.refreshable_credentials()
    assert info.value.status_code == 403


async def test_aclose_closes_the_http_session(
    iot_server: IoTCredentialsServer, frozen_clock: FrozenClock
) -> None:
    session = iot_session(iot_server, frozen_clock)
    async with session:
        await session.refreshable_credentials()
        http = session.fetcher._session()  # type: ignore[attr-defined]
        assert not http.closed
    assert http.closed


def test_sts_options_are_refused_for_iot(frozen_clock: FrozenClock) -> None:
    with pytest.raises(ConfigurationError, match="not an option of method 'iot'"):
        RefreshableSession(  # type: ignore[call-overload]
            method="iot",
            endpoint="https://abc.credentials.iot.us-east-1.amazonaws.com",
            role_alias="r",
            certificate=b"-----BEGIN CERTIFICATE-----",
            private_key=b"-----BEGIN PRIVATE KEY-----",
            assume_role_kwargs={"RoleArn": "arn:aws:iam::123456789012:role/x"},
        )


def test_data_endpoint_is_refused_in_the_constructor(
    iot_server: IoTCredentialsServer,
) -> None:
    with pytest.raises(ConfigurationError, match="describe-endpoint"):
        RefreshableSession(
            endpoint="abc123-ats.iot.us-east-1.amazonaws.com",
            role_alias="edge-role",
            certificate=iot_server.client_cert_pem,
            private_key=iot_server.client_key_pem,
        )
