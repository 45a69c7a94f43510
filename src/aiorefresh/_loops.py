"""The one seam that knows about event loops.

Credentials are process-wide; what belongs to one event loop (an in-flight refresh, a private
STS client, an HTTP session, a pool partition) is kept per loop with `PerLoop`: weakly on the
loop, created once however many threads ask, and closed when that loop shuts down even if
nobody called ``aclose()`` (``asyncio.run``, ``asyncio.Runner``, uvicorn and pytest-asyncio
all cancel the loop's tasks at teardown; a sentinel task notices and closes what is left).
`LoopScope` is the per-loop record every component builds on: the tasks it owns, whether it
was closed there, and a close that runs once. Trio support later changes this module only.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Generic, TypeVar

from .errors import ConfigurationError

__all__ = [
    "LoopScope",
    "close_later",
    "PerLoop",
    "on_loop_shutdown",
    "running_loop",
]

logger = logging.getLogger("aiorefresh")

T = TypeVar("T")
Loop = asyncio.AbstractEventLoop
ShutdownCallback = Callable[[], Awaitable[None]]

_SENTINEL_NAME = "aiorefresh: close on loop shutdown"


def running_loop(what: str = "aiorefresh") -> Loop:
    """The running asyncio loop, or a `ConfigurationError` saying why there is none."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise no_loop_error(what) from None


def no_loop_error(what: str = "aiorefresh") -> ConfigurationError:
    """The one error for "called outside a running asyncio event loop"."""
    if _in_trio():
        return ConfigurationError(
            f"{what} runs on asyncio and was called under trio; trio is not supported yet: "
            "run this code on asyncio (anyio's 'asyncio' backend)"
        )
    return ConfigurationError(
        f"{what} needs a running asyncio event loop: call it from async code "
        "(inside asyncio.run() or an async framework)"
    )


def _in_trio() -> bool:
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.debug("aiorefresh task %s failed", task.get_name(), exc_info=task.exception())


# -- loop shutdown ------------------------------------------------------------------------------


class _Shutdown:
    """The callbacks to run when one loop shuts down, and the sentinel task that runs them."""

    # The loop is held weakly: this object is a value of a map keyed weakly by the loop.
    __slots__ = ("callbacks", "loop", "sentinel")

    def __init__(self, loop: Loop) -> None:
        self.loop = weakref.ref(loop)
        self.callbacks: dict[int, ShutdownCallback] = {}
        self.sentinel: asyncio.Task[None] | None = None

    def ensure_sentinel(self, loop: Loop) -> None:
        if self.sentinel is None or self.sentinel.done():
            self.sentinel = loop.create_task(self._watch(), name=_SENTINEL_NAME)
            self.sentinel.add_done_callback(_retrieve)

    async def _watch(self) -> None:
        me = asyncio.current_task()
        try:
            await asyncio.Event().wait()  # until the loop's teardown cancels every task
        except asyncio.CancelledError:
            if self.sentinel is not me:
                return  # retired: nothing was left to close
            with _shutdown_lock:
                callbacks = list(self.callbacks.values())
                self.callbacks.clear()
            for callback in reversed(callbacks):  # last registered, first closed
                try:
                    await callback()
                except Exception:
                    logger.warning("closing at event loop shutdown failed", exc_info=True)
            raise
        finally:
            with _shutdown_lock:
                if self.sentinel is me:
                    self.sentinel = None  # a finished task must not keep the loop alive


_shutdowns: weakref.WeakKeyDictionary[Loop, _Shutdown] = weakref.WeakKeyDictionary()
_shutdown_lock = threading.Lock()
_tokens = iter(range(1, sys.maxsize))


class ShutdownHandle:
    """A registration made by `on_loop_shutdown`; `cancel` takes it back."""

    __slots__ = ("_loop", "_token")

    def __init__(self, loop: Loop, token: int) -> None:
        self._loop = weakref.ref(loop)
        self._token = token

    def cancel(self) -> None:
        """Forget the callback; when none is left, the loop's sentinel task ends too."""
        loop = self._loop()
        if loop is None:
            return
        with _shutdown_lock:
            shutdown = _shutdowns.get(loop)
            if shutdown is None or shutdown.callbacks.pop(self._token, None) is None:
                return
            if shutdown.callbacks or shutdown.sentinel is None:
                return
            sentinel, shutdown.sentinel = shutdown.sentinel, None
        if not loop.is_closed():
            loop.call_soon_threadsafe(sentinel.cancel)


