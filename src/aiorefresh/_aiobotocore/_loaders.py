"""What botocore loads, loaded once per process, and clients built off the event loop.

A plain ``AioSession`` registers botocore's built-in event handlers one by one and parses every
model it uses from disk again (a new session's first client costs about 30x a new client of an
existing one, and several MB). Sessions made by `new_session` instead start from a copy of one
prototype emitter and share, per data path, one loader (service models, endpoint rules,
partitions), the endpoint resolver over it and the exceptions factory: one copy per process.

`build_off_loop` runs the synchronous part of creating a client (loading and parsing its model
and endpoint rules, building its class) in a worker thread, on a private event loop there, so
creating a client never stalls the caller's loop; the HTTP session binds to the caller's loop
on the first request, as aiobotocore's always does.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gzip
import json
import os
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import anyio
import anyio.to_thread
from aiobotocore.hooks import AioHierarchicalEmitter
from aiobotocore.session import AioSession
from botocore.errorfactory import ClientExceptionsFactory
from botocore.exceptions import UnknownServiceError
from botocore.loaders import JSONFileLoader, Loader, create_loader
from botocore.regions import EndpointResolver

from .._loops import PerLoop

__all__ = [
    "build_off_loop",
    "emitter_copy",
    "in_worker",
    "share_loaded_data",
    "shared_loader",
    "warm_service",
]

T = TypeVar("T")

_lock = threading.Lock()  # guards the process-wide maps below (built from any thread)
_loaders: dict[str | None, Loader] = {}
_built_on: weakref.WeakKeyDictionary[Loader, tuple[EndpointResolver, Any]] = (
    weakref.WeakKeyDictionary()
)
_prototype: list[Any] = []  # the emitter every new session copies, built once


class PlainJSONFileLoader(JSONFileLoader):  # type: ignore[misc]
    """botocore's JSON model files, parsed into plain (ordered) dicts, letting other threads run.

    botocore parses with ``object_pairs_hook=OrderedDict``: a C type called from C, so the
    parser holds the GIL for a whole model (ec2's: 35 ms here, the event loop frozen even when
    the parse runs in a worker thread), and every OrderedDict stays tracked by the garbage
    collector. A Python hook lets the interpreter switch threads between objects; plain dicts
    keep the key order, compare and serialise the same, and leaves the collector can untrack.
    botocore wraps what it needs ordered (shape members) in OrderedDicts of its own.
    """

    def load_file(self, file_path: str) -> Any:
        for suffix, opener in ((".json", open), (".json.gz", gzip.open)):
            path = file_path + suffix
            if os.path.isfile(path):
                with opener(path, "rb") as stream:
                    return json.loads(stream.read().decode("utf-8"), object_pairs_hook=_pairs)
        return None


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return dict(pairs)


def shared_loader(data_path: str | None) -> Loader:
    """The process's loader for ``data_path`` (``AWS_DATA_PATH``; ``None``: botocore's own)."""
    loader = _loaders.get(data_path)
    if loader is None:
        with _lock:
            loader = _loaders.get(data_path)
            if loader is None:
                loader = create_loader(data_path)
                loader.file_loader = PlainJSONFileLoader()
                _loaders[data_path] = loader
    return loader


def _built_over(loader: Loader) -> tuple[EndpointResolver, Any]:
    """The endpoint resolver and exceptions factory shared by the sessions of ``loader``."""
    built = _built_on.get(loader)
    if built is None:
        endpoints, path = loader.load_data_with_path("endpoints")
        resolver = EndpointResolver(endpoints, uses_builtin_data=loader.is_builtin_path(path))
        with _lock:
            built = _built_on.setdefault(loader, (resolver, ClientExceptionsFactory()))
    return built


def emitter_copy() -> Any:
    """A new emitter holding botocore's built-in handlers: a copy of one prototype, which is
    several times cheaper than registering them (what ``AioSession()`` does per session).

    The copy shares the prototype's (always empty) lookup cache until its first registration,
    as botocore's per-client copies do; every emitter that fills it has the same handlers.
    """
    if not _prototype:
        with _lock:
            if not _prototype:
                emitter = AioHierarchicalEmitter()
                AioSession(event_hooks=emitter)  # registers the built-in handlers on it
                _prototype.append(emitter)
    return copy.copy(_prototype[0])


def share_loaded_data(session: AioSession) -> None:
    """Make ``session`` use the process's loader for its data path, and what is built over it.

    Registered lazily: the data path is read (config files included) on first use, which is
    client creation, in a worker thread.
    """

    def loader() -> Loader:
        return shared_loader(session.get_config_variable("data_path"))

    def resolver() -> EndpointResolver:
        return _built_over(session.get_component("data_loader"))[0]

    def exceptions() -> Any:
        return _built_over(session.get_component("data_loader"))[1]

    session._components.lazy_register_component("data_loader", loader)
    session._internal_components.lazy_register_component("endpoint_resolver", resolver)
    session._internal_components.lazy_register_component("exceptions_factory", exceptions)


# -- building off the loop --------------------------------------------------------------------

_building = threading.Lock()  # one build at a time: botocore sessions are not thread-safe
_limiters: PerLoop[anyio.CapacityLimiter] = PerLoop(lambda loop: anyio.CapacityLimiter(1))


async def in_worker(func: Callable[[], T]) -> T:
    """``func()`` in a worker thread, one at a time process-wide (one waiting thread per event
    loop at most, so anyio's shared thread pool stays free). A cancelled caller returns at once."""

    def locked() -> T:
        with _building:
            return func()

    async with _limiters.get():
        return await anyio.to_thread.run_sync(locked, abandon_on_cancel=True)


async def warm_service(session: AioSession, service: str) -> bool:
    """Load ``service``'s model and the endpoint data in a worker thread, where they stay cached
    for ``get_available_regions``; False if botocore has no such service."""

    def load() -> bool:
        try:
            session.get_component("data_loader").load_service_model(
                service, type_name="service-2", api_version=None
            )
        except UnknownServiceError:
            return False
        session.get_partition_for_region("us-east-1")  # builds the endpoint resolver
        return True

    return await in_worker(load)


class _Handoff(Generic[T]):
    """The built value between the worker and its caller, who may have been cancelled."""

    __slots__ = ("abandoned", "lock", "ready", "value")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.abandoned = False
        self.ready = False
        self.value: T | None = None


def _run(make: Callable[[], Awaitable[T]]) -> T:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_awaited(make))
    finally:
        loop.close()


async def _awaited(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


async def build_off_loop(
    make: Callable[[], Awaitable[T]], close: Callable[[T], Awaitable[None]]
) -> T:
    """``await make()`` on a private event loop in a worker thread (`in_worker`); the caller's
    loop keeps running meanwhile. ``make`` must not touch the caller's loop (creating an
    aiobotocore client does not: its HTTP session is made on the first request).

    A cancelled caller returns at once; what the worker builds anyway is closed with ``close``.
    """
    handoff: _Handoff[T] = _Handoff()

    def work() -> None:
        if handoff.abandoned:
            return
        value = _run(make)
        with handoff.lock:
            keep = not handoff.abandoned
            if keep:
                handoff.value, handoff.ready = value, True
        if not keep:
            with contextlib.suppress(Exception):
                _run(lambda: close(value))

    try:
        await in_worker(work)
    except BaseException:
        with handoff.lock:
            handoff.abandoned = True
            delivered, value = handoff.ready, handoff.value
        if delivered:
            with anyio.CancelScope(shield=True):
                await close(value)  # type: ignore[arg-type]
        raise
    if not handoff.ready:  # pragma: no cover - the worker always delivers or raises
        raise RuntimeError("the worker built nothing")
    return handoff.value  # type: ignore[return-value]
