"""The loopback credentials endpoint (`aiorefresh._serve.CredentialsEndpoint`).

Requests go over real sockets on 127.0.0.1, with aiohttp and with botocore's own container
provider; the session behind the endpoint runs on a `CountingFetcher` and a `FrozenClock`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from aiorefresh import ConfigurationError, RefreshableSession, ValidationError
from aiorefresh._serve import (
    CONTAINER_TOKEN,
    CONTAINER_URI,
    REMOVED_VARIABLES,
    CredentialsEndpoint,
)
from aiorefresh.testing import CountingFetcher, FrozenClock


@pytest.fixture
async def session(counting_fetcher: CountingFetcher) -> AsyncIterator[RefreshableSession]:
    async with RefreshableSession(
        custom_credentials_method=counting_fetcher,
        clock=counting_fetcher.clock,
        region_name="eu-west-1",
    ) as made:
        yield made


@pytest.fixture
async def endpoint(session: RefreshableSession) -> AsyncIterator[CredentialsEndpoint]:
    async with CredentialsEndpoint(session) as started:
        yield started


async def fetch(
    url: str, token: str | None, method: str = "GET"
) -> tuple[int, dict[str, Any] | None]:
    headers = {"Authorization": token} if token is not None else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, headers=headers) as answer,
    ):
        body = await answer.json(content_type=None) if method != "HEAD" else None
        return answer.status, body


async def arrived(condition: Callable[[], bool]) -> None:
    """Wait (on real socket I/O, at most 30 s) until ``condition()`` holds."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the requests did not arrive")


# -- what it answers ----------------------------------------------------------------------------


async def test_the_endpoint_answers_the_sessions_credentials_in_the_container_format(
    endpoint: CredentialsEndpoint, frozen_clock: FrozenClock
) -> None:
    status, body = await fetch(endpoint.url, endpoint.token)
    assert status == 200
    assert body is not None
    assert body["AccessKeyId"] == "ASIATEST000001"
    assert body["SecretAccessKey"] == "secret-1"
    assert body["Token"] == "token-1"
    assert body["AccountId"] == "123456789012"
    expiry = datetime.fromisoformat(body["Expiration"].replace("Z", "+00:00"))
    assert expiry == frozen_clock() + timedelta(hours=1)


async def test_the_expiration_is_utc_in_whole_seconds_rounded_down(
    session: RefreshableSession, counting_fetcher: CountingFetcher
) -> None:
    counting_fetcher.lifetime = timedelta(minutes=30, microseconds=999_999)
    async with CredentialsEndpoint(session) as endpoint:
        _, body = await fetch(endpoint.url, endpoint.token)
    assert body is not None
    assert body["Expiration"] == "2030-01-01T00:30:00Z"


async def test_each_request_gets_credentials_refreshed_by_the_engine(
    endpoint: CredentialsEndpoint, frozen_clock: FrozenClock, counting_fetcher: CountingFetcher
) -> None:
    _, first = await fetch(endpoint.url, endpoint.token)
    frozen_clock.advance(hours=2)  # the first set has expired
    _, second = await fetch(endpoint.url, endpoint.token)
    assert first is not None
    assert second is not None
    assert (first["AccessKeyId"], second["AccessKeyId"]) == ("ASIATEST000001", "ASIATEST000002")
    assert counting_fetcher.calls == 2


async def test_many_concurrent_requests_share_one_fetch(
    endpoint: CredentialsEndpoint, counting_fetcher: CountingFetcher
) -> None:
    counting_fetcher.gate = asyncio.Event()
    requests = [asyncio.ensure_future(fetch(endpoint.url, endpoint.token)) for _ in range(100)]
    await arrived(lambda: endpoint.waiting == 100)  # all of them, while the fetch is held
    counting_fetcher.gate.set()
    answers = await asyncio.gather(*requests)
    assert {status for status, _ in answers} == {200}
    assert {body["AccessKeyId"] for _, body in answers if body} == {"ASIATEST000001"}
    assert counting_fetcher.calls == 1
    assert endpoint.served == 100


async def test_a_failed_refresh_answers_503_naming_the_error_without_secrets(
    endpoint: CredentialsEndpoint, counting_fetcher: CountingFetcher
) -> None:
    counting_fetcher.fail_with = OSError("source down")
    status, body = await fetch(endpoint.url, endpoint.token)
    assert status == 503
    assert body is not None
    assert body["code"] == "CredentialRefreshError"
    assert "secret" not in str(body).lower()
    assert endpoint.token not in str(body)


async def test_long_term_keys_are_served_with_a_null_token_and_a_far_expiration(
    aws_env: Any,
) -> None:
    async with (
        RefreshableSession(aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="s") as session,
        CredentialsEndpoint(session) as endpoint,
    ):
        _, body = await fetch(endpoint.url, endpoint.token)
    assert body is not None
    assert body["Token"] is None
    assert body["Expiration"].startswith("9999-12-31T")
    assert "AccountId" not in body


# -- who may ask --------------------------------------------------------------------------------


