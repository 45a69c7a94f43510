"""The FastAPI and aiohttp recipes (``examples/``), served for real under load.

Each app runs as a real HTTP server on a free 127.0.0.1 port: uvicorn in-process for FastAPI,
aiohttp's ``AppRunner``/``TCPSite`` for aiohttp. Its session assumes a role on the
``STSStandIn`` (which counts ``AssumeRole`` calls and refuses expired keys, so ``/whoami``
shows which credentials signed each request) and keeps its objects in moto's S3. The session
and the stand-in share one ``FrozenClock``.

One run per app, shared by the tests below: start-up (one ``AssumeRole``), then three waves of
concurrent real HTTP requests, each across a refresh: the clock moved into the mandatory window
while requests are in flight, ``session.refresh()`` while requests are in flight, and the
clock moved past expiry before a wave that then waits for one fetch. Then shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import importlib.util
import json
import os
import socket
import sys
import warnings
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest
import uvicorn
from aiohttp import web

from aiorefresh import PoolStats, RefreshableSession
from aiorefresh.testing import AWS_TEST_ENV, FrozenClock, MotoServer, STSStandIn

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ROLE_ARN = "arn:aws:iam::123456789012:role/example-app"
OBJECTS = {f"report-{n}": f"contents of report {n}".encode() for n in range(5)}
BATCH = 80
"""Requests per batch; a wave is two batches (one each side of its refresh)."""
TIMEOUT = 60.0
"""Seconds any one step of a run may take before the run fails (never a timing assertion)."""


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (the examples are scripts, not a package)."""
    module_name = f"aiorefresh_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- the servers


# --8<-- [start:serve]
class _Uvicorn(uvicorn.Server):
    """uvicorn's server with a readiness event, leaving the test process's signals alone."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@contextlib.asynccontextmanager
async def serve_fastapi(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on this loop (lifespan on) until the block ends."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="on",
        http="h11",
        ws="none",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=TIMEOUT,
    )
    server = _Uvicorn(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({serving, ready}, timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    try:
        if not ready.done():
            ready.cancel()
            await serving  # it ended first (or timed out): its error says why
            raise RuntimeError("uvicorn did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, TIMEOUT)
        listener.close()


@contextlib.asynccontextmanager
async def serve_aiohttp(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` with aiohttp's runner on this loop (``cleanup_ctx`` runs) until the end."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


# --8<-- [end:serve]


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One example app: how to build it, serve it and find its session."""

    name: str
    serve: Callable[[Any], contextlib.AbstractAsyncContextManager[str]]
    session_of: Callable[[Any], RefreshableSession]


def fastapi_session(app: Any) -> RefreshableSession:
    session: RefreshableSession = app.state.session
    return session


def aiohttp_session(app: Any) -> RefreshableSession:
    session: RefreshableSession = app[load_example("aiohttp_app").SESSION]
    return session


RECIPES = {
    "fastapi": Recipe("fastapi_app", serve_fastapi, fastapi_session),
    "aiohttp": Recipe("aiohttp_app", serve_aiohttp, aiohttp_session),
}


# ------------------------------------------------------------------------------- the run


@dataclasses.dataclass
class Run:
    """What one run of an app saw."""

    session_name: str
    answers: list[tuple[str, int, bytes]] = dataclasses.field(default_factory=list)
    """(path, status, body) of every request of the waves."""
    assume_role_calls: list[int] = dataclasses.field(default_factory=list)
    """``AssumeRole`` calls after start-up and after each wave."""
    issued_keys: list[str] = dataclasses.field(default_factory=list)
    signers: list[list[str]] = dataclasses.field(default_factory=list)
    """The access keys that signed each wave's ``GetCallerIdentity`` calls, first seen first."""
    pool_under_load: PoolStats | None = None
    pool_at_shutdown: PoolStats | None = None
    left_open: list[str] = dataclasses.field(default_factory=list)
    """aiohttp client sessions the run opened and left open."""
    reports: list[str] = dataclasses.field(default_factory=list)
    """ResourceWarnings and event loop exception-handler reports during the run."""


async def ask(http: aiohttp.ClientSession, path: str, run: Run) -> None:
    async with http.get(path) as response:
        run.answers.append((path, response.status, await response.read()))


def batch(http: aiohttp.ClientSession, run: Run) -> list[asyncio.Task[None]]:
    """``BATCH`` concurrent requests, alternately an object (leased S3) and ``/whoami``."""
    keys = list(OBJECTS)
    paths = [
        f"/objects/{keys[n // 2 % len(keys)]}" if n % 2 == 0 else "/whoami" for n in range(BATCH)
    ]
    return [asyncio.create_task(ask(http, path, run)) for path in paths]


async def wave(
    http: aiohttp.ClientSession,
    sts: STSStandIn,
    run: Run,
    refresh: Callable[[], Awaitable[None]],
    *,
    in_flight: bool,
) -> None:
    """Two batches, ``refresh`` between them: with a batch in flight (after a few of its
    ``/whoami`` calls have reached STS), or before both."""
    first_request = len(sts.requests)
    if in_flight:
        before = batch(http, run)
        seen = sts.count("GetCallerIdentity")
        await asyncio.wait_for(sts.wait_for(seen + 5, "GetCallerIdentity"), TIMEOUT)
        await refresh()
    else:
        await refresh()
        before = batch(http, run)
    after = batch(http, run)
    await asyncio.wait_for(asyncio.gather(*before, *after), TIMEOUT)
    signers = [
        r.access_key or "" for r in sts.requests[first_request:] if r.action == "GetCallerIdentity"
    ]
    run.signers.append(list(dict.fromkeys(signers)))
    run.assume_role_calls.append(sts.count("AssumeRole"))


