"""Sessions dropped without aclose() (as aioboto3 code drops its Session) while their event loop
runs: each is garbage-collected, and its pooled clients and private STS clients are closed on
that loop, with no "Unclosed client session" and no ResourceWarning."""

from __future__ import annotations

import asyncio
import gc
import warnings
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from aiorefresh import RefreshableSession
from aiorefresh._loops import PerLoop, _shutdowns
from aiorefresh.testing import CountingFetcher, FrozenClock, MotoServer, STSStandIn

# The STS tests point only the private STS client at the stand-in on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:sts_client_kwargs sets endpoint_url:UserWarning")

N = 30
ROLE = "arn:aws:iam::123456789012:role/dropped"
_CLOSING = "aiorefresh: close dropped resources"  # the tasks that close what was dropped

Make = Callable[[], RefreshableSession]


def _open_http() -> set[int]:
    """The aiohttp client sessions and connectors alive and not closed (by id)."""
    kinds = (aiohttp.ClientSession, aiohttp.BaseConnector)
    return {id(o) for o in gc.get_objects() if isinstance(o, kinds) and not o.closed}


async def _collect_and_close() -> None:
    """gc.collect(), then run the closing tasks its finalizers scheduled on this loop, until a
    collection schedules none (what a dropped client held is freed in the next round)."""
    for _ in range(20):
        gc.collect()
        await asyncio.sleep(0)  # the finalizers' call_soon_threadsafe: their tasks start
        closing = [task for task in asyncio.all_tasks() if task.get_name() == _CLOSING]
        if not closing:
            return
        await asyncio.gather(*closing)
    raise AssertionError("dropped resources kept scheduling closes")


async def _use_and_drop(make: Make, *, pin: bool = False) -> list[weakref.ref[Any]]:
    """Make N sessions, each used once for one S3 call, and drop them, never closed."""
    refs: list[weakref.ref[Any]] = []
    for _ in range(N):
        session = make()
        if pin:
            s3 = await session.get_client("s3")
            await s3.list_buckets()
        else:
            async with session.client("s3") as s3:
                await s3.list_buckets()
        refs += [weakref.ref(session), weakref.ref(s3)]
        del session, s3
    return refs


async def _assert_dropped_sessions_are_freed(make: Make, **use: Any) -> None:
    await _assert_freed_and_closed(lambda: _use_and_drop(make, **use))


async def _assert_freed_and_closed(use_and_drop: Callable[[], Awaitable[list[Any]]]) -> None:
    """What ``use_and_drop()`` made and dropped (it returns weak references to it) is freed once
    collected, with every HTTP session closed, nothing reported unclosed and no hooks left."""
    loop = asyncio.get_running_loop()
    await _collect_and_close()  # what earlier tests left behind
    http_before = _open_http()
    shutdown = _shutdowns.get(loop)
    hooks_before = len(shutdown.callbacks) if shutdown is not None else 0
    reports: list[str] = []  # the loop's exception handler hears of unclosed aiohttp sessions
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda loop, context: reports.append(str(context["message"])))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            refs = await use_and_drop()
            await _collect_and_close()
    finally:
        loop.set_exception_handler(previous)

    assert [ref() for ref in refs if ref() is not None] == []  # sessions and clients freed
    assert _open_http() - http_before == set()  # every client's HTTP session closed
    assert reports + [str(w.message) for w in caught if w.category is ResourceWarning] == []
    shutdown = _shutdowns.get(loop)  # their loop-shutdown hooks went with them
    assert (len(shutdown.callbacks) if shutdown is not None else 0) <= hooks_before


# -- method 'default' -------------------------------------------------------------------------


async def test_dropped_sessions_of_the_default_chain_are_freed_and_their_clients_closed(
    aws_env: Any, moto_server: MotoServer
) -> None:
    url = moto_server.endpoint_url

    def make() -> RefreshableSession:
        return RefreshableSession(default_client_kwargs={"endpoint_url": url})

    await _assert_dropped_sessions_are_freed(make)


