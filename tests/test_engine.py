"""The refresh engine: windows, single flight, static stability, failures, loops."""

from __future__ import annotations

import asyncio
import random
import threading
from datetime import timedelta

import pytest

from aiorefresh import (
    CredentialRefreshError,
    NonRecoverableCredentialError,
    RefreshEvent,
    SessionClosedError,
    TemporaryCredentials,
)
from aiorefresh._engine import RefreshEngine, compute_windows
from aiorefresh.testing import CountingFetcher, FrozenClock

MIN = timedelta(minutes=1)


def make_engine(fetcher: CountingFetcher, **kwargs: object) -> RefreshEngine:
    return RefreshEngine(fetcher, clock=fetcher.clock, **kwargs)  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# -- windows ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lifetime", "advisory", "mandatory"),
    [
        (timedelta(minutes=2), timedelta(seconds=60), timedelta(seconds=30)),
        (timedelta(minutes=15), timedelta(minutes=5), timedelta(seconds=60)),
        (timedelta(minutes=20), timedelta(minutes=5), timedelta(seconds=60)),
        (timedelta(minutes=60), timedelta(minutes=15), timedelta(seconds=60)),
        (timedelta(minutes=89), timedelta(minutes=15), timedelta(seconds=60)),
        (timedelta(minutes=90), timedelta(minutes=45), timedelta(seconds=60)),  # half the lifetime
        (timedelta(hours=12), timedelta(minutes=60), timedelta(seconds=60)),
    ],
)
def test_default_windows_follow_lifetime(
    lifetime: timedelta, advisory: timedelta, mandatory: timedelta
) -> None:
    assert compute_windows(lifetime) == (advisory, mandatory)


def test_explicit_windows_override_defaults() -> None:
    assert compute_windows(
        timedelta(hours=1), advisory=timedelta(minutes=20), mandatory=timedelta(minutes=2)
    ) == (timedelta(minutes=20), timedelta(minutes=2))


def test_explicit_windows_are_capped_by_lifetime() -> None:
    advisory, mandatory = compute_windows(
        timedelta(minutes=15), advisory=timedelta(minutes=15), mandatory=timedelta(minutes=10)
    )
    assert advisory == timedelta(minutes=7.5)
    assert mandatory == timedelta(minutes=3.75)


def test_mandatory_window_never_exceeds_advisory() -> None:
    advisory, mandatory = compute_windows(timedelta(hours=1), advisory=timedelta(seconds=30))
    assert mandatory == advisory == timedelta(seconds=30)


def test_jitter_shortens_advisory_within_bounds() -> None:
    rng = random.Random(7)
    seen = {compute_windows(timedelta(hours=1), jitter=0.5, rng=rng)[0] for _ in range(200)}
    assert all(timedelta(minutes=7.5) <= w <= timedelta(minutes=15) for w in seen)
    assert len(seen) > 100


# -- fast path and single flight -------------------------------------------------------------


async def test_fresh_credentials_are_served_without_fetching(
    counting_fetcher: CountingFetcher,
) -> None:
    engine = make_engine(counting_fetcher)
    first = await engine.get()
    for _ in range(1000):
        assert await engine.get() is first
    assert counting_fetcher.calls == 1


async def test_ten_thousand_first_callers_cause_one_fetch(
    counting_fetcher: CountingFetcher,
) -> None:
    engine = make_engine(counting_fetcher)
    counting_fetcher.gate = asyncio.Event()
    tasks = [asyncio.create_task(engine.get()) for _ in range(10_000)]
    await settle()
    assert counting_fetcher.calls == 1
    assert not any(t.done() for t in tasks)
    counting_fetcher.gate.set()
    results = await asyncio.gather(*tasks)
    assert {r.access_key for r in results} == {"ASIATEST000001"}
    assert counting_fetcher.calls == 1


async def test_advisory_window_serves_current_credentials_while_one_background_fetch_runs(
    counting_fetcher: CountingFetcher, frozen_clock: FrozenClock
) -> None:
    engine = make_engine(counting_fetcher)
    first = await engine.get()
    frozen_clock.advance(minutes=46)  # one-hour credentials: advisory window is 15 minutes
    counting_fetcher.gate = asyncio.Event()
    results = await asyncio.gather(*(engine.get() for _ in range(1000)))
    assert all(r is first for r in results)
    await settle()
    assert counting_fetcher.calls == 2
    counting_fetcher.gate.set()
    await settle()
    assert (await engine.get()).access_key == "ASIATEST000002"
    assert counting_fetcher.calls == 2


