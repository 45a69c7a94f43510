"""SessionFleet: child sessions per account by role chaining, on STSStandIn (STS) and moto
(the services the children call).

AssumeRole calls are counted by the stand-in itself. ``verify=False`` only spares every new
client the CA bundle load on its first request (moto answers over plain HTTP on loopback).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tracemalloc
import warnings
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from _mfa_helpers import FakeSleep
from aiorefresh import (
    ConfigurationError,
    FleetStats,
    RefreshableSession,
    SessionClosedError,
    SessionFleet,
    ValidationError,
)
from aiorefresh.mfa import make_mfa_provider
from aiorefresh.testing import CountingFetcher, FrozenClock, MotoServer, STSStandIn

if sys.version_info < (3, 11):  # pragma: no cover - anyio depends on the backport there
    from exceptiongroup import ExceptionGroup

REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"]
ACCOUNTS = [f"{100000000000 + n:012d}" for n in range(50)]
MFA_DEVICE = "arn:aws:iam::123456789012:mfa/auditor"


@pytest.fixture
async def source(
    aws_env: Any,
    moto_server: MotoServer,
    frozen_clock: FrozenClock,
    counting_fetcher: CountingFetcher,
) -> AsyncIterator[RefreshableSession]:
    async with RefreshableSession(
        custom_credentials_method=counting_fetcher,
        region_name="us-east-1",
        clock=frozen_clock,
        default_client_kwargs={"endpoint_url": moto_server.endpoint_url, "verify": False},
    ) as session:
        yield session


def fleet_of(source: RefreshableSession, sts: STSStandIn, **options: Any) -> SessionFleet:
    return SessionFleet(
        source,
        sts_client_kwargs={"endpoint_url": sts.endpoint_url, "verify": False},
        **options,
    )


async def list_queues(client: Any, account_id: str, region: str) -> tuple[str, str]:
    await client.list_queues()
    return account_id, region


async def presign(client: Any, account_id: str, region: str) -> tuple[str, str]:
    """Sign a request with the child's credentials, without sending it."""
    url = await client.generate_presigned_url("list_queues")
    assert "X-Amz-Security-Token" in url
    return account_id, region


# -- child sessions ---------------------------------------------------------------------------


async def test_a_leased_session_is_the_account_role_assumed_from_the_source(
    source: RefreshableSession, sts_standin: STSStandIn
) -> None:
    async with fleet_of(source, sts_standin) as fleet:
        async with fleet.session("210987654321") as child:
            creds = await child.refreshable_credentials()
            identity = sts_standin.identity_of(creds.access_key)
            assert identity.account_id == "210987654321"
            assert ":assumed-role/Audit/" in identity.arn
            assert child.assume_role_kwargs["RoleArn"] == "arn:aws:iam::210987654321:role/Audit"
    (request,) = [r for r in sts_standin.requests if r.action == "AssumeRole"]
    assert request.params["RoleArn"] == "arn:aws:iam::210987654321:role/Audit"


async def test_the_role_arn_template_and_assume_role_options_reach_every_child(
    source: RefreshableSession, sts_standin: STSStandIn
) -> None:
    fleet = fleet_of(
        source,
        sts_standin,
        role_arn="arn:aws:iam::{account_id}:role/ReadOnly",
        ExternalId="fleet-external-id",
        RoleSessionName="fleet-audit",
    )
    async with fleet:
        for account in ACCOUNTS[:2]:
            async with fleet.session(account) as child:
                await child.refreshable_credentials()
    requests = [r for r in sts_standin.requests if r.action == "AssumeRole"]
    assert [r.params["RoleArn"] for r in requests] == [
        f"arn:aws:iam::{a}:role/ReadOnly" for a in ACCOUNTS[:2]
    ]
    assert {r.params["ExternalId"] for r in requests} == {"fleet-external-id"}
    assert {r.params["RoleSessionName"] for r in requests} == {"fleet-audit"}


async def test_an_account_has_one_child_however_many_tasks_lease_it(
    source: RefreshableSession, sts_standin: STSStandIn
) -> None:
    async with fleet_of(source, sts_standin) as fleet:
        seen: list[RefreshableSession] = []

        async def lease() -> None:
            async with fleet.session("210987654321") as child:
                await child.refreshable_credentials()
                seen.append(child)

        await asyncio.gather(*(lease() for _ in range(30)))
        assert len({id(child) for child in seen}) == 1
        assert sts_standin.count("AssumeRole") == 1
        assert fleet.stats().created == 1


