"""ClientPool specifications, run with real aiobotocore clients against a moto server.

Each test names one behaviour. The recording factory is the session's factory over a plain
``AioSession``; it also notes every client closed while a task held it, and every client a
task received after it was closed, so the no-close-under-a-request claims are checked the
same way on aiobotocore 2.x (where a closed client silently reopens) and 3.x (where it raises).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import threading
import traceback
import warnings
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.config import Config

from aiorefresh.errors import (
    ConfigurationError,
    PoolError,
    SessionClosedError,
    ValidationError,
)
from aiorefresh.pool import ClientPool, PoolStats
from aiorefresh.testing import FrozenClock, MotoServer

REGION = "us-east-1"


class RecordingFactory:
    """Creates real aiobotocore clients (one ``AioSession`` per loop) and records their fate."""

    def __init__(self) -> None:
        self._sessions: dict[asyncio.AbstractEventLoop, AioSession] = {}
        self._lock = threading.Lock()
        self.created: list[Any] = []
        self.closed: list[Any] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.started = 0
        self.gate: asyncio.Event | None = None
        self.gates: dict[str, asyncio.Event] = {}  # per service_name
        self.yields_before_create = 0
        self.fail_with: BaseException | None = None
        self.holders: Counter[int] = Counter()
        self.closed_while_held: list[Any] = []
        self.used_after_close: list[Any] = []

    async def create(self, kind: str, kwargs: dict[str, Any]) -> Any:
        self.started += 1
        self.calls.append((kind, kwargs))
        for _ in range(self.yields_before_create):
            await asyncio.sleep(0)
        if self.gate is not None:
            await self.gate.wait()
        service_gate = self.gates.get(kwargs["service_name"])
        if service_gate is not None:
            await service_gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        loop = asyncio.get_running_loop()
        with self._lock:
            session = self._sessions.setdefault(loop, AioSession())
        client = await session.create_client(**kwargs).__aenter__()
        with self._lock:
            self.created.append(client)
        return client

    async def close(self, kind: str, client: Any) -> None:
        with self._lock:
            if self.holders[id(client)]:
                self.closed_while_held.append(client)
            self.closed.append(client)
        await client.__aexit__(None, None, None)

    @contextlib.contextmanager
    def hold(self, client: Any) -> Iterator[Any]:
        """Mark ``client`` as in use by the calling task for the block."""
        if self.is_closed(client):
            self.used_after_close.append(client)
        self.holders[id(client)] += 1
        try:
            yield client
        finally:
            self.holders[id(client)] -= 1

    def is_closed(self, client: Any) -> bool:
        return any(c is client for c in self.closed)

    def open_clients(self) -> list[Any]:
        return [c for c in self.created if not self.is_closed(c)]


class FakeClient:
    """A stand-in client."""


class FakeFactory:
    """Plain objects as clients, for tests about the pool's own bookkeeping."""

    def __init__(self) -> None:
        self.created: list[object] = []
        self.closed: list[object] = []

    async def create(self, kind: str, kwargs: dict[str, Any]) -> object:
        client = FakeClient()
        self.created.append(client)
        return client

    async def close(self, kind: str, client: Any) -> None:
        self.closed.append(client)


MakePool = Callable[..., tuple[ClientPool, RecordingFactory]]


@pytest.fixture
async def make_pool(aws_env: object, moto_server: MotoServer) -> AsyncIterator[MakePool]:
    """Pools over moto; at teardown each is closed and every client it created must be closed."""
    made: list[tuple[ClientPool, RecordingFactory]] = []

    def make(**options: Any) -> tuple[ClientPool, RecordingFactory]:
        factory = RecordingFactory()
        options.setdefault("default_region", REGION)
        options.setdefault("default_client_kwargs", {"endpoint_url": moto_server.endpoint_url})
        pool = ClientPool(factory, **options)
        made.append((pool, factory))
        return pool, factory

    yield make
    for pool, factory in made:
        await pool.aclose()
        assert factory.open_clients() == []
        assert factory.closed_while_held == []
        assert factory.used_after_close == []


