"""Fan-out: one awaited call per region (or per account and region), at most ``concurrency``
at once, each on a pooled client leased for its region.

`fan_out` gathers ``{key: result or exception}`` in input order; `iter_fan_out` streams
``(key, result)`` pairs as they complete over an anyio memory object stream, so leaving the
loop early cancels the rest. Both run in one anyio task group bounded by one
``CapacityLimiter`` (a task exists only while it holds a token, so a fan-out over thousands of
keys holds ``concurrency`` tasks, not thousands). With ``return_exceptions=False`` the first
failure cancels the rest and the task group raises it in an ``ExceptionGroup``.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import _aiobotocore
from ._client_key import CLIENT_ARGS
from ._util import check_bool, check_keys
from .errors import ConfigurationError, ValidationError

if TYPE_CHECKING:
    from ._session import RefreshableSession

__all__ = [
    "CLIENT_KWARGS",
    "FanOut",
    "ResultStream",
    "check_concurrency",
    "check_regions",
    "check_service",
    "fan_out",
    "iter_fan_out",
    "resolve_regions",
]

K = TypeVar("K")
T = TypeVar("T")

_Sink = tuple[Callable[[K, Any], Awaitable[None]], Callable[[], None] | None]
"""Where one task puts its result, and what it calls when it ends."""

Progress = Callable[[int, int], object]
"""``on_progress(done, total)``: a function, or an async function, called as results arrive."""

CLIENT_KWARGS = frozenset(CLIENT_ARGS) - {"region_name"}
"""The ``create_client`` arguments a fan-out passes on (it sets the service and the region)."""

_REGION = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")  # as botocore checks it


# -- checks -----------------------------------------------------------------------------------


def check_service(service: object) -> str:
    """``service`` if it is a non-empty str (whether botocore knows it is checked later)."""
    if not isinstance(service, str):
        raise ValidationError(f"service must be a str such as 's3', got {type(service).__name__}")
    if not service:
        raise ConfigurationError("service must be a service name such as 's3', got ''")
    return service


def check_regions(regions: object, name: str = "regions") -> list[str] | None:
    """The region names of ``regions`` (an iterable of str), or ``None`` for ``"all"``."""
    if isinstance(regions, str) and regions == "all":
        return None
    if isinstance(regions, str):
        raise ValidationError(
            f"{name} must be an iterable of region names or 'all', got the str {regions!r} "
            f"(one region: pass [{regions!r}])"
        )
    if not isinstance(regions, Iterable):
        raise ValidationError(
            f"{name} must be an iterable of region names or 'all', got {type(regions).__name__}"
        )
    names = list(regions)
    for i, region in enumerate(names):
        if not isinstance(region, str):
            raise ValidationError(
                f"{name}[{i}] must be a region name (str), got {type(region).__name__}"
            )
        if _REGION.fullmatch(region) is None:
            raise ConfigurationError(f"{name}[{i}] is not a region name: {region!r}")
    return _unique(names, name)


def _unique(names: list[str], name: str) -> list[str]:
    """``names`` if no name is there twice (results are keyed by name)."""
    twice = sorted(n for n, count in Counter(names).items() if count > 1)
    if twice:
        raise ConfigurationError(f"{name} names {', '.join(twice)} more than once")
    return names


def check_concurrency(concurrency: object) -> int:
    """``concurrency`` if it is a positive int."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int):
        raise ValidationError(
            f"concurrency must be a positive int, got {type(concurrency).__name__}"
        )
    if concurrency < 1:
        raise ConfigurationError(f"concurrency must be a positive int, got {concurrency!r}")
    return concurrency


def check_client_kwargs(client_kwargs: object) -> dict[str, Any]:
    """A copy of ``client_kwargs`` (``create_client`` arguments but the service and region)."""
    if client_kwargs is None:
        return {}
    if not isinstance(client_kwargs, Mapping):
        raise ValidationError(
            f"client_kwargs must be a dict of create_client arguments or None, got "
            f"{type(client_kwargs).__name__}"
        )
    for key in ("service_name", "region_name"):
        if key in client_kwargs:
            raise ConfigurationError(
                f"client_kwargs must not set {key}: the fan-out sets the service and each region"
            )
    check_keys("client_kwargs", client_kwargs, CLIENT_KWARGS)
    return dict(client_kwargs)


def check_callables(fn: object, on_progress: object, *, call: str) -> None:
    """``fn`` must be callable (``call`` shows how it is called); ``on_progress`` too, or None."""
    if not callable(fn):
        raise ValidationError(
            f"fn must be an async function called as {call}, got {type(fn).__name__}"
        )
    if on_progress is not None and not callable(on_progress):
        raise ValidationError(
            "on_progress must be a function (or async function) of (done, total) or None, got "
            f"{type(on_progress).__name__}"
        )


