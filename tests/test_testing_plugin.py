"""The pytest plugin: fixtures for any runner and loop scope, a sealed aws_env, debug-mode moto,
and refreshable_session: sessions pointed at moto, closed when the test ends.

Runner and environment behaviour is checked in inner pytest sessions (``pytester``): in the
same process where the outer test can see the environment afterwards, in a subprocess where
the interpreter itself must start in asyncio debug mode.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import ssl
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiobotocore.session import AioSession

from aiorefresh import utc_now
from aiorefresh.errors import ConfigurationError, ValidationError
from aiorefresh.testing import (
    AWS_TEST_ENV,
    CountingFetcher,
    FrozenClock,
    IoTCredentialsServer,
    MotoServer,
    RefreshableSessionFactory,
    STSStandIn,
)
from aiorefresh.testing._moto import _single_server_header

pytest_plugins = ["pytester"]

INNER_CONFTEST = '''
import asyncio
import ssl

import aiohttp
from aiobotocore.session import AioSession

pytest_plugins = ["aiorefresh.testing"]


async def _use_both(sts, iot, tmp_path):
    async with AioSession().create_client(
        "sts", region_name="us-east-1", endpoint_url=sts.endpoint_url
    ) as client:
        await client.get_caller_identity()
    files = iot.write_files(tmp_path)
    context = ssl.create_default_context(cafile=str(files.ca))
    context.load_cert_chain(files.certificate, files.private_key)
    url = iot.endpoint + "/role-aliases/aiorefresh-test/credentials"
    async with aiohttp.ClientSession() as http, http.get(url, ssl=context) as response:
        assert response.status == 200
    assert (sts.count("GetCallerIdentity"), iot.count()) == (1, 1)


async def use_both(sts, iot, tmp_path):
    """A real call to each stand-in; a server on a loop that is not running would hang here."""
    await asyncio.wait_for(_use_both(sts, iot, tmp_path), 20)
'''

INNER_INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
"""


def inner_session(pytester: pytest.Pytester, test: str) -> None:
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makeini(INNER_INI)
    pytester.makepyfile(test_inner=test)


async def issue_iot_credentials(server: IoTCredentialsServer, tmp_path: Path) -> dict[str, Any]:
    files = server.write_files(tmp_path)
    context = ssl.create_default_context(cafile=str(files.ca))
    context.load_cert_chain(files.certificate, files.private_key)
    url = server.endpoint + "/role-aliases/aiorefresh-test/credentials"
    async with aiohttp.ClientSession() as http, http.get(url, ssl=context) as response:
        body: dict[str, Any] = await response.json()
        return body


# ------------------------------------------------------------------- the stand-in fixtures


async def test_sts_standin_issues_credentials_on_frozen_clock(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    async with AioSession().create_client(
        "sts", region_name="us-east-1", endpoint_url=sts_standin.endpoint_url
    ) as client:
        answer = await client.assume_role(
            RoleArn="arn:aws:iam::123456789012:role/app", RoleSessionName="ci"
        )

    assert answer["Credentials"]["Expiration"] == frozen_clock() + timedelta(hours=1)


async def test_iot_server_issues_credentials_on_frozen_clock(
    iot_server: IoTCredentialsServer, frozen_clock: FrozenClock, tmp_path: Path
) -> None:
    body = await issue_iot_credentials(iot_server, tmp_path)

    expected = frozen_clock() + timedelta(hours=1)
    assert body["credentials"]["expiration"] == expected.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_iot_server_serves_a_sync_test(iot_server: IoTCredentialsServer, tmp_path: Path) -> None:
    body = asyncio.run(issue_iot_credentials(iot_server, tmp_path))

    assert body["credentials"]["accessKeyId"].startswith("ASIAIOT")


@pytest.mark.parametrize("mode", ["strict", "auto"])
@pytest.mark.parametrize("loop_scope", ["function", "class", "module", "package", "session"])
def test_stand_in_fixtures_serve_pytest_asyncio_tests_of_any_loop_scope(
    pytester: pytest.Pytester, mode: str, loop_scope: str
) -> None:
    inner_session(
        pytester,
        f"""
import pytest
from conftest import use_both


class TestInner:
    @pytest.mark.asyncio(loop_scope={loop_scope!r})
    async def test_inner(self, aws_env, sts_standin, iot_server, tmp_path):
        await use_both(sts_standin, iot_server, tmp_path)
""",
    )

    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-o", f"asyncio_mode={mode}")

    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    "asyncio_plugin",
    [("-p", "no:asyncio"), ("-o", "asyncio_mode=strict")],
    ids=["anyio-alone", "beside-pytest-asyncio"],
)
def test_stand_in_fixtures_serve_anyio_plugin_tests(
    pytester: pytest.Pytester, asyncio_plugin: tuple[str, str]
) -> None:
    inner_session(
        pytester,
        """
import pytest
from conftest import use_both


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_inner(aws_env, sts_standin, iot_server, frozen_clock, tmp_path):
    await use_both(sts_standin, iot_server, tmp_path)
""",
    )

    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *asyncio_plugin)

    result.assert_outcomes(passed=1)


