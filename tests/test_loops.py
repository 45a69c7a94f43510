"""The event-loop seam: per-loop state, closing once, closing at loop shutdown."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref

import pytest

from aiorefresh import ConfigurationError
from aiorefresh._loops import LoopScope, PerLoop, on_loop_shutdown, running_loop

# -- running_loop -----------------------------------------------------------------------------


def test_running_loop_outside_a_loop_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="needs a running asyncio event loop"):
        running_loop()


async def test_running_loop_returns_the_running_loop() -> None:
    assert running_loop() is asyncio.get_running_loop()


# -- PerLoop ----------------------------------------------------------------------------------


async def test_per_loop_makes_one_value_per_loop_however_many_tasks_ask() -> None:
    made: list[asyncio.AbstractEventLoop] = []

    def factory(loop: asyncio.AbstractEventLoop) -> object:
        made.append(loop)
        return object()

    values = PerLoop(factory)

    async def ask() -> object:
        await asyncio.sleep(0)
        return values.get()

    results = await asyncio.gather(*(ask() for _ in range(500)))
    assert len({id(r) for r in results}) == 1
    assert made == [asyncio.get_running_loop()]


def test_per_loop_gives_each_loop_its_own_value() -> None:
    values: PerLoop[object] = PerLoop(lambda loop: object())

    async def get() -> object:
        return values.get()

    first = asyncio.run(get())
    second = asyncio.run(get())
    assert first is not second


def test_per_loop_values_are_made_once_across_threads() -> None:
    loop = asyncio.new_event_loop()
    made: list[int] = []
    lock = threading.Lock()

    def factory(_: asyncio.AbstractEventLoop) -> int:
        with lock:
            made.append(1)
        return len(made)

    values = PerLoop(factory)
    barrier = threading.Barrier(8)
    seen: list[int] = []

    def worker() -> None:
        barrier.wait()
        seen.append(values.get(loop))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    loop.close()
    assert made == [1]
    assert seen == [1] * 8


def test_per_loop_does_not_keep_finished_loops_alive() -> None:
    values: PerLoop[LoopScope] = PerLoop(LoopScope)
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def use() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        scope = values.get()
        await scope.close(_nothing)

    for _ in range(3):
        asyncio.run(use())
    gc.collect()
    assert [ref() is None for ref in loops] == [True, True, True]
    assert values.values() == []


async def test_per_loop_peek_never_creates_and_pop_forgets() -> None:
    values: PerLoop[object] = PerLoop(lambda loop: object())
    assert values.peek() is None
    first = values.get()
    assert values.peek() is first
    assert values.pop() is first
    assert values.get() is not first


def test_per_loop_peek_outside_a_loop_is_none() -> None:
    assert PerLoop(lambda loop: object()).peek() is None


def test_per_loop_get_outside_a_loop_names_the_problem() -> None:
    with pytest.raises(ConfigurationError, match="running asyncio event loop"):
        PerLoop(lambda loop: object()).get()


# -- closing at loop shutdown -----------------------------------------------------------------


def test_values_are_closed_when_asyncio_run_ends_without_aclose() -> None:
    closed: list[str] = []

    async def close(value: str) -> None:
        await asyncio.sleep(0)  # closing may await
        closed.append(value)

    values = PerLoop(lambda loop: "resource", on_shutdown=close)

    async def main() -> None:
        values.get()

    asyncio.run(main())
    assert closed == ["resource"]
    assert values.values() == []


def test_shutdown_callbacks_run_last_registered_first() -> None:
    order: list[int] = []

    async def main() -> None:
        for number in range(3):

            async def callback(number: int = number) -> None:
                order.append(number)

            on_loop_shutdown(callback)

    asyncio.run(main())
    assert order == [2, 1, 0]


def test_a_failing_shutdown_callback_does_not_stop_the_others() -> None:
    order: list[str] = []

    async def fails() -> None:
        raise RuntimeError("boom")

    async def works() -> None:
        order.append("works")

    async def main() -> None:
        on_loop_shutdown(works)
        on_loop_shutdown(fails)

    asyncio.run(main())
    assert order == ["works"]


async def test_cancelled_registrations_leave_no_sentinel_task() -> None:
    async def callback() -> None:
        raise AssertionError("must not run")

    handles = [on_loop_shutdown(callback) for _ in range(3)]
    sentinels = [t for t in asyncio.all_tasks() if t.get_name().startswith("aiorefresh")]
    assert len(sentinels) == 1
    for handle in handles:
        handle.cancel()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert sentinels[0].done()


def test_popped_values_are_not_closed_again_at_shutdown() -> None:
    closed: list[str] = []

    async def close(value: str) -> None:
        closed.append(value)

    values = PerLoop(lambda loop: "resource", on_shutdown=close)

    async def main() -> None:
        values.get()
        values.pop()

    asyncio.run(main())
    assert closed == []


# -- LoopScope --------------------------------------------------------------------------------


async def _nothing() -> None:
    return None


async def test_scope_close_runs_its_body_once_for_every_concurrent_caller() -> None:
    scope = LoopScope(asyncio.get_running_loop())
    runs: list[int] = []
    gate = asyncio.Event()

    async def body() -> None:
        runs.append(1)
        await gate.wait()

    closers = [asyncio.create_task(scope.close(body)) for _ in range(100)]
    await asyncio.sleep(0)
    assert scope.closed
    gate.set()
    await asyncio.gather(*closers)
    await scope.close(body)
    assert runs == [1]


async def test_a_cancelled_closer_leaves_the_close_running() -> None:
    scope = LoopScope(asyncio.get_running_loop())
    gate = asyncio.Event()
    finished: list[bool] = []

    async def body() -> None:
        await gate.wait()
        finished.append(True)

    first = asyncio.create_task(scope.close(body))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    gate.set()
    await scope.close(body)
    assert finished == [True]


async def test_scope_cancel_tasks_cancels_and_awaits_every_owned_task() -> None:
    scope = LoopScope(asyncio.get_running_loop())
    tasks = [scope.spawn(asyncio.sleep(3600)) for _ in range(50)]
    await scope.cancel_tasks()
    assert all(task.cancelled() for task in tasks)
    assert scope.tasks == set()


async def test_a_failed_owned_task_is_retrieved_not_reported_as_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scope = LoopScope(asyncio.get_running_loop())

    async def fails() -> None:
        raise RuntimeError("owned failure")

    task = scope.spawn(fails())
    await asyncio.wait((task,))
    del task
    gc.collect()
    assert "exception was never retrieved" not in caplog.text
