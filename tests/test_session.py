"""RefreshableSession: one class over a method table, validation before I/O, fetcher=, endpoints."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest
from aiobotocore.session import AioSession

from aiorefresh import (
    ConfigurationError,
    CredentialRefreshError,
    Identity,
    RefreshableSession,
    SessionClosedError,
    TemporaryCredentials,
    ValidationError,
)
from aiorefresh._aiobotocore import EngineCredentials
from aiorefresh.testing import CountingFetcher, FrozenClock, MotoServer


def custom(fetcher: CountingFetcher, **kwargs: Any) -> RefreshableSession:
    options: dict[str, Any] = {"clock": fetcher.clock, **kwargs}
    return RefreshableSession(custom_credentials_method=fetcher, **options)


# -- one class over a method table ------------------------------------------------------------


def test_every_method_builds_the_one_session_class(counting_fetcher: CountingFetcher) -> None:
    session = custom(counting_fetcher)
    assert type(session) is RefreshableSession
    assert session.method == "custom"


def test_explicit_method_is_a_keyword(counting_fetcher: CountingFetcher) -> None:
    session = RefreshableSession(method="custom", custom_credentials_method=counting_fetcher)
    assert session.method == "custom"


def test_no_method_options_means_the_default_chain() -> None:
    session = RefreshableSession()
    assert type(session) is RefreshableSession
    assert session.method == "default"


def test_unknown_method_names_the_allowed_ones() -> None:
    with pytest.raises(ValidationError, match="'custom'.*got 'kerberos'"):
        RefreshableSession(method="kerberos")  # type: ignore[call-overload]


async def test_a_fetcher_object_is_the_extension_point(frozen_clock: FrozenClock) -> None:
    class VaultFetcher:
        method = "vault"

        def __init__(self) -> None:
            self.inner = CountingFetcher(frozen_clock)
            self.closed = 0

        async def __call__(self) -> TemporaryCredentials:
            return await self.inner()

        async def aclose(self) -> None:
            self.closed += 1

    fetcher = VaultFetcher()
    async with RefreshableSession(fetcher=fetcher, clock=frozen_clock) as session:
        assert session.method == "vault"
        assert session.fetcher is fetcher
        assert (await session.refreshable_credentials()).access_key == "ASIATEST000001"
    assert fetcher.closed == 1


def test_a_fetcher_without_a_method_name_is_custom(counting_fetcher: CountingFetcher) -> None:
    assert RefreshableSession(fetcher=counting_fetcher).method == "custom"


def test_a_fetcher_replaces_the_method_options(counting_fetcher: CountingFetcher) -> None:
    with pytest.raises(ConfigurationError, match="fetcher= replaces the credential method"):
        RefreshableSession(  # type: ignore[call-overload]
            fetcher=counting_fetcher, custom_credentials_method=counting_fetcher
        )


def test_a_fetcher_must_be_callable() -> None:
    with pytest.raises(ValidationError, match="fetcher must be an object with async __call__"):
        RefreshableSession(fetcher=42)  # type: ignore[arg-type]


def test_options_of_another_method_are_refused(counting_fetcher: CountingFetcher) -> None:
    with pytest.raises(ConfigurationError, match="role_alias is not an option of method 'custom'"):
        RefreshableSession(  # type: ignore[call-overload]
            method="custom", custom_credentials_method=counting_fetcher, role_alias="x"
        )


def test_options_of_two_methods_cannot_be_inferred(counting_fetcher: CountingFetcher) -> None:
    with pytest.raises(ConfigurationError, match="more than one method"):
        RefreshableSession(
            custom_credentials_method=counting_fetcher,
            assume_role_kwargs={"RoleArn": "arn:aws:iam::123456789012:role/x"},
        )


# -- validation before any I/O ---------------------------------------------------------------


def test_construction_needs_no_running_loop(counting_fetcher: CountingFetcher) -> None:
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    assert custom(counting_fetcher).closed is False


def test_custom_method_requires_a_callable() -> None:
    with pytest.raises(ValidationError, match="custom_credentials_method must be a callable"):
        RefreshableSession(method="custom", custom_credentials_method="not callable")  # type: ignore[arg-type]


def test_custom_method_is_required_for_custom() -> None:
    with pytest.raises(ValidationError, match="custom_credentials_method is required"):
        RefreshableSession(method="custom")  # type: ignore[call-overload]


def test_custom_args_must_be_a_mapping(counting_fetcher: CountingFetcher) -> None:
    with pytest.raises(ValidationError, match="custom_credentials_method_args must be a mapping"):
        custom(counting_fetcher, custom_credentials_method_args=["a"])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"advisory_timeout": -1},
            ConfigurationError,
            "advisory_timeout must be a finite, non-negative",
        ),
        ({"mandatory_timeout": "60"}, ValidationError, "mandatory_timeout must be a number"),
        ({"advisory_timeout": True}, ValidationError, "advisory_timeout must be a number"),
        (
            {"advisory_timeout": 60, "mandatory_timeout": 120},
            ConfigurationError,
            "mandatory_timeout .120. must not exceed advisory_timeout .60.",
        ),
        ({"refresh_jitter": 1.5}, ConfigurationError, "refresh_jitter must be a fraction"),
        ({"refresh_timeout": 0}, ConfigurationError, "refresh_timeout must be a finite, positive"),
        ({"defer_refresh": "yes"}, ValidationError, "defer_refresh must be a bool"),
        ({"clock": 5}, ValidationError, "clock must be a callable"),
        ({"on_refresh": "print"}, ValidationError, "on_refresh must be callable"),
        ({"region_name": 5}, ValidationError, "region_name must be a str"),
        ({"botocore_session": object()}, ValidationError, "botocore_session must be"),
        ({"http_backend": "curl"}, ConfigurationError, "http_backend"),
        ({"aws_access_key_id": "AK"}, ConfigurationError, "must be given together"),
    ],
)
def test_bad_options_fail_in_the_constructor(
    counting_fetcher: CountingFetcher, kwargs: dict[str, Any], error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        custom(counting_fetcher, **kwargs)


def test_explicit_keys_are_refused_for_custom(counting_fetcher: CountingFetcher) -> None:
    with pytest.raises(ConfigurationError, match="not used by method 'custom'"):
        custom(counting_fetcher, aws_access_key_id="AK", aws_secret_access_key="SK")


def test_validation_errors_are_also_builtin_types(counting_fetcher: CountingFetcher) -> None:
    with pytest.raises(TypeError):
        custom(counting_fetcher, clock=5)
    with pytest.raises(ValueError, match="advisory"):
        custom(counting_fetcher, advisory_timeout=-1)


# -- credentials through the session ---------------------------------------------------------


async def test_get_credentials_returns_the_aiobotocore_refreshable_object(
    counting_fetcher: CountingFetcher,
) -> None:
    async with custom(counting_fetcher) as session:
        creds = await session.get_credentials()
        assert isinstance(creds, EngineCredentials)
        assert await session.botocore_session.get_credentials() is creds
        frozen = await creds.get_frozen_credentials()
        assert frozen.access_key == "ASIATEST000001"
        assert await creds.get_access_key() == "ASIATEST000001"


async def test_refreshable_credentials_are_temporary_credentials(
    counting_fetcher: CountingFetcher, frozen_clock: FrozenClock
) -> None:
    async with custom(counting_fetcher) as session:
        creds = await session.refreshable_credentials()
    assert isinstance(creds, TemporaryCredentials)
    assert creds.expiry_time == frozen_clock() + timedelta(hours=1)


async def test_refresh_and_invalidate_through_the_session(
    counting_fetcher: CountingFetcher,
) -> None:
    async with custom(counting_fetcher) as session:
        await session.refreshable_credentials()
        assert (await session.refresh()).access_key == "ASIATEST000002"
        session.invalidate()
        assert (await session.refreshable_credentials()).access_key == "ASIATEST000003"
        assert session.refresh_stats().refreshes == 3


async def test_deferred_session_does_not_fetch_on_enter(counting_fetcher: CountingFetcher) -> None:
    async with custom(counting_fetcher):
        assert counting_fetcher.calls == 0


async def test_eager_session_fails_at_start_up(counting_fetcher: CountingFetcher) -> None:
    counting_fetcher.fail_with = PermissionError("no such role")
    session = custom(counting_fetcher, defer_refresh=False)
    with pytest.raises(CredentialRefreshError, match="PermissionError"):
        await session.__aenter__()
    await session.aclose()


async def test_eager_session_fetches_on_enter(counting_fetcher: CountingFetcher) -> None:
    async with custom(counting_fetcher, defer_refresh=False):
        assert counting_fetcher.calls == 1


async def test_closed_session_refuses_clients(counting_fetcher: CountingFetcher) -> None:
    session = custom(counting_fetcher)
    await session.aclose()
    with pytest.raises(SessionClosedError):
        session.client("s3")
    with pytest.raises(SessionClosedError):
        await session.refresh()


async def test_aclose_is_idempotent(counting_fetcher: CountingFetcher) -> None:
    session = custom(counting_fetcher)
    await session.aclose()
    await session.aclose()
    assert session.closed


def test_repr_shows_method_and_state(counting_fetcher: CountingFetcher) -> None:
    assert repr(custom(counting_fetcher)) == "<RefreshableSession method='custom' open>"


# -- aiobotocore wiring against moto ---------------------------------------------------------


async def test_clients_sign_with_the_session_credentials(
    aws_env: Any, moto_server: MotoServer, counting_fetcher: CountingFetcher
) -> None:
    async with custom(counting_fetcher, region_name="us-east-1") as session:
        async with session.client("s3", endpoint_url=moto_server.endpoint_url) as s3:
            await s3.create_bucket(Bucket="aiorefresh-signing")
            listing = await s3.list_buckets()
    assert "aiorefresh-signing" in [b["Name"] for b in listing["Buckets"]]
    assert counting_fetcher.calls == 1


async def test_a_refresh_never_recreates_clients(
    aws_env: Any, moto_server: MotoServer, counting_fetcher: CountingFetcher
) -> None:
    async with custom(counting_fetcher, region_name="us-east-1") as session:
        async with session.client("sts", endpoint_url=moto_server.endpoint_url) as first:
            await first.get_caller_identity()
        counting_fetcher.clock.advance(hours=2)
        async with session.client("sts", endpoint_url=moto_server.endpoint_url) as second:
            await second.get_caller_identity()
        assert first is second
        assert counting_fetcher.calls == 2


async def test_whoami_reports_the_identity_and_caches_it(
    aws_env: Any, moto_server: MotoServer, counting_fetcher: CountingFetcher
) -> None:
    async with custom(
        counting_fetcher,
        region_name="us-east-1",
        default_client_kwargs={"endpoint_url": moto_server.endpoint_url},
    ) as session:
        identity = await session.whoami()
        again = await session.get_identity()
    assert isinstance(identity, Identity)
    assert identity is again
    assert identity.account_id.isdigit()
    assert len(identity.account_id) == 12
    assert identity.arn.startswith("arn:aws:")


async def test_default_chain_session_reads_the_environment(aws_env: Any) -> None:
    async with RefreshableSession() as session:
        creds = await session.refreshable_credentials()
    assert creds.access_key == aws_env["AWS_ACCESS_KEY_ID"]


async def test_default_chain_resolves_once_for_many_callers(aws_env: Any) -> None:
    async with RefreshableSession() as session:
        results = await asyncio.gather(*(session.refreshable_credentials() for _ in range(500)))
        assert len({id(r) for r in results}) == 1
        assert session.refresh_stats().refreshes == 1


async def test_default_chain_with_explicit_keys(aws_env: Any) -> None:
    async with RefreshableSession(aws_access_key_id="AKEXPLICIT", aws_secret_access_key="SK") as s:
        assert (await s.refreshable_credentials()).access_key == "AKEXPLICIT"


async def test_botocore_session_is_adopted(counting_fetcher: CountingFetcher) -> None:
    given = AioSession()
    async with custom(counting_fetcher, botocore_session=given, region_name="eu-west-1") as s:
        assert s.botocore_session is given
        assert s.region_name == "eu-west-1"
        assert isinstance(await given.get_credentials(), EngineCredentials)


def test_aioboto3_style_configuration_calls(
    aws_env: Any, counting_fetcher: CountingFetcher
) -> None:
    session = custom(counting_fetcher, region_name="eu-central-1")
    assert session.region_name == "eu-central-1"
    assert session.profile_name == "default"
    assert "s3" in session.get_available_services()
    assert "eu-west-1" in asyncio.run(session.get_available_regions("s3"))
    assert "aws" in session.get_available_partitions()
    assert isinstance(session.available_profiles, list)


def test_session_is_shared_by_two_event_loops(
    aws_env: Any, moto_server: MotoServer, frozen_clock: FrozenClock
) -> None:
    fetcher = CountingFetcher(frozen_clock)
    session = custom(fetcher, region_name="us-east-1")
    results: list[str] = []

    async def use() -> None:
        async with session.client("sts", endpoint_url=moto_server.endpoint_url) as sts:
            results.append((await sts.get_caller_identity())["Account"])
        await session.pool.aclose()

    threads = [threading.Thread(target=asyncio.run, args=(use(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    asyncio.run(use())
    assert len(results) == 3


# -- two kinds of clients ----------------------------------------------------------------------


def test_an_sts_endpoint_without_a_client_endpoint_warns(counting_fetcher: CountingFetcher) -> None:
    with pytest.warns(UserWarning, match="sts_client_kwargs sets endpoint_url") as caught:
        RefreshableSession(
            assume_role_kwargs={"RoleArn": "arn:aws:iam::123456789012:role/x"},
            sts_client_kwargs={"endpoint_url": "http://127.0.0.1:1"},
        )
    assert caught[0].filename == __file__


def test_matching_endpoints_do_not_warn(recwarn: pytest.WarningsRecorder) -> None:
    RefreshableSession(
        assume_role_kwargs={"RoleArn": "arn:aws:iam::123456789012:role/x"},
        sts_client_kwargs={"endpoint_url": "http://127.0.0.1:1"},
        default_client_kwargs={"endpoint_url": "http://127.0.0.1:1"},
    )
    assert not [w for w in recwarn if "endpoint_url" in str(w.message)]


def test_a_profile_that_does_not_exist_fails_in_the_constructor(aws_env: Any) -> None:
    with pytest.raises(ConfigurationError, match="profile_name 'nowhere' is not in the shared"):
        RefreshableSession(profile_name="nowhere")
