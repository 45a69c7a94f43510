"""LeasePool specifications: what the pool keeps, on the fake factory (no I/O): the max_size bound
and LRU or LFU eviction (a creation in flight is never evicted, an evicted value in use closes
when its last lease ends), pinned values, and the idle timeout."""

from __future__ import annotations

import asyncio
import inspect
import random
from collections import Counter
from typing import Any

import pytest

from _lease_pool_helpers import MakePool, lease_and_wait, lease_once, yield_to_others
from aiorefresh._pool import PoolStats
from aiorefresh.testing import FrozenClock

# -- the bound: max_size and eviction ---------------------------------------------------------


async def test_evicted_value_closes_when_its_last_lease_ends(make_pool: MakePool) -> None:
    pool, factory = make_pool(max_size=1)
    async with pool.lease("a") as a:
        b = await lease_once(pool, "b")  # evicts a, which is leased
        await yield_to_others()
        assert not factory.is_closed(a)
    await yield_to_others()
    assert factory.is_closed(a)
    assert not factory.is_closed(b)
    assert pool.stats().evictions == 1


async def test_lru_evicts_the_least_recently_used_value(make_pool: MakePool) -> None:
    pool, factory = make_pool(max_size=2, eviction_policy="LRU")
    for key in ("a", "a", "a", "b", "c"):
        await lease_once(pool, key)
    await yield_to_others()
    assert factory.closed_keys() == ["a"]


async def test_lfu_evicts_the_least_frequently_used_value(make_pool: MakePool) -> None:
    pool, factory = make_pool(max_size=2, eviction_policy="LFU")
    for key in ("a", "a", "a", "b", "c"):
        await lease_once(pool, key)
    await yield_to_others()
    assert factory.closed_keys() == ["b"]


async def test_eviction_prefers_a_value_no_task_is_using(make_pool: MakePool) -> None:
    pool, factory = make_pool(max_size=2)
    async with pool.lease("a") as a:  # least recently used, but leased
        await lease_once(pool, "b")
        await lease_once(pool, "c")
        await yield_to_others()
        assert factory.closed_keys() == ["b"]
        assert not factory.is_closed(a)


async def test_a_creation_in_flight_is_never_evicted(make_pool: MakePool) -> None:
    pool, factory = make_pool(max_size=1)
    factory.gates["a"] = asyncio.Event()
    release = asyncio.Event()
    creating = asyncio.ensure_future(lease_and_wait(pool, release, "a"))
    await yield_to_others()
    other = asyncio.ensure_future(lease_and_wait(pool, release, "b"))
    await yield_to_others()
    assert pool.stats().evictions == 1  # b was kept out of the index, not a
    factory.gates["a"].set()
    await yield_to_others()
    assert await lease_once(pool, "a") is factory.created[1]  # a is the pooled one
    release.set()
    a, b = await asyncio.gather(creating, other)
    await yield_to_others()
    assert factory.is_closed(b)  # b's value lived outside the bound: gone with its lease
    assert not factory.is_closed(a)


