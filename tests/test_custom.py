"""The custom method: what a user's callable may return, and how it is called."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from aiorefresh import CredentialRefreshError, RefreshableSession, TemporaryCredentials
from aiorefresh._fetchers.custom import CustomFetcher
from aiorefresh.testing import FrozenClock

EXPIRY = datetime(2030, 1, 1, 1, tzinfo=timezone.utc)


async def fetch_with(value: Any) -> TemporaryCredentials:
    return await CustomFetcher(lambda: value)()


async def test_botocore_keys_are_accepted() -> None:
    creds = await fetch_with(
        {"access_key": "AK", "secret_key": "SK", "token": "TK", "expiry_time": EXPIRY}
    )
    assert (creds.access_key, creds.secret_key, creds.token) == ("AK", "SK", "TK")
    assert creds.expiry_time == EXPIRY


async def test_sts_keys_are_accepted() -> None:
    creds = await fetch_with(
        {
            "AccessKeyId": "AK",
            "SecretAccessKey": "SK",
            "SessionToken": "TK",
            "Expiration": EXPIRY,
        }
    )
    assert (creds.access_key, creds.token, creds.expiry_time) == ("AK", "TK", EXPIRY)


async def test_temporary_credentials_pass_through() -> None:
    given = TemporaryCredentials("AK", "SK", "TK", EXPIRY)
    assert await fetch_with(given) is given


@pytest.mark.parametrize(
    "text", ["2030-01-01T01:00:00Z", "2030-01-01T01:00:00+00:00", "2030-01-01T02:00:00+01:00"]
)
async def test_iso_8601_expiry_strings_are_parsed(text: str) -> None:
    creds = await fetch_with(
        {"access_key": "AK", "secret_key": "SK", "token": "TK", "expiry_time": text}
    )
    assert creds.expiry_time == EXPIRY


async def test_naive_expiry_is_refused() -> None:
    with pytest.raises(CredentialRefreshError, match="naive expiry_time"):
        await fetch_with(
            {"access_key": "AK", "secret_key": "SK", "expiry_time": datetime(2030, 1, 1)}
        )


async def test_naive_expiry_string_is_refused() -> None:
    with pytest.raises(CredentialRefreshError, match="naive"):
        await fetch_with(
            {"access_key": "AK", "secret_key": "SK", "expiry_time": "2030-01-01T00:00:00"}
        )


async def test_missing_keys_are_named() -> None:
    with pytest.raises(CredentialRefreshError, match="without secret_key, expiry_time"):
        await fetch_with({"access_key": "AK"})


async def test_none_is_refused() -> None:
    with pytest.raises(CredentialRefreshError, match="returned NoneType"):
        await fetch_with(None)


async def test_wrong_value_types_are_named() -> None:
    with pytest.raises(CredentialRefreshError, match="secret_key of type int"):
        await fetch_with({"access_key": "AK", "secret_key": 5, "expiry_time": EXPIRY})


async def test_unparseable_expiry_is_refused() -> None:
    with pytest.raises(CredentialRefreshError, match="not an ISO-8601"):
        await fetch_with({"access_key": "AK", "secret_key": "SK", "expiry_time": "tomorrow"})


async def test_error_messages_never_contain_the_secret() -> None:
    with pytest.raises(CredentialRefreshError) as info:
        await fetch_with({"access_key": "AK", "secret_key": "TOPSECRET", "expiry_time": 3})
    assert "TOPSECRET" not in str(info.value)


async def test_sync_callable_runs_in_a_worker_thread() -> None:
    seen: list[int] = []

    def fetch() -> dict[str, Any]:
        seen.append(threading.get_ident())
        return {"access_key": "AK", "secret_key": "SK", "expiry_time": EXPIRY}

    await CustomFetcher(fetch)()
    assert seen
    assert seen[0] != threading.get_ident()


async def test_coroutine_function_is_awaited_on_the_loop() -> None:
    seen: list[int] = []

    async def fetch() -> dict[str, Any]:
        seen.append(threading.get_ident())
        return {"access_key": "AK", "secret_key": "SK", "expiry_time": EXPIRY}

    await CustomFetcher(fetch)()
    assert seen == [threading.get_ident()]


async def test_args_are_passed_as_keyword_arguments() -> None:
    async def fetch(*, role: str, region: str) -> dict[str, Any]:
        return {"access_key": f"{role}-{region}", "secret_key": "SK", "expiry_time": EXPIRY}

    creds = await CustomFetcher(fetch, {"role": "reader", "region": "eu-west-1"})()
    assert creds.access_key == "reader-eu-west-1"


async def test_sync_callable_does_not_block_the_loop() -> None:
    release = threading.Event()
    ticks = 0

    def slow_fetch() -> dict[str, Any]:
        release.wait(timeout=10)
        return {"access_key": "AK", "secret_key": "SK", "expiry_time": EXPIRY}

    async def ticker() -> None:
        nonlocal ticks
        while ticks < 20:
            ticks += 1
            await asyncio.sleep(0)
        release.set()

    creds, _ = await asyncio.gather(CustomFetcher(slow_fetch)(), ticker())
    assert creds.access_key == "AK"
    assert ticks == 20


async def test_session_fetches_through_a_sync_callable(frozen_clock: FrozenClock) -> None:
    def fetch(lifetime: int) -> dict[str, Any]:
        return {
            "access_key": "AK",
            "secret_key": "SK",
            "token": "TK",
            "expiry_time": frozen_clock() + timedelta(seconds=lifetime),
        }

    async with RefreshableSession(
        custom_credentials_method=fetch,
        custom_credentials_method_args={"lifetime": 900},
        clock=frozen_clock,
    ) as session:
        creds = await session.refreshable_credentials()
    assert creds.expiry_time == frozen_clock() + timedelta(minutes=15)


def test_repr_masks_secret_and_token() -> None:
    creds = TemporaryCredentials("AKIDEXAMPLE", "TOPSECRET", "SESSIONTOKEN", EXPIRY, "123456789012")
    text = repr(creds)
    assert "AKIDEXAMPLE" in text
    assert "TOPSECRET" not in text
    assert "SESSIONTOKEN" not in text
    assert "TOPSECRET" not in str(creds)
