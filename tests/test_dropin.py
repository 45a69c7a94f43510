"""Code written for aioboto3.Session and aiobotocore's credentials keeps working."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, CredentialRetrievalError, NoCredentialsError

from aiorefresh import ConfigurationError, RefreshableSession, TemporaryCredentials
from aiorefresh._aiobotocore import POOLED_MAX_CONNECTIONS
from aiorefresh.testing import CountingFetcher, FrozenClock, MotoServer

try:
    import aioboto3
except ImportError:  # line B: aiobotocore 3.x, no aioboto3
    aioboto3 = None

needs_aioboto3 = pytest.mark.skipif(aioboto3 is None, reason="aioboto3 is installed on line A")
KEY, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


# -- aioboto3's positional arguments ----------------------------------------------------------


async def test_positional_arguments_follow_aioboto3s_order(
    aws_env: Any, moto_server: MotoServer
) -> None:
    session = RefreshableSession(KEY, SECRET, None, "eu-west-3")
    assert session.method == "default"
    assert session.region_name == "eu-west-3"
    async with session:
        creds = await session.refreshable_credentials()
        assert (creds.access_key, creds.secret_key) == (KEY, SECRET)
        async with session.client("s3", endpoint_url=moto_server.endpoint_url) as s3:
            assert "Buckets" in await s3.list_buckets()


def test_profile_name_is_the_sixth_positional(aws_env: Any) -> None:
    with pytest.raises(ConfigurationError, match="profile_name 'p' is not in the shared"):
        RefreshableSession(None, None, None, None, None, "p")


# -- session-level calls ----------------------------------------------------------------------


def test_events_are_the_botocore_sessions_emitter(aws_env: Any) -> None:
    session = RefreshableSession()
    assert session.events is session.botocore_session.get_component("event_emitter")


def test_partition_for_region(aws_env: Any) -> None:
    session = RefreshableSession()
    assert session.get_partition_for_region("cn-north-1") == "aws-cn"
    assert session.get_partition_for_region("eu-west-1") == "aws"


async def test_configuration_calls_answer_like_aioboto3(aws_env: Any) -> None:
    session = RefreshableSession(region_name="ap-south-1")
    assert session.region_name == "ap-south-1"
    assert session.profile_name == "default"
    assert session.available_profiles == []
    assert "s3" in session.get_available_services()
    assert "aws" in session.get_available_partitions()
    assert "eu-west-1" in await session.get_available_regions("s3")


@needs_aioboto3
def test_available_resources_answer_like_aioboto3(aws_env: Any) -> None:
    assert RefreshableSession().get_available_resources() == (
        aioboto3.Session().get_available_resources()
    )


# -- botocore's exception classes -------------------------------------------------------------


async def test_an_empty_chain_is_botocores_no_credentials_error(
    aws_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    async with RefreshableSession() as session:
        assert await session.get_credentials() is None
        with pytest.raises(NoCredentialsError):
            await session.refreshable_credentials()


@pytest.mark.parametrize("answer", [None, {}, {"access_key": "AKIA"}, ""])
async def test_an_empty_or_partial_answer_is_a_credential_retrieval_error(
    frozen_clock: FrozenClock, answer: object
) -> None:
    async def fetch() -> object:
        return answer

    async with RefreshableSession(custom_credentials_method=fetch, clock=frozen_clock) as session:
        with pytest.raises(CredentialRetrievalError) as info:
            await session.refreshable_credentials()
    assert isinstance(info.value, BotoCoreError)


# -- the credentials object's contract (aiobotocore's AioDeferredRefreshableCredentials) --------


async def test_refresh_needed_means_advisory_window_or_less_than_refresh_in(
    counting_fetcher: CountingFetcher,
) -> None:
    async with RefreshableSession(
        custom_credentials_method=counting_fetcher, clock=counting_fetcher.clock
    ) as session:
        creds = await session.get_credentials()
        assert creds.refresh_needed() is True  # nothing fetched yet
        await creds.get_frozen_credentials()
        assert creds.refresh_needed() is False
        assert creds.refresh_needed(refresh_in=3700) is True
        assert creds.refresh_needed(refresh_in=60) is False
        counting_fetcher.clock.advance(minutes=50)  # inside the 15-minute advisory window
        assert creds.refresh_needed() is True


async def test_reads_keep_expiry_and_seconds_remaining_current(
    counting_fetcher: CountingFetcher,
) -> None:
    clock = counting_fetcher.clock
    async with RefreshableSession(custom_credentials_method=counting_fetcher, clock=clock) as s:
        creds = await s.get_credentials()
        await creds.get_frozen_credentials()
        assert creds._expiry_time == clock() + timedelta(hours=1)
        assert creds._seconds_remaining() == 3600
        clock.advance(hours=2)
        await creds.get_frozen_credentials()
        assert creds._access_key == "ASIATEST000002"
        assert creds._expiry_time == clock() + timedelta(hours=1)
        assert await creds.get_access_key() == "ASIATEST000002"


async def test_static_keys_read_synchronously_like_aioboto3s(aws_env: Any) -> None:
    session = RefreshableSession(KEY, SECRET, "token-1")
    creds = await session.get_credentials()
    assert (creds.access_key, creds.secret_key, creds.token) == (KEY, SECRET, "token-1")
    assert creds.refresh_needed() is False


async def test_refreshable_keys_have_no_synchronous_access_key(
    counting_fetcher: CountingFetcher,
) -> None:
    session = RefreshableSession(custom_credentials_method=counting_fetcher)
    creds = await session.get_credentials()
    with pytest.raises(NotImplementedError, match="await get_access_key"):
        _ = creds.access_key


# -- subclassing ------------------------------------------------------------------------------


async def test_a_fake_session_subclass_can_override_client() -> None:
    class FakeClient:
        async def __aenter__(self) -> str:
            return "fake s3"

        async def __aexit__(self, *exc: object) -> None:
            return None

    class FakeSession(RefreshableSession):
        def client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            return FakeClient()

    session = FakeSession(region_name="us-east-1")
    assert type(session) is FakeSession
    async with session, session.client("s3") as s3:
        assert s3 == "fake s3"


# -- shared clients ---------------------------------------------------------------------------


async def test_pooled_clients_have_connections_for_sharing(
    aws_env: Any, moto_server: MotoServer
) -> None:
    from aiobotocore.config import AioConfig

    async with RefreshableSession(
        default_client_kwargs={"endpoint_url": moto_server.endpoint_url}
    ) as s:
        async with s.client("s3") as s3:
            assert s3.meta.config.max_pool_connections == POOLED_MAX_CONNECTIONS
        async with s.client("s3", config=AioConfig(max_pool_connections=5)) as s3:
            assert s3.meta.config.max_pool_connections == 5


async def test_a_pinned_client_in_async_with_stays_open(
    aws_env: Any, moto_server: MotoServer
) -> None:
    async with RefreshableSession(
        default_client_kwargs={"endpoint_url": moto_server.endpoint_url}
    ) as s:
        pinned = await s.get_client("s3")
        await pinned.list_buckets()
        async with pinned as entered:
            assert entered is pinned
        assert "Buckets" in await pinned.list_buckets()


async def test_a_leased_client_entered_again_is_not_closed_for_other_tasks(
    aws_env: Any, moto_server: MotoServer
) -> None:
    async with RefreshableSession(
        default_client_kwargs={"endpoint_url": moto_server.endpoint_url}
    ) as s:
        async with s.client("s3") as s3:
            async with s3:
                await s3.list_buckets()
        async with s.client("s3") as again:
            assert again is s3
            assert "Buckets" in await again.list_buckets()


@needs_aioboto3
async def test_pooled_s3_clients_have_aioboto3s_transfer_methods_from_the_first_call(
    aws_env: Any, moto_server: MotoServer
) -> None:
    async with RefreshableSession(
        default_client_kwargs={"endpoint_url": moto_server.endpoint_url}
    ) as s:
        async with s.client("s3") as s3:
            for name in (
                "upload_file",
                "upload_fileobj",
                "download_file",
                "download_fileobj",
                "copy",
            ):
                assert callable(getattr(s3, name, None)), name
            await s3.create_bucket(Bucket="dropin-transfer")
            await s3.upload_fileobj(io.BytesIO(b"payload"), "dropin-transfer", "k")
            out = io.BytesIO()
            await s3.download_fileobj("dropin-transfer", "k", out)
    assert out.getvalue() == b"payload"


# -- the event loop stays yours ---------------------------------------------------------------


def test_under_trio_a_clear_configuration_error(counting_fetcher: CountingFetcher) -> None:
    trio = pytest.importorskip("trio")
    session = RefreshableSession(custom_credentials_method=counting_fetcher)

    async def main() -> None:
        await session.refreshable_credentials()

    with pytest.raises(ConfigurationError, match="trio is not supported yet"):
        trio.run(main)


def test_under_trio_a_lease_fails_with_the_same_error(counting_fetcher: CountingFetcher) -> None:
    trio = pytest.importorskip("trio")
    session = RefreshableSession(custom_credentials_method=counting_fetcher)

    async def main() -> None:
        async with session.client("s3"):
            pass

    with pytest.raises(ConfigurationError, match="trio is not supported yet"):
        trio.run(main)


async def test_credentials_objects_are_temporary_credentials(
    counting_fetcher: CountingFetcher,
) -> None:
    session = RefreshableSession(custom_credentials_method=counting_fetcher)
    assert isinstance(await session.refreshable_credentials(), TemporaryCredentials)
