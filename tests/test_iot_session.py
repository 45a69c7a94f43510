"""The iot method through RefreshableSession: engine, pool and lifecycle over real mTLS, and
endpoint discovery with a profile's keys and region."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from _iot_fetcher_helpers import free_port, write_device_profile
from aiorefresh import (
    ConfigurationError,
    IoTCredentialError,
    RefreshableSession,
)
from aiorefresh._aiobotocore import _discovery
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


# --------------------------------------------------------------------------- discovery


class DescribeEndpoint:
    """A loopback stand-in for ``iot:DescribeEndpoint``: answers with the IoT server's address
    and records each request's SigV4 credential scope (key id, region)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.scopes: list[tuple[str, str]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        scope = re.search(r"Credential=([^/]+)/\d{8}/([^/]+)/", request.headers["Authorization"])
        assert scope is not None, "DescribeEndpoint was not signed"
        self.scopes.append((scope[1], scope[2]))
        assert request.path == "/endpoint"
        assert request.query["endpointType"] == "iot:CredentialProvider"
        return web.json_response({"endpointAddress": self.address})


@pytest.fixture
async def describe_endpoint(iot_server: IoTCredentialsServer) -> AsyncIterator[DescribeEndpoint]:
    standin = DescribeEndpoint(iot_server.endpoint.removeprefix("https://"))
    app = web.Application()
    app.router.add_get("/endpoint", standin.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", free_port())
    await site.start()
    standin.url = site.name
    yield standin
    await runner.cleanup()


@pytest.fixture
def device_profile(
    aws_env: object,
    describe_endpoint: DescribeEndpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """A profile ``device`` with its own keys, region (ap-southeast-2) and endpoint_url (the
    DescribeEndpoint stand-in); the environment has no keys and no region."""
    return write_device_profile(tmp_path, monkeypatch, endpoint_url=describe_endpoint.url)


def discovering_session(
    server: IoTCredentialsServer, clock: FrozenClock, profile_name: str
) -> RefreshableSession:
    return RefreshableSession(
        method="iot",
        profile_name=profile_name,
        discover_endpoint=True,
        role_alias="edge-role",
        certificate=server.client_cert_pem,
        private_key=server.client_key_pem,
        ca=server.ca_pem,
        clock=clock,
    )


async def test_session_discovers_the_endpoint_with_the_profiles_keys_and_region(
    iot_server: IoTCredentialsServer,
    frozen_clock: FrozenClock,
    describe_endpoint: DescribeEndpoint,
    device_profile: str,
) -> None:
    async with discovering_session(iot_server, frozen_clock, device_profile) as session:
        assert session.fetcher.endpoint is None  # type: ignore[attr-defined]
        creds = await session.refreshable_credentials()
        assert session.fetcher.endpoint == iot_server.endpoint  # type: ignore[attr-defined]

    assert describe_endpoint.scopes == [("AKIADEVICEPROFILE001", "ap-southeast-2")]
    assert creds.expiry_time == frozen_clock() + timedelta(hours=1)
    assert iot_server.count() == 1


async def test_the_discovery_client_is_created_off_the_event_loop(
    iot_server: IoTCredentialsServer,
    frozen_clock: FrozenClock,
    describe_endpoint: DescribeEndpoint,
    device_profile: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created: list[tuple[str | None, int, asyncio.AbstractEventLoop]] = []
    new_session = _discovery.new_session

    def spy(*, profile_name: str | None = None, region_name: str | None = None) -> Any:
        session = new_session(profile_name=profile_name, region_name=region_name)

        def note(**kwargs: Any) -> None:
            created.append((profile_name, threading.get_ident(), asyncio.get_running_loop()))

        session.register("creating-client-class.iot", note)
        return session

    monkeypatch.setattr(_discovery, "new_session", spy)
    async with discovering_session(iot_server, frozen_clock, device_profile) as session:
        await session.refreshable_credentials()

    ((profile, thread, loop),) = created
    assert profile == device_profile
    assert thread != threading.get_ident()
    assert loop is not asyncio.get_running_loop()
    assert describe_endpoint.scopes == [("AKIADEVICEPROFILE001", "ap-southeast-2")]