async def resolve_regions(
    session: RefreshableSession, service: str, wanted: list[str] | None
) -> list[str]:
    """``wanted``, or for ``None`` every region ``service`` is offered in for the session's
    partition (that of its region; ``aws`` without one). Refuses a service botocore does not
    know; models load in a worker thread."""
    session._check_open()
    if not await _aiobotocore.warm_service(session._aiosession, service):
        raise ConfigurationError(
            f"service {service!r} is not a service botocore knows (see "
            "session.get_available_services())"
        )
    if wanted is not None:
        return wanted
    region = session.region_name
    partition = session.get_partition_for_region(region) if region else "aws"
    return await session.get_available_regions(service, partition)


# -- running ----------------------------------------------------------------------------------


class FanOut(Generic[K]):
    """One fan-out: ``await call(key)`` for every key, at most ``concurrency`` at once.

    `gather` returns ``{key: result}`` in key order; `stream` delivers ``(key, result)`` to a
    memory object stream as results arrive. A failure is a result with
    ``return_exceptions``; without, it cancels the rest (the task group raises it).
    """

    def __init__(
        self,
        keys: Sequence[K],
        call: Callable[[K], Awaitable[Any]],
        *,
        concurrency: int,
        return_exceptions: bool,
        on_progress: Progress | None,
    ) -> None:
        self.keys = keys
        self.total = len(keys)
        self.done = 0
        self._call = call
        self._return_exceptions = return_exceptions
        self._on_progress = on_progress
        self._limiter = anyio.CapacityLimiter(concurrency)

    async def gather(self) -> dict[K, Any]:
        results: dict[K, Any] = dict.fromkeys(self.keys)

        async def store(key: K, result: Any) -> None:
            results[key] = result

        async with anyio.create_task_group() as tg:
            await self._spawn(tg, lambda: (store, None))
        return results

    async def stream(self, tg: TaskGroup, send: MemoryObjectSendStream[tuple[K, Any]]) -> None:
        """Spawn every key's task into ``tg``; each sends its pair on its own clone of ``send``
        (the reader's loop ends when the last clone closes)."""

        def sink() -> tuple[Callable[[K, Any], Awaitable[None]], Callable[[], None]]:
            clone = send.clone()

            async def deliver(key: K, result: Any) -> None:
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await clone.send((key, result))  # unless the reader left early

            return deliver, clone.close

        with send:
            await self._spawn(tg, sink)

    async def _spawn(self, tg: TaskGroup, sink: Callable[[], _Sink[K]]) -> None:
        for key in self.keys:
            token = object()
            await self._limiter.acquire_on_behalf_of(token)
            tg.start_soon(self._one, key, token, *sink())

    async def _one(
        self,
        key: K,
        token: object,
        deliver: Callable[[K, Any], Awaitable[None]],
        done: Callable[[], None] | None,
    ) -> None:
        try:
            try:
                result = await self._call(key)
            except Exception as exc:
                if not self._return_exceptions:
                    raise
                result = exc
            finally:
                self._limiter.release_on_behalf_of(token)
            self.done += 1
            await deliver(key, result)
            if self._on_progress is not None:
                progress = self._on_progress(self.done, self.total)
                if inspect.isawaitable(progress):
                    await progress
        finally:
            if done is not None:
                done()


class ResultStream(AbstractAsyncContextManager[AsyncIterator[tuple[K, Any]]]):
    """``async with ... as results: async for key, result in results:``, as results arrive.

    Leaving the block (``break``, an error, a cancellation) cancels what is still running; the
    block's own error comes out as it was raised, a failure of the fan-out (with
    ``return_exceptions=False``) as the task group's ``ExceptionGroup``.
    """

    def __init__(self, prepare: Callable[[], Awaitable[FanOut[K]]]) -> None:
        self._prepare = prepare
        self._tg: TaskGroup | None = None
        self._receive: MemoryObjectReceiveStream[tuple[K, Any]] | None = None

    async def __aenter__(self) -> AsyncIterator[tuple[K, Any]]:
        if self._tg is not None:
            raise RuntimeError("a fan-out stream can be entered only once")
        run = await self._prepare()  # checks and region lookups raise here, unwrapped
        send, receive = anyio.create_memory_object_stream[tuple[K, Any]](max(run.total, 1))
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg, self._receive = tg, receive
        tg.start_soon(run.stream, tg, send)
        return receive

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        tg, receive = self._tg, self._receive
        assert tg is not None
        assert receive is not None
        tg.cancel_scope.cancel()  # whatever is still running is not wanted any more
        receive.close()
        if exc is not None and not isinstance(exc, anyio.get_cancelled_exc_class()):
            await tg.__aexit__(None, None, None)  # the body's own error goes out unwrapped
            return None
        return await tg.__aexit__(exc_type, exc, tb)


# -- the session's fan-out --------------------------------------------------------------------


