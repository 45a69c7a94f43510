"""ClientPool specifications: client keys and the pool of clients over the generic lease pool.

The key semantics run with real aiobotocore clients against a moto server (the recording
factory is the session's factory over a plain ``AioSession``); the bookkeeping runs on a fake
factory whose clients are plain objects.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import inspect
import logging
import random
import threading
import warnings
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.config import Config

from aiorefresh import ClientPool, PoolStats
from aiorefresh.errors import ConfigurationError, ValidationError
from aiorefresh.testing import MotoServer

REGION = "us-east-1"
HAS_AIOBOTO3 = importlib.util.find_spec("aioboto3") is not None


class RecordingFactory:
    """Creates real aiobotocore clients (one ``AioSession`` per loop) and records their fate."""

    def __init__(self) -> None:
        self._sessions: dict[asyncio.AbstractEventLoop, AioSession] = {}
        self._lock = threading.Lock()
        self.created: list[Any] = []
        self.closed: list[Any] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.holders: Counter[int] = Counter()
        self.closed_while_held: list[Any] = []
        self.used_after_close: list[Any] = []

    async def create(self, kind: str, kwargs: dict[str, Any]) -> Any:
        self.calls.append((kind, kwargs))
        with self._lock:
            session = self._sessions.setdefault(asyncio.get_running_loop(), AioSession())
        if kind == "resource":
            import aioboto3

            context = aioboto3.Session(botocore_session=session).resource(**kwargs)
        else:
            context = session.create_client(**kwargs)
        client = await context.__aenter__()
        with self._lock:
            self.created.append(client)
        return client

    async def close(self, kind: str, client: Any) -> None:
        with self._lock:
            if self.holders[id(client)]:
                self.closed_while_held.append(client)
            self.closed.append(client)
        await client.__aexit__(None, None, None)

    def hold(self, client: Any) -> _Hold:
        """Mark ``client`` as in use by the calling task for a ``with`` block."""
        return _Hold(self, client)

    def is_closed(self, client: Any) -> bool:
        return any(c is client for c in self.closed)

    def open_clients(self) -> list[Any]:
        return [c for c in self.created if not self.is_closed(c)]


class _Hold:
    def __init__(self, factory: RecordingFactory, client: Any) -> None:
        self._factory, self._client = factory, client

    def __enter__(self) -> Any:
        if self._factory.is_closed(self._client):
            self._factory.used_after_close.append(self._client)
        self._factory.holders[id(self._client)] += 1
        return self._client

    def __exit__(self, *exc_info: object) -> None:
        self._factory.holders[id(self._client)] -= 1


class FakeClient:
    """A stand-in client: the kwargs it was created with."""

    def __init__(self, kind: str, kwargs: dict[str, Any]) -> None:
        self.kind = kind
        self.service = kwargs["service_name"]
        self.kwargs = kwargs


class FakeFactory:
    """Plain objects as clients, for tests about the pool's own bookkeeping."""

    def __init__(self) -> None:
        self.created: list[FakeClient] = []
        self.closed: list[FakeClient] = []
        self.check_at_create: Callable[[str], None] | None = None

    async def create(self, kind: str, kwargs: dict[str, Any]) -> FakeClient:
        if self.check_at_create is not None:
            self.check_at_create(kwargs["service_name"])
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        client = FakeClient(kind, kwargs)
        self.created.append(client)
        return client

    async def close(self, kind: str, client: Any) -> None:
        self.closed.append(client)

    def open_clients(self) -> list[FakeClient]:
        return [c for c in self.created if not any(c is d for d in self.closed)]


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


async def lease_once(pool: ClientPool, *args: Any, **kwargs: Any) -> Any:
    async with pool.lease(*args, **kwargs) as client:
        return client


# -- keys: which calls share a client (real clients) ------------------------------------------


async def test_positional_and_keyword_arguments_lease_the_same_client(make_pool: MakePool) -> None:
    pool, _ = make_pool()
    positional = await lease_once(pool, "s3", "eu-west-1")
    keyword = await lease_once(pool, "s3", region_name="eu-west-1")
    assert positional is keyword
    assert pool.stats().creations == 1


async def test_region_none_resolves_to_the_default_region(make_pool: MakePool) -> None:
    pool, factory = make_pool(default_region="eu-central-1")
    implicit = await lease_once(pool, "s3")
    explicit = await lease_once(pool, "s3", "eu-central-1")
    assert implicit is explicit
    assert factory.calls[0][1]["region_name"] == "eu-central-1"
    assert implicit.meta.region_name == "eu-central-1"


async def test_equal_configs_share_a_client(make_pool: MakePool) -> None:
    pool, _ = make_pool()
    first = AioConfig(retries={"max_attempts": 2}, connector_args={"keepalive_timeout": 5})
    second = AioConfig(retries={"max_attempts": 2}, connector_args={"keepalive_timeout": 5})
    assert await lease_once(pool, "s3", config=first) is await lease_once(pool, "s3", config=second)


