"""session.fan_out / session.iter_fan_out, against moto's server.

Each call leases the pooled client of its region; ``verify=False`` only spares every new client
the CA bundle load on its first request (moto answers over plain HTTP on loopback).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiorefresh import (
    ConfigurationError,
    RefreshableSession,
    SessionClosedError,
    ValidationError,
)
from aiorefresh.testing import CountingFetcher, MotoServer

if sys.version_info < (3, 11):  # pragma: no cover - anyio depends on the backport there
    from exceptiongroup import ExceptionGroup

REGIONS = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "eu-south-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "sa-east-1",
    "me-south-1",
    "af-south-1",
]


@pytest.fixture
async def session(
    aws_env: Any, moto_server: MotoServer, counting_fetcher: CountingFetcher
) -> AsyncIterator[RefreshableSession]:
    async with RefreshableSession(
        custom_credentials_method=counting_fetcher,
        region_name="us-east-1",
        default_client_kwargs={"endpoint_url": moto_server.endpoint_url, "verify": False},
    ) as session:
        yield session


async def list_queues(client: Any, region: str) -> str:
    await client.list_queues()
    return region


def other_tasks() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


# -- results ----------------------------------------------------------------------------------


async def test_results_are_keyed_by_region_in_input_order_whatever_order_calls_finish(
    session: RefreshableSession,
) -> None:
    regions = REGIONS[:6]
    turn = {region: asyncio.Event() for region in regions}

    async def last_first(client: Any, region: str) -> str:
        await client.list_queues()
        index = regions.index(region)
        if index + 1 < len(regions):
            await turn[regions[index + 1]].wait()  # each waits for the one after it
        turn[region].set()
        return region.upper()

    results = await session.fan_out("sqs", regions, last_first)
    assert list(results) == regions
    assert results == {region: region.upper() for region in regions}


async def test_each_call_gets_the_pooled_client_of_its_region(session: RefreshableSession) -> None:
    async def region_of(client: Any, region: str) -> str:
        return str(client.meta.region_name)

    regions = REGIONS[:5]
    assert await session.fan_out("sqs", regions, region_of) == {r: r for r in regions}
    await session.fan_out("sqs", regions, region_of)
    stats = session.pool.stats()
    assert (stats.creations, stats.hits, stats.leased) == (5, 5, 0)


async def test_client_kwargs_reach_every_client(session: RefreshableSession) -> None:
    from botocore.config import Config

    async def read_timeout(client: Any, region: str) -> Any:
        return client.meta.config.read_timeout

    config = Config(read_timeout=17)
    results = await session.fan_out(
        "sqs", REGIONS[:3], read_timeout, client_kwargs={"config": config}
    )
    assert set(results.values()) == {17}


async def test_no_regions_is_an_empty_result(session: RefreshableSession) -> None:
    assert await session.fan_out("sqs", [], list_queues) == {}


# -- bounded concurrency ------------------------------------------------------------------------


async def test_at_most_concurrency_calls_run_at_once(session: RefreshableSession) -> None:
    in_flight = peak = 0
    full = asyncio.Event()

    async def measured(client: Any, region: str) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 4:
            full.set()
        try:
            await full.wait()  # without 4 calls at once this never returns
            await client.list_queues()
            for _ in range(3):
                await asyncio.sleep(0)
        finally:
            in_flight -= 1

    results = await session.fan_out("sqs", REGIONS, measured, concurrency=4)
    assert len(results) == len(REGIONS)
    assert peak == 4


async def test_a_fan_out_holds_no_more_tasks_than_its_concurrency(
    session: RefreshableSession,
) -> None:
    await session.fan_out("sqs", REGIONS, list_queues)  # clients made, loop helpers started
    counts: list[int] = []
    before = len(other_tasks())

    async def count_tasks(client: Any, region: str) -> None:
        counts.append(len(other_tasks()) - before)
        await asyncio.sleep(0)

    await session.fan_out("sqs", REGIONS, count_tasks, concurrency=3)
    assert max(counts) <= 3


# -- failures ---------------------------------------------------------------------------------


async def test_failures_are_results_by_default(session: RefreshableSession) -> None:
    async def fail_in_eu(client: Any, region: str) -> str:
        if region.startswith("eu-"):
            raise LookupError(region)
        return await list_queues(client, region)

    results = await session.fan_out("sqs", REGIONS[:8], fail_in_eu)
    failed = {r: v for r, v in results.items() if isinstance(v, Exception)}
    assert sorted(failed) == [r for r in REGIONS[:8] if r.startswith("eu-")]
    assert all(isinstance(e, LookupError) and e.args == (r,) for r, e in failed.items())
    assert all(results[r] == r for r in REGIONS[:8] if r not in failed)


async def test_a_service_error_is_a_result_like_any_other(session: RefreshableSession) -> None:
    from botocore.exceptions import ClientError

    async def missing_queue(client: Any, region: str) -> Any:
        return await client.get_queue_url(QueueName="no-such-queue")

    results = await session.fan_out("sqs", REGIONS[:2], missing_queue)
    assert all(isinstance(v, ClientError) for v in results.values())


async def test_without_return_exceptions_the_first_failure_cancels_the_rest_and_raises(
    session: RefreshableSession,
) -> None:
    waiting = 0
    cancelled = 0
    all_waiting = asyncio.Event()

    async def one_fails(client: Any, region: str) -> None:
        nonlocal waiting, cancelled
        if region == "us-east-1":
            await all_waiting.wait()
            raise LookupError("us-east-1 failed")
        waiting += 1
        if waiting == 5:
            all_waiting.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled += 1
            raise

    with pytest.raises(ExceptionGroup) as caught:
        await session.fan_out("sqs", REGIONS[:6], one_fails, return_exceptions=False)
    assert [type(e) for e in caught.value.exceptions] == [LookupError]
    assert cancelled == 5
    assert session.pool.stats().leased == 0


async def test_fn_that_is_not_async_is_a_typed_error(session: RefreshableSession) -> None:
    def not_async(client: Any, region: str) -> str:
        return region

    results = await session.fan_out("sqs", ["us-east-1"], not_async)  # type: ignore[arg-type]
    error = results["us-east-1"]
    assert isinstance(error, ValidationError)
    assert "fn must be an async function" in str(error)


# -- cancellation -----------------------------------------------------------------------------


async def test_cancelling_the_caller_cancels_every_call_and_releases_every_lease(
    session: RefreshableSession,
) -> None:
    await session.fan_out("sqs", REGIONS, list_queues)  # clients made, loop helpers started
    baseline = other_tasks()
    started = cancelled = 0
    all_in = asyncio.Event()

    async def forever(client: Any, region: str) -> None:
        nonlocal started, cancelled
        started += 1
        if started == 8:
            all_in.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled += 1
            raise

    task = asyncio.ensure_future(session.fan_out("sqs", REGIONS, forever, concurrency=8))
    await all_in.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (started, cancelled) == (8, 8)
    assert other_tasks() - baseline == set()
    assert session.pool.stats().leased == 0
    assert await session.fan_out("sqs", REGIONS[:2], list_queues) == {r: r for r in REGIONS[:2]}


async def test_cancelling_while_clients_are_being_created_leaves_the_pool_consistent(
    session: RefreshableSession,
) -> None:
    first_call = asyncio.Event()

    async def signal(client: Any, region: str) -> None:
        first_call.set()
        await asyncio.Event().wait()

    task = asyncio.ensure_future(session.fan_out("sqs", REGIONS, signal, concurrency=10))
    await first_call.wait()  # one client is made; the others are still being created
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stats = session.pool.stats()
    assert stats.leased == 0
    assert stats.creations - stats.closes == stats.size  # every open client is in the pool
    results = await session.fan_out("sqs", REGIONS, list_queues)
    assert results == {r: r for r in REGIONS}
    assert session.pool.stats().leased == 0


# -- regions="all" ----------------------------------------------------------------------------


async def test_all_regions_are_those_the_service_is_offered_in_for_the_session_partition(
    session: RefreshableSession,
) -> None:
    async def region_of(client: Any, region: str) -> str:
        return str(client.meta.region_name)

    expected = await session.get_available_regions("sqs", "aws")
    results = await session.fan_out("sqs", "all", region_of, concurrency=16)
    assert list(results) == expected
    assert len(expected) > 10
    assert all(results[r] == r for r in expected)


async def test_all_regions_follow_the_partition_of_the_session_region(
    aws_env: Any, moto_server: MotoServer, counting_fetcher: CountingFetcher
) -> None:
    async def region_of(client: Any, region: str) -> str:
        return region

    async with RefreshableSession(
        custom_credentials_method=counting_fetcher,
        region_name="cn-north-1",
        default_client_kwargs={"endpoint_url": moto_server.endpoint_url, "verify": False},
    ) as china:
        results = await china.fan_out("sqs", "all", region_of)
        assert list(results) == await china.get_available_regions("sqs", "aws-cn")
        assert set(results) == {"cn-north-1", "cn-northwest-1"}


# -- progress ---------------------------------------------------------------------------------


async def test_on_progress_is_called_with_done_and_total_as_results_arrive(
    session: RefreshableSession,
) -> None:
    seen: list[tuple[int, int]] = []
    results: dict[str, Any] = {}

    async def note(client: Any, region: str) -> str:
        await client.list_queues()
        return region

    def progress(done: int, total: int) -> None:
        seen.append((done, total))

    results = await session.fan_out("sqs", REGIONS[:7], note, on_progress=progress)
    assert seen == [(n, 7) for n in range(1, 8)]
    assert len(results) == 7


async def test_an_async_on_progress_is_awaited(session: RefreshableSession) -> None:
    seen: list[int] = []

    async def progress(done: int, total: int) -> None:
        await asyncio.sleep(0)
        seen.append(done)

    await session.fan_out("sqs", REGIONS[:4], list_queues, on_progress=progress)
    assert sorted(seen) == [1, 2, 3, 4]


async def test_failures_count_as_progress_too(session: RefreshableSession) -> None:
    seen: list[int] = []

    async def boom(client: Any, region: str) -> None:
        raise RuntimeError(region)

    await session.fan_out("sqs", REGIONS[:3], boom, on_progress=lambda d, t: seen.append(d))
    assert seen == [1, 2, 3]


# -- the streaming form -----------------------------------------------------------------------


async def test_iter_fan_out_yields_each_region_as_it_completes(
    session: RefreshableSession,
) -> None:
    regions = REGIONS[:5]
    released = {region: asyncio.Event() for region in regions}

    async def when_released(client: Any, region: str) -> str:
        await released[region].wait()
        return region

    order: list[str] = []
    async with session.iter_fan_out("sqs", regions, when_released) as results:
        released[regions[-1]].set()
        async for region, result in results:
            assert result == region
            order.append(region)
            remaining = [r for r in reversed(regions) if r not in order]
            if remaining:
                released[remaining[0]].set()
    assert order == list(reversed(regions))


async def test_iter_fan_out_yields_failures_as_results_by_default(
    session: RefreshableSession,
) -> None:
    async def boom(client: Any, region: str) -> None:
        raise LookupError(region)

    async with session.iter_fan_out("sqs", REGIONS[:3], boom) as results:
        pairs = [pair async for pair in results]
    assert sorted(region for region, _ in pairs) == sorted(REGIONS[:3])
    assert all(isinstance(error, LookupError) for _, error in pairs)


async def test_breaking_out_of_iter_fan_out_early_cancels_the_rest(
    session: RefreshableSession,
) -> None:
    await session.fan_out("sqs", REGIONS, list_queues)
    baseline = other_tasks()
    started = cancelled = 0
    five_waiting = asyncio.Event()

    async def only_one_finishes(client: Any, region: str) -> str:
        nonlocal started, cancelled
        if region == "us-east-1":
            await five_waiting.wait()
            return region
        started += 1
        if started == 5:
            five_waiting.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled += 1
            raise
        return region

    async with session.iter_fan_out("sqs", REGIONS, only_one_finishes, concurrency=6) as results:
        async for region, _ in results:
            assert region == "us-east-1"
            break
    assert started >= 5
    assert cancelled == started  # every call still running was cancelled, none finished
    assert other_tasks() - baseline == set()
    assert session.pool.stats().leased == 0


async def test_an_error_raised_in_the_iter_fan_out_block_comes_out_as_it_was(
    session: RefreshableSession,
) -> None:
    async def raise_in_the_block() -> None:
        async with session.iter_fan_out("sqs", REGIONS[:4], list_queues) as results:
            async for _ in results:
                raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        await raise_in_the_block()
    assert session.pool.stats().leased == 0


async def test_iter_fan_out_without_return_exceptions_raises_the_first_failure(
    session: RefreshableSession,
) -> None:
    async def boom(client: Any, region: str) -> None:
        if region == "us-west-1":
            raise LookupError(region)
        await asyncio.Event().wait()

    seen: list[str] = []

    async def read_all() -> None:
        async with session.iter_fan_out(
            "sqs", REGIONS[:4], boom, return_exceptions=False
        ) as results:
            async for region, _ in results:
                seen.append(region)

    with pytest.raises(ExceptionGroup) as caught:
        await read_all()
    assert [type(e) for e in caught.value.exceptions] == [LookupError]
    assert seen == []
    assert session.pool.stats().leased == 0


async def test_a_stream_is_entered_once(session: RefreshableSession) -> None:
    stream = session.iter_fan_out("sqs", [], list_queues)
    async with stream as results:
        assert [pair async for pair in results] == []
    with pytest.raises(RuntimeError, match="only once"):
        async with stream:
            pass


# -- arguments, checked before any request ----------------------------------------------------


async def noop(client: Any, region: str) -> None:
    return None


BAD_ARGUMENTS = [
    ({"service": 3}, ValidationError, "service must be a str"),
    ({"service": ""}, ConfigurationError, "service must be a service name"),
    ({"service": "no-such-service"}, ConfigurationError, "'no-such-service' is not a service"),
    ({"regions": "us-east-1"}, ValidationError, r"one region: pass \['us-east-1'\]"),
    ({"regions": 7}, ValidationError, "regions must be an iterable"),
    ({"regions": ["us-east-1", 2]}, ValidationError, r"regions\[1\] must be a region name"),
    ({"regions": ["us east"]}, ConfigurationError, r"regions\[0\] is not a region name"),
    ({"regions": ["eu-west-1", "eu-west-1"]}, ConfigurationError, "eu-west-1 more than once"),
    ({"fn": "list_queues"}, ValidationError, "fn must be an async function"),
    ({"concurrency": 0}, ConfigurationError, "concurrency must be a positive int, got 0"),
    ({"concurrency": 2.5}, ValidationError, "concurrency must be a positive int, got float"),
    ({"concurrency": True}, ValidationError, "concurrency must be a positive int, got bool"),
    ({"return_exceptions": "no"}, ValidationError, "return_exceptions must be a bool"),
    ({"client_kwargs": ["x"]}, ValidationError, "client_kwargs must be a dict"),
    ({"client_kwargs": {"region_name": "x"}}, ConfigurationError, "must not set region_name"),
    ({"client_kwargs": {"endpoint": "x"}}, ValidationError, "unknown key"),
    ({"on_progress": 5}, ValidationError, "on_progress must be a function"),
]


@pytest.mark.parametrize(
    ("change", "error", "message"),
    BAD_ARGUMENTS,
    ids=[f"{next(iter(c))}={next(iter(c.values()))!r}" for c, _, _ in BAD_ARGUMENTS],
)
async def test_each_bad_argument_is_refused_by_name_before_any_request(
    session: RefreshableSession,
    counting_fetcher: CountingFetcher,
    change: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    arguments: dict[str, Any] = {"service": "sqs", "regions": ["us-east-1"], "fn": noop}
    arguments.update(change)
    keywords = {k: v for k, v in arguments.items() if k not in ("service", "regions", "fn")}
    call = (arguments["service"], arguments["regions"], arguments["fn"])
    with pytest.raises(error, match=message):
        await session.fan_out(*call, **keywords)
    with pytest.raises(error, match=message):
        async with session.iter_fan_out(*call, **keywords):
            pass
    assert counting_fetcher.calls == 0
    assert session.pool.stats().creations == 0


async def test_a_closed_session_refuses_to_fan_out(
    aws_env: Any, counting_fetcher: CountingFetcher
) -> None:
    session = RefreshableSession(custom_credentials_method=counting_fetcher)
    await session.aclose()
    with pytest.raises(SessionClosedError):
        await session.fan_out("sqs", ["us-east-1"], noop)


# -- the example ------------------------------------------------------------------------------


def test_the_fan_out_example_runs_against_its_embedded_moto_server() -> None:
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, str(root / "examples" / "fanout.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "progress 5/5" in done.stdout
    assert "us-east-1: 1 queue(s)" in done.stdout
    assert "child sessions: 3, AssumeRole calls: 3" in done.stdout
