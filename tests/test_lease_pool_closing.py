"""LeasePool specifications: how values are closed, on the fake factory (no I/O): clear and
aclose, the values of each event loop closed when that loop shuts down, and pools dropped by
the garbage collector without aclose."""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings
from typing import Any

import pytest

from _lease_pool_helpers import (
    FakeFactory,
    MakePool,
    Pool,
    Value,
    lease_and_wait,
    lease_once,
    yield_to_others,
)
from aiorefresh._pool import LeasePool, PoolStats
from aiorefresh.errors import ConfigurationError, SessionClosedError

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
