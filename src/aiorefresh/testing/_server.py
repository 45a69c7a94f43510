"""The one server frame under every stand-in: an aiohttp server on a free loopback port.

It owns what the stand-ins share: the lifecycle (``start()``, ``aclose()``/``stop()``,
``async with``, or ``serve_in_thread()`` for a private loop in a thread), binding to a loopback
address only, optional TLS, the script queue (one outcome per request, an action's own queue
before the any-action queue), playing `Hang`/`Delay`/`Disconnect` (hanging requests get a 503
when the server closes), and the request log (``requests``, ``count()``, ``wait_for()``,
``reset()``). A stand-in adds its routes and turns the other outcomes into its protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from aiohttp import web

from .._loops import running_loop
from ..errors import ConfigurationError, ValidationError
from ._outcomes import Delay, Disconnect, Hang, Outcome, Respond, Succeed, resolve_outcome

__all__ = ["Recorded", "ScriptedServer", "raw_response"]

_THREAD_TIMEOUT = 30.0
"""Seconds ``serve_in_thread`` waits for its server to start or to close."""


class Recorded(Protocol):
    """What the frame needs of a recorded request: the action it asked for (if any)."""

    @property
    def action(self) -> str | None: ...


R = TypeVar("R", bound=Recorded)
S = TypeVar("S", bound="ScriptedServer[Any]")
_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class ScriptedServer(Generic[R]):
    """A scripted HTTP(S) server on a loopback port; subclasses add routes and answers.

    It serves on the event loop that called ``start()`` (``async with server:``), or on its own
    loop in a daemon thread (``with server.serve_in_thread():``), which works from sync code and
    under any test runner or loop scope. Scripting and inspection are thread-safe.
    """

    OUTCOMES: ClassVar[Mapping[str, Outcome]]
    """The string shortcuts ``script()`` accepts."""
    ACTIONS: ClassVar[frozenset[str]]
    """The actions ``script(..., action=...)`` accepts."""
    _OTHER_KINDS: ClassVar[str] = ""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = _loopback_host(host)
        self._port = _port_number(port)
        self.requests: list[R] = []
        """Every request received, in order."""
        self._lock = threading.Lock()
        self._scripts: dict[str | None, deque[Outcome]] = {}
        self._waiters: list[_Waiter] = []
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self._base_url: str | None = None
        self._closed = False

    # -- what a stand-in provides

    def _add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def _tls_context(self) -> ssl.SSLContext | None:
        """The server's TLS context, or ``None`` for plain HTTP."""
        return None

    def _closed_answer(self) -> web.StreamResponse:
        """The answer to a hanging request when the server closes."""
        return web.Response(status=503, text="server closed")

    def _convert(self, value: object) -> Outcome | None:
        """Another spelling of an outcome this server accepts (``None``: not one)."""
        return None

    # -- lifecycle

    async def start(self: S) -> S:
        """Listen on a free port (or ``port``) of the loopback ``host``; returns the server."""
        name = type(self).__name__
        if self._closed:
            raise RuntimeError(f"{name} was closed; create a new one")
        if self._runner is not None:
            return self
        loop = running_loop(f"{name}.start()")
        context = await self._tls_context()
        app = web.Application()
        self._add_routes(app)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
        await runner.setup()
        self._closing = asyncio.Event()
        try:
            await web.TCPSite(runner, self._host, self._port, ssl_context=context).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._loop = runner, loop
        host, port = runner.addresses[0][:2]
        netloc = f"[{host}]" if ":" in host else host
        self._base_url = f"{'https' if context is not None else 'http'}://{netloc}:{port}"
        return self

    async def aclose(self) -> None:
        """Answer hanging requests with a 503, stop listening and close every connection."""
        loop = self._loop
        if self._closed and self._runner is None:
            return
        if loop is None or loop is asyncio.get_running_loop():
            await self._close_here()
        elif not loop.is_closed():
            future = asyncio.run_coroutine_threadsafe(self._close_here(), loop)
            await asyncio.wrap_future(future)

    async def stop(self) -> None:
        """The same as ``aclose()``."""
        await self.aclose()

    async def __aenter__(self: S) -> S:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @contextlib.contextmanager
    def serve_in_thread(self: S) -> Iterator[S]:
        """Serve on a private event loop in a daemon thread while the block runs.

        For sync code and for fixtures: the server answers whatever loop (or runner, or loop
        scope) the caller's clients use. Leaving the block closes the server and the thread;
        entered from async code, starting and closing hold the caller's loop for a moment.
        """
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=_run_forever, args=(loop,), name=f"aiorefresh {type(self).__name__}", daemon=True
        )
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result(_THREAD_TIMEOUT)
            yield self
        finally:
            try:
                closing = asyncio.run_coroutine_threadsafe(self._close_here(), loop)
                closing.result(_THREAD_TIMEOUT)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(_THREAD_TIMEOUT)

    async def _close_here(self) -> None:
        self._closed = True
        runner, self._runner = self._runner, None
        if runner is not None:
            assert self._closing is not None
            self._closing.set()
            await runner.cleanup()
        self._wake_waiters()

    @property
    def endpoint_url(self) -> str:
        """``http(s)://127.0.0.1:PORT`` once started."""
        if self._base_url is None:
            raise RuntimeError(
                f"{type(self).__name__} is not started; use 'async with' or await start()"
            )
        return self._base_url

    @property
    def host(self) -> str:
        """The loopback address the server listens on."""
        return self._host

    # -- scripting and inspection

    def script(self, *outcomes: Outcome | str, action: str | None = None) -> None:
        """Queue how the next requests are answered: for ``action`` only, or any action.

        A request takes from its action's queue first, then from the any-action queue; with
        both empty it succeeds. Strings are shortcuts from ``OUTCOMES``.
        """
        if action is not None and action not in self.ACTIONS:
            raise ConfigurationError(
                f"action must be one of {', '.join(sorted(self.ACTIONS))} or None, got {action!r}"
            )
        resolved = [self._resolve(outcome) for outcome in outcomes]
        with self._lock:
            self._scripts.setdefault(action, deque()).extend(resolved)

    def reset(self) -> None:
        """Forget queued outcomes and recorded requests."""
        with self._lock:
            self._scripts.clear()
            self.requests.clear()

    def count(self, action: str | None = None) -> int:
        """How many requests arrived (of ``action``, or of any action)."""
        with self._lock:
            return self._count(action)

    async def wait_for(self, count: int, action: str | None = None) -> None:
        """Wait until ``count`` requests (of ``action``) have arrived; bound it with a timeout.

        Works from any event loop, also while the server runs in its own thread.
        """
        name = type(self).__name__
        loop = running_loop(f"{name}.wait_for()")
        while True:
            with self._lock:
                seen = self._count(action)
                if seen >= count:
                    return
                if self._closed:
                    raise RuntimeError(f"{name} closed after {seen} of {count} requests")
                if self._base_url is None:
                    raise RuntimeError(f"{name} is not started")
                future: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, future))
            await future

    def _count(self, action: str | None) -> int:
        if action is None:
            return len(self.requests)
        return sum(1 for request in self.requests if request.action == action)

    # -- for the stand-ins' handlers

    def _resolve(self, value: object) -> Outcome:
        converted = self._convert(value)
        if converted is not None:
            return converted
        return resolve_outcome(
            value, self.OUTCOMES, server=type(self).__name__, also=self._OTHER_KINDS
        )

    def _take(self, action: str | None) -> Outcome:
        """The next scripted outcome for ``action`` (success when nothing is queued)."""
        with self._lock:
            for queue in (self._scripts.get(action), self._scripts.get(None)):
                if queue:
                    return queue.popleft()
        return Succeed()

    def _record(self, record: R) -> None:
        with self._lock:
            self.requests.append(record)
        self._wake_waiters()

    async def _play(
        self,
        request: web.Request,
        outcome: Outcome,
        answer: Callable[[Outcome], web.StreamResponse],
    ) -> web.StreamResponse:
        """Wait out a `Delay` or `Hang`, drop the connection for `Disconnect`, else ``answer``."""
        closing = self._closing
        assert closing is not None
        if isinstance(outcome, Delay):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(closing.wait(), outcome.seconds)
            outcome = self._resolve(outcome.then)
        if isinstance(outcome, Hang):
            await closing.wait()
        if closing.is_set():
            return self._closed_answer()
        if isinstance(outcome, Disconnect):
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=503)
        return answer(outcome)

    def _wake_waiters(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_set_done, future)

    def __repr__(self) -> str:
        where = self._base_url or "not started"
        state = " closed" if self._closed else ""
        return f"<{type(self).__name__} {where}{state} requests={len(self.requests)}>"


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _run_forever(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


def _loopback_host(host: object) -> str:
    if not isinstance(host, str):
        raise ValidationError(f"host must be a str, got {type(host).__name__}")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigurationError(
            f"host must be a loopback address such as '127.0.0.1' or '::1' (the stand-ins never "
            f"listen beyond this machine), got {host!r}"
        )
    return host


def _port_number(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int):
        raise ValidationError(f"port must be an int, got {type(port).__name__}")
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"port must be 0 (a free port) or 1-65535, got {port}")
    return port


def raw_response(outcome: Respond, **headers: str) -> web.Response:
    """``outcome`` as an aiohttp answer (its own headers win over ``headers``)."""
    body, content_type = outcome.payload()
    merged = {**headers, "Content-Type": content_type, **outcome.headers}
    return web.Response(status=outcome.status, body=body, headers=merged)