async def test_a_key_leased_while_every_slot_is_a_creation_shares_one_value(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool(max_size=1)
    factory.gates["a"] = asyncio.Event()
    release = asyncio.Event()
    creating = asyncio.ensure_future(lease_and_wait(pool, release, "a"))
    await yield_to_others()
    others = [asyncio.ensure_future(lease_and_wait(pool, release, "b")) for _ in range(10)]
    await yield_to_others()
    release.set()
    values = await asyncio.gather(*others)
    assert len({id(v) for v in values}) == 1
    factory.gates["a"].set()
    await creating
    assert [v.key for v in factory.created] == ["b", "a"]


async def test_a_lease_of_an_evicted_busy_key_reuses_its_open_value(make_pool: MakePool) -> None:
    pool, factory = make_pool(max_size=1)
    release = asyncio.Event()
    holder = asyncio.ensure_future(lease_and_wait(pool, release, "a"))
    await yield_to_others()
    async with pool.lease("b"):  # evicts a, which stays open for its holder
        again = await lease_once(pool, "a")
    assert again is factory.created[0]
    assert [v.key for v in factory.created] == ["a", "b"]
    release.set()
    await holder


async def test_an_evicted_busy_value_goes_back_into_the_pool_when_room_is_made(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool(max_size=1)
    release = asyncio.Event()
    holder = asyncio.ensure_future(lease_and_wait(pool, release, "a"))
    await yield_to_others()
    b = await lease_once(pool, "b")  # evicts a (leased); b is idle in the pool
    a = await lease_once(pool, "a")  # a is used again: it takes idle b's place
    await yield_to_others()
    assert factory.is_closed(b)
    release.set()
    await holder
    await yield_to_others()
    assert not factory.is_closed(a)  # back in the pool: its last lease did not close it
    assert await lease_once(pool, "a") is a
    assert pool.stats().size == 1


@pytest.mark.parametrize(("max_size", "keys", "seed"), [(2, 3, 1), (1, 4, 2), (3, 6, 3)])
async def test_open_values_stay_within_max_size_plus_one_per_busy_key_under_churn(
    make_pool: MakePool, max_size: int, keys: int, seed: int
) -> None:
    pool, factory = make_pool(max_size=max_size)
    factory.yields_before_create = 2
    names = [f"key-{n}" for n in range(keys)]
    busy: Counter[str] = Counter()
    peak = 0

    def check(key: str) -> None:
        # Values already handed to a close task that has not started yet count as closed.
        closing = sum(1 for task in asyncio.all_tasks() if _close_pending(task))
        open_now = len(factory.open_values()) - closing + 1  # + the one being created
        busy_keys = sum(1 for n in busy.values() if n)
        assert open_now <= max_size + busy_keys
        nonlocal peak
        peak = max(peak, open_now)

    factory.check_at_create = check
    rng = random.Random(seed)

    async def worker(key: str, delay: int, hold: int) -> None:
        await yield_to_others(delay)
        busy[key] += 1
        try:
            async with pool.lease(key) as value:
                with factory.hold(value):
                    await yield_to_others(hold)
        finally:
            busy[key] -= 1

    tasks = [
        asyncio.ensure_future(worker(rng.choice(names), rng.randrange(100), rng.randrange(4)))
        for _ in range(3000)
    ]
    for task in rng.sample(tasks, 600):
        asyncio.get_running_loop().call_later(0, task.cancel)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [r for r in results if isinstance(r, Exception)] == []
    assert peak <= max_size + keys
    assert len(factory.created) <= 4 * keys  # creations stay near the number of keys
    assert factory.closed_while_held == []


def _close_pending(task: asyncio.Task[Any]) -> bool:
    return ": close " in task.get_name() and (
        inspect.getcoroutinestate(task.get_coro()) == inspect.CORO_CREATED  # type: ignore[arg-type]
    )


async def test_max_size_zero_creates_a_value_per_lease_and_closes_it_at_release(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool(max_size=0)
    async with pool.lease("a") as first, pool.lease("a") as second:
        assert first is not second
    await yield_to_others()
    assert factory.is_closed(first)
    assert factory.is_closed(second)
    stats = pool.stats()
    assert (stats.misses, stats.creations, stats.closes, stats.size) == (2, 2, 2, 0)


async def test_stats_count_hits_misses_creations_evictions_and_closes(
    make_pool: MakePool,
) -> None:
    pool, _ = make_pool(max_size=1)
    for key in ("a", "a", "b"):
        await lease_once(pool, key)
    await yield_to_others()
    assert pool.stats() == PoolStats(
        hits=1, misses=2, creations=2, evictions=1, closes=1, size=1, leased=0
    )


# -- pinning ----------------------------------------------------------------------------------


async def test_pinned_value_survives_eviction_and_closes_with_aclose(make_pool: MakePool) -> None:
    pool, factory = make_pool(max_size=1)
    pinned = await pool.pin("a")
    for key in ("b", "c", "d"):
        await lease_once(pool, key)
    await yield_to_others()
    assert not factory.is_closed(pinned)
    assert await pool.pin("a") is pinned
    await pool.aclose()
    assert factory.is_closed(pinned)


async def test_leases_share_the_pinned_value(make_pool: MakePool) -> None:
    pool, _ = make_pool()
    pinned = await pool.pin("a")
    assert await lease_once(pool, "a") is pinned


async def test_pinning_an_evicted_busy_value_brings_it_back_and_never_makes_two(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool(max_size=1)
    release = asyncio.Event()
    holder = asyncio.ensure_future(lease_and_wait(pool, release, "a"))
    await yield_to_others()
    await lease_once(pool, "b")  # evicts a, which stays open for its holder
    pinned = await pool.pin("a")
    assert pinned is factory.created[0]
    release.set()
    await holder
    await yield_to_others()
    assert not factory.is_closed(pinned)
    assert await pool.pin("a") is pinned
    assert [v.key for v in factory.created] == ["a", "b"]


async def test_pinning_a_pending_creation_that_was_cleared_pins_the_key_once(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool()
    factory.gates["a"] = asyncio.Event()
    first_pin = asyncio.create_task(pool.pin("a"))
    await yield_to_others()
    await pool.clear()  # the pending entry leaves the pool
    factory.gates["a"].set()
    second_pin = await pool.pin("a")
    assert await first_pin in factory.created
    assert await pool.pin("a") is second_pin


# -- idle timeout -----------------------------------------------------------------------------


async def test_idle_timeout_closes_idle_values_at_the_next_operation(
    make_pool: MakePool, frozen_clock: FrozenClock
) -> None:
    pool, factory = make_pool(idle_timeout=60, clock=frozen_clock)
    a = await lease_once(pool, "a")
    frozen_clock.advance(60)
    await lease_once(pool, "b")
    assert not factory.is_closed(a)  # idle exactly idle_timeout: kept
    frozen_clock.advance(1)
    await lease_once(pool, "b")
    await yield_to_others()
    assert factory.is_closed(a)
    assert pool.stats().evictions == 1
    assert await lease_once(pool, "a") is not a


async def test_idle_timeout_spares_leased_and_pinned_values(
    make_pool: MakePool, frozen_clock: FrozenClock
) -> None:
    pool, factory = make_pool(idle_timeout=10, clock=frozen_clock)
    pinned = await pool.pin("c")
    async with pool.lease("a") as a:
        frozen_clock.advance(3600)
        await lease_once(pool, "b")
        await yield_to_others()
        assert not factory.is_closed(a)
    assert not factory.is_closed(pinned)
    assert pool.stats().evictions == 0