async def test_different_configs_get_different_clients(make_pool: MakePool) -> None:
    pool, _ = make_pool()
    a = await lease_once(pool, "s3", config=Config(retries={"max_attempts": 2}))
    b = await lease_once(pool, "s3", config=Config(retries={"max_attempts": 3}))
    c = await lease_once(pool, "s3", config=AioConfig(connector_args={"keepalive_timeout": 7}))
    assert len({id(a), id(b), id(c)}) == 3


async def test_botocore_rewriting_retries_leaves_the_callers_config_and_key_alone(
    make_pool: MakePool,
) -> None:
    pool, _ = make_pool()
    config = Config(retries={"max_attempts": 2})
    async with pool.lease("s3", config=config) as first:
        await first.list_buckets()
    assert config.retries == {"max_attempts": 2}
    assert await lease_once(pool, "s3", config=Config(retries={"max_attempts": 2})) is first


async def test_region_endpoint_and_kind_each_select_another_client(
    make_pool: MakePool, moto_server: MotoServer
) -> None:
    pool, factory = make_pool()
    other_endpoint = moto_server.endpoint_url.replace("127.0.0.1", "localhost")
    base = await lease_once(pool, "sts")
    other_region = await lease_once(pool, "sts", "eu-west-1")
    other_endpoint_client = await lease_once(pool, "sts", endpoint_url=other_endpoint)
    assert len({id(base), id(other_region), id(other_endpoint_client)}) == 3
    assert [kind for kind, _ in factory.calls] == ["client"] * 3


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


async def test_explicit_keys_select_a_client_that_signs_with_them(make_pool: MakePool) -> None:
    pool, _ = make_pool()
    keys = {"aws_access_key_id": "AKIAEXPLICIT", "aws_secret_access_key": "explicit-secret"}
    async with pool.lease("sts", **keys) as client:
        identity = await client.get_caller_identity()
        credentials = await client._request_signer._credentials.get_frozen_credentials()
    assert identity["Account"]
    assert credentials.access_key == "AKIAEXPLICIT"
    assert await lease_once(pool, "sts", **keys) is client
    assert await lease_once(pool, "sts") is not client


@pytest.mark.skipif(not HAS_AIOBOTO3, reason="resources need the aioboto3 extra (line A)")
async def test_a_resource_is_pooled_apart_from_the_client_of_the_same_arguments(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool()
    async with pool.lease("s3", kind="resource") as resource:
        bucket = await resource.create_bucket(Bucket="aiorefresh-client-pool")
        await bucket.put_object(Key="hello", Body=b"world")
    client = await lease_once(pool, "s3")
    assert await lease_once(pool, "s3", kind="resource") is resource
    assert client is not resource
    assert [kind for kind, _ in factory.calls] == ["resource", "client"]


# -- keys: what the pool keeps (fake clients) -------------------------------------------------


async def test_explicit_keys_select_a_client_but_are_never_kept_in_clear() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzSECRETzz"
    pool = ClientPool(FakeFactory(), default_region="eu-west-1")
    a = await lease_once(pool, "s3", aws_access_key_id="AKIAONE", aws_secret_access_key=secret)
    b = await lease_once(pool, "s3", aws_access_key_id="AKIAONE", aws_secret_access_key=secret)
    c = await lease_once(pool, "s3", aws_access_key_id="AKIAONE", aws_secret_access_key="other")
    assert a is b
    assert a is not c
    assert a.kwargs["aws_secret_access_key"] == secret  # the factory got them, at creation

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
        elif isinstance(obj, followed) or type(obj).__module__.startswith("aiorefresh"):
            stack.extend(gc.get_referents(obj))
            if hasattr(obj, "__dict__"):
                stack.append(vars(obj))
    return found


async def test_kind_selects_another_client_for_the_same_arguments() -> None:
    factory = FakeFactory()
    pool = ClientPool(factory)
    client = await lease_once(pool, "s3")
    resource = await lease_once(pool, "s3", kind="resource")
    assert client is not resource
    assert [c.kind for c in factory.created] == ["client", "resource"]
    await pool.aclose()


class _UnhashableConfig(Config):
    __hash__ = None  # type: ignore[assignment]


async def test_unhashable_arguments_still_meet_at_one_client() -> None:
    # (A list verify= was the unhashable argument here; it is now refused as a bad type.)
    pool = ClientPool(FakeFactory())
    first = await lease_once(pool, "s3", config=_UnhashableConfig(read_timeout=7))
    second = await lease_once(pool, "s3", config=_UnhashableConfig(read_timeout=7))
    assert first is second
    assert await lease_once(pool, "s3", config=_UnhashableConfig(read_timeout=8)) is not first
    await pool.aclose()


async def test_a_client_lease_hit_completes_without_suspending() -> None:
    pool = ClientPool(FakeFactory(), default_region=REGION)
    created = await lease_once(pool, "s3", config=Config(retries={"max_attempts": 2}))
    lease = pool.lease("s3", REGION, config=Config(retries={"max_attempts": 2}))
    entering = lease.__aenter__()
    with pytest.raises(StopIteration) as stopped:
        entering.send(None)  # an await anywhere on the hit path would suspend here
    assert stopped.value.value is created
    await lease.__aexit__(None, None, None)
    await pool.aclose()


async def test_a_lease_used_as_a_client_says_to_use_async_with_or_get_client() -> None:
    pool = ClientPool(FakeFactory())
    s3 = pool.lease("s3")
    with pytest.raises(AttributeError, match="async with session.client") as raised:
        await s3.list_buckets()  # type: ignore[attr-defined]
    assert "await session.get_client" in str(raised.value)
    await pool.aclose()


# -- the bound --------------------------------------------------------------------------------


async def test_max_clients_bounds_open_clients_plus_one_per_busy_service_under_churn() -> None:
    factory = FakeFactory()
    pool = ClientPool(factory, max_clients=2)
    services = ["s3", "sts", "sqs"]
    busy: Counter[str] = Counter()

    def check(service: str) -> None:
        # Clients already handed to a close task that has not started yet count as closed.
        closing = sum(1 for task in asyncio.all_tasks() if _close_pending(task))
        open_now = len(factory.open_clients()) - closing + 1  # + the one being created
        assert open_now <= 2 + sum(1 for n in busy.values() if n)

    factory.check_at_create = check
    rng = random.Random(300)

    async def worker(service: str, delay: int, hold: int) -> None:
        for _ in range(delay):
            await asyncio.sleep(0)
        busy[service] += 1
        try:
            async with pool.lease(service):
                for _ in range(hold):
                    await asyncio.sleep(0)
        finally:
            busy[service] -= 1

    tasks = [
        asyncio.ensure_future(worker(rng.choice(services), rng.randrange(100), rng.randrange(4)))
        for _ in range(2000)
    ]
    for task in rng.sample(tasks, 400):
        asyncio.get_running_loop().call_later(0, task.cancel)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [r for r in results if isinstance(r, Exception)] == []
    assert len(factory.created) <= 2 * len(services)
    await pool.aclose()
    assert factory.open_clients() == []


def _close_pending(task: asyncio.Task[Any]) -> bool:
    return ": close " in task.get_name() and (
        inspect.getcoroutinestate(task.get_coro()) == inspect.CORO_CREATED  # type: ignore[arg-type]
    )


async def test_thousand_cancelled_and_racing_tasks_never_get_or_lose_a_closed_client(
    make_pool: MakePool,
) -> None:
    pool, factory = make_pool(max_clients=4)
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
            cancellers.append(asyncio.ensure_future(cancel_later(task, rng.randrange(3))))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*cancellers)

    unexpected = [r for r in results if r is not None and not isinstance(r, asyncio.CancelledError)]
    assert unexpected == []
    assert 50 < sum(isinstance(r, asyncio.CancelledError) for r in results) < 300
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


