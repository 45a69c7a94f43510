"""The ``iot`` fetcher's endpoint discovery: DescribeEndpoint with the environment's or a profile's
keys and region, refused and unreachable discoveries (never showing the answer body), and the
fetcher discovering its endpoint once."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from _iot_fetcher_helpers import (
    SECRET,
    MakeFetcher,
    fetch_error,
    free_port,
    shown,
    write_device_profile,
)
from aiorefresh._fetchers.iot import discover_credentials_endpoint
from aiorefresh.errors import (
    IoTCredentialError,
    NonRecoverableCredentialError,
    NonRecoverableIoTError,
)
from aiorefresh.testing import IoTCredentialsServer, MotoServer


@pytest.fixture
async def plain_http() -> AsyncIterator[Callable[[web.Response], Awaitable[str]]]:
    """Start a plain HTTP server on loopback that gives every request one canned answer."""
    runners: list[web.AppRunner] = []

    async def start(answer: web.Response) -> str:
        async def handler(request: web.Request) -> web.Response:
            return answer

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", free_port())
        await site.start()
        return site.name

    yield start
    for runner in runners:
        await runner.cleanup()


# --------------------------------------------------------------------------- discovery


async def test_discover_credentials_endpoint_asks_describe_endpoint(
    aws_env: object, moto_server: MotoServer
) -> None:
    host = await discover_credentials_endpoint(
        region_name="eu-west-1", endpoint_url=moto_server.endpoint_url
    )

    assert re.fullmatch(r"[a-z0-9]+\.credentials\.iot\.eu-west-1\.amazonaws\.com", host)


async def test_discover_credentials_endpoint_honours_aws_endpoint_url_iot(
    aws_env: object, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_IOT", moto_server.endpoint_url)

    host = await discover_credentials_endpoint()

    assert host.endswith(".credentials.iot.us-east-1.amazonaws.com")


@pytest.fixture
def device_profile(aws_env: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A profile ``device`` (region ap-southeast-2, its own keys) in temporary AWS config
    files; the environment has no keys and no region, so only the profile can supply them."""
    return write_device_profile(tmp_path, monkeypatch)


async def test_discovery_uses_the_profiles_credentials_and_region(
    device_profile: str, moto_server: MotoServer
) -> None:
    host = await discover_credentials_endpoint(
        profile_name=device_profile, endpoint_url=moto_server.endpoint_url
    )

    assert host.endswith(".credentials.iot.ap-southeast-2.amazonaws.com")


async def test_an_explicit_region_overrides_the_profiles(
    device_profile: str, moto_server: MotoServer
) -> None:
    host = await discover_credentials_endpoint(
        profile_name=device_profile, region_name="eu-north-1", endpoint_url=moto_server.endpoint_url
    )

    assert host.endswith(".credentials.iot.eu-north-1.amazonaws.com")


async def test_discovery_with_an_unknown_profile_is_non_recoverable(
    device_profile: str, moto_server: MotoServer
) -> None:
    with pytest.raises(NonRecoverableIoTError, match="'no-such-profile'"):
        await discover_credentials_endpoint(
            profile_name="no-such-profile", endpoint_url=moto_server.endpoint_url
        )


async def test_discovery_without_a_region_is_non_recoverable(
    aws_env: object, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")

    with pytest.raises(NonRecoverableCredentialError, match="region"):
        await discover_credentials_endpoint(endpoint_url=moto_server.endpoint_url)


async def test_discovery_connection_failure_is_a_recoverable_iot_error(
    aws_env: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

    with pytest.raises(IoTCredentialError, match="discovering") as caught:
        await discover_credentials_endpoint(endpoint_url=f"http://127.0.0.1:{free_port()}")
    assert not isinstance(caught.value, NonRecoverableCredentialError)


async def test_discovery_access_denied_is_non_recoverable_with_status_and_code(
    aws_env: object,
    monkeypatch: pytest.MonkeyPatch,
    plain_http: Callable[[web.Response], Awaitable[str]],
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    url = await plain_http(
        web.json_response(
            {"message": "User is not authorized to perform: iot:DescribeEndpoint"},
            status=403,
            headers={"x-amzn-ErrorType": "AccessDeniedException:"},
        )
    )

    with pytest.raises(NonRecoverableIoTError) as caught:
        await discover_credentials_endpoint(endpoint_url=url)

    assert caught.value.status_code == 403
    assert caught.value.code == "AccessDeniedException"
    assert "iot:DescribeEndpoint" in str(caught.value)


async def test_a_refused_discovery_never_shows_the_answer_body(
    aws_env: object,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    plain_http: Callable[[web.Response], Awaitable[str]],
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiorefresh")  # botocore's DEBUG log shows bodies
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    url = await plain_http(
        web.Response(status=400, text=f"secretAccessKey={SECRET}", content_type="text/plain")
    )

    with pytest.raises(IoTCredentialError) as caught:
        await discover_credentials_endpoint(endpoint_url=url)

    assert caught.value.status_code == 400
    assert SECRET not in shown(caught.value, caplog)


async def test_fetcher_discovers_the_endpoint_once_and_caches_it(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    calls = 0

    async def discover() -> str:
        nonlocal calls
        calls += 1
        return server.endpoint

    fetcher = make_fetcher(endpoint=None, discover_endpoint=True, discover=discover)
    await fetcher()
    await fetcher()

    assert calls == 1
    assert fetcher.endpoint == server.endpoint
    assert server.count() == 2


async def test_discovered_data_endpoint_is_non_recoverable(make_fetcher: MakeFetcher) -> None:
    async def discover() -> str:
        return "a1b2c3-ats.iot.us-east-1.amazonaws.com"

    fetcher = make_fetcher(endpoint=None, discover_endpoint=True, discover=discover)
    error = await fetch_error(fetcher)

    assert isinstance(error, NonRecoverableCredentialError)
    assert fetcher.endpoint is None


async def test_failed_discovery_is_an_iot_error_and_is_retried_next_call(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    answers: list[BaseException | str] = [OSError("network is down"), server.endpoint]

    async def discover() -> str:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    fetcher = make_fetcher(endpoint=None, discover_endpoint=True, discover=discover)
    error = await fetch_error(fetcher)

    assert "network is down" in str(error)
    assert not isinstance(error, NonRecoverableCredentialError)
    assert (await fetcher()).access_key