async def test_dropped_sessions_with_explicit_keys_are_freed_and_their_clients_closed(
    aws_env: Any, moto_server: MotoServer
) -> None:
    url = moto_server.endpoint_url

    def make() -> RefreshableSession:
        return RefreshableSession(
            "AKIDROPPED", "secret", default_client_kwargs={"endpoint_url": url}
        )

    await _assert_dropped_sessions_are_freed(make)


async def test_dropped_sessions_with_a_pinned_client_are_freed_and_it_is_closed(
    aws_env: Any, moto_server: MotoServer
) -> None:
    url = moto_server.endpoint_url

    def make() -> RefreshableSession:
        return RefreshableSession(default_client_kwargs={"endpoint_url": url})

    await _assert_dropped_sessions_are_freed(make, pin=True)


# -- method 'sts' -----------------------------------------------------------------------------


async def test_dropped_sts_sessions_are_freed_and_their_sts_and_pooled_clients_closed(
    aws_env: Any, moto_server: MotoServer, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    def make() -> RefreshableSession:
        return RefreshableSession(
            assume_role_kwargs={"RoleArn": ROLE, "RoleSessionName": "dropped"},
            sts_client_kwargs={"endpoint_url": sts_standin.endpoint_url},
            default_client_kwargs={"endpoint_url": moto_server.endpoint_url},
            clock=frozen_clock,
        )

    await _assert_dropped_sessions_are_freed(make)
    assert sts_standin.count("AssumeRole") == N


async def test_dropped_sts_sessions_signing_with_explicit_keys_are_freed(
    aws_env: Any, moto_server: MotoServer
) -> None:
    url = moto_server.endpoint_url

    def make() -> RefreshableSession:
        return RefreshableSession(
            "AKIDROPPED",
            "secret",
            assume_role_kwargs={"RoleArn": ROLE, "RoleSessionName": "dropped"},
            sts_client_kwargs={"endpoint_url": url},
            default_client_kwargs={"endpoint_url": url},
        )

    await _assert_dropped_sessions_are_freed(make)


# -- method 'custom' --------------------------------------------------------------------------


async def test_dropped_custom_sessions_are_freed_and_their_clients_closed(
    aws_env: Any, moto_server: MotoServer, counting_fetcher: CountingFetcher
) -> None:
    url = moto_server.endpoint_url

    def make() -> RefreshableSession:
        return RefreshableSession(
            custom_credentials_method=counting_fetcher,
            clock=counting_fetcher.clock,
            default_client_kwargs={"endpoint_url": url},
        )

    await _assert_dropped_sessions_are_freed(make)
    assert counting_fetcher.calls == N


# -- the per-loop seam under it ---------------------------------------------------------------


async def test_a_per_loop_value_dropped_while_its_loop_runs_is_closed_there() -> None:
    loop = asyncio.get_running_loop()
    closed: list[tuple[str, asyncio.AbstractEventLoop]] = []

    async def close(value: str) -> None:
        closed.append((value, asyncio.get_running_loop()))

    values = PerLoop(lambda loop: "resource", on_shutdown=close)
    values.get()
    hooks = _shutdowns[loop].callbacks
    held = len(hooks)
    del values
    await _collect_and_close()
    assert closed == [("resource", loop)]
    assert len(hooks) == held - 1  # its loop-shutdown hook went with it


async def test_dropped_fleets_are_freed_and_their_childrens_clients_closed(
    aws_env: Any, moto_server: MotoServer, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    from aiorefresh import SessionFleet

    async def use_and_drop() -> list[weakref.ref[Any]]:
        refs: list[weakref.ref[Any]] = []
        for _ in range(10):
            source = RefreshableSession(
                "AKIAFLEETSOURCE00001",
                "fleet-source-secret",
                region_name="us-east-1",
                default_client_kwargs={"endpoint_url": moto_server.endpoint_url},
                clock=frozen_clock,
            )
            fleet = SessionFleet(
                source,
                "arn:aws:iam::{account_id}:role/dropped",
                sts_client_kwargs={"endpoint_url": sts_standin.endpoint_url},
            )
            async with fleet.session("111122223333") as child, child.client("s3") as s3:
                await s3.list_buckets()
            refs += [weakref.ref(x) for x in (source, fleet, child, s3)]
            del source, fleet, child, s3
        return refs

    await _assert_freed_and_closed(use_and_drop)