def _regions(count: int) -> list[str]:
    return [
        f"{area}-{n}"
        for area in ("us-east", "eu-west", "ap-south", "sa-east", "ca-west")
        for n in (1, 2)
    ][:count]


async def test_pinned_client_is_shared_by_leases_and_closed_by_aclose(make_pool: MakePool) -> None:
    pool, factory = make_pool(max_clients=1)
    pinned = await pool.get("s3", "eu-west-1")
    await lease_once(pool, "sts")
    assert await lease_once(pool, "s3", region_name="eu-west-1") is pinned
    await pinned.list_buckets()
    await pool.aclose()
    assert factory.is_closed(pinned)


# -- a pool nobody closes ---------------------------------------------------------------------


def test_clients_of_a_pool_never_closed_close_when_asyncio_run_ends(
    aws_env: object, moto_server: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    factory = RecordingFactory()
    pool = ClientPool(
        factory,
        default_region=REGION,
        default_client_kwargs={"endpoint_url": moto_server.endpoint_url},
    )

    async def use(pool: ClientPool) -> None:
        async with pool.lease("sts") as sts:
            await sts.get_caller_identity()
        await pool.get("s3")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(use(pool))
        del pool
        gc.collect()
    assert len(factory.created) == 2
    assert factory.open_clients() == []
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert "Unclosed" not in caplog.text


def test_hundred_sequential_asyncio_run_loops_leave_no_warnings(
    aws_env: object, moto_server: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    factory = RecordingFactory()
    pool = ClientPool(
        factory,
        default_region=REGION,
        default_client_kwargs={"endpoint_url": moto_server.endpoint_url},
    )

    async def use(number: int) -> None:
        async with pool.lease("sts") as sts:
            if number % 10 == 0:
                await sts.get_caller_identity()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for number in range(100):
            asyncio.run(use(number))
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert caplog.records == []
    assert len(factory.created) == 100
    assert factory.open_clients() == []
    assert pool.stats() == PoolStats(misses=100, creations=100, closes=100)


# -- options ----------------------------------------------------------------------------------


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


async def test_repr_names_the_pool_and_its_bound() -> None:
    pool = ClientPool(FakeFactory(), max_clients=3, name="reports pool")
    await lease_once(pool, "s3")
    assert repr(pool) == ("<ClientPool 'reports pool' size=1 leased=0 max_clients=3 policy=LRU>")
    await pool.aclose()