async def test_a_request_without_the_token_is_refused_with_401(
    endpoint: CredentialsEndpoint, counting_fetcher: CountingFetcher
) -> None:
    status, body = await fetch(endpoint.url, None)
    assert status == 401
    assert body is not None
    assert "AccessKeyId" not in body
    assert counting_fetcher.calls == 0
    assert endpoint.refused == 1


async def test_a_request_with_a_wrong_token_is_refused_with_401(
    endpoint: CredentialsEndpoint,
) -> None:
    status, _ = await fetch(endpoint.url, endpoint.token[:-1] + "x")
    assert status == 401


async def test_a_request_without_the_token_is_refused_on_any_path(
    endpoint: CredentialsEndpoint,
) -> None:
    base = endpoint.url.rsplit("/", 1)[0]
    status, _ = await fetch(f"{base}/latest/meta-data/", None)
    assert status == 401


async def test_with_the_token_other_paths_answer_404_and_other_methods_405(
    endpoint: CredentialsEndpoint,
) -> None:
    base = endpoint.url.rsplit("/", 1)[0]
    assert (await fetch(f"{base}/other", endpoint.token))[0] == 404
    assert (await fetch(endpoint.url, endpoint.token, method="POST"))[0] == 405


async def test_every_endpoint_has_its_own_random_token_and_repr_hides_it(
    session: RefreshableSession,
) -> None:
    async with CredentialsEndpoint(session) as one, CredentialsEndpoint(session) as two:
        assert one.token != two.token
        assert len(one.token) >= 32
        assert one.token not in repr(one)
        assert one.url in repr(one)


async def test_a_given_token_is_the_one_required(session: RefreshableSession) -> None:
    async with CredentialsEndpoint(session, token="t" * 20) as endpoint:
        assert (await fetch(endpoint.url, "t" * 20))[0] == 200


# -- where it listens ---------------------------------------------------------------------------


async def test_it_listens_on_127_0_0_1(endpoint: CredentialsEndpoint) -> None:
    parts = urlsplit(endpoint.url)
    assert parts.scheme == "http"
    assert parts.hostname == "127.0.0.1"
    assert parts.path == "/credentials"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "localhost", "example.com"])
def test_a_host_that_is_not_a_loopback_address_is_refused(
    session: RefreshableSession, host: str
) -> None:
    with pytest.raises(ConfigurationError, match="host must be a loopback IP address"):
        CredentialsEndpoint(session, host=host)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"host": 127}, ValidationError),
        ({"port": "80"}, ValidationError),
        ({"port": 70000}, ConfigurationError),
        ({"token": "short"}, ConfigurationError),
        ({"token": "has a space in it, so no"}, ConfigurationError),
        ({"token": 12345678901234567890}, ValidationError),
    ],
)
def test_bad_options_are_refused_before_listening(
    session: RefreshableSession, options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        CredentialsEndpoint(session, **options)


async def test_after_aclose_the_port_refuses_connections(session: RefreshableSession) -> None:
    endpoint = CredentialsEndpoint(session)
    port = urlsplit(await endpoint.start()).port
    await endpoint.aclose()
    await endpoint.aclose()  # idempotent
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=5),
    ):
        pass


# -- the child's environment --------------------------------------------------------------------


async def test_child_environ_sets_the_uri_token_and_region_and_removes_keys_and_profiles(
    endpoint: CredentialsEndpoint,
) -> None:
    base = dict.fromkeys(REMOVED_VARIABLES, "stale") | {"PATH": "/bin", "AWS_CA_BUNDLE": "ca"}
    env = endpoint.child_environ(base)
    assert env[CONTAINER_URI] == endpoint.url
    assert env[CONTAINER_TOKEN] == endpoint.token
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert (env["PATH"], env["AWS_CA_BUNDLE"]) == ("/bin", "ca")
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        assert name not in env
    assert base["AWS_ACCESS_KEY_ID"] == "stale"  # the base is left as it was


def test_child_environ_needs_a_started_endpoint(session: RefreshableSession) -> None:
    with pytest.raises(RuntimeError, match="start the CredentialsEndpoint"):
        CredentialsEndpoint(session).child_environ({})


async def test_botocores_container_provider_reads_the_endpoint(
    endpoint: CredentialsEndpoint, frozen_clock: FrozenClock
) -> None:
    from botocore.credentials import ContainerProvider

    env = endpoint.child_environ({})

    def load() -> Any:  # botocore's provider does blocking I/O: off the loop
        credentials = ContainerProvider(environ=env).load()
        return credentials.method, credentials.get_frozen_credentials()

    method, frozen = await asyncio.to_thread(load)
    assert method == "container-role"
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        "ASIATEST000001",
        "secret-1",
        "token-1",
    )


def test_the_expiration_of_an_aware_local_time_is_written_in_utc() -> None:
    from aiorefresh._serve import _expiration

    local = datetime(2030, 1, 1, 2, 0, 0, 500, tzinfo=timezone(timedelta(hours=2)))
    assert _expiration(local) == "2030-01-01T00:00:00Z"