async def test_advisory_failure_keeps_credentials_and_backs_off(
    counting_fetcher: CountingFetcher, frozen_clock: FrozenClock
) -> None:
    engine = make_engine(counting_fetcher)
    first = await engine.get()
    frozen_clock.advance(minutes=46)
    counting_fetcher.fail_with = OSError("connection reset")
    assert await engine.get() is first
    await settle()
    assert counting_fetcher.calls == 2
    frozen_clock.advance(minutes=4)  # backoff is 5-10 minutes
    assert await engine.get() is first
    await settle()
    assert counting_fetcher.calls == 2
    assert engine.stats().failures == 1


async def test_advisory_backoff_never_reaches_past_mandatory_window(
    counting_fetcher: CountingFetcher, frozen_clock: FrozenClock
) -> None:
    engine = make_engine(counting_fetcher)
    await engine.get()
    frozen_clock.advance(minutes=57)  # 3 minutes before expiry, 2 before the mandatory window
    counting_fetcher.fail_with = OSError("down")
    await engine.get()
    await settle()
    next_due = engine.stats().next_due
    assert next_due is not None
    assert next_due <= frozen_clock() + timedelta(minutes=2)
    frozen_clock.advance(minutes=2, seconds=1)  # inside the mandatory window
    counting_fetcher.fail_with = None
    assert (await engine.get()).access_key == "ASIATEST000003"


async def test_mandatory_window_callers_wait_for_the_one_fetch(
    counting_fetcher: CountingFetcher, frozen_clock: FrozenClock
) -> None:
    engine = make_engine(counting_fetcher)
    await engine.get()
    frozen_clock.advance(minutes=59, seconds=30)
    counting_fetcher.gate = asyncio.Event()
    tasks = [asyncio.create_task(engine.get()) for _ in range(1000)]
    await settle()
    assert not any(t.done() for t in tasks)
    counting_fetcher.gate.set()
    results = await asyncio.gather(*tasks)
    assert {r.access_key for r in results} == {"ASIATEST000002"}
    assert counting_fetcher.calls == 2


async def test_mandatory_transient_failure_serves_still_valid_credentials(
    counting_fetcher: CountingFetcher, frozen_clock: FrozenClock
) -> None:
    engine = make_engine(counting_fetcher)
    first = await engine.get()
    frozen_clock.advance(minutes=59, seconds=30)
    counting_fetcher.fail_with = OSError("throttled")
    results = await asyncio.gather(*(engine.get() for _ in range(100)))
    assert all(r is first for r in results)
    assert counting_fetcher.calls == 2


async def test_mandatory_transient_failure_backs_off_briefly(
    counting_fetcher: CountingFetcher, frozen_clock: FrozenClock
) -> None:
    engine = make_engine(counting_fetcher)
    await engine.get()
    frozen_clock.advance(minutes=59, seconds=30)
    counting_fetcher.fail_with = OSError("throttled")
    await engine.get()
    await engine.get()
    assert counting_fetcher.calls == 2
    frozen_clock.advance(seconds=11)
    counting_fetcher.fail_with = None
    assert (await engine.get()).access_key == "ASIATEST000003"


async def test_non_recoverable_error_is_raised_at_once_in_mandatory_window(
    counting_fetcher: CountingFetcher, frozen_clock: FrozenClock
) -> None:
    engine = make_engine(counting_fetcher)
    await engine.get()
    frozen_clock.advance(minutes=59, seconds=30)
    counting_fetcher.fail_with = NonRecoverableCredentialError("AccessDenied")
    results = await asyncio.gather(*(engine.get() for _ in range(50)), return_exceptions=True)
    assert all(isinstance(r, NonRecoverableCredentialError) for r in results)
    assert len({id(r) for r in results}) == 50  # a fresh exception per caller
    assert counting_fetcher.calls == 2