def open_client_sessions() -> list[aiohttp.ClientSession]:
    """Every aiohttp client session alive and open now."""
    gc.collect()
    # type(), not isinstance(): gc also lists weak proxies, and a dead one raises on isinstance.
    found = [o for o in gc.get_objects() if issubclass(type(o), aiohttp.ClientSession)]
    return [session for session in found if not session.closed]


async def exercise(recipe: Recipe, moto: MotoServer, sts: STSStandIn, clock: FrozenClock) -> Run:
    example = load_example(recipe.name)
    settings = example.Settings(
        bucket=f"recipes-{recipe.name.replace('_', '-')}",
        endpoint_url=moto.endpoint_url,
        sts_endpoint_url=sts.endpoint_url,
    )
    run = Run(session_name=settings.session_name)
    app = example.create_app(settings, clock=clock)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with recipe.serve(app) as base_url:
        session = recipe.session_of(app)
        run.assume_role_calls.append(sts.count("AssumeRole"))
        async with aiohttp.ClientSession(base_url, timeout=timeout) as http:
            for key, body in OBJECTS.items():
                async with http.put(f"/objects/{key}", data=body) as response:
                    assert response.status == 204

            async def into_the_mandatory_window() -> None:
                clock.set(sts.issued[-1].expiry_time - timedelta(seconds=30))

            async def forced() -> None:
                await session.refresh()

            async def past_expiry() -> None:
                clock.set(max(c.expiry_time for c in sts.issued) + timedelta(seconds=1))

            await wave(http, sts, run, into_the_mandatory_window, in_flight=True)
            await wave(http, sts, run, forced, in_flight=True)
            await wave(http, sts, run, past_expiry, in_flight=False)
        run.pool_under_load = session.pool.stats()
    run.pool_at_shutdown = session.pool.stats()
    run.issued_keys = [c.access_key for c in sts.issued]
    return run


@contextlib.contextmanager
def sealed_aws_env() -> Iterator[None]:
    """What the ``aws_env`` fixture does, for a module-scoped run."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("AWS_")]:
            patch.delenv(name)
        for name, value in AWS_TEST_ENV.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="module", params=sorted(RECIPES))
def run(request: pytest.FixtureRequest, moto_server: MotoServer) -> Run:
    """One run of an app (see the module's docstring), recorded for the tests to read."""
    recipe = RECIPES[request.param]
    clock = FrozenClock()
    already_open = weakref.WeakSet(open_client_sessions())
    reports: list[str] = []

    def report(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        reports.append(str(context.get("message")))

    async def main() -> Run:
        asyncio.get_running_loop().set_exception_handler(report)
        with STSStandIn(clock=clock).serve_in_thread() as sts:
            result = await exercise(recipe, moto_server, sts, clock)
        gc.collect()  # unclosed aiohttp sessions report on this loop while it runs
        return result

    with sealed_aws_env(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        result = asyncio.run(main())
        result.left_open = [repr(s) for s in open_client_sessions() if s not in already_open]
    result.reports = reports + [str(w.message) for w in caught if w.category is ResourceWarning]
    return result


# ------------------------------------------------------------------------------ requests


def test_every_request_succeeds_across_the_refreshes(run: Run) -> None:
    assert len(run.answers) == 3 * 2 * BATCH
    assert {status for _, status, _ in run.answers} == {200}


def test_every_object_request_answers_the_stored_object(run: Run) -> None:
    objects = [(path, body) for path, _, body in run.answers if path.startswith("/objects/")]

    assert objects
    assert all(body == OBJECTS[path.removeprefix("/objects/")] for path, body in objects)


def test_every_whoami_request_answers_the_assumed_role(run: Run) -> None:
    arns = {json.loads(body)["arn"] for path, _, body in run.answers if path == "/whoami"}

    assert arns == {f"arn:aws:sts::123456789012:assumed-role/example-app/{run.session_name}"}


# -------------------------------------------------------------------------------- refresh


def test_start_up_and_each_refresh_make_one_assume_role_call(run: Run) -> None:
    assert run.assume_role_calls == [1, 2, 3, 4]


def test_requests_in_flight_across_a_refresh_are_signed_before_and_after_it(run: Run) -> None:
    first, second, third, _ = run.issued_keys

    assert run.signers[:2] == [[first, second], [second, third]]


def test_requests_after_expiry_all_wait_for_the_one_new_set_of_credentials(run: Run) -> None:
    assert run.signers[2] == [run.issued_keys[3]]


# ----------------------------------------------------------------------------------- pool


def test_clients_created_equal_the_distinct_configurations(run: Run) -> None:
    # Two configurations: the leased S3 client (moto) and the pinned STS client (the stand-in).
    assert run.pool_under_load is not None
    assert run.pool_under_load.creations == 2


def test_shutdown_closes_every_client_the_session_created(run: Run) -> None:
    assert run.pool_at_shutdown is not None
    assert run.pool_at_shutdown.closes == run.pool_at_shutdown.creations == 2


def test_no_http_session_is_left_unclosed_at_shutdown(run: Run) -> None:
    assert run.left_open == []
    assert run.reports == []
