"""What botocore loads is shared once per process and loaded off the event loop.

New sessions share one loader per data path (plain-dict JSON), the endpoint resolver and
exceptions factory over it, and a copy of one prototype emitter with botocore's built-in
handlers; clients are built in a worker thread, so a service's first client never stalls the
loop. The stall is measured with a ticker task: the largest gap between its ticks.
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ParamValidationError
from botocore.loaders import Loader

from aiorefresh import RefreshableSession
from aiorefresh._aiobotocore import shared_loader
from aiorefresh.testing import CountingFetcher, MotoServer

try:
    import aioboto3
except ImportError:  # line B
    aioboto3 = None

needs_aioboto3 = pytest.mark.skipif(aioboto3 is None, reason="aioboto3 is installed on line A")

STALL_BOUND = 0.1
"""A generous bound on the loop stall (seconds), not a benchmark: loading ec2's model alone
holds the loop for well over this when it is done on the loop."""

BIG_MODELS = ("ec2", "sagemaker", "glue", "iot")


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


async def largest_stall(work: Callable[[], Awaitable[object]]) -> float:
    """The longest the loop went without running a ticker task while ``work()`` ran."""
    gaps: list[float] = []
    running = True

    async def ticker() -> None:
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    # The garbage collector is off meanwhile: a full collection of this process (moto's server
    # included) stops every thread whoever triggers it, and is not what is measured here.
    gc.collect()
    gc.disable()
    task = asyncio.ensure_future(ticker())
    await asyncio.sleep(0)
    try:
        await work()
    finally:
        running = False
        await task
        gc.enable()
    return max(gaps)


# -- off the loop -----------------------------------------------------------------------------


async def test_creating_clients_of_big_services_never_stalls_the_loop(
    session: RefreshableSession,
) -> None:
    async def create_all() -> None:
        async def one(service: str) -> None:
            async with session.client(service):
                pass

        await asyncio.gather(*(one(service) for service in BIG_MODELS))

    stall = await largest_stall(create_all)
    assert stall < STALL_BOUND
    assert session.pool.stats().creations == len(BIG_MODELS)


async def test_clients_are_built_in_a_worker_thread_on_a_private_loop(
    session: RefreshableSession,
) -> None:
    seen: list[tuple[int, asyncio.AbstractEventLoop]] = []

    def note(**kwargs: Any) -> None:
        seen.append((threading.get_ident(), asyncio.get_running_loop()))

    session.events.register("creating-client-class.sqs", note)
    async with session.client("sqs") as sqs:
        await sqs.list_queues()  # the client works on the caller's loop
    ((thread, loop),) = seen
    assert thread != threading.get_ident()
    assert loop is not asyncio.get_running_loop()


async def test_a_failed_creation_raises_its_error_in_the_caller(
    session: RefreshableSession,
) -> None:
    from botocore.exceptions import UnknownServiceError

    with pytest.raises(UnknownServiceError):
        async with session.client("no-such-service"):
            pass
    assert session.pool.stats().leased == 0


async def test_a_caller_cancelled_during_creation_leaves_nothing_leased(
    session: RefreshableSession,
) -> None:
    async def create() -> None:
        async with session.client("ec2", region_name="eu-south-2"):
            pass

    task = asyncio.ensure_future(create())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stats = session.pool.stats()
    assert stats.leased == 0
    assert stats.creations - stats.closes == stats.size
    async with session.client("ec2", region_name="eu-south-2") as ec2:
        assert ec2.meta.region_name == "eu-south-2"


# -- shared once per process ------------------------------------------------------------------


async def test_sessions_share_one_loader_and_endpoint_resolver(
    session: RefreshableSession, counting_fetcher: CountingFetcher
) -> None:
    async with RefreshableSession(custom_credentials_method=counting_fetcher) as other:
        async with session.client("sqs"), other.client("sqs"):
            pass
        mine, theirs = session.botocore_session, other.botocore_session
        assert mine.get_component("data_loader") is theirs.get_component("data_loader")
        assert mine._get_internal_component("endpoint_resolver") is theirs._get_internal_component(
            "endpoint_resolver"
        )
        assert mine._get_internal_component("exceptions_factory") is theirs._get_internal_component(
            "exceptions_factory"
        )


async def test_a_session_with_its_own_data_path_gets_its_own_loader(
    session: RefreshableSession,
    counting_fetcher: CountingFetcher,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = session.botocore_session.get_component("data_loader")
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    async with RefreshableSession(custom_credentials_method=counting_fetcher) as other:
        loader = other.botocore_session.get_component("data_loader")
        assert loader is not default
        assert str(tmp_path) in loader.search_paths
        assert loader is shared_loader(str(tmp_path))


def test_models_load_as_botocore_loads_them_in_plain_dicts() -> None:
    ours = shared_loader(None).load_service_model("sqs", "service-2")
    botocores = Loader().load_service_model("sqs", "service-2")
    assert ours == botocores
    assert json.dumps(ours) == json.dumps(botocores)  # the same keys in the same order
    assert type(ours["shapes"]) is dict


async def test_new_sessions_keep_botocore_builtin_handlers(session: RefreshableSession) -> None:
    async with session.client("s3") as s3:
        with pytest.raises(ParamValidationError, match="Invalid bucket name"):
            await s3.head_bucket(Bucket="not/a/bucket")


async def test_a_handler_registered_on_one_session_stays_on_that_session(
    session: RefreshableSession, counting_fetcher: CountingFetcher
) -> None:
    calls: list[str] = []

    def note(**kwargs: Any) -> None:
        calls.append("mine")

    session.events.register("creating-client-class.sqs", note)
    async with RefreshableSession(custom_credentials_method=counting_fetcher) as other:
        async with other.client("sqs"):
            pass
    async with session.client("sqs"):
        pass
    assert calls == ["mine"]


@needs_aioboto3
async def test_aioboto3_adds_its_models_folder_to_the_shared_loader_once(
    session: RefreshableSession, counting_fetcher: CountingFetcher
) -> None:
    sessions = [RefreshableSession(custom_credentials_method=counting_fetcher) for _ in range(5)]
    for other in sessions:
        async with other.client("sqs"):
            pass
        await other.aclose()
    paths = session.botocore_session.get_component("data_loader").search_paths
    assert len(paths) == len(set(paths))
    assert any(path.endswith("boto3/data") for path in paths)