def on_loop_shutdown(callback: ShutdownCallback, loop: Loop | None = None) -> ShutdownHandle:
    """Run ``await callback()`` when ``loop`` (default: the running one) shuts down.

    "Shuts down" is the teardown of ``asyncio.run`` and ``asyncio.Runner``, which cancel every
    remaining task; callbacks run last-registered first, each shielded from the others'
    failures. Call `ShutdownHandle.cancel` once the thing was closed explicitly.
    """
    loop = loop or running_loop()
    token = next(_tokens)
    with _shutdown_lock:
        shutdown = _shutdowns.get(loop)
        if shutdown is None:
            shutdown = _shutdowns[loop] = _Shutdown(loop)
        shutdown.callbacks[token] = callback
        shutdown.ensure_sentinel(loop)
    return ShutdownHandle(loop, token)


_orphans: set[asyncio.Task[Any]] = set()


def close_later(loop: Loop, closers: Sequence[Callable[[], Awaitable[None]]]) -> bool:
    """Run every ``await closer()`` in a task on ``loop`` (from any thread, even from a
    finalizer): how the values of something garbage-collected while its loop still runs get
    closed. Returns False when the loop is closed (nothing can be closed any more)."""
    if loop.is_closed():
        return False

    async def close_all() -> None:
        for closer in closers:
            try:
                await closer()
            except Exception:
                logger.warning("closing a dropped resource failed", exc_info=True)

    def start() -> None:
        task = loop.create_task(close_all(), name="aiorefresh: close dropped resources")
        _orphans.add(task)
        task.add_done_callback(_orphans.discard)

    try:
        loop.call_soon_threadsafe(start)
    except RuntimeError:  # closed meanwhile
        return False
    return True


# -- per-loop state ---------------------------------------------------------------------------


class PerLoop(Generic[T]):
    """One value of ``T`` per event loop, made by ``factory(loop)`` on first use there.

    Values are held weakly on the loop (a finished loop takes its value with it), created once
    however many threads ask, and read without a lock on the hot path. With ``on_shutdown``,
    a loop's value is handed to it (and dropped) when that loop shuts down, and also when this
    object is garbage-collected while that loop still runs (its owner was dropped unclosed):
    then ``on_shutdown`` must not reach the owner back, which it would keep alive. Pass
    ``close_dropped=False`` to close dropped values yourself (the shutdown hooks still go).
    """

    __slots__ = ("__weakref__", "_factory", "_handles", "_last", "_lock", "_on_shutdown", "_values")

    def __init__(
        self,
        factory: Callable[[Loop], T],
        *,
        on_shutdown: Callable[[T], Awaitable[None]] | None = None,
        close_dropped: bool = True,
    ) -> None:
        self._factory = factory
        self._on_shutdown = on_shutdown
        self._values: weakref.WeakKeyDictionary[Loop, T] = weakref.WeakKeyDictionary()
        self._handles: weakref.WeakKeyDictionary[Loop, ShutdownHandle] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._last: tuple[weakref.ref[Loop], T] | None = None
        if on_shutdown is not None:
            # The finalizer holds the values (and nothing of self): they stay alive, unclosed,
            # until it hands them to on_shutdown on their loop.
            closing = (self._values, on_shutdown) if close_dropped else (None, None)
            weakref.finalize(self, _dropped, self._handles, *closing).atexit = False

    def get(self, loop: Loop | None = None) -> T:
        """The running loop's value, made now if this loop has none yet."""
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise no_loop_error() from None
        last = self._last
        if last is not None and last[0]() is loop:
            return last[1]
        value = self._values.get(loop)
        if value is None:
            with self._lock:
                value = self._values.get(loop)
                if value is None:
                    value = self._values[loop] = self._factory(loop)
                    if self._on_shutdown is not None:
                        self._handles[loop] = on_loop_shutdown(self._shutdown_hook(loop), loop)
        self._last = (weakref.ref(loop), value)
        return value

    def peek(self, loop: Loop | None = None) -> T | None:
        """The running loop's value, or ``None``; never creates one (and works off-loop)."""
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return None
        return self._values.get(loop)

    def pop(self, loop: Loop | None = None) -> T | None:
        """Take the running loop's value out (the next `get` makes a new one)."""
        if loop is None:
            loop = running_loop()
        with self._lock:
            value = self._values.pop(loop, None)
            handle = self._handles.pop(loop, None)
            last = self._last
            if last is not None and last[0]() is loop:
                self._last = None
        if handle is not None:
            handle.cancel()
        return value

    def items(self) -> list[tuple[Loop, T]]:
        """Every (loop, value) pair held now, for stats and diagnostics."""
        with self._lock:
            return list(self._values.items())

    def values(self) -> list[T]:
        """Every value held now."""
        with self._lock:
            return list(self._values.values())

    def _shutdown_hook(self, loop: Loop) -> ShutdownCallback:
        ref = weakref.ref(self)

        async def hook() -> None:
            owner = ref()
            if owner is None or owner._on_shutdown is None:
                return
            with owner._lock:
                value = owner._values.pop(loop, None)
                owner._handles.pop(loop, None)
                owner._last = None
            if value is not None:
                await owner._on_shutdown(value)

        return hook


