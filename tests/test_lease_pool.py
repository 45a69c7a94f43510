"""LeasePool specifications: the generic keyed lease pool, on a fake factory (no I/O).

Each test names one behaviour. The fake factory's values are plain objects; it records which
were created and closed, which were closed while a task held them, which were handed out
after they were closed, and checks at every creation that one key never has two open values.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import random
import threading
import traceback
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from aiorefresh._pool import LeasePool, PoolStats
from aiorefresh.errors import ConfigurationError, PoolError, SessionClosedError, ValidationError
from aiorefresh.testing import FrozenClock


class Value:
    """A value of the fake factory."""

    def __init__(self, key: str, number: int) -> None:
        self.key = key
        self.number = number

    def __repr__(self) -> str:
        return f"<Value {self.key} #{self.number}>"


class FakeFactory:
    """Makes `Value` objects and records their fate."""

    def __init__(self) -> None:
        self.created: list[Value] = []
        self.closed: list[Value] = []
        self.started = 0
        self.gate: asyncio.Event | None = None
        self.gates: dict[str, asyncio.Event] = {}  # per key
        self.yields_before_create = 0
        self.fail_with: BaseException | None = None
        self.holders: Counter[int] = Counter()
        self.closed_while_held: list[Value] = []
        self.used_after_close: list[Value] = []
        self.closing_tasks: list[asyncio.Task[Any] | None] = []
        self.check_at_create: Callable[[str], None] | None = None
        self._lock = threading.Lock()

    async def create(self, key: str) -> Value:
        self.started += 1
        if self.check_at_create is not None:
            self.check_at_create(key)
        for _ in range(self.yields_before_create):
            await asyncio.sleep(0)
        if self.gate is not None:
            await self.gate.wait()
        if key in self.gates:
            await self.gates[key].wait()
        if self.fail_with is not None:
            raise self.fail_with
        with self._lock:
            value = Value(key, len(self.created) + 1)
            self.created.append(value)
        return value

    async def close(self, key: str, value: Value) -> None:
        self.closing_tasks.append(asyncio.current_task())
        with self._lock:
            if self.holders[id(value)]:
                self.closed_while_held.append(value)
            self.closed.append(value)

    @contextlib.contextmanager
    def hold(self, value: Value) -> Iterator[Value]:
        """Mark ``value`` as in use by the calling task for the block."""
        if self.is_closed(value):
            self.used_after_close.append(value)
        self.holders[id(value)] += 1
        try:
            yield value
        finally:
            self.holders[id(value)] -= 1

    def is_closed(self, value: Value) -> bool:
        return any(v is value for v in self.closed)

    def open_values(self) -> list[Value]:
        return [v for v in self.created if not self.is_closed(v)]

    def closed_keys(self) -> list[str]:
        return [v.key for v in self.closed]


Pool = LeasePool[str, Value]
MakePool = Callable[..., tuple[Pool, FakeFactory]]


@pytest.fixture
async def make_pool() -> AsyncIterator[MakePool]:
    """Pools on fake factories; at teardown each is closed and every value it made is closed."""
    made: list[tuple[Pool, FakeFactory]] = []

    def make(**options: Any) -> tuple[Pool, FakeFactory]:
        factory = FakeFactory()
        pool: Pool = LeasePool(factory, **options)
        made.append((pool, factory))
        return pool, factory

    yield make
    for pool, factory in made:
        await pool.aclose()
        assert factory.open_values() == []
        assert factory.closed_while_held == []
        assert factory.used_after_close == []


async def yield_to_others(times: int = 5) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


async def lease_and_wait(pool: Pool, event: asyncio.Event, key: str) -> Value:
    async with pool.lease(key) as value:
        await event.wait()
        return value


async def lease_once(pool: Pool, key: str) -> Value:
    async with pool.lease(key) as value:
        return value


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


# -- clear and aclose -------------------------------------------------------------------------


async def test_clear_closes_unleased_values_now_and_leased_ones_at_release(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool()
    b = await lease_once(pool, "b")
    pinned = await pool.pin("c")
    async with pool.lease("a") as a:
        await pool.clear()
        assert factory.is_closed(b)
        assert not factory.is_closed(a)
    await yield_to_others()
    assert factory.is_closed(a)
    assert not factory.is_closed(pinned)
    assert await lease_once(pool, "a") is not a  # the pool stays usable


async def test_a_value_cleared_while_leased_is_not_reused(make_pool: MakePool) -> None:
    pool, _ = make_pool(max_size=1)
    async with pool.lease("a") as a:
        await lease_once(pool, "b")  # a is evicted while busy
        await pool.clear()
        assert await lease_once(pool, "a") is not a


async def test_aclose_waits_for_leases_to_end(make_pool: MakePool) -> None:
    pool, factory = make_pool()
    release = asyncio.Event()
    holder = asyncio.ensure_future(lease_and_wait(pool, release, "a"))
    await yield_to_others()
    closing = asyncio.ensure_future(pool.aclose())
    await yield_to_others()
    assert not closing.done()
    assert factory.closed == []
    release.set()
    value = await holder
    await closing
    assert factory.is_closed(value)


async def test_aclose_closes_leased_values_after_close_timeout_with_a_warning(
    make_pool: MakePool, caplog: pytest.LogCaptureFixture
) -> None:
    pool, factory = make_pool(close_timeout=0)
    caplog.set_level(logging.WARNING, logger="aiorefresh")
    async with pool.lease("a") as a:
        await pool.aclose()
        assert factory.is_closed(a)
    assert "close_timeout" in caplog.text
    assert pool.stats().leased == 0


async def test_a_cancelled_aclose_keeps_closing_and_a_second_one_waits(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool()
    release = asyncio.Event()
    holder = asyncio.ensure_future(lease_and_wait(pool, release, "a"))
    await yield_to_others()
    closing = asyncio.ensure_future(pool.aclose())
    await yield_to_others()
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    release.set()
    value = await holder
    await pool.aclose()
    assert factory.is_closed(value)


async def test_values_are_closed_in_a_task_of_the_pool_not_the_callers(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool(max_size=0)
    caller = asyncio.current_task()
    await lease_once(pool, "a")
    await yield_to_others()
    assert factory.closing_tasks
    assert all(task is not caller for task in factory.closing_tasks)


async def test_creation_finishing_after_aclose_gave_up_is_closed(make_pool: MakePool) -> None:
    pool, factory = make_pool(close_timeout=0)
    factory.gate = asyncio.Event()
    creator = asyncio.ensure_future(lease_and_wait(pool, asyncio.Event(), "a"))
    await yield_to_others()
    await pool.aclose()
    factory.gate.set()
    with pytest.raises(SessionClosedError):
        await creator
    assert len(factory.created) == 1
    assert factory.open_values() == []


async def test_waiters_on_a_pending_creation_leave_when_aclose_gives_up(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool(close_timeout=0.05)
    factory.gate = asyncio.Event()
    creator = asyncio.create_task(pool.pin("a"))
    waiters = [asyncio.create_task(pool.pin("a")) for _ in range(10)]
    await yield_to_others()
    await pool.aclose()
    done, pending = await asyncio.wait(waiters, timeout=5)
    assert not pending
    assert all(isinstance(t.exception(), SessionClosedError) for t in done)
    factory.gate.set()
    with pytest.raises(SessionClosedError):
        await creator
    assert len(factory.created) == len(factory.closed)


async def test_lease_and_pin_after_aclose_raise_session_closed_error(
    make_pool: MakePool,
) -> None:
    pool, _ = make_pool()
    await lease_once(pool, "a")
    await pool.aclose()
    with pytest.raises(SessionClosedError):
        await lease_once(pool, "a")
    with pytest.raises(SessionClosedError):
        await pool.pin("a")


async def test_aclose_twice_is_harmless(make_pool: MakePool) -> None:
    pool, _ = make_pool()
    await lease_once(pool, "a")
    await asyncio.gather(pool.aclose(), pool.aclose())
    await pool.aclose()
    assert pool.stats().closes == 1


async def test_aclose_closes_every_value_of_the_loop_and_stats_balance(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool(max_size=2)
    await pool.pin("d")
    for key in ("a", "b", "c"):
        await lease_once(pool, key)
    await pool.aclose()
    assert factory.open_values() == []
    stats = pool.stats()
    assert stats.creations == stats.closes == 4
    assert (stats.size, stats.leased) == (0, 0)


# -- event loops ------------------------------------------------------------------------------


async def test_each_event_loop_gets_its_own_values(make_pool: MakePool) -> None:
    pool, factory = make_pool()

    async def on_another_loop() -> Value:
        value = await lease_once(pool, "a")
        await pool.aclose()
        return value

    here = await lease_once(pool, "a")
    there = await asyncio.to_thread(asyncio.run, on_another_loop())
    assert there is not here
    assert factory.is_closed(there)
    assert not factory.is_closed(here)
    assert await lease_once(pool, "a") is here  # this loop's partition is still open
    assert pool.stats().creations == 2


async def test_aclose_belongs_to_the_loop_it_runs_on(make_pool: MakePool) -> None:
    pool, factory = make_pool()
    here = await lease_once(pool, "a")
    await asyncio.to_thread(asyncio.run, pool.aclose())
    assert not factory.is_closed(here)
    assert await lease_once(pool, "a") is here


def test_a_loops_values_close_when_the_loop_shuts_down_without_aclose() -> None:
    factory = FakeFactory()
    pool: Pool = LeasePool(factory)

    async def use() -> None:
        await lease_once(pool, "a")
        await pool.pin("b")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(use())
        asyncio.run(use())
    assert len(factory.created) == 4
    assert factory.open_values() == []
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_counters_of_finished_loops_are_kept() -> None:
    pool: Pool = LeasePool(FakeFactory())
    for _ in range(3):
        asyncio.run(lease_once(pool, "a"))
    assert pool.stats() == PoolStats(misses=3, creations=3, closes=3)


def test_values_left_on_a_loop_closed_without_shutting_down_are_reported() -> None:
    factory = FakeFactory()
    pool: Pool = LeasePool(factory)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(lease_once(pool, "a"))
    loop.close()  # no asyncio.run teardown: nothing could close the value
    with pytest.warns(ResourceWarning, match="closed event loop"):
        asyncio.run(lease_once(pool, "a"))  # the next creation notices the dead partition
    assert pool.stats().creations == 2  # the dropped loop's counters are kept


async def test_a_lease_outside_an_event_loop_raises_configuration_error() -> None:
    pool: Pool = LeasePool(FakeFactory())

    def enter_without_loop() -> None:
        pool.lease("a").__aenter__().send(None)

    with pytest.raises(ConfigurationError, match="running asyncio event loop"):
        await asyncio.to_thread(enter_without_loop)


# -- garbage collection -----------------------------------------------------------------------


async def test_a_pool_dropped_unclosed_has_its_values_closed_on_their_running_loop() -> None:
    factory = FakeFactory()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await _lease_once_and_drop_the_pool(close=False, factory=factory)
        for _ in range(5):
            await asyncio.sleep(0)  # the closing task runs on this loop
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert [value.key for value in factory.closed] == ["a"]


def test_a_pool_dropped_unclosed_after_its_loop_closed_warns_to_call_aclose() -> None:
    loop = asyncio.new_event_loop()
    pool: Pool = LeasePool(FakeFactory())
    loop.run_until_complete(lease_once(pool, "a"))
    loop.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del pool
        gc.collect()
    messages = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert len(messages) == 1
    assert "aclose() the pool on each loop" in messages[0]


async def test_garbage_collected_closed_pool_does_not_warn() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await _lease_once_and_drop_the_pool(close=True)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


async def _lease_once_and_drop_the_pool(*, close: bool, factory: Any = None) -> None:
    pool: Pool = LeasePool(factory or FakeFactory())
    await lease_once(pool, "a")
    if close:
        await pool.aclose()
    del pool
    gc.collect()


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
