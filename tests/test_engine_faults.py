"""The refresh engine when the source misbehaves: backoff with nothing to serve, answers that
expire too soon or while callers wait, fetchers that raise CancelledError, time zones."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from aiorefresh import CredentialRefreshError, TemporaryCredentials
from aiorefresh._engine import RefreshEngine
from aiorefresh.testing import CountingFetcher, FrozenClock


def make_engine(fetcher: CountingFetcher, **kwargs: object) -> RefreshEngine:
    return RefreshEngine(fetcher, clock=fetcher.clock, **kwargs)  # type: ignore[arg-type]


# -- a failing source with nothing valid to serve ---------------------------------------------


async def test_two_hundred_callers_over_a_second_make_at_most_ten_fetches_of_a_failing_source(
    counting_fetcher: CountingFetcher,
) -> None:
    engine = make_engine(counting_fetcher)
    counting_fetcher.fail_with = ConnectionResetError("reset by peer")
    errors = 0
    for _ in range(200):
        try:
            await engine.get()
        except CredentialRefreshError:
            errors += 1
        counting_fetcher.clock.advance(0.005)
    assert errors == 200
    assert 1 <= counting_fetcher.calls <= 10


async def test_callers_in_the_backoff_get_the_remembered_error_at_once(
    counting_fetcher: CountingFetcher,
) -> None:
    engine = make_engine(counting_fetcher)
    counting_fetcher.fail_with = ConnectionResetError("reset by peer")
    with pytest.raises(CredentialRefreshError, match="ConnectionResetError"):
        await engine.get()
    with pytest.raises(CredentialRefreshError, match="ConnectionResetError") as again:
        await engine.get()
    assert counting_fetcher.calls == 1
    assert again.value.__cause__ is not None


async def test_a_source_that_recovers_serves_again_within_seconds(
    counting_fetcher: CountingFetcher,
) -> None:
    engine = make_engine(counting_fetcher)
    counting_fetcher.fail_with = ConnectionResetError("reset by peer")
    for _ in range(100):  # a long outage: the backoff has grown to its cap
        with pytest.raises(CredentialRefreshError):
            await engine.get()
        counting_fetcher.clock.advance(1)
    counting_fetcher.fail_with = None
    counting_fetcher.clock.advance(4)
    creds = await engine.get()
    assert creds.access_key.startswith("ASIATEST")


async def test_a_forced_refresh_skips_the_backoff(counting_fetcher: CountingFetcher) -> None:
    engine = make_engine(counting_fetcher)
    counting_fetcher.fail_with = ConnectionResetError("reset by peer")
    with pytest.raises(CredentialRefreshError):
        await engine.get()
    counting_fetcher.fail_with = None
    creds = await engine.refresh(force=True)
    assert creds.access_key == "ASIATEST000002"


# -- answers that cannot be used --------------------------------------------------------------


async def test_an_answer_living_less_than_the_usable_minimum_is_a_failed_fetch(
    frozen_clock: FrozenClock,
) -> None:
    fetcher = CountingFetcher(frozen_clock, lifetime=timedelta(milliseconds=5))
    engine = make_engine(fetcher)
    with pytest.raises(CredentialRefreshError, match="less than the usable minimum"):
        await engine.get()
    assert engine.stats().failures == 1


async def test_waiters_never_get_credentials_that_expired_while_they_waited(
    frozen_clock: FrozenClock,
) -> None:
    class SlowLoop(CountingFetcher):
        async def __call__(self) -> TemporaryCredentials:
            creds = await super().__call__()
            # the loop is busy: by the time waiters run, the answer has expired
            asyncio.get_running_loop().call_soon(self.clock.advance, 60)
            return creds

    engine = make_engine(SlowLoop(frozen_clock, lifetime=timedelta(seconds=30)))
    results = await asyncio.gather(*(engine.get() for _ in range(1000)), return_exceptions=True)
    assert all(isinstance(r, CredentialRefreshError) for r in results)
    assert "before they could be handed out" in str(results[0])


# -- fetchers that raise CancelledError on their own ------------------------------------------


async def test_cancelled_error_from_the_fetcher_itself_is_a_counted_failure(
    frozen_clock: FrozenClock,
) -> None:
    async def confused() -> TemporaryCredentials:
        raise asyncio.CancelledError

    engine = RefreshEngine(confused, clock=frozen_clock)  # type: ignore[arg-type]
    with pytest.raises(CredentialRefreshError, match="raised CancelledError"):
        await engine.get()
    assert engine.stats().failures == 1


# -- time zones -------------------------------------------------------------------------------


def test_expiry_is_kept_as_utc_whatever_zone_the_fetcher_used() -> None:
    tz = timezone(timedelta(hours=5, minutes=30))
    creds = TemporaryCredentials("AKIA", "s", expiry_time=datetime(2030, 1, 1, 5, 30, tzinfo=tz))
    assert creds.expiry_time.tzinfo is timezone.utc
    assert creds.expiry_time == datetime(2030, 1, 1, tzinfo=timezone.utc)


def test_expiry_parsed_from_sts_strings_is_utc() -> None:
    creds = TemporaryCredentials.from_mapping(
        {
            "AccessKeyId": "ASIA",
            "SecretAccessKey": "s",
            "SessionToken": "t",
            "Expiration": "2030-01-01T01:00:00+01:00",
        }
    )
    assert creds.expiry_time.tzinfo is timezone.utc