def _dropped(
    handles: weakref.WeakKeyDictionary[Loop, ShutdownHandle],
    values: weakref.WeakKeyDictionary[Loop, T] | None,
    on_shutdown: Callable[[T], Awaitable[None]] | None,
) -> None:
    """A `PerLoop` was garbage-collected: take back its shutdown hooks, and hand the values it
    still held to ``on_shutdown`` on their loops (those still running). From a finalizer, so
    on any thread at any point: no lock is taken here, the loops' threads do the work."""
    for loop, handle in list(handles.items()):
        with contextlib.suppress(RuntimeError):  # a closed loop took its hooks with it
            if not loop.is_closed():
                loop.call_soon_threadsafe(handle.cancel)
    handles.clear()
    if values is not None and on_shutdown is not None:
        for loop, value in list(values.items()):
            close_later(loop, [functools.partial(on_shutdown, value)])
        values.clear()


class LoopScope:
    """What one component owns on one event loop: its tasks, and whether it is closed there.

    ``spawn`` starts a task the scope owns (its exception is retrieved, never lost);
    ``close`` marks the scope closed at once and runs the closing body exactly once, in a task
    of its own, so a cancelled caller leaves it running and later callers wait for it.
    """

    __slots__ = ("__weakref__", "_closing", "_loop", "closed", "tasks")

    def __init__(self, loop: Loop) -> None:
        self._loop = weakref.ref(loop)  # a value of a map keyed weakly by this loop
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closed = False
        self._closing: asyncio.Task[None] | bool | None = None

    @property
    def loop(self) -> Loop:
        """The event loop this scope belongs to."""
        loop = self._loop()
        if loop is None:  # pragma: no cover - a scope outliving its loop is never used
            raise RuntimeError("the event loop of this scope is gone")
        return loop

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        """Start ``coro`` as a task this scope owns until it ends."""
        task = self.loop.create_task(coro, name=name)
        task.add_done_callback(_retrieve)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def cancel_tasks(self) -> None:
        """Cancel every task the scope owns and wait until they have ended."""
        tasks = [task for task in self.tasks if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self, body: Callable[[], Awaitable[None]]) -> None:
        """Mark closed and run ``await body()`` once for this loop; idempotent, shielded."""
        self.closed = True
        closing = self._closing
        if isinstance(closing, bool):
            return
        if closing is None:

            async def run() -> None:
                await body()

            closing = self._closing = self.loop.create_task(run(), name="aiorefresh close")
            closing.add_done_callback(_retrieve)
            closing.add_done_callback(self._closed)
        await asyncio.shield(closing)

    def _closed(self, task: asyncio.Task[None]) -> None:
        self._closing = True  # a finished task would keep its loop alive through this scope

    @property
    def closing(self) -> bool:
        """Whether `close` has started (it may still be running)."""
        return self._closing is not None