# ------------------------------------------------------------------------------ aws_env

REACHING_AWS = [
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_IOT",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ACCOUNT_ID",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_CREDENTIAL_FILE",
]


@pytest.mark.parametrize("name", REACHING_AWS)
def test_aws_env_removes_a_variable_that_could_reach_aws_and_restores_it_after(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "from-the-developers-machine")
    inner_session(
        pytester,
        f"""
import os


def test_inner(aws_env):
    assert {name!r} not in os.environ
""",
    )

    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)
    assert os.environ[name] == "from-the-developers-machine"


@pytest.mark.parametrize("name", sorted(AWS_TEST_ENV))
def test_aws_env_replaces_a_real_setting_with_the_fake_one_and_restores_it_after(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "from-the-developers-machine")
    inner_session(
        pytester,
        f"""
import os

from aiorefresh.testing import AWS_TEST_ENV


def test_inner(aws_env):
    assert os.environ[{name!r}] == AWS_TEST_ENV[{name!r}]
""",
    )

    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)
    assert os.environ[name] == "from-the-developers-machine"


def test_aws_env_leaves_variables_outside_aws_alone(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setenv("AIOREFRESH_UNRELATED", "kept")

    request.getfixturevalue("aws_env")

    assert os.environ["AIOREFRESH_UNRELATED"] == "kept"


# --------------------------------------------------------------------- moto in debug mode


def test_moto_server_answers_with_a_single_server_header(moto_server: MotoServer) -> None:
    url = urlsplit(moto_server.endpoint_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        connection.request(
            "POST",
            "/",
            body="Action=GetCallerIdentity&Version=2011-06-15",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20300101/"
                "us-east-1/sts/aws4_request, SignedHeaders=host, Signature=0",
            },
        )
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()

    assert response.status == 200
    assert len(response.headers.get_all("Server") or []) == 1


def test_moto_server_serves_aiobotocore_in_asyncio_debug_mode(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONASYNCIODEBUG", "1")
    inner_session(
        pytester,
        """
import aiohttp.helpers
from aiobotocore.session import AioSession


async def test_inner(aws_env, moto_server):
    assert aiohttp.helpers.DEBUG  # aiohttp's strict parser is on
    session = AioSession()
    async with session.create_client("s3", endpoint_url=moto_server.endpoint_url) as s3:
        await s3.create_bucket(Bucket="debug-mode")
        await s3.put_object(Bucket="debug-mode", Key="k", Body=b"v")
        answer = await s3.get_object(Bucket="debug-mode", Key="k")
        assert await answer["Body"].read() == b"v"
    async with session.create_client("sts", endpoint_url=moto_server.endpoint_url) as sts:
        assert (await sts.get_caller_identity())["Account"] == "123456789012"
""",
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "asyncio_mode=auto")

    result.assert_outcomes(passed=1)


def test_moto_server_it_cannot_fix_refuses_debug_mode_up_front(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("aiohttp.helpers.DEBUG", True)

    with pytest.raises(ConfigurationError, match="'Server' header twice"):
        _single_server_header(object())  # a moto whose WSGI app cannot be reached


# ------------------------------------------------------------------- refreshable_session

ROLE_ARN = "arn:aws:iam::123456789012:role/app"


def assume_role_on_moto(factory: RefreshableSessionFactory, **options: Any) -> Any:
    """An STS session on moto; moto stamps credentials with the real time, so the clock is."""
    options.setdefault("clock", FrozenClock(utc_now()))
    return factory(method="sts", assume_role_kwargs={"RoleArn": ROLE_ARN}, **options)


async def test_refreshable_session_assumes_the_role_on_moto_and_asks_moto_who_it_is(
    refreshable_session: RefreshableSessionFactory,
) -> None:
    async with assume_role_on_moto(refreshable_session) as session:
        identity = await session.whoami()

    # moto issued the keys (private STS client) and recognised them (whoami's pooled client).
    assert identity.arn.startswith("arn:aws:sts::123456789012:assumed-role/app/")


async def test_refreshable_session_points_pooled_clients_at_moto(
    refreshable_session: RefreshableSessionFactory, moto_server: MotoServer
) -> None:
    async with assume_role_on_moto(refreshable_session) as session:
        async with session.client("s3") as s3:
            await s3.create_bucket(Bucket="pooled-on-moto")
            names = [b["Name"] for b in (await s3.list_buckets())["Buckets"]]

    assert s3.meta.endpoint_url == moto_server.endpoint_url
    assert "pooled-on-moto" in names


async def test_refreshable_session_keeps_an_sts_endpoint_the_test_gives(
    refreshable_session: RefreshableSessionFactory, sts_standin: STSStandIn
) -> None:
    async with refreshable_session(
        method="sts",
        assume_role_kwargs={"RoleArn": ROLE_ARN},
        sts_client_kwargs={"endpoint_url": sts_standin.endpoint_url},
        clock=FrozenClock(),
    ) as session:
        await session.refreshable_credentials()

    assert sts_standin.count("AssumeRole") == 1


async def test_refreshable_session_keeps_client_options_the_test_gives(
    refreshable_session: RefreshableSessionFactory, moto_server: MotoServer
) -> None:
    async with (
        refreshable_session(default_client_kwargs={"region_name": "eu-west-1"}) as session,
        session.client("s3") as s3,
    ):
        pass

    assert (s3.meta.region_name, s3.meta.endpoint_url) == ("eu-west-1", moto_server.endpoint_url)


async def test_refreshable_session_points_every_other_client_at_moto(
    refreshable_session: RefreshableSessionFactory, moto_server: MotoServer
) -> None:
    async with AioSession().create_client("sqs") as plain:
        pass

    assert plain.meta.endpoint_url == moto_server.endpoint_url


async def test_refreshable_session_takes_a_fetcher_and_points_its_clients_at_moto(
    refreshable_session: RefreshableSessionFactory,
    counting_fetcher: CountingFetcher,
    moto_server: MotoServer,
) -> None:
    async with refreshable_session(fetcher=counting_fetcher) as session:
        credentials = await session.refreshable_credentials()
        async with session.client("s3") as s3:
            await s3.list_buckets()

    assert credentials.access_key == "ASIATEST000001"
    assert s3.meta.endpoint_url == moto_server.endpoint_url


async def test_refreshable_session_refuses_iot_without_an_endpoint(
    refreshable_session: RefreshableSessionFactory, iot_server: IoTCredentialsServer
) -> None:
    with pytest.raises(ConfigurationError, match=r"method='iot'\) needs endpoint="):
        refreshable_session(
            role_alias="aiorefresh-test",
            certificate=iot_server.client_cert_pem,
            private_key=iot_server.client_key_pem,
            discover_endpoint=True,
        )


async def test_refreshable_session_leaves_bad_options_to_the_sessions_own_checks(
    refreshable_session: RefreshableSessionFactory,
) -> None:
    with pytest.raises(ValidationError, match="sts_client_kwargs"):
        refreshable_session(assume_role_kwargs={"RoleArn": ROLE_ARN}, sts_client_kwargs="moto")


def test_refreshable_session_needs_the_tests_event_loop(
    refreshable_session: RefreshableSessionFactory,
) -> None:
    with pytest.raises(ConfigurationError, match="refreshable_session fixture needs a running"):
        refreshable_session()


LEFT_OPEN = """
import gc
import weakref

import aiohttp
import pytest

ROLE = {"RoleArn": "arn:aws:iam::123456789012:role/app"}
SESSIONS = []
BEFORE = weakref.WeakSet()


def open_client_sessions():
    gc.collect()
    found = [o for o in gc.get_objects() if issubclass(type(o), aiohttp.ClientSession)]
    return [session for session in found if not session.closed]


async def use(session):
    # AssumeRole on the private STS client, GetCallerIdentity and S3 on two pooled clients.
    await session.whoami()
    async with session.client("s3") as s3:
        await s3.list_buckets()


async def uses_sessions(refreshable_session, fail=False):
    BEFORE.update(open_client_sessions())
    left_open = refreshable_session(method="sts", assume_role_kwargs=ROLE)
    SESSIONS.append(left_open)
    await use(left_open)
    async with refreshable_session(method="sts", assume_role_kwargs=ROLE) as closed:
        SESSIONS.append(closed)
        await use(closed)
    assert not fail, "the test fails"


def every_session_was_closed():
    assert [session.closed for session in SESSIONS] == [True, True]
    assert [session.pool.stats().closes for session in SESSIONS] == [2, 2]
    assert [s for s in open_client_sessions() if s not in BEFORE] == []
"""


@pytest.mark.parametrize("loop_scope", ["function", "class", "module", "package", "session"])
def test_refreshable_session_closes_sessions_at_the_end_of_pytest_asyncio_tests_of_any_loop_scope(
    pytester: pytest.Pytester, loop_scope: str
) -> None:
    inner_session(
        pytester,
        LEFT_OPEN
        + f"""

class TestInner:
    @pytest.mark.asyncio(loop_scope={loop_scope!r})
    async def test_uses_sessions(self, refreshable_session):
        await uses_sessions(refreshable_session)


def test_every_session_was_closed():
    every_session_was_closed()
""",
    )

    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-o", "asyncio_mode=strict")

    result.assert_outcomes(passed=2)


@pytest.mark.parametrize("loop_scope", ["function", "module"])
def test_refreshable_session_closes_sessions_at_the_end_of_a_failing_test(
    pytester: pytest.Pytester, loop_scope: str
) -> None:
    inner_session(
        pytester,
        LEFT_OPEN
        + f"""

@pytest.mark.asyncio(loop_scope={loop_scope!r})
async def test_uses_sessions_and_fails(refreshable_session):
    await uses_sessions(refreshable_session, fail=True)


def test_every_session_was_closed():
    every_session_was_closed()
""",
    )

    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-o", "asyncio_mode=auto")

    result.assert_outcomes(passed=1, failed=1)


@pytest.mark.parametrize("backend_scope", ["function", "module"])
@pytest.mark.parametrize(
    "asyncio_plugin",
    [("-p", "no:asyncio"), ("-o", "asyncio_mode=strict")],
    ids=["anyio-alone", "beside-pytest-asyncio"],
)
def test_refreshable_session_closes_sessions_at_the_end_of_anyio_plugin_tests(
    pytester: pytest.Pytester, asyncio_plugin: tuple[str, str], backend_scope: str
) -> None:
    inner_session(
        pytester,
        LEFT_OPEN
        + f"""

@pytest.fixture(scope={backend_scope!r})
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_uses_sessions(refreshable_session):
    await uses_sessions(refreshable_session)


def test_every_session_was_closed():
    every_session_was_closed()
""",
    )

    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *asyncio_plugin)

    result.assert_outcomes(passed=2)