async def yield_to_others(times: int = 5) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


async def lease_and_wait(pool: ClientPool, event: asyncio.Event, *args: Any, **kwargs: Any) -> Any:
    async with pool.lease(*args, **kwargs) as client:
        await event.wait()
        return client


# -- keys --------------------------------------------------------------------------------------


async def test_positional_and_keyword_arguments_lease_the_same_client(make_pool: MakePool) -> None:
    pool, _ = make_pool()
    async with pool.lease("s3", "eu-west-1") as positional:
        pass
    async with pool.lease("s3", region_name="eu-west-1") as keyword:
        pass
    assert positional is keyword
    assert pool.stats().creations == 1


async def test_region_none_resolves_to_the_default_region(make_pool: MakePool) -> None:
    pool, factory = make_pool(default_region="eu-central-1")
    async with pool.lease("s3") as implicit:
        pass
    async with pool.lease("s3", "eu-central-1") as explicit:
        pass
    assert implicit is explicit
    assert factory.calls[0][1]["region_name"] == "eu-central-1"


async def test_equal_configs_share_a_client(make_pool: MakePool) -> None:
    pool, _ = make_pool()
    first = AioConfig(retries={"max_attempts": 2}, connector_args={"keepalive_timeout": 5})
    second = AioConfig(retries={"max_attempts": 2}, connector_args={"keepalive_timeout": 5})
    async with pool.lease("s3", config=first) as a:
        pass
    async with pool.lease("s3", config=second) as b:
        pass
    assert a is b


async def test_different_configs_get_different_clients(make_pool: MakePool) -> None:
    pool, _ = make_pool()
    async with pool.lease("s3", config=Config(retries={"max_attempts": 2})) as a:
        pass
    async with pool.lease("s3", config=Config(retries={"max_attempts": 3})) as b:
        pass
    async with pool.lease("s3", config=AioConfig(connector_args={"keepalive_timeout": 7})) as c:
        pass
    assert len({id(a), id(b), id(c)}) == 3


async def test_botocore_rewriting_retries_leaves_the_callers_config_and_key_alone(
    make_pool: MakePool,
) -> None:
    pool, _ = make_pool()
    config = Config(retries={"max_attempts": 2})
    async with pool.lease("s3", config=config) as first:
        await first.list_buckets()
    assert config.retries == {"max_attempts": 2}
    async with pool.lease("s3", config=Config(retries={"max_attempts": 2})) as second:
        pass
    assert second is first


async def test_region_endpoint_and_kind_each_select_another_client(
    make_pool: MakePool, moto_server: MotoServer
) -> None:
    pool, factory = make_pool()
    other_endpoint = moto_server.endpoint_url.replace("127.0.0.1", "localhost")
    async with pool.lease("s3") as base:
        pass
    async with pool.lease("s3", "eu-west-1") as other_region:
        pass
    async with pool.lease("s3", endpoint_url=other_endpoint) as other_endpoint_client:
        pass
    async with pool.lease("s3", kind="resource") as resource:
        pass
    assert len({id(base), id(other_region), id(other_endpoint_client), id(resource)}) == 4
    assert [kind for kind, _ in factory.calls] == ["client", "client", "client", "resource"]


async def test_default_client_kwargs_apply_under_the_call_arguments(
    make_pool: MakePool, moto_server: MotoServer
) -> None:
    default_config = Config(connect_timeout=7, read_timeout=30)
    pool, factory = make_pool(
        default_client_kwargs={"endpoint_url": moto_server.endpoint_url, "config": default_config}
    )
    async with pool.lease("s3", config=Config(read_timeout=5)) as client:
        await client.list_buckets()
    kwargs = factory.calls[0][1]
    assert kwargs["service_name"] == "s3"
    assert kwargs["endpoint_url"] == moto_server.endpoint_url
    assert kwargs["config"].read_timeout == 5
    assert kwargs["config"].connect_timeout == 7