async def test_non_recoverable_error_is_remembered_for_seconds(
    counting_fetcher: CountingFetcher, frozen_clock: FrozenClock
) -> None:
    engine = make_engine(counting_fetcher)
    await engine.get()
    frozen_clock.advance(minutes=59, seconds=30)
    counting_fetcher.fail_with = NonRecoverableCredentialError("AccessDenied")
    for _ in range(20):
        with pytest.raises(NonRecoverableCredentialError):
            await engine.get()
    assert counting_fetcher.calls == 2
    frozen_clock.advance(seconds=11)
    counting_fetcher.fail_with = None
    assert (await engine.get()).access_key == "ASIATEST000003"


async def test_expired_credentials_are_never_returned(
    counting_fetcher: CountingFetcher, frozen_clock: FrozenClock
) -> None:
    engine = make_engine(counting_fetcher)
    await engine.get()
    frozen_clock.advance(hours=1)
    counting_fetcher.fail_with = OSError("network down")
    results = await asyncio.gather(*(engine.get() for _ in range(1000)), return_exceptions=True)
    assert all(isinstance(r, CredentialRefreshError) for r in results)
    assert all(isinstance(r.__cause__, OSError) for r in results)  # type: ignore[union-attr]
    assert counting_fetcher.calls == 2


async def test_expired_credentials_wait_for_one_refresh(
    counting_fetcher: CountingFetcher, frozen_clock: FrozenClock
) -> None:
    engine = make_engine(counting_fetcher)
    await engine.get()
    frozen_clock.advance(hours=2)
    results = await asyncio.gather(*(engine.get() for _ in range(1000)))
    assert {r.access_key for r in results} == {"ASIATEST000002"}
    assert counting_fetcher.calls == 2


async def test_already_expired_answer_is_a_failure(frozen_clock: FrozenClock) -> None:
    fetcher = CountingFetcher(frozen_clock, lifetime=timedelta(seconds=-1))
    engine = make_engine(fetcher)
    with pytest.raises(CredentialRefreshError, match="already expired"):
        await engine.get()


async def test_wrong_answer_type_is_a_failure(frozen_clock: FrozenClock) -> None:
    async def fetch() -> TemporaryCredentials:
        return {"not": "credentials"}  # type: ignore[return-value]

    engine = RefreshEngine(fetch, clock=frozen_clock)
    with pytest.raises(CredentialRefreshError, match="expected TemporaryCredentials"):
        await engine.get()


async def test_refresh_timeout_fails_a_hanging_fetch(counting_fetcher: CountingFetcher) -> None:
    engine = make_engine(counting_fetcher, refresh_timeout=0.05)
    counting_fetcher.gate = asyncio.Event()  # never set
    with pytest.raises(CredentialRefreshError, match="timed out"):
        await engine.get()


# -- cancellation and lifecycle --------------------------------------------------------------


async def test_cancelled_waiter_leaves_at_once_without_cancelling_the_fetch(
    counting_fetcher: CountingFetcher,
) -> None:
    engine = make_engine(counting_fetcher)
    counting_fetcher.gate = asyncio.Event()
    waiters = [asyncio.create_task(engine.get()) for _ in range(100)]
    await settle()
    for task in waiters[:50]:
        task.cancel()
    await settle()
    assert all(t.cancelled() for t in waiters[:50])
    counting_fetcher.gate.set()
    results = await asyncio.gather(*waiters[50:])
    assert {r.access_key for r in results} == {"ASIATEST000001"}
    assert counting_fetcher.calls == 1


async def test_aclose_cancels_the_in_flight_fetch_and_leaves_no_tasks(
    counting_fetcher: CountingFetcher,
) -> None:
    engine = make_engine(counting_fetcher)
    counting_fetcher.gate = asyncio.Event()
    waiters = [asyncio.create_task(engine.get()) for _ in range(10)]
    await settle()
    before = asyncio.all_tasks()
    await engine.aclose()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, SessionClosedError) for r in results)
    leftover = asyncio.all_tasks() - before - {asyncio.current_task()}
    assert not leftover
    assert all(t.done() for t in before if t is not asyncio.current_task() and t not in waiters)


async def test_force_refresh_fetches_even_when_fresh(counting_fetcher: CountingFetcher) -> None:
    engine = make_engine(counting_fetcher)
    await engine.get()
    forced = await engine.refresh(force=True)
    assert forced.access_key == "ASIATEST000002"
    assert (await engine.get()) is forced