async def test_fifty_accounts_by_four_regions_by_ten_tasks_make_exactly_fifty_sts_calls(
    source: RefreshableSession, sts_standin: STSStandIn
) -> None:
    async with fleet_of(source, sts_standin) as fleet:
        runs = await asyncio.gather(
            *(fleet.fan_out("sqs", ACCOUNTS, REGIONS, presign, concurrency=40) for _ in range(10))
        )
        expected = {(a, r): (a, r) for a in ACCOUNTS for r in REGIONS}
        assert all(results == expected for results in runs)
        assert sts_standin.count("AssumeRole") == 50
        stats = fleet.stats()
        assert (stats.sts_calls, stats.refreshes, stats.sessions, stats.leased) == (50, 50, 50, 0)


async def test_children_refresh_once_each_when_their_credentials_near_expiry(
    source: RefreshableSession, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    async with fleet_of(source, sts_standin) as fleet:
        await fleet.fan_out("sqs", ACCOUNTS[:10], REGIONS[:2], list_queues)
        frozen_clock.advance(timedelta(minutes=59, seconds=30).total_seconds())  # mandatory
        await fleet.fan_out("sqs", ACCOUNTS[:10], REGIONS[:2], list_queues)
        assert sts_standin.count("AssumeRole") == 20
        assert fleet.stats().refreshes == 20


# -- the bound --------------------------------------------------------------------------------


async def test_max_sessions_evicts_children_while_tasks_run_and_closes_none_in_use(
    source: RefreshableSession, sts_standin: STSStandIn
) -> None:
    peak = 0
    closed_in_use: list[str] = []

    async with fleet_of(source, sts_standin, max_sessions=10) as fleet:

        async def busy(client: Any, account_id: str, region: str) -> str:
            nonlocal peak
            peak = max(peak, fleet.stats().sessions)
            async with fleet.session(account_id) as child:
                await presign(client, account_id, region)
                await asyncio.sleep(0)
                await client.list_queues()
                if child.closed:
                    closed_in_use.append(account_id)
            return region

        results = await fleet.fan_out("sqs", ACCOUNTS, REGIONS[:2], busy, concurrency=20)
        assert all(results[(a, r)] == r for a in ACCOUNTS for r in REGIONS[:2])
        assert closed_in_use == []
        stats = fleet.stats()
        assert stats.evictions >= 40
        assert stats.sessions <= 10
        assert peak <= 10 + 20  # the bound, plus one per busy evicted account
        assert stats.leased == 0


async def test_an_evicted_child_is_closed_once_its_last_lease_ends(
    source: RefreshableSession, sts_standin: STSStandIn
) -> None:
    async with fleet_of(source, sts_standin, max_sessions=1) as fleet:
        async with fleet.session(ACCOUNTS[0]) as first:
            async with fleet.session(ACCOUNTS[1]) as second:
                await second.refreshable_credentials()
            assert not first.closed  # evicted while leased: still open
            await first.refreshable_credentials()
        for _ in range(3):
            await asyncio.sleep(0)  # the pool closes it in a task of its own
        assert first.closed
        assert not second.closed


async def test_a_child_made_again_after_eviction_reuses_its_credentials(
    source: RefreshableSession, sts_standin: STSStandIn
) -> None:
    async with fleet_of(source, sts_standin, max_sessions=2) as fleet:
        for _ in range(3):
            await fleet.fan_out("sqs", ACCOUNTS[:6], REGIONS[:1], list_queues, concurrency=1)
        stats = fleet.stats()
        assert stats.created == 18
        assert sts_standin.count("AssumeRole") == 6
        assert stats.sts_calls == 6


async def test_two_hundred_children_made_and_closed_leave_memory_flat(
    source: RefreshableSession, sts_standin: STSStandIn
) -> None:
    async def children(first: int, count: int) -> None:
        for n in range(first, first + count):
            child = await source.assume_role(
                f"arn:aws:iam::{n:012d}:role/Audit",
                sts_client_kwargs={"endpoint_url": sts_standin.endpoint_url, "verify": False},
            )
            await child.refreshable_credentials()  # AssumeRole, on the child's own STS client
            async with child.client("sqs", region_name="eu-west-1"):
                pass
            await child.aclose()

    await children(1, 20)  # what is made once per process (loaded models, classes) is made
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        await children(1000, 200)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    ours = [
        tracemalloc.Filter(False, "*/aiorefresh/testing/*"),
        tracemalloc.Filter(False, "*/aiohttp/web*"),
    ]
    grown = sum(
        s.size_diff
        for s in after.filter_traces(ours).compare_to(before.filter_traces(ours), "filename")
    )
    assert grown < 1_000_000  # 200 children: < 5 kB each left behind (an open one costs ~0.7 MB)
    assert source._children == set()


# -- fan-out over accounts and regions --------------------------------------------------------


async def test_fleet_results_are_keyed_by_account_and_region_in_input_order(
    source: RefreshableSession, sts_standin: STSStandIn
) -> None:
    async with fleet_of(source, sts_standin) as fleet:
        results = await fleet.fan_out("sqs", ACCOUNTS[:3], REGIONS[:2], list_queues)
    assert list(results) == [(a, r) for a in ACCOUNTS[:3] for r in REGIONS[:2]]


async def test_each_fleet_call_gets_the_child_client_of_its_account_and_region(
    source: RefreshableSession, sts_standin: STSStandIn
) -> None:
    async def who(client: Any, account_id: str, region: str) -> tuple[str, str]:
        frozen = await client._request_signer._credentials.get_frozen_credentials()
        return sts_standin.identity_of(frozen.access_key).account_id, client.meta.region_name

    async with fleet_of(source, sts_standin) as fleet:
        results = await fleet.fan_out("sqs", ACCOUNTS[:3], REGIONS[:2], who)
    assert results == {(a, r): (a, r) for a in ACCOUNTS[:3] for r in REGIONS[:2]}


async def test_fleet_failures_are_results_or_raise_without_return_exceptions(
    source: RefreshableSession, sts_standin: STSStandIn
) -> None:
    async def fails_in(client: Any, account_id: str, region: str) -> str:
        if account_id == ACCOUNTS[1]:
            raise LookupError(account_id)
        return region

    async with fleet_of(source, sts_standin) as fleet:
        results = await fleet.fan_out("sqs", ACCOUNTS[:3], REGIONS[:2], fails_in)
        assert {k for k, v in results.items() if isinstance(v, LookupError)} == {
            (ACCOUNTS[1], r) for r in REGIONS[:2]
        }
        with pytest.raises(ExceptionGroup):
            await fleet.fan_out("sqs", ACCOUNTS[:3], REGIONS[:2], fails_in, return_exceptions=False)
        assert fleet.stats().leased == 0


async def test_a_refused_assume_role_is_the_result_of_that_account_only(
    source: RefreshableSession, sts_standin: STSStandIn
) -> None:
    from aiorefresh import NonRecoverableCredentialError
    from aiorefresh.testing import Fail

    sts_standin.script(Fail("AccessDenied", "not allowed", status=403), action="AssumeRole")
    async with fleet_of(source, sts_standin) as fleet:
        results = await fleet.fan_out("sqs", ACCOUNTS[:3], REGIONS[:1], list_queues, concurrency=1)
    failed = [k for k, v in results.items() if isinstance(v, NonRecoverableCredentialError)]
    assert failed == [(ACCOUNTS[0], REGIONS[0])]
    assert fleet.stats().failures == 1


async def test_fleet_fan_out_over_all_regions_uses_the_source_partition(
    source: RefreshableSession, sts_standin: STSStandIn
) -> None:
    async def region_of(client: Any, account_id: str, region: str) -> str:
        return region

    async with fleet_of(source, sts_standin) as fleet:
        results = await fleet.fan_out("sqs", ACCOUNTS[:2], "all", region_of, concurrency=16)
    regions = await source.get_available_regions("sqs", "aws")
    assert list(results) == [(a, r) for a in ACCOUNTS[:2] for r in regions]


async def test_fleet_iter_fan_out_streams_pairs_and_stops_early(
    source: RefreshableSession, sts_standin: STSStandIn
) -> None:
    async with fleet_of(source, sts_standin) as fleet:
        async with fleet.iter_fan_out("sqs", ACCOUNTS[:4], REGIONS, list_queues) as results:
            got = [key async for key, _ in results]
        assert sorted(got) == sorted((a, r) for a in ACCOUNTS[:4] for r in REGIONS)
        async with fleet.iter_fan_out("sqs", ACCOUNTS, REGIONS, list_queues) as results:
            async for _ in results:
                break
        assert fleet.stats().leased == 0


async def test_fleet_progress_counts_every_account_and_region(
    source: RefreshableSession, sts_standin: STSStandIn
) -> None:
    seen: list[tuple[int, int]] = []
    async with fleet_of(source, sts_standin) as fleet:
        await fleet.fan_out(
            "sqs",
            ACCOUNTS[:3],
            REGIONS[:2],
            list_queues,
            on_progress=lambda d, t: seen.append((d, t)),
        )
    assert seen == [(n, 6) for n in range(1, 7)]


# -- MFA --------------------------------------------------------------------------------------


async def test_mfa_children_share_one_provider_so_each_assume_role_gets_a_code_of_its_own(
    source: RefreshableSession,
    sts_standin: STSStandIn,
    frozen_clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A TOTP device gives one code per 30-second step and STS refuses a code used twice: the
    # children must take turns on one provider, the later ones waiting for the next step
    # (FakeSleep moves the frozen clock instead, wherever the provider is made).
    sleep = FakeSleep(frozen_clock)
    defaults = make_mfa_provider.__kwdefaults__
    assert defaults is not None
    monkeypatch.setitem(defaults, "sleep", sleep)
    asked: list[str] = []

    def totp() -> str:
        asked.append(f"{int(frozen_clock().timestamp() // 30) % 1_000_000:06d}")
        return asked[-1]

    fleet = fleet_of(source, sts_standin, SerialNumber=MFA_DEVICE, mfa_token_provider=totp)
    async with fleet:

        async def refresh(account: str) -> str:
            async with fleet.session(account) as child:
                return (await child.refreshable_credentials()).access_key

        keys = await asyncio.gather(*(refresh(account) for account in ACCOUNTS[:3]))
    sent = [r.params["TokenCode"] for r in sts_standin.requests if r.action == "AssumeRole"]
    assert len(set(keys)) == 3
    assert len(sent) == len(set(sent)) == 3
    assert set(sent) == set(asked)
    assert len(sleep.calls) == 2  # the second and third child each waited for a new step


# -- stats and lifecycle ----------------------------------------------------------------------


async def test_stats_count_sessions_sts_calls_and_refreshes(
    source: RefreshableSession, sts_standin: STSStandIn
) -> None:
    async with fleet_of(source, sts_standin) as fleet:
        assert fleet.stats() == FleetStats(0, 0, 0, 0, 0, 0, 0)
        await fleet.fan_out("sqs", ACCOUNTS[:4], REGIONS[:1], list_queues)
        stats = fleet.stats()
        assert (stats.sessions, stats.created, stats.sts_calls, stats.refreshes) == (4, 4, 4, 4)
        assert "sessions=4" in repr(fleet)


async def test_aclose_closes_every_child_and_refuses_new_leases(
    source: RefreshableSession, sts_standin: STSStandIn
) -> None:
    fleet = fleet_of(source, sts_standin)
    children: list[RefreshableSession] = []
    for account in ACCOUNTS[:3]:
        async with fleet.session(account) as child:
            children.append(child)
    await fleet.aclose()
    assert all(child.closed for child in children)
    assert fleet.stats().sessions == 0
    assert not source.closed
    with pytest.raises(SessionClosedError):
        async with fleet.session(ACCOUNTS[0]):
            pass


async def test_closing_the_source_closes_the_fleet_children(
    source: RefreshableSession, sts_standin: STSStandIn
) -> None:
    fleet = fleet_of(source, sts_standin)
    async with fleet.session(ACCOUNTS[0]) as child:
        await child.refreshable_credentials()
    await source.aclose()
    assert child.closed
    await fleet.aclose()


# -- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "options", "error", "message"),
    [
        (("not a session",), {}, ValidationError, "source_session must be a RefreshableSession"),
        ((None, 5), {}, ValidationError, "role_arn must be a str"),
        ((None, "arn:aws:iam::123456789012:role/X"), {}, ConfigurationError, "{account_id}"),
        ((None, "arn:aws:iam::{account_id}:role/{x}"), {}, ConfigurationError, "only field"),
        *(
            ((None, f"arn:aws:iam::{{account_id}}:role/{field}"), {}, ConfigurationError, message)
            for field, message in [
                ("{account_id.x}", "role_arn must be a template whose only field"),
                ("{account_id[0]}", "role_arn must be a template whose only field"),
                ("{account_id!r}", "role_arn must be a template whose only field"),
                ("{account_id:>12}", "role_arn must be a template whose only field"),
                ("{}", "role_arn must be a template whose only field"),
                ("x}", "role_arn must be a template whose only field"),
            ]
        ),
        ((None, "arn:aws:iam::{{account_id}}:role/X"), {}, ConfigurationError, "role_arn must"),
        (
            (None,),
            {"SerialNumber": MFA_DEVICE, "mfa_token_provider": 5},
            ValidationError,
            "mfa_token_provider must be",
        ),
        ((None,), {"mfa_token_provider": lambda: "123456"}, ConfigurationError, "SerialNumber"),
        (
            (None,),
            {"mfa_token_provider_kwargs": {"timeout": 5}},
            ConfigurationError,
            "mfa_token_provider_kwargs needs mfa_token_provider",
        ),
        ((None, "arn:aws:iam::{account_id}:role/a b"), {}, ConfigurationError, "RoleArn"),
        ((None,), {"max_sessions": 0}, ConfigurationError, "max_sessions must be a positive"),
        ((None,), {"max_sessions": "9"}, ValidationError, "max_sessions must be a positive"),
        ((None,), {"RoleArn": "x"}, ConfigurationError, "pass the role as role_arn"),
        ((None,), {"DurationSeconds": 60}, ConfigurationError, "DurationSeconds"),
        ((None,), {"Color": "blue"}, ValidationError, "unknown key"),
        ((None,), {"sts_client_kwargs": {"endpoint_url": "ftp://x"}}, ConfigurationError, "http"),
    ],
)
def test_the_fleet_checks_its_arguments_when_made(
    source: RefreshableSession,
    arguments: tuple[Any, ...],
    options: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    given = tuple(source if a is None else a for a in arguments)
    with pytest.raises(error, match=message.replace("{", r"\{").replace("}", r"\}")):
        SessionFleet(*given, **options)


def test_a_longer_duration_than_chaining_allows_is_capped_with_one_warning(
    source: RefreshableSession,
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fleet = SessionFleet(source, DurationSeconds=7200)
    assert fleet.options["DurationSeconds"] == 3600
    assert [str(w.message) for w in caught if "capped" in str(w.message)]


@pytest.mark.parametrize(
    ("account", "error"),
    [
        (123456789012, ValidationError),
        ("12345", ConfigurationError),
        ("12345678901a", ConfigurationError),
    ],
)
def test_an_account_id_must_be_twelve_digits(
    source: RefreshableSession, account: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match="12-digit AWS account id"):
        SessionFleet(source).session(account)


async def test_fleet_fan_out_checks_its_arguments_before_any_request(
    source: RefreshableSession, sts_standin: STSStandIn
) -> None:
    async with fleet_of(source, sts_standin) as fleet:
        with pytest.raises(ValidationError, match="accounts must be an iterable"):
            await fleet.fan_out("sqs", ACCOUNTS[0], REGIONS, list_queues)
        with pytest.raises(ConfigurationError, match="more than once"):
            await fleet.fan_out("sqs", [ACCOUNTS[0]] * 2, REGIONS, list_queues)
        with pytest.raises(ConfigurationError, match=r"accounts\[1\] must be a 12-digit"):
            await fleet.fan_out("sqs", [ACCOUNTS[0], "x"], REGIONS, list_queues)
        with pytest.raises(ValidationError, match=r"fn must be an async function called as"):
            await fleet.fan_out("sqs", ACCOUNTS, REGIONS, None)  # type: ignore[arg-type]
    assert sts_standin.count() == 0
