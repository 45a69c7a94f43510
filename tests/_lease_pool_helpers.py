"""The fake factory the LeasePool specifications (test_lease_pool*.py) run on, with no I/O, their
lease helpers, and the ``make_pool`` fixture (conftest.py loads this module as a plugin for it).
The fake factory's values are plain objects; it records which were created and closed, which
were closed while a task held them, which were handed out after they were closed, and checks at
every creation that one key never has two open values."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from aiorefresh._pool import LeasePool


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