async def test_explicit_keys_select_a_client_but_are_never_kept_in_clear() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzSECRETzz"
    pool = ClientPool(FakeFactory(), default_region="eu-west-1")
    async with pool.lease("s3", aws_access_key_id="AKIAONE", aws_secret_access_key=secret) as a:
        pass
    async with pool.lease("s3", aws_access_key_id="AKIAONE", aws_secret_access_key=secret) as b:
        pass
    async with pool.lease("s3", aws_access_key_id="AKIAONE", aws_secret_access_key="other") as c:
        pass
    assert a is b
    assert a is not c

    strings = _strings_reachable_from(pool)
    assert "eu-west-1" in strings  # the walk does reach the keys
    assert not [s for s in strings if secret in s]
    assert secret not in repr(pool)
    await pool.aclose()


def _strings_reachable_from(root: object) -> set[str]:
    """Strings held by the pool's own objects and containers (not loops, tasks or clients)."""
    found: set[str] = set()
    seen: set[int] = set()
    stack: list[object] = [root]
    followed = (dict, list, tuple, set, frozenset, weakref.WeakValueDictionary)
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            found.add(obj)
        elif isinstance(obj, followed) or type(obj).__module__ in ("aiorefresh", "aiorefresh.pool"):
            stack.extend(gc.get_referents(obj))
            if hasattr(obj, "__dict__"):
                stack.append(vars(obj))
    return found


# -- the trap: leases counted before any await ------------------------------------------------


async def test_thousand_cancelled_and_racing_tasks_never_get_or_lose_a_closed_client(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool(max_clients=4)
    factory.yields_before_create = 3  # widen the window in which others evict a pending entry
    rng = random.Random(20260101)
    keys = [(service, region) for service in ("s3", "sts") for region in _regions(10)]
    weights = [60] * 4 + [1] * 16  # four hot keys, sixteen cold ones that force evictions
    requests_done = 0

    async def worker(number: int, service: str, region: str, pauses: int) -> None:
        nonlocal requests_done
        async with pool.lease(service, region) as client:
            with factory.hold(client):
                if number % 20 == 0:  # 50 tasks make a real request through their lease
                    if service == "s3":
                        await client.list_buckets()
                    else:
                        await client.get_caller_identity()
                    requests_done += 1
                for _ in range(pauses):
                    await asyncio.sleep(0)

    async def cancel_later(task: asyncio.Task[None], after: int) -> None:
        for _ in range(after):
            await asyncio.sleep(0)
        task.cancel()

    tasks, cancellers = [], []
    for number in range(1000):
        service, region = rng.choices(keys, weights)[0]
        task = asyncio.ensure_future(worker(number, service, region, rng.randrange(4)))
        tasks.append(task)
        if rng.random() < 0.25:
            cancellers.append(asyncio.ensure_future(cancel_later(task, rng.randrange(12))))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*cancellers)

    unexpected = [r for r in results if r is not None and not isinstance(r, asyncio.CancelledError)]
    assert unexpected == []
    cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
    assert 100 < cancelled < 300
    assert requests_done > 25
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
    assert factory.open_clients() == []


def _regions(count: int) -> list[str]:
    return [
        f"{area}-{n}"
        for area in ("us-east", "eu-west", "ap-south", "sa-east", "ca-west")
        for n in (1, 2)
    ][:count]


async def test_concurrent_first_leases_share_one_creation(make_pool: MakePool) -> None:
    pool, factory = make_pool()
    factory.gate = asyncio.Event()
    release = asyncio.Event()
    tasks = [asyncio.ensure_future(lease_and_wait(pool, release, "s3")) for _ in range(100)]
    await yield_to_others()
    assert factory.started == 1
    assert pool.stats().leased == 100  # waiters hold their lease while the client is created
    factory.gate.set()
    await yield_to_others()
    release.set()
    clients = await asyncio.gather(*tasks)
    assert len({id(c) for c in clients}) == 1
    assert len(factory.created) == 1
    stats = pool.stats()
    assert (stats.misses, stats.hits, stats.creations, stats.leased) == (1, 99, 1, 0)


