"""Identity and state: whoami, account aliases, print_who_am_i, masking, expiry without I/O,
clear_cache. moto and STSStandIn are the servers; FrozenClock moves time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

from aiorefresh import (
    ConfigurationError,
    Identity,
    RefreshableSession,
    ValidationError,
    utc_now,
)
from aiorefresh.testing import CountingFetcher, Fail, FrozenClock, MotoServer, STSStandIn

ROLE = "arn:aws:iam::123456789012:role/reader"


def custom(
    fetcher: CountingFetcher, endpoint: str | None = None, **kwargs: Any
) -> RefreshableSession:
    if endpoint is not None:
        kwargs["default_client_kwargs"] = {"endpoint_url": endpoint}
    return RefreshableSession(
        custom_credentials_method=fetcher, clock=fetcher.clock, region_name="us-east-1", **kwargs
    )


def role_session(endpoint: str, name: str) -> RefreshableSession:
    return RefreshableSession(
        assume_role_kwargs={"RoleArn": ROLE, "RoleSessionName": name},
        sts_client_kwargs={"endpoint_url": endpoint},
        default_client_kwargs={"endpoint_url": endpoint},
        region_name="us-east-1",
        clock=FrozenClock(utc_now()),  # moto issues credentials relative to the real time
    )


async def settle(condition: Callable[[], bool], rounds: int = 1000) -> bool:
    """Yield to the loop until ``condition()`` holds (pool closes run in pool-owned tasks)."""
    for _ in range(rounds):
        if condition():
            return True
        await asyncio.sleep(0)
    return condition()


# -- masking ----------------------------------------------------------------------------------

ASSUMED = Identity(
    account_id="123456789012",
    arn="arn:aws:sts::123456789012:assumed-role/reader/alice",
    user_id="AROAEXAMPLEROLEID:alice",
)


def test_masked_account_id_keeps_the_first_two_and_last_three_digits() -> None:
    assert ASSUMED.masked_account_id == "12*******012"
    assert Identity("987654321789", "arn:aws:iam::987654321789:root", "9876").masked_account_id == (
        "98*******789"
    )


def test_masked_arn_masks_the_account_id_inside_the_arn() -> None:
    assert ASSUMED.masked_arn == "arn:aws:sts::12*******012:assumed-role/reader/alice"


def test_masked_arn_masks_every_occurrence_of_the_account_id() -> None:
    identity = Identity("123456789012", "arn:aws:iam::123456789012:user/x-123456789012", "AIDA1")
    assert "123456789012" not in identity.masked_arn


def test_masked_user_id_hides_its_middle() -> None:
    assert ASSUMED.masked_user_id == "AR" + "*" * 18 + "ice"
    assert len(ASSUMED.masked_user_id) == len(ASSUMED.user_id)


def test_short_ids_are_masked_whole() -> None:
    assert Identity("1234567", "arn:aws:iam::1234567:root", "AIDA").masked_account_id == "*******"


def test_masking_keeps_the_identity_itself_intact() -> None:
    _ = ASSUMED.masked_arn
    assert ASSUMED.account_id == "123456789012"
    assert ASSUMED.arn.startswith("arn:aws:sts::123456789012:")


# -- whoami -----------------------------------------------------------------------------------


async def test_whoami_on_moto_is_the_assumed_role_with_masked_fields(
    aws_env: Any, moto_server: MotoServer
) -> None:
    async with role_session(moto_server.endpoint_url, "whoami") as session:
        identity = await session.whoami()
    assert identity.arn == "arn:aws:sts::123456789012:assumed-role/reader/whoami"
    assert identity.masked_arn == "arn:aws:sts::12*******012:assumed-role/reader/whoami"
    assert identity.masked_account_id == "12*******012"


async def test_many_tasks_asking_whoami_share_one_get_caller_identity(
    aws_env: Any, sts_standin: STSStandIn, counting_fetcher: CountingFetcher
) -> None:
    async with custom(counting_fetcher, sts_standin.endpoint_url) as session:
        identities = await asyncio.gather(*(session.whoami() for _ in range(50)))
    assert sts_standin.count("GetCallerIdentity") == 1
    assert all(identity is identities[0] for identity in identities)


async def test_whoami_asks_again_once_the_access_key_changes(
    aws_env: Any, sts_standin: STSStandIn, counting_fetcher: CountingFetcher
) -> None:
    async with custom(counting_fetcher, sts_standin.endpoint_url) as session:
        await session.whoami()
        counting_fetcher.clock.advance(hours=2)
        await session.get_identity()
    assert counting_fetcher.calls == 2
    assert sts_standin.count("GetCallerIdentity") == 2


# -- account aliases --------------------------------------------------------------------------


@pytest.fixture
async def no_alias(moto_server: MotoServer, aws_env: Any) -> AsyncIterator[RefreshableSession]:
    """A session on moto whose account has no alias before and after the test."""
    session = RefreshableSession(
        region_name="us-east-1", default_client_kwargs={"endpoint_url": moto_server.endpoint_url}
    )
    async with session:

        async def drop_aliases() -> None:
            async with session.client("iam") as iam:
                for alias in (await iam.list_account_aliases())["AccountAliases"]:
                    await iam.delete_account_alias(AccountAlias=alias)

        await drop_aliases()
        try:
            yield session
        finally:
            await drop_aliases()


async def test_account_alias_is_none_when_the_account_has_none(
    no_alias: RefreshableSession,
) -> None:
    assert await no_alias.account_alias() is None


async def test_account_alias_reads_the_alias_created_with_iam(no_alias: RefreshableSession) -> None:
    async with no_alias.client("iam") as iam:
        await iam.create_account_alias(AccountAlias="aiorefresh-tests")
    assert await no_alias.account_alias() == "aiorefresh-tests"


# -- print_who_am_i ---------------------------------------------------------------------------


async def test_print_who_am_i_writes_masked_ids_by_default(
    no_alias: RefreshableSession, capsys: pytest.CaptureFixture[str]
) -> None:
    async with no_alias.client("iam") as iam:
        await iam.create_account_alias(AccountAlias="printed-alias")
    await no_alias.print_who_am_i()
    out = capsys.readouterr().out
    assert "account:     12*******012\n" in out
    assert "alias:       printed-alias\n" in out
    assert "123456789012" not in out
    assert "region:      us-east-1\n" in out


async def test_print_who_am_i_unmasked_shows_the_full_ids(
    no_alias: RefreshableSession, capsys: pytest.CaptureFixture[str]
) -> None:
    await no_alias.print_who_am_i(masked=False)
    out = capsys.readouterr().out
    identity = await no_alias.whoami()
    assert f"account:     {identity.account_id}\n" in out
    assert f"principal:   {identity.arn}\n" in out
    assert "alias:       none\n" in out


async def test_print_who_am_i_prints_when_the_alias_is_refused(
    aws_env: Any,
    sts_standin: STSStandIn,
    counting_fetcher: CountingFetcher,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with custom(counting_fetcher, sts_standin.endpoint_url) as session:
        await session.whoami()  # cached: the next request is IAM's, and it is refused
        sts_standin.script(Fail("AccessDenied", "not allowed", 403))
        await session.print_who_am_i()
    out = capsys.readouterr().out
    assert "alias:       unknown (ListAccountAliases: AccessDenied)\n" in out
    assert "principal:" in out


async def test_print_who_am_i_never_shows_the_secret_key(
    aws_env: Any,
    sts_standin: STSStandIn,
    counting_fetcher: CountingFetcher,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with custom(counting_fetcher, sts_standin.endpoint_url) as session:
        await session.print_who_am_i(masked=False)
    out = capsys.readouterr().out
    assert "secret-1" not in out
    assert "token-1" not in out


async def test_print_who_am_i_refuses_a_masked_that_is_not_a_bool(
    counting_fetcher: CountingFetcher,
) -> None:
    async with custom(counting_fetcher) as session:
        with pytest.raises(ValidationError, match="masked must be a bool"):
            await session.print_who_am_i(masked="yes")  # type: ignore[arg-type]
    assert counting_fetcher.calls == 0


# -- state without network --------------------------------------------------------------------


def test_expiry_time_is_none_before_the_first_fetch(counting_fetcher: CountingFetcher) -> None:
    assert custom(counting_fetcher).expiry_time is None
    assert counting_fetcher.calls == 0


async def test_expiry_time_is_the_expiry_of_the_held_credentials(
    counting_fetcher: CountingFetcher,
) -> None:
    async with custom(counting_fetcher) as session:
        creds = await session.refreshable_credentials()
        assert session.expiry_time == creds.expiry_time
        assert session.expiry_time == counting_fetcher.clock() + timedelta(hours=1)


def test_is_expired_before_the_first_fetch(counting_fetcher: CountingFetcher) -> None:
    assert custom(counting_fetcher).is_expired() is True
    assert counting_fetcher.calls == 0


async def test_is_expired_is_false_while_more_than_delta_seconds_remain(
    counting_fetcher: CountingFetcher,
) -> None:
    async with custom(counting_fetcher) as session:
        await session.refreshable_credentials()
        counting_fetcher.clock.advance(minutes=50)
        assert session.is_expired() is False
        assert session.is_expired(delta=599) is False


async def test_is_expired_once_delta_seconds_or_fewer_remain(
    counting_fetcher: CountingFetcher,
) -> None:
    async with custom(counting_fetcher) as session:
        await session.refreshable_credentials()
        counting_fetcher.clock.advance(minutes=50)
        assert session.is_expired(delta=600) is True
        assert session.is_expired(delta=3600) is True


async def test_is_expired_at_and_after_the_expiry(counting_fetcher: CountingFetcher) -> None:
    async with custom(counting_fetcher) as session:
        await session.refreshable_credentials()
        counting_fetcher.clock.advance(hours=1)
        assert session.is_expired() is True
        counting_fetcher.clock.advance(seconds=1)
        assert session.is_expired() is True


async def test_state_reads_never_fetch_credentials(counting_fetcher: CountingFetcher) -> None:
    async with custom(counting_fetcher) as session:
        await session.refreshable_credentials()
        counting_fetcher.clock.advance(hours=5)
        assert session.is_expired() is True
        assert session.expiry_time is not None
        assert session.aws_region == "us-east-1"
    assert counting_fetcher.calls == 1


def test_is_expired_refuses_a_delta_that_is_not_a_number(
    counting_fetcher: CountingFetcher,
) -> None:
    with pytest.raises(ValidationError, match="delta must be a number of seconds"):
        custom(counting_fetcher).is_expired("10")  # type: ignore[arg-type]


def test_is_expired_refuses_a_negative_delta(counting_fetcher: CountingFetcher) -> None:
    with pytest.raises(ConfigurationError, match="delta must be a finite, non-negative"):
        custom(counting_fetcher).is_expired(-1)


def test_aws_region_is_the_session_region(counting_fetcher: CountingFetcher) -> None:
    session = custom(counting_fetcher)
    assert session.aws_region == "us-east-1"
    assert session.aws_region == session.region_name


# -- clear_cache ------------------------------------------------------------------------------


async def test_clear_cache_forgets_the_cached_identity(
    aws_env: Any, sts_standin: STSStandIn, counting_fetcher: CountingFetcher
) -> None:
    async with custom(counting_fetcher, sts_standin.endpoint_url) as session:
        await session.whoami()
        session.clear_cache()
        await session.whoami()
    assert sts_standin.count("GetCallerIdentity") == 2
    assert counting_fetcher.calls == 1


async def test_clear_cache_gives_later_leases_a_new_client(
    aws_env: Any, moto_server: MotoServer, counting_fetcher: CountingFetcher
) -> None:
    async with custom(counting_fetcher, moto_server.endpoint_url) as session:
        async with session.client("sts") as first:
            pass
        session.clear_cache()
        assert session.pool.stats().size == 0  # out of the pool at once, closing in a task
        async with session.client("sts") as second:
            await second.get_caller_identity()
    assert second is not first
    assert session.pool.stats().closes == 2


async def test_clear_cache_closes_a_leased_client_only_after_every_lease_ends(
    aws_env: Any, moto_server: MotoServer, counting_fetcher: CountingFetcher
) -> None:
    tasks_count = 20
    async with custom(counting_fetcher, moto_server.endpoint_url) as session:
        entered: list[object] = []
        all_in, release = asyncio.Event(), asyncio.Event()

        async def lease_and_call() -> str:
            async with session.client("sts") as sts:
                entered.append(sts)
                if len(entered) == tasks_count:
                    all_in.set()
                await release.wait()
                return str((await sts.get_caller_identity())["Account"])

        tasks = [asyncio.create_task(lease_and_call()) for _ in range(tasks_count)]
        await all_in.wait()
        session.clear_cache()
        assert session.pool.stats().closes == 0
        release.set()
        accounts = await asyncio.gather(*tasks)
        assert await settle(lambda: session.pool.stats().closes == 1)
    assert accounts == ["123456789012"] * tasks_count
    assert all(client is entered[0] for client in entered)