async def test_force_refresh_is_single_flight(counting_fetcher: CountingFetcher) -> None:
    engine = make_engine(counting_fetcher)
    await engine.get()
    await asyncio.gather(*(engine.refresh(force=True) for _ in range(100)))
    assert counting_fetcher.calls == 2


async def test_unforced_refresh_fetches_only_when_due(counting_fetcher: CountingFetcher) -> None:
    engine = make_engine(counting_fetcher)
    await engine.get()
    await engine.refresh(force=False)
    assert counting_fetcher.calls == 1


async def test_invalidate_makes_the_next_caller_wait_for_fresh_credentials(
    counting_fetcher: CountingFetcher,
) -> None:
    engine = make_engine(counting_fetcher)
    await engine.get()
    engine.invalidate()
    assert engine.current is None
    results = await asyncio.gather(*(engine.get() for _ in range(100)))
    assert {r.access_key for r in results} == {"ASIATEST000002"}


# -- stats and events ------------------------------------------------------------------------


async def test_stats_count_refreshes_and_failures(
    counting_fetcher: CountingFetcher, frozen_clock: FrozenClock
) -> None:
    engine = make_engine(counting_fetcher)
    await engine.get()
    stats = engine.stats()
    assert (stats.refreshes, stats.failures) == (1, 0)
    assert stats.last_refresh == frozen_clock()
    assert stats.next_due == frozen_clock() + timedelta(minutes=45)
    assert stats.expiry_time == frozen_clock() + timedelta(hours=1)
    counting_fetcher.fail_with = OSError("boom")
    with pytest.raises(CredentialRefreshError):
        await engine.refresh()
    stats = engine.stats()
    assert (stats.refreshes, stats.failures) == (1, 1)
    assert stats.last_error is not None
    assert "OSError" in stats.last_error


async def test_on_refresh_receives_every_outcome(
    counting_fetcher: CountingFetcher, frozen_clock: FrozenClock
) -> None:
    events: list[RefreshEvent] = []
    engine = make_engine(counting_fetcher, on_refresh=events.append)
    await engine.get()
    counting_fetcher.fail_with = OSError("boom")
    with pytest.raises(CredentialRefreshError):
        await engine.refresh()
    assert [(e.ok, e.phase) for e in events] == [(True, "initial"), (False, "forced")]
    assert events[0].expiry_time == frozen_clock() + timedelta(hours=1)
    assert isinstance(events[1].error, CredentialRefreshError)


async def test_failing_on_refresh_callback_does_not_break_refresh(
    counting_fetcher: CountingFetcher,
) -> None:
    def explode(event: RefreshEvent) -> None:
        raise RuntimeError("metrics backend down")

    engine = make_engine(counting_fetcher, on_refresh=explode)
    assert (await engine.get()).access_key == "ASIATEST000001"


# -- event loops -----------------------------------------------------------------------------


def test_engine_works_under_a_second_asyncio_run(counting_fetcher: CountingFetcher) -> None:
    engine = make_engine(counting_fetcher)
    first = asyncio.run(engine.get())
    counting_fetcher.clock.advance(hours=2)
    second = asyncio.run(engine.get())
    assert (first.access_key, second.access_key) == ("ASIATEST000001", "ASIATEST000002")


def test_engine_serves_two_threads_with_their_own_loops_at_once(
    frozen_clock: FrozenClock,
) -> None:
    fetcher = CountingFetcher(frozen_clock)
    engine = make_engine(fetcher)
    barrier = threading.Barrier(2)
    results: dict[int, set[str]] = {}

    async def hammer(index: int) -> None:
        barrier.wait()
        creds = await asyncio.gather(*(engine.get() for _ in range(500)))
        results[index] = {c.access_key for c in creds}

    threads = [threading.Thread(target=asyncio.run, args=(hammer(i),)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert set(results) == {0, 1}
    # single flight is per loop: at most one fetch per loop, and only fetched keys served
    assert 1 <= fetcher.calls <= 2
    issued = {f"ASIATEST{n:06d}" for n in range(1, fetcher.calls + 1)}
    assert results[0] | results[1] <= issued
