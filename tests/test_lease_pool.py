"""LeasePool specifications: leasing and single flight, on the fake factory of _lease_pool_helpers
(no I/O): one creation per key however many tasks ask at once, what a cancelled or failed
creation leaves behind, and the checks of the pool's options. Each test names one behaviour."""

from __future__ import annotations

import asyncio
import random
import traceback
from typing import Any

import pytest

from _lease_pool_helpers import (
    FakeFactory,
    MakePool,
    Value,
    lease_and_wait,
    lease_once,
    yield_to_others,
)
from aiorefresh._pool import LeasePool, PoolStats
from aiorefresh.errors import ConfigurationError, PoolError, ValidationError

# -- leasing and single flight ----------------------------------------------------------------


async def test_first_lease_creates_the_value_and_later_leases_share_it(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool()
    first = await lease_once(pool, "a")
    second = await lease_once(pool, "a")
    assert first is second
    assert factory.created == [first]
    assert pool.stats() == PoolStats(hits=1, misses=1, creations=1, size=1)


async def test_concurrent_first_leases_share_one_creation(make_pool: MakePool) -> None:
    pool, factory = make_pool()
    factory.gate = asyncio.Event()
    release = asyncio.Event()
    tasks = [asyncio.ensure_future(lease_and_wait(pool, release, "a")) for _ in range(100)]
    await yield_to_others()
    assert factory.started == 1
    assert pool.stats().leased == 100  # waiters hold their lease while the value is created
    factory.gate.set()
    await yield_to_others()
    release.set()
    values = await asyncio.gather(*tasks)
    assert len({id(v) for v in values}) == 1
    stats = pool.stats()
    assert (stats.misses, stats.hits, stats.creations, stats.leased) == (1, 99, 1, 0)


async def test_hit_path_completes_without_suspending(make_pool: MakePool) -> None:
    pool, _ = make_pool()
    created = await lease_once(pool, "a")
    lease = pool.lease("a")
    entering = lease.__aenter__()
    with pytest.raises(StopIteration) as stopped:
        entering.send(None)  # an await anywhere on the hit path would suspend here
    assert stopped.value.value is created
    await lease.__aexit__(None, None, None)
    assert pool.stats().leased == 0


async def test_lease_can_be_entered_only_once(make_pool: MakePool) -> None:
    pool, _ = make_pool()
    lease = pool.lease("a")
    async with lease:
        pass
    with pytest.raises(PoolError, match="only once"):
        async with lease:
            pass


async def test_a_lease_may_bring_its_own_way_to_create(make_pool: MakePool) -> None:
    pool, factory = make_pool()
    made: list[str] = []

    async def create(key: str) -> Value:
        made.append(key)
        return Value(key, 0)

    async with pool.lease("a", create=create) as own:
        pass
    async with pool.lease("a") as shared:  # a hit: the factory is not asked
        pass
    assert own is shared
    assert made == ["a"]
    assert factory.started == 0
    await pool.aclose()
    assert factory.closed == [own]  # the factory closes it like any other


async def test_waiter_cancelled_during_creation_leaves_without_stopping_it(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool()
    factory.gate = asyncio.Event()
    release = asyncio.Event()
    creator = asyncio.ensure_future(lease_and_wait(pool, release, "a"))
    await yield_to_others()
    waiter = asyncio.ensure_future(lease_and_wait(pool, release, "a"))
    await yield_to_others()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert pool.stats().leased == 1
    factory.gate.set()
    release.set()
    assert await creator is factory.created[0]
    assert pool.stats().leased == 0


async def test_waiter_cancelled_after_creation_succeeded_gives_its_lease_back(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool(max_size=1)
    factory.gate = asyncio.Event()
    waiter_started = asyncio.Event()

    async def waiter() -> None:
        waiter_started.set()
        async with pool.lease("a"):
            pytest.fail("the waiter was cancelled before it could use the value")

    async def creator() -> Value:
        async with pool.lease("a") as value:
            # Runs right after the creation finished, before the woken waiter resumes.
            waiting.cancel()
            return value

    first = asyncio.ensure_future(creator())
    await yield_to_others()
    waiting = asyncio.ensure_future(waiter())
    await waiter_started.wait()
    await yield_to_others()
    assert pool.stats().leased == 2
    factory.gate.set()
    value = await first
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert pool.stats().leased == 0
    await lease_once(pool, "b")  # evicts a: with no lease left it closes now
    await yield_to_others()
    assert factory.is_closed(value)


async def test_failed_creation_reaches_every_waiter_and_leaves_nothing_behind(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool()
    factory.gate = asyncio.Event()
    factory.fail_with = OSError("no route to the endpoint")
    release = asyncio.Event()
    tasks = [asyncio.ensure_future(lease_and_wait(pool, release, "a")) for _ in range(10)]
    await yield_to_others()
    factory.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    assert factory.started == 1
    stats = pool.stats()
    assert (stats.creations, stats.size, stats.leased) == (0, 0, 0)


async def test_each_waiter_gets_its_own_copy_of_a_creation_error(make_pool: MakePool) -> None:
    pool, factory = make_pool()
    factory.gate = asyncio.Event()
    factory.fail_with = OSError("endpoint unreachable")
    tasks = [asyncio.create_task(pool.pin("a")) for _ in range(50)]
    await yield_to_others()
    factory.gate.set()
    errors = list(await asyncio.gather(*tasks, return_exceptions=True))
    assert all(isinstance(e, OSError) for e in errors)
    assert len({id(e) for e in errors}) == 50
    depths = [len(traceback.extract_tb(e.__traceback__)) for e in errors]  # type: ignore[union-attr]
    assert max(depths) < 20  # no traceback grows with the number of waiters


async def test_lease_after_a_failed_creation_creates_again(make_pool: MakePool) -> None:
    pool, factory = make_pool()
    factory.fail_with = OSError("first attempt fails")
    with pytest.raises(OSError, match="first attempt"):
        await lease_once(pool, "a")
    factory.fail_with = None
    await lease_once(pool, "a")
    assert factory.started == 2
    assert pool.stats().creations == 1


async def test_cancelled_creation_leaves_no_entry_and_the_next_lease_creates(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool()
    factory.gate = asyncio.Event()
    creator = asyncio.ensure_future(lease_and_wait(pool, asyncio.Event(), "a"))
    await yield_to_others()
    creator.cancel()
    with pytest.raises(asyncio.CancelledError):
        await creator
    assert pool.stats() == PoolStats(misses=1)
    factory.gate.set()
    await lease_once(pool, "a")
    assert factory.started == 2
    assert len(factory.created) == 1


async def test_cancelled_creator_hands_the_creation_to_a_waiter(make_pool: MakePool) -> None:
    pool, factory = make_pool()
    factory.gate = asyncio.Event()
    release = asyncio.Event()
    creator = asyncio.ensure_future(lease_and_wait(pool, release, "a"))
    await yield_to_others()
    waiters = [asyncio.ensure_future(lease_and_wait(pool, release, "a")) for _ in range(5)]
    await yield_to_others()
    creator.cancel()
    with pytest.raises(asyncio.CancelledError):
        await creator
    await yield_to_others()
    assert factory.started == 2  # one waiter took the creation over; the rest wait for it
    factory.gate.set()
    await yield_to_others()
    release.set()
    values = await asyncio.gather(*waiters)
    assert len({id(v) for v in values}) == 1
    assert len(factory.created) == 1


async def test_thousand_cancelled_and_racing_tasks_never_get_or_lose_a_closed_value(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool(max_size=4)
    factory.yields_before_create = 3  # widen the window in which others evict
    rng = random.Random(20260101)
    keys = [f"key-{n}" for n in range(20)]
    weights = [60] * 4 + [1] * 16  # four hot keys, sixteen cold ones that force evictions

    async def worker(key: str, pauses: int) -> None:
        async with pool.lease(key) as value:
            with factory.hold(value):
                for _ in range(pauses):
                    await asyncio.sleep(0)

    tasks = []
    for _ in range(1000):
        key = rng.choices(keys, weights)[0]
        tasks.append(asyncio.ensure_future(worker(key, rng.randrange(4))))
    for task in tasks:
        if rng.random() < 0.25:
            asyncio.get_running_loop().call_later(0, task.cancel)
    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert [r for r in results if r is not None and not isinstance(r, BaseException)] == []
    assert [r for r in results if isinstance(r, Exception)] == []
    assert 100 < sum(isinstance(r, asyncio.CancelledError) for r in results) < 400
    assert factory.closed_while_held == []
    assert factory.used_after_close == []
    stats = pool.stats()
    assert stats.leased == 0
    assert stats.evictions > 0
    assert stats.hits > stats.misses
    assert stats.size <= 4
    await pool.aclose()
    stats = pool.stats()
    assert stats.creations == stats.closes == len(factory.created)


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        ({"max_size": "4"}, "max_size"),
        ({"max_size": True}, "max_size"),
        ({"max_size": 2.5}, "max_size"),
        ({"eviction_policy": 1}, "eviction_policy"),
        ({"idle_timeout": "60"}, "idle_timeout"),
        ({"close_timeout": None}, "close_timeout"),
        ({"clock": 3}, "clock"),
        ({"name": None}, "name"),
        ({"noun": 1}, "noun"),
    ],
)
def test_wrong_option_types_raise_validation_error_naming_the_option(
    options: dict[str, Any], parameter: str
) -> None:
    with pytest.raises(ValidationError, match=parameter):
        LeasePool(FakeFactory(), **options)


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        ({"max_size": -1}, "max_size"),
        ({"eviction_policy": "FIFO"}, "eviction_policy"),
        ({"idle_timeout": -1}, "idle_timeout"),
        ({"close_timeout": -0.5}, "close_timeout"),
        ({"close_timeout": float("nan")}, "close_timeout"),
    ],
)
def test_out_of_range_options_raise_configuration_error_naming_the_option(
    options: dict[str, Any], parameter: str
) -> None:
    with pytest.raises(ConfigurationError, match=parameter):
        LeasePool(FakeFactory(), **options)


def test_a_factory_without_create_and_close_is_rejected() -> None:
    with pytest.raises(ValidationError, match="factory"):
        LeasePool(object())  # type: ignore[arg-type]