def _region_call(
    session: RefreshableSession,
    service: str,
    fn: Callable[[Any, str], Awaitable[T]],
    client_kwargs: Mapping[str, Any],
) -> Callable[[str], Awaitable[T]]:
    async def call(region: str) -> T:
        async with session.client(service, region_name=region, **client_kwargs) as client:
            return await awaited(fn(client, region), "fn(client, region)")

    return call


async def awaited(result: Awaitable[T], call: str) -> T:
    """``await result``, or a `ValidationError` saying ``call`` must be async."""
    if not inspect.isawaitable(result):
        raise ValidationError(
            f"fn must be an async function: {call} returned {type(result).__name__}"
        )
    return await result


def _plan(
    session: RefreshableSession,
    service: object,
    regions: object,
    fn: Any,
    concurrency: object,
    return_exceptions: object,
    client_kwargs: object,
    on_progress: Any,
) -> Callable[[], Awaitable[FanOut[str]]]:
    """Check every argument now (before any I/O); the returned coroutine function looks up
    the regions and makes the `FanOut`."""
    name = check_service(service)
    wanted = check_regions(regions)
    check_callables(fn, on_progress, call="await fn(client, region)")
    limit = check_concurrency(concurrency)
    collect = check_bool("return_exceptions", return_exceptions)
    kwargs = check_client_kwargs(client_kwargs)

    async def prepare() -> FanOut[str]:
        keys = await resolve_regions(session, name, wanted)
        return FanOut(
            keys,
            _region_call(session, name, fn, kwargs),
            concurrency=limit,
            return_exceptions=collect,
            on_progress=on_progress,
        )

    return prepare


async def fan_out(
    session: RefreshableSession,
    service: str,
    regions: Iterable[str] | str,
    fn: Callable[[Any, str], Awaitable[T]],
    *,
    concurrency: int = 32,
    return_exceptions: bool = True,
    client_kwargs: Mapping[str, Any] | None = None,
    on_progress: Progress | None = None,
) -> dict[str, T | Exception]:
    """`RefreshableSession.fan_out`: ``{region: result or exception}`` in input order."""
    prepare = _plan(
        session, service, regions, fn, concurrency, return_exceptions, client_kwargs, on_progress
    )
    return await (await prepare()).gather()


def iter_fan_out(
    session: RefreshableSession,
    service: str,
    regions: Iterable[str] | str,
    fn: Callable[[Any, str], Awaitable[T]],
    *,
    concurrency: int = 32,
    return_exceptions: bool = True,
    client_kwargs: Mapping[str, Any] | None = None,
    on_progress: Progress | None = None,
) -> ResultStream[str]:
    """`RefreshableSession.iter_fan_out`: ``(region, result)`` pairs as they complete."""
    return ResultStream(
        _plan(
            session,
            service,
            regions,
            fn,
            concurrency,
            return_exceptions,
            client_kwargs,
            on_progress,
        )
    )


class FanOutCalls:
    """`fan_out` and `iter_fan_out` on a session; mixed into `RefreshableSession`."""

    async def fan_out(
        self,
        service: str,
        regions: Iterable[str] | Literal["all"],
        fn: Callable[[Any, str], Awaitable[T]],
        *,
        concurrency: int = 32,
        return_exceptions: bool = True,
        client_kwargs: Mapping[str, Any] | None = None,
        on_progress: Callable[[int, int], object] | None = None,
    ) -> dict[str, T | Exception]:
        """``await fn(client, region)`` for every region, at most ``concurrency`` at once, each
        on the pooled client of ``service`` leased for its region; ``{region: result or
        exception}`` in input order. ``regions="all"``: every region ``service`` is offered in
        for the session's partition. With ``return_exceptions=False`` the first failure cancels
        the rest and raises (in an ``ExceptionGroup``). ``on_progress(done, total)`` (a function
        or an async function) is called as results arrive."""
        return await fan_out(
            cast("RefreshableSession", self),
            service,
            regions,
            fn,
            concurrency=concurrency,
            return_exceptions=return_exceptions,
            client_kwargs=client_kwargs,
            on_progress=on_progress,
        )

    def iter_fan_out(
        self,
        service: str,
        regions: Iterable[str] | Literal["all"],
        fn: Callable[[Any, str], Awaitable[T]],
        *,
        concurrency: int = 32,
        return_exceptions: bool = True,
        client_kwargs: Mapping[str, Any] | None = None,
        on_progress: Callable[[int, int], object] | None = None,
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[tuple[str, T | Exception]]]:
        """`fan_out` as a stream: ``async with session.iter_fan_out(...) as results: async for
        region, result in results:`` as results complete; leaving the block early cancels the
        rest."""
        return iter_fan_out(
            cast("RefreshableSession", self),
            service,
            regions,
            fn,
            concurrency=concurrency,
            return_exceptions=return_exceptions,
            client_kwargs=client_kwargs,
            on_progress=on_progress,
        )