async def test_waiters_on_a_pending_creation_keep_it_open_when_it_is_evicted(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool(max_clients=1)
    factory.gates["s3"] = asyncio.Event()
    release = asyncio.Event()

    async def lease_briefly() -> None:
        async with pool.lease("s3"):
            pass

    async def lease_and_use() -> Any:
        async with pool.lease("s3") as client:
            with factory.hold(client):
                await client.list_buckets()
            return client

    creator = asyncio.ensure_future(lease_briefly())
    await yield_to_others()
    waiters = [asyncio.ensure_future(lease_and_use()) for _ in range(3)]
    evictor = asyncio.ensure_future(lease_and_wait(pool, release, "sts"))
    await yield_to_others()
    assert pool.stats().evictions == 1  # the pending s3 entry left the index
    factory.gates["s3"].set()
    await creator  # its lease ended at once; the waiters' leases keep the client open
    clients = await asyncio.gather(*waiters)
    assert len({id(c) for c in clients}) == 1
    assert factory.used_after_close == []
    assert factory.closed_while_held == []
    await yield_to_others()
    assert factory.is_closed(clients[0])  # closed when its last lease ended
    release.set()
    await evictor


async def test_waiter_cancelled_after_creation_succeeded_gives_its_lease_back(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool(max_clients=1)
    factory.gate = asyncio.Event()
    waiter_started = asyncio.Event()

    async def waiter() -> None:
        waiter_started.set()
        async with pool.lease("s3"):
            pytest.fail("the waiter was cancelled before it could use the client")

    async def creator() -> Any:
        async with pool.lease("s3") as client:
            # Runs right after the creation finished, before the woken waiter resumes.
            waiting.cancel()
            return client

    first = asyncio.ensure_future(creator())
    await yield_to_others()
    waiting = asyncio.ensure_future(waiter())
    await waiter_started.wait()
    await yield_to_others()
    assert pool.stats().leased == 2
    factory.gate.set()
    client = await first
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert pool.stats().leased == 0
    async with pool.lease("sts"):  # evicts s3: with no lease left it closes now
        pass
    await yield_to_others()
    assert factory.is_closed(client)


async def test_waiter_cancelled_during_creation_leaves_without_stopping_it(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool()
    factory.gate = asyncio.Event()
    release = asyncio.Event()
    creator = asyncio.ensure_future(lease_and_wait(pool, release, "s3"))
    await yield_to_others()
    waiter = asyncio.ensure_future(lease_and_wait(pool, release, "s3"))
    await yield_to_others()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert pool.stats().leased == 1
    factory.gate.set()
    release.set()
    assert await creator is factory.created[0]
    assert pool.stats().leased == 0


async def test_failed_creation_reaches_every_waiter_and_leaves_nothing_behind(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool()
    factory.gate = asyncio.Event()
    factory.fail_with = OSError("no route to the endpoint")
    release = asyncio.Event()
    tasks = [asyncio.ensure_future(lease_and_wait(pool, release, "s3")) for _ in range(10)]
    await yield_to_others()
    factory.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    assert factory.started == 1
    stats = pool.stats()
    assert (stats.creations, stats.size, stats.leased) == (0, 0, 0)


async def test_lease_after_a_failed_creation_creates_again(make_pool: MakePool) -> None:
    pool, factory = make_pool()
    factory.fail_with = OSError("first attempt fails")
    with pytest.raises(OSError, match="first attempt"):
        async with pool.lease("s3"):
            pass
    factory.fail_with = None
    async with pool.lease("s3") as client:
        await client.list_buckets()
    assert factory.started == 2
    assert pool.stats().creations == 1


async def test_cancelled_creation_leaves_no_entry_and_the_next_lease_creates(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool()
    factory.gate = asyncio.Event()
    creator = asyncio.ensure_future(lease_and_wait(pool, asyncio.Event(), "s3"))
    await yield_to_others()
    creator.cancel()
    with pytest.raises(asyncio.CancelledError):
        await creator
    assert pool.stats() == PoolStats(misses=1)
    factory.gate.set()
    async with pool.lease("s3") as client:
        await client.list_buckets()
    assert factory.started == 2
    assert len(factory.created) == 1


async def test_cancelled_creator_hands_the_creation_to_a_waiter(make_pool: MakePool) -> None:
    pool, factory = make_pool()
    factory.gate = asyncio.Event()
    release = asyncio.Event()
    creator = asyncio.ensure_future(lease_and_wait(pool, release, "s3"))
    await yield_to_others()
    waiters = [asyncio.ensure_future(lease_and_wait(pool, release, "s3")) for _ in range(5)]
    await yield_to_others()
    creator.cancel()
    with pytest.raises(asyncio.CancelledError):
        await creator
    await yield_to_others()
    assert factory.started == 2  # one waiter took the creation over; the rest wait for it
    factory.gate.set()
    await yield_to_others()
    release.set()
    clients = await asyncio.gather(*waiters)
    assert len({id(c) for c in clients}) == 1
    assert len(factory.created) == 1


async def test_hit_path_completes_without_suspending(make_pool: MakePool) -> None:
    pool, _ = make_pool()
    async with pool.lease("s3") as created:
        pass
    lease = pool.lease("s3")
    entering = lease.__aenter__()
    with pytest.raises(StopIteration) as stopped:
        entering.send(None)  # an await anywhere on the hit path would suspend here
    assert stopped.value.value is created
    await lease.__aexit__(None, None, None)
    assert pool.stats().leased == 0


# -- bounds and eviction ----------------------------------------------------------------------


async def test_evicted_client_closes_when_its_last_lease_ends(make_pool: MakePool) -> None:
    pool, factory = make_pool(max_clients=1)
    async with pool.lease("s3") as s3:
        async with pool.lease("sts") as sts:
            await s3.list_buckets()  # still usable after its eviction
            await sts.get_caller_identity()
        await yield_to_others()
        assert not factory.is_closed(s3)
        await s3.list_buckets()
    await yield_to_others()
    assert factory.is_closed(s3)
    assert not factory.is_closed(sts)
    assert pool.stats().evictions == 1


async def test_lru_evicts_the_least_recently_used_client(make_pool: MakePool) -> None:
    pool, factory = make_pool(max_clients=2, eviction_policy="LRU")
    for service in ("s3", "s3", "s3", "sts", "sqs"):
        async with pool.lease(service):
            pass
    await yield_to_others()
    assert _closed_services(factory) == ["s3"]


async def test_lfu_evicts_the_least_frequently_used_client(make_pool: MakePool) -> None:
    pool, factory = make_pool(max_clients=2, eviction_policy="LFU")
    for service in ("s3", "s3", "s3", "sts", "sqs"):
        async with pool.lease(service):
            pass
    await yield_to_others()
    assert _closed_services(factory) == ["sts"]


def _closed_services(factory: RecordingFactory) -> list[str]:
    return [client.meta.service_model.service_name for client in factory.closed]


async def test_eviction_prefers_a_client_no_task_is_using(make_pool: MakePool) -> None:
    pool, factory = make_pool(max_clients=2)
    async with pool.lease("s3") as s3:  # least recently used, but leased
        async with pool.lease("sts"):
            pass
        async with pool.lease("sqs"):
            pass
        await yield_to_others()
        assert _closed_services(factory) == ["sts"]
        assert not factory.is_closed(s3)


async def test_max_clients_zero_creates_a_client_per_lease_and_closes_it_at_release(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool(max_clients=0)
    async with pool.lease("s3") as first, pool.lease("s3") as second:
        assert first is not second
        await first.list_buckets()
    await yield_to_others()
    assert factory.is_closed(first)
    assert factory.is_closed(second)
    stats = pool.stats()
    assert (stats.misses, stats.creations, stats.closes, stats.size) == (2, 2, 2, 0)


async def test_pinned_client_survives_eviction_and_closes_with_aclose(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool(max_clients=1)
    pinned = await pool.get("s3")
    for service in ("sts", "sqs", "sns"):
        async with pool.lease(service):
            pass
    await yield_to_others()
    assert not factory.is_closed(pinned)
    assert await pool.get("s3") is pinned
    await pinned.list_buckets()
    await pool.aclose()
    assert factory.is_closed(pinned)


async def test_leases_share_the_pinned_client(make_pool: MakePool) -> None:
    pool, _ = make_pool()
    pinned = await pool.get("s3", "eu-west-1")
    async with pool.lease("s3", region_name="eu-west-1") as leased:
        assert leased is pinned


# -- idle timeout -----------------------------------------------------------------------------


async def test_idle_timeout_closes_idle_clients_at_the_next_operation(
    make_pool: MakePool, frozen_clock: FrozenClock
) -> None:
    pool, factory = make_pool(idle_timeout=60, clock=frozen_clock)
    async with pool.lease("s3") as s3:
        pass
    frozen_clock.advance(60)
    async with pool.lease("sts"):
        pass
    assert not factory.is_closed(s3)  # idle exactly idle_timeout: kept
    frozen_clock.advance(1)
    async with pool.lease("sts"):
        pass
    await yield_to_others()
    assert factory.is_closed(s3)
    assert pool.stats().evictions == 1
    async with pool.lease("s3") as fresh:
        assert fresh is not s3


async def test_idle_timeout_spares_leased_and_pinned_clients(
    make_pool: MakePool, frozen_clock: FrozenClock
) -> None:
    pool, factory = make_pool(idle_timeout=10, clock=frozen_clock)
    pinned = await pool.get("sqs")
    async with pool.lease("s3") as s3:
        frozen_clock.advance(3600)
        async with pool.lease("sts"):
            pass
        await yield_to_others()
        assert not factory.is_closed(s3)
    assert not factory.is_closed(pinned)
    assert pool.stats().evictions == 0


# -- clear and aclose -------------------------------------------------------------------------


async def test_clear_closes_unleased_clients_now_and_leased_ones_at_release(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool()
    async with pool.lease("sts") as sts:
        pass
    pinned = await pool.get("sqs")
    async with pool.lease("s3") as s3:
        await pool.clear()
        assert factory.is_closed(sts)
        assert not factory.is_closed(s3)
        await s3.list_buckets()
    await yield_to_others()
    assert factory.is_closed(s3)
    assert not factory.is_closed(pinned)
    async with pool.lease("s3") as again:  # the pool stays usable
        assert again is not s3


async def test_aclose_waits_for_leases_to_end(make_pool: MakePool) -> None:
    pool, factory = make_pool()
    release = asyncio.Event()
    holder = asyncio.ensure_future(lease_and_wait(pool, release, "s3"))
    await yield_to_others()
    closing = asyncio.ensure_future(pool.aclose())
    await yield_to_others()
    assert not closing.done()
    assert factory.closed == []
    release.set()
    client = await holder
    await closing
    assert factory.is_closed(client)


async def test_aclose_closes_leased_clients_after_close_timeout_with_a_warning(
    make_pool: MakePool, caplog: pytest.LogCaptureFixture
) -> None:
    pool, factory = make_pool(close_timeout=0)
    caplog.set_level(logging.WARNING, logger="aiorefresh")
    async with pool.lease("s3") as s3:
        await pool.aclose()
        assert factory.is_closed(s3)
    assert "close_timeout" in caplog.text
    assert pool.stats().leased == 0


async def test_creation_finishing_after_aclose_gave_up_is_closed(make_pool: MakePool) -> None:
    pool, factory = make_pool(close_timeout=0)
    factory.gate = asyncio.Event()
    creator = asyncio.ensure_future(lease_and_wait(pool, asyncio.Event(), "s3"))
    await yield_to_others()
    await pool.aclose()
    factory.gate.set()
    with pytest.raises(SessionClosedError):
        await creator
    assert len(factory.created) == 1
    assert factory.open_clients() == []


async def test_lease_and_get_after_aclose_raise_session_closed_error(
    make_pool: MakePool,
) -> None:
    pool, _ = make_pool()
    async with pool.lease("s3"):
        pass
    await pool.aclose()
    with pytest.raises(SessionClosedError):
        async with pool.lease("s3"):
            pass
    with pytest.raises(SessionClosedError):
        await pool.get("s3")


async def test_aclose_twice_is_harmless(make_pool: MakePool) -> None:
    pool, _ = make_pool()
    async with pool.lease("s3"):
        pass
    await asyncio.gather(pool.aclose(), pool.aclose())
    await pool.aclose()
    assert pool.stats().closes == 1


async def test_aclose_closes_every_client_of_the_loop_and_stats_balance(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool(max_clients=2)
    await pool.get("sqs")
    for service in ("s3", "sts", "sns"):
        async with pool.lease(service):
            pass
    await pool.aclose()
    assert factory.open_clients() == []
    stats = pool.stats()
    assert stats.creations == stats.closes == 4
    assert (stats.size, stats.leased) == (0, 0)


async def test_lease_can_be_entered_only_once(make_pool: MakePool) -> None:
    pool, _ = make_pool()
    lease = pool.lease("s3")
    async with lease:
        pass
    with pytest.raises(PoolError):
        async with lease:
            pass


# -- event loops ------------------------------------------------------------------------------


async def test_each_event_loop_gets_its_own_clients(make_pool: MakePool) -> None:
    pool, factory = make_pool()

    async def on_another_loop() -> Any:
        async with pool.lease("sts") as client:
            await client.get_caller_identity()
        await pool.aclose()
        return client

    async with pool.lease("sts") as here:
        await here.get_caller_identity()
    there = await asyncio.to_thread(asyncio.run, on_another_loop())
    assert there is not here
    assert factory.is_closed(there)
    assert not factory.is_closed(here)
    async with pool.lease("sts") as again:  # this loop's partition is still open
        assert again is here
        await again.get_caller_identity()
    assert pool.stats().creations == 2


async def test_aclose_belongs_to_the_loop_it_runs_on(make_pool: MakePool) -> None:
    pool, factory = make_pool()

    async def close_elsewhere() -> None:
        await pool.aclose()

    async with pool.lease("s3") as here:
        pass
    await asyncio.to_thread(asyncio.run, close_elsewhere())
    assert not factory.is_closed(here)
    async with pool.lease("s3") as again:
        assert again is here


async def test_clients_left_on_a_finished_loop_are_reported_when_the_pool_drops_it() -> None:
    factory = FakeFactory()
    pool = ClientPool(factory)

    async def lease_without_aclose() -> None:
        async with pool.lease("s3"):
            pass

    await asyncio.to_thread(asyncio.run, lease_without_aclose())
    with pytest.warns(ResourceWarning, match="closed event loop"):
        async with pool.lease("s3"):  # a new partition drops the finished loop's one
            pass
    assert len(factory.created) == 2
    assert pool.stats().creations == 2  # the dropped loop's counters are kept
    await pool.aclose()


# -- lifecycle --------------------------------------------------------------------------------


async def test_garbage_collected_pool_with_open_clients_warns_to_call_aclose() -> None:
    with pytest.warns(ResourceWarning, match=r"aclose\(\)"):
        await _lease_once_and_drop_the_pool(close=False)


async def test_garbage_collected_closed_pool_does_not_warn() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await _lease_once_and_drop_the_pool(close=True)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


async def _lease_once_and_drop_the_pool(*, close: bool) -> None:
    pool = ClientPool(FakeFactory())
    async with pool.lease("s3"):
        pass
    if close:
        await pool.aclose()
    del pool
    gc.collect()


async def test_stats_count_hits_misses_creations_evictions_and_closes(
    make_pool: MakePool,
) -> None:
    pool, _ = make_pool(max_clients=1)
    for service in ("s3", "s3", "sts"):
        async with pool.lease(service):
            pass
    await yield_to_others()
    assert pool.stats() == PoolStats(
        hits=1, misses=2, creations=2, evictions=1, closes=1, size=1, leased=0
    )


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        ({"max_clients": "4"}, "max_clients"),
        ({"max_clients": True}, "max_clients"),
        ({"max_clients": 2.5}, "max_clients"),
        ({"eviction_policy": 1}, "eviction_policy"),
        ({"idle_timeout": "60"}, "idle_timeout"),
        ({"close_timeout": None}, "close_timeout"),
        ({"clock": 3}, "clock"),
        ({"default_region": 1}, "default_region"),
        ({"default_client_kwargs": [("region_name", "x")]}, "default_client_kwargs"),
        ({"default_client_kwargs": {"service_name": "s3"}}, "default_client_kwargs"),
        ({"name": None}, "name"),
    ],
)
def test_wrong_option_types_raise_validation_error_naming_the_option(
    options: dict[str, Any], parameter: str
) -> None:
    with pytest.raises(ValidationError, match=parameter):
        ClientPool(FakeFactory(), **options)


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        ({"max_clients": -1}, "max_clients"),
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
        ClientPool(FakeFactory(), **options)


def test_a_factory_without_create_and_close_is_rejected() -> None:
    with pytest.raises(ValidationError, match="factory"):
        ClientPool(object())  # type: ignore[arg-type]


async def test_service_name_must_be_a_string() -> None:
    pool = ClientPool(FakeFactory())
    with pytest.raises(ValidationError, match="service_name"):
        async with pool.lease(3):  # type: ignore[arg-type]
            pass
    await pool.aclose()


class GatedFactory(FakeFactory):
    """Creations wait for ``gate``; ``fail`` makes them raise instead of creating."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.fail: BaseException | None = None

    async def create(self, kind: str, kwargs: dict[str, Any]) -> object:
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return await super().create(kind, kwargs)


async def test_waiters_on_a_pending_creation_leave_when_aclose_gives_up() -> None:
    factory = GatedFactory()
    pool = ClientPool(factory, close_timeout=0.05)
    creator = asyncio.create_task(pool.get("s3"))
    waiters = [asyncio.create_task(pool.get("s3")) for _ in range(10)]
    await yield_to_others()
    await pool.aclose()
    done, pending = await asyncio.wait(waiters, timeout=5)
    assert not pending
    assert all(isinstance(t.exception(), SessionClosedError) for t in done)
    factory.gate.set()
    with pytest.raises(SessionClosedError):
        await creator
    assert len(factory.created) == len(factory.closed)


async def test_each_waiter_gets_its_own_copy_of_a_creation_error() -> None:
    factory = GatedFactory()
    factory.fail = OSError("endpoint unreachable")
    pool = ClientPool(factory)
    tasks = [asyncio.create_task(pool.get("s3")) for _ in range(50)]
    await yield_to_others()
    factory.gate.set()
    errors = list(await asyncio.gather(*tasks, return_exceptions=True))
    assert all(isinstance(e, OSError) for e in errors)
    assert len({id(e) for e in errors}) == 50
    depths = [len(traceback.extract_tb(e.__traceback__)) for e in errors]  # type: ignore[union-attr]
    assert max(depths) < 20  # no traceback grows with the number of waiters
    await pool.aclose()


async def test_pinning_after_eviction_never_leaves_two_pinned_clients_of_one_key() -> None:
    factory = GatedFactory()
    pool = ClientPool(factory, max_clients=1)
    first_lease = asyncio.create_task(lease_and_wait(pool, asyncio.Event(), "s3"))
    await yield_to_others()
    pinned = asyncio.create_task(pool.get("s3"))
    await yield_to_others()
    other = asyncio.create_task(lease_and_wait(pool, asyncio.Event(), "sts"))  # evicts s3
    await yield_to_others()
    again = asyncio.create_task(lease_and_wait(pool, asyncio.Event(), "s3"))  # a new s3 entry
    await yield_to_others()
    factory.gate.set()
    await yield_to_others(20)
    first = await pinned
    assert await pool.get("s3") is first
    for task in (first_lease, other, again):
        task.cancel()
    await asyncio.gather(first_lease, other, again, return_exceptions=True)
    await pool.aclose()
    assert len(factory.created) == len(factory.closed)
