"""``ClientPool``: keyed, bounded, leased clients with single-flight creation, per event loop.

A lease is counted before any ``await`` at which another task could evict its entry, so a
client is never closed while a task holds it: eviction only takes a client out of the index,
and the client closes when its last lease ends. Leasing an existing client takes no lock and
awaits nothing.

Clients belong to the event loop that created them (aiohttp sessions cannot move between
loops), so each running loop has its own partition. Call `ClientPool.aclose` on each
loop before that loop ends: a closed loop cannot close its clients any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import logging
import math
import threading
import warnings
import weakref
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any, Literal, Protocol

import anyio

from .errors import ConfigurationError, PoolError, SessionClosedError, ValidationError

__all__ = ["ClientFactory", "ClientPool", "PoolStats"]

logger = logging.getLogger("aiorefresh")

_CLIENT_ARGS = (
    "region_name",
    "api_version",
    "use_ssl",
    "verify",
    "endpoint_url",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "config",
    "aws_account_id",
)
_SECRET_ARGS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
_MEMO_SIZE = 512

# Positions in the raw argument tuple a lease carries (kind first, then create_client's order).
_KIND, _SERVICE, _REGION, _API, _SSL, _VERIFY, _ENDPOINT = range(7)
_AK, _SK, _TOKEN, _CONFIG, _ACCOUNT = range(7, 12)

# Entry states.
_CREATING, _READY, _FAILED, _ABANDONED, _CLOSED = range(5)


class ClientFactory(Protocol):
    """Creates and closes the pool's clients; the pool never touches aiobotocore itself."""

    async def create(self, kind: str, kwargs: dict[str, Any]) -> Any:
        """A ready (entered) client for ``AioSession.create_client(**kwargs)``-style ``kwargs``."""
        ...

    async def close(self, kind: str, client: Any) -> None:
        """Close a client this factory created."""
        ...


@dataclass(frozen=True)
class PoolStats:
    """Counters of a pool, summed over event loops.

    ``hits`` are leases served without creating a client (including waits on another task's
    creation), ``misses`` leases that started a creation. ``evictions`` counts clients taken
    out of the index by ``max_clients`` or ``idle_timeout``. ``size`` is the number of ready
    clients in the index (pinned ones included), ``leased`` the leases held now.
    ``creations - closes`` is the number of clients open now.
    """

    hits: int = 0
    misses: int = 0
    creations: int = 0
    evictions: int = 0
    closes: int = 0
    size: int = 0
    leased: int = 0


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


# -- keys ------------------------------------------------------------------------------------


class _Identity:
    """An unhashable value compared by identity; holding it keeps its ``id`` from being reused."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)

    def __repr__(self) -> str:
        return f"<{type(self.value).__name__} at {id(self.value):#x}>"


def _freeze(value: object) -> object:
    """A hashable form of ``value`` that is equal for equal plain data (dicts, lists, sets)."""
    if value is None or isinstance(value, (str, bytes, bool, int, float, type)):
        return value
    if isinstance(value, Mapping):
        items = ((_freeze(k), _freeze(v)) for k, v in value.items())
        return ("mapping", tuple(sorted(items, key=repr)))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_freeze(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted((_freeze(v) for v in value), key=repr)))
    try:
        hash(value)
    except TypeError:
        return _Identity(value)
    return value


def _config_key(config: object) -> object:
    """Configs compared by their options, not identity (``AioConfig`` extras included)."""
    if config is None:
        return None
    defaults = getattr(type(config), "OPTION_DEFAULTS", None)
    if not isinstance(defaults, Mapping):
        return _freeze(config)
    names = set(defaults)
    names.update(n for n in getattr(config, "__dict__", {}) if not n.startswith("_"))
    options = tuple((name, _freeze(getattr(config, name, None))) for name in sorted(names))
    return (f"{type(config).__module__}.{type(config).__qualname__}", options)


def _digest(access_key: object, secret_key: object, token: object) -> str:
    material = "\0".join(repr(part) for part in (access_key, secret_key, token))
    return hashlib.sha256(material.encode()).hexdigest()


class _Key:
    """A normalised client key with its hash computed once (the hit path looks it up a lot)."""

    __slots__ = ("_hash", "label", "parts")

    def __init__(self, parts: tuple[object, ...], label: str) -> None:
        self.parts = parts
        self.label = label
        self._hash = hash(parts)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if other is self:
            return True
        return isinstance(other, _Key) and other._hash == self._hash and other.parts == self.parts

    def __repr__(self) -> str:
        return f"<key {self.label}>"


class _Spec:
    """What lease arguments resolve to: the key and the non-secret kwargs.

    Specs are canonical per key, so the index hashes them by identity (fast) while equal
    arguments still meet at one entry.
    """

    __slots__ = ("__weakref__", "key", "kind", "kwargs")

    def __init__(self, key: _Key, kind: str, kwargs: dict[str, Any]) -> None:
        self.key = key
        self.kind = kind
        self.kwargs = kwargs


def _merge_configs(default: Any, call: Any) -> Any:
    """``call``'s options over ``default``'s, keeping the richer class (``AioConfig``)."""
    try:
        if isinstance(default, type(call)):
            return default.merge(call)
        # call.merge(default) keeps call's class (and AioConfig extras); merging call again
        # puts its own options back on top.
        return call.merge(default).merge(call)
    except (AttributeError, TypeError):
        return call


def _detached(config: Any) -> Any:
    """A copy of ``config`` whose dict options botocore may rewrite (it edits ``retries``).

    Keeps the caller's object, and so its key, as it was.
    """
    try:
        clone = copy.copy(config)
        for name, value in list(vars(clone).items()):
            if isinstance(value, dict):
                setattr(clone, name, dict(value))
    except Exception:
        return config
    return clone


# -- entries and partitions ------------------------------------------------------------------


class _Entry:
    """One client (or its pending creation) and its leases."""

    __slots__ = (
        "client",
        "error",
        "idle_since",
        "kind",
        "leases",
        "pinned",
        "ready",
        "retired",
        "spec",
        "state",
        "tick",
        "uses",
    )

    def __init__(self, spec: _Spec, tick: int) -> None:
        self.spec = spec
        self.kind = spec.kind
        self.client: Any = None
        self.state = _CREATING
        self.error: BaseException | None = None
        self.ready = asyncio.Event()
        self.leases = 0
        self.uses = 0
        self.tick = tick
        self.pinned = False
        self.retired = False  # out of the index: closes when its last lease ends
        self.idle_since: datetime | None = None

    def __repr__(self) -> str:
        return f"<client {self.spec.key.label} leases={self.leases}>"


class _Partition:
    """What the pool holds on one event loop; only that loop's thread changes it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.index: dict[_Spec, _Entry] = {}
        self.live: set[_Entry] = set()  # ready clients not yet handed to close
        self.closing: set[asyncio.Task[None]] = set()
        self.leased = 0
        self.tick = 0
        self.idle_deadline: datetime | None = None
        self.closed = False  # aclose() started: no new leases
        self.shut = False  # aclose() is closing clients: late creations are closed at once
        self.drained: asyncio.Event | None = None
        self.aclosing: asyncio.Task[None] | None = None
        self.hits = self.misses = self.creations = self.evictions = self.closes = 0

    def open_clients(self) -> int:
        return len(self.live) + len(self.closing)


class _Totals:
    """Counters of partitions dropped because their loop closed."""

    __slots__ = ("closes", "creations", "evictions", "hits", "misses")

    def __init__(self) -> None:
        self.hits = self.misses = self.creations = self.evictions = self.closes = 0


# -- the lease -------------------------------------------------------------------------------


class _Lease:
    """``async with pool.lease(...) as client``: holds one lease for the block."""

    __slots__ = ("_entry", "_part", "_pool", "_raw")

    def __init__(self, pool: ClientPool, raw: tuple[Any, ...]) -> None:
        self._pool = pool
        self._raw = raw
        self._part: _Partition | None = None
        self._entry: _Entry | None = None

    async def __aenter__(self) -> Any:
        if self._part is not None:
            raise PoolError("a lease can be entered only once; call lease() again")
        pool = self._pool
        part = pool._partition()
        if part.closed:
            raise pool._closed_error()
        if pool._idle is not None:
            pool._sweep(part)
        raw = self._raw
        try:
            spec = pool._memo.get(raw)
        except TypeError:
            spec = None
        if spec is None:
            spec = pool._spec(raw)
        entry = part.index.get(spec)
        if entry is not None and entry.state == _READY:
            # The hit path: no lock, no await.
            entry.leases += 1
            part.leased += 1
            part.tick += 1
            entry.tick = part.tick
            entry.uses += 1
            part.hits += 1
        else:
            entry = await pool._acquire(part, spec, raw, pin=False)
        self._part = part
        self._entry = entry
        return entry.client

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        part, entry = self._part, self._entry
        if part is not None and entry is not None:
            self._entry = None
            self._pool._release(part, entry)


# -- the pool --------------------------------------------------------------------------------


class ClientPool:
    """Clients keyed by every argument that changes them, leased to tasks, per event loop.

    ``async with pool.lease("s3") as s3`` leases the one client of that configuration,
    creating it once however many tasks ask at the same time. ``await pool.get("s3")`` pins a
    client for code that keeps clients in attributes. ``max_clients`` bounds the unpinned
    clients of each loop (``0`` disables pooling: a client per lease); ``idle_timeout`` closes
    clients nobody leased for that many seconds, at the next pool operation.

    Creation is single-flight: tasks asking for a client being created wait for it, holding
    their lease. If the creation fails, every waiting task gets its error and the next lease
    tries again; if the creating task is cancelled, one waiting task takes the creation over.
    """

    def __init__(
        self,
        factory: ClientFactory,
        *,
        max_clients: int | None = None,
        eviction_policy: Literal["LRU", "LFU"] = "LRU",
        idle_timeout: float | None = None,
        close_timeout: float = 10.0,
        clock: Callable[[], datetime] | None = None,
        default_region: str | None = None,
        default_client_kwargs: Mapping[str, Any] | None = None,
        name: str = "pool",
    ) -> None:
        if not (
            callable(getattr(factory, "create", None)) and callable(getattr(factory, "close", None))
        ):
            raise ValidationError(
                f"factory must have async create(kind, kwargs) and close(kind, client) methods, "
                f"got {type(factory).__name__}"
            )
        if max_clients is not None and (
            isinstance(max_clients, bool) or not isinstance(max_clients, int)
        ):
            raise ValidationError(
                f"max_clients must be an int or None, got {type(max_clients).__name__}"
            )
        if max_clients is not None and max_clients < 0:
            raise ConfigurationError(f"max_clients must be >= 0 or None, got {max_clients!r}")
        if not isinstance(eviction_policy, str):
            raise ValidationError(
                f"eviction_policy must be 'LRU' or 'LFU', got {type(eviction_policy).__name__}"
            )
        if eviction_policy not in ("LRU", "LFU"):
            raise ConfigurationError(
                f"eviction_policy must be 'LRU' or 'LFU', got {eviction_policy!r}"
            )
        idle = _seconds("idle_timeout", idle_timeout, allow_none=True)
        close_limit = _seconds("close_timeout", close_timeout, allow_none=False)
        if clock is not None and not callable(clock):
            raise ValidationError(f"clock must be callable or None, got {type(clock).__name__}")
        if default_region is not None and not isinstance(default_region, str):
            raise ValidationError(
                f"default_region must be a str or None, got {type(default_region).__name__}"
            )
        defaults = _check_client_kwargs(default_client_kwargs)
        if not isinstance(name, str):
            raise ValidationError(f"name must be a str, got {type(name).__name__}")

        self._factory = factory
        self._max = max_clients
        self._policy = eviction_policy
        self._idle = None if idle is None else timedelta(seconds=idle)
        self._close_timeout = close_limit if close_limit is not None else 10.0
        self._clock: Callable[[], datetime] = clock or _utc_now
        self._default_region = default_region
        self._defaults = defaults
        self._name = name
        self._memo: dict[tuple[Any, ...], _Spec] = {}
        self._lock = threading.Lock()
        self._partitions: dict[asyncio.AbstractEventLoop, _Partition] = {}
        self._dropped = _Totals()
        self._last: tuple[asyncio.AbstractEventLoop, _Partition] | None = None
        self._canonical: weakref.WeakValueDictionary[_Key, _Spec] = weakref.WeakValueDictionary()

    def __repr__(self) -> str:
        stats = self.stats()
        return (
            f"<ClientPool {self._name!r} size={stats.size} leased={stats.leased} "
            f"max_clients={self._max} policy={self._policy}>"
        )

    # -- public API -------------------------------------------------------------------------

    def lease(
        self,
        service_name: str,
        region_name: str | None = None,
        api_version: str | None = None,
        use_ssl: bool = True,
        verify: bool | str | None = None,
        endpoint_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        config: Any = None,
        aws_account_id: str | None = None,
        *,
        kind: str = "client",
    ) -> AbstractAsyncContextManager[Any]:
        """Lease the client of this configuration for an ``async with`` block.

        The arguments are ``AioSession.create_client``'s. Leaving the block releases the
        lease; the client stays open for the next task unless it was evicted meanwhile.
        """
        return _Lease(
            self,
            (
                kind,
                service_name,
                region_name,
                api_version,
                use_ssl,
                verify,
                endpoint_url,
                aws_access_key_id,
                aws_secret_access_key,
                aws_session_token,
                config,
                aws_account_id,
            ),
        )

    async def get(
        self,
        service_name: str,
        region_name: str | None = None,
        api_version: str | None = None,
        use_ssl: bool = True,
        verify: bool | str | None = None,
        endpoint_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        config: Any = None,
        aws_account_id: str | None = None,
        *,
        kind: str = "client",
    ) -> Any:
        """The client of this configuration, pinned: never evicted, closed by `aclose`.

        Leases of the same configuration share it.
        """
        raw = (
            kind,
            service_name,
            region_name,
            api_version,
            use_ssl,
            verify,
            endpoint_url,
            aws_access_key_id,
            aws_secret_access_key,
            aws_session_token,
            config,
            aws_account_id,
        )
        part = self._partition()
        if part.closed:
            raise self._closed_error()
        if self._idle is not None:
            self._sweep(part)
        spec = self._spec(raw)
        while True:
            entry = await self._acquire(part, spec, raw, pin=True)
            if entry.pinned:
                break
            current = part.index.get(entry.spec)
            if entry.retired and current is not None and current is not entry:
                # Evicted while we waited, and another client of this key took its place:
                # pin that one instead, so one key never has two pinned clients.
                self._release(part, entry)
                continue
            entry.pinned = True
            if entry.retired:
                # Evicted while we waited for its creation: pinned clients are not bounded.
                entry.retired = False
                part.index[entry.spec] = entry
            break
        self._release(part, entry)
        return entry.client

    async def clear(self) -> None:
        """Close this loop's clients: unleased ones now, leased ones when released.

        Pinned clients stay (their holders keep using them); the pool stays usable.
        """
        part = self._partition()
        tasks = []
        for entry in list(part.index.values()):
            if entry.pinned:
                continue
            del part.index[entry.spec]
            entry.retired = True
            if entry.leases == 0 and entry.state == _READY:
                tasks.append(self._close_soon(part, entry))
        if tasks:
            await asyncio.wait(tasks)

    async def aclose(self) -> None:
        """Close this event loop's partition; then `lease` and `get` raise here.

        Waits up to ``close_timeout`` seconds for the loop's leases to end, then closes every
        client of the loop, pinned ones included (leases still held then lose their client,
        with a warning). Call it on each loop that used the pool, before that loop ends.
        Other loops' clients are untouched. Idempotent.
        """
        part = self._partition()
        if part.aclosing is None:
            part.closed = True
            part.aclosing = part.loop.create_task(self._aclose_partition(part))
        await asyncio.shield(part.aclosing)

    def stats(self) -> PoolStats:
        """A snapshot of the counters, summed over every event loop (callable from any thread)."""
        with self._lock:
            parts = list(self._partitions.values())
            dropped = self._dropped
            hits, misses = dropped.hits, dropped.misses
            creations, evictions, closes = dropped.creations, dropped.evictions, dropped.closes
        size = leased = 0
        for part in parts:
            hits += part.hits
            misses += part.misses
            creations += part.creations
            evictions += part.evictions
            closes += part.closes
            leased += part.leased
            size += sum(1 for e in list(part.index.values()) if e.state == _READY)
        return PoolStats(hits, misses, creations, evictions, closes, size, leased)

    # -- partitions -------------------------------------------------------------------------

    def _partition(self) -> _Partition:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise PoolError(f"{self._name} needs a running asyncio event loop") from None
        last = self._last
        if last is not None and last[0] is loop:
            return last[1]
        part = self._partitions.get(loop)
        if part is None:
            with self._lock:
                part = self._partitions.get(loop)
                if part is None:
                    self._drop_dead_partitions()
                    part = self._partitions[loop] = _Partition(loop)
        self._last = (loop, part)
        return part

    def _drop_dead_partitions(self) -> None:
        """Forget partitions of closed loops (caller holds the lock); warn if clients leaked."""
        for loop, part in list(self._partitions.items()):
            if not loop.is_closed():
                continue
            del self._partitions[loop]
            totals = self._dropped
            totals.hits += part.hits
            totals.misses += part.misses
            totals.creations += part.creations
            totals.evictions += part.evictions
            totals.closes += part.closes
            leaked = part.open_clients()
            if leaked:
                warnings.warn(
                    f"{self._name}: {leaked} client(s) of a closed event loop were never closed; "
                    "await the pool's aclose() before each event loop ends",
                    ResourceWarning,
                    stacklevel=4,
                )

    def _closed_error(self) -> SessionClosedError:
        return SessionClosedError(f"{self._name} was closed with aclose() on this event loop")

    # -- keys -------------------------------------------------------------------------------

    def _spec(self, raw: tuple[Any, ...]) -> _Spec:
        """The memoised key of ``raw`` lease arguments; explicit keys only ever as a digest."""
        if raw[_AK] is None and raw[_SK] is None and raw[_TOKEN] is None:
            memo_key = raw
        else:
            memo_key = (*raw[:_AK], _digest(raw[_AK], raw[_SK], raw[_TOKEN]), *raw[_CONFIG:])
        try:
            spec = self._memo.get(memo_key)
        except TypeError:  # an unhashable argument: compute every time
            return self._build_spec(raw)
        if spec is None:
            spec = self._build_spec(raw)
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[memo_key] = spec
        return spec

    def _build_spec(self, raw: tuple[Any, ...]) -> _Spec:
        kind, service = raw[_KIND], raw[_SERVICE]
        if not isinstance(kind, str):
            raise ValidationError(f"kind must be a str, got {type(kind).__name__}")
        if not isinstance(service, str) or not service:
            raise ValidationError(f"service_name must be a non-empty str, got {service!r}")
        defaults = self._defaults
        values = dict(zip(_CLIENT_ARGS, raw[_REGION:], strict=True))
        for name in _CLIENT_ARGS:
            if values[name] is None and name in defaults:
                values[name] = defaults[name]
        if raw[_SSL] is True and "use_ssl" in defaults:
            values["use_ssl"] = defaults["use_ssl"]
        if values["region_name"] is None:
            values["region_name"] = self._default_region
        if raw[_CONFIG] is not None and defaults.get("config") is not None:
            values["config"] = _merge_configs(defaults["config"], raw[_CONFIG])
        secrets = tuple(values.pop(name) for name in _SECRET_ARGS)
        digest = None if secrets == (None, None, None) else _digest(*secrets)
        parts = (
            kind,
            service,
            values["region_name"],
            values["api_version"],
            _freeze(values["use_ssl"]),
            _freeze(values["verify"]),
            values["endpoint_url"],
            digest,
            _config_key(values["config"]),
            values["aws_account_id"],
        )
        label = f"{kind} {service} {values['region_name'] or '(default region)'}"
        if values["endpoint_url"]:
            label += f" {values['endpoint_url']}"
        if digest is not None:
            label += f" keys:sha256:{digest[:12]}"
        if values["aws_account_id"] is None:
            del values["aws_account_id"]
        key = _Key(parts, label)
        with self._lock:
            spec = self._canonical.get(key)
            if spec is None:
                spec = self._canonical[key] = _Spec(key, kind, {"service_name": service, **values})
        return spec

    def _client_kwargs(self, spec: _Spec, raw: tuple[Any, ...]) -> dict[str, Any]:
        kwargs = dict(spec.kwargs)
        if kwargs.get("config") is not None:
            kwargs["config"] = _detached(kwargs["config"])
        for name, value in zip(_SECRET_ARGS, raw[_AK:_CONFIG], strict=True):
            kwargs[name] = value if value is not None else self._defaults.get(name)
        return kwargs

    # -- leasing ----------------------------------------------------------------------------

    async def _acquire(
        self, part: _Partition, spec: _Spec, raw: tuple[Any, ...], *, pin: bool
    ) -> _Entry:
        """A leased entry for ``spec``: an existing one, a pending one, or a new one."""
        while True:
            if part.closed:
                raise self._closed_error()
            entry = part.index.get(spec)
            if entry is None:
                return await self._create(part, spec, raw, pin=pin)
            # Count the lease before awaiting: eviction must see it.
            entry.leases += 1
            part.leased += 1
            part.tick += 1
            entry.tick = part.tick
            entry.uses += 1
            if entry.state == _CREATING:
                try:
                    await entry.ready.wait()
                except BaseException:
                    self._release(part, entry)  # gives a created client back, or just leaves
                    raise
            if entry.state == _READY:
                part.hits += 1
                return entry
            self._release(part, entry)
            if entry.state == _FAILED:
                assert entry.error is not None
                raise _own_copy(entry.error) from entry.error
            if entry.state == _CLOSED:
                raise self._closed_error()
            # _ABANDONED: its creator was cancelled; try again (one of us creates).

    async def _create(
        self, part: _Partition, spec: _Spec, raw: tuple[Any, ...], *, pin: bool
    ) -> _Entry:
        part.tick += 1
        entry = _Entry(spec, part.tick)
        entry.leases = 1
        entry.uses = 1
        entry.pinned = pin
        part.leased += 1
        part.misses += 1
        if pin or self._max != 0:
            part.index[spec] = entry
            if not pin and self._max is not None:
                self._enforce_bound(part, entry)
        else:
            entry.retired = True  # max_clients=0: this lease's own client
        kwargs = self._client_kwargs(spec, raw)
        try:
            client = await self._factory.create(spec.kind, kwargs)
        except BaseException as exc:
            self._abandon(part, entry, exc)
            raise
        entry.client = client
        part.creations += 1
        part.live.add(entry)
        if part.shut:
            # aclose() gave up waiting and closed everything while we created: close this too.
            error = self._closed_error()
            self._abandon(part, entry, error)
            await asyncio.shield(self._close_soon(part, entry))
            raise error
        entry.state = _READY
        entry.ready.set()
        return entry

    def _abandon(self, part: _Partition, entry: _Entry, exc: BaseException) -> None:
        """A creation failed or was cancelled: leave nothing behind, wake the waiters."""
        if part.index.get(entry.spec) is entry:
            del part.index[entry.spec]
        entry.retired = True
        if isinstance(exc, Exception):
            entry.state = _FAILED
            entry.error = exc
        else:
            entry.state = _ABANDONED  # cancelled: a waiter retries the creation
        entry.ready.set()
        self._release(part, entry)

    def _release(self, part: _Partition, entry: _Entry) -> None:
        entry.leases -= 1
        part.leased -= 1
        if entry.leases == 0 and entry.state == _READY and not entry.pinned:
            if entry.retired:
                self._close_soon(part, entry)
            elif self._idle is not None:
                now = self._clock()
                entry.idle_since = now
                deadline = now + self._idle
                if part.idle_deadline is None or deadline < part.idle_deadline:
                    part.idle_deadline = deadline
        if part.leased == 0 and part.drained is not None:
            part.drained.set()

    # -- eviction ---------------------------------------------------------------------------

    def _enforce_bound(self, part: _Partition, new: _Entry) -> None:
        """Evict until the unpinned clients fit ``max_clients``: unleased ones first."""
        assert self._max is not None
        unpinned = [e for e in part.index.values() if not e.pinned]
        excess = len(unpinned) - self._max
        if excess <= 0:
            return
        if self._policy == "LFU":

            def rank(e: _Entry) -> tuple[int, int]:
                return (e.uses, e.tick)
        else:

            def rank(e: _Entry) -> tuple[int, int]:
                return (e.tick, 0)

        candidates = [e for e in unpinned if e is not new]
        idle = sorted((e for e in candidates if e.leases == 0), key=rank)
        busy = sorted((e for e in candidates if e.leases > 0), key=rank)
        for victim in (idle + busy)[:excess]:
            self._evict(part, victim)

    def _evict(self, part: _Partition, entry: _Entry) -> None:
        del part.index[entry.spec]
        entry.retired = True
        part.evictions += 1
        if entry.leases == 0 and entry.state == _READY:
            self._close_soon(part, entry)

    def _sweep(self, part: _Partition) -> None:
        """Evict clients idle longer than ``idle_timeout`` (cheap unless one may be due)."""
        assert self._idle is not None
        deadline = part.idle_deadline
        if deadline is None:
            return
        now = self._clock()
        if now <= deadline:
            return
        limit = now - self._idle
        next_deadline: datetime | None = None
        for entry in list(part.index.values()):
            since = entry.idle_since
            if entry.leases or entry.pinned or entry.state != _READY or since is None:
                continue
            if since < limit:
                self._evict(part, entry)
            elif next_deadline is None or since + self._idle < next_deadline:
                next_deadline = since + self._idle
        part.idle_deadline = next_deadline

    # -- closing ----------------------------------------------------------------------------

    def _close_soon(self, part: _Partition, entry: _Entry) -> asyncio.Task[None]:
        """Close ``entry``'s client in a task of the pool: never inside a caller's cancel."""
        entry.state = _CLOSED
        part.live.discard(entry)
        task = part.loop.create_task(self._close_client(part, entry))
        part.closing.add(task)
        task.add_done_callback(part.closing.discard)
        return task

    async def _close_client(self, part: _Partition, entry: _Entry) -> None:
        try:
            await self._factory.close(entry.kind, entry.client)
        except Exception:
            logger.warning("%s: closing %r failed", self._name, entry, exc_info=True)
        finally:
            part.closes += 1
            entry.client = None

    async def _aclose_partition(self, part: _Partition) -> None:
        if part.leased:
            part.drained = asyncio.Event()
            with anyio.move_on_after(self._close_timeout):
                await part.drained.wait()
            if part.leased:
                logger.warning(
                    "%s: %d lease(s) still held after close_timeout=%ss; closing their clients",
                    self._name,
                    part.leased,
                    self._close_timeout,
                )
        part.shut = True
        for entry in part.index.values():
            if entry.state == _CREATING:
                entry.ready.set()  # its waiters find the pool closed; the creator closes it
        part.index.clear()
        for entry in list(part.live):
            self._close_soon(part, entry)
        while part.closing:
            await asyncio.wait(list(part.closing))

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # nothing may escape __del__
            parts = list(getattr(self, "_partitions", {}).values())
            leaked = sum(part.open_clients() for part in parts)
            if leaked:
                warnings.warn(
                    f"{self._name} was garbage-collected with {leaked} open client(s); "
                    "await its aclose() on each event loop before the loop ends",
                    ResourceWarning,
                    source=self,
                    stacklevel=2,
                )


def _seconds(name: str, value: object, *, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        expected = "a number of seconds" + (" or None" if allow_none else "")
        raise ValidationError(f"{name} must be {expected}, got {type(value).__name__}")
    number = float(value)
    if math.isnan(number) or number < 0:
        raise ConfigurationError(f"{name} must be a non-negative number of seconds, got {value!r}")
    return number


def _check_client_kwargs(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"default_client_kwargs must be a mapping or None, got {type(value).__name__}"
        )
    unknown = sorted(str(k) for k in value if k not in _CLIENT_ARGS)
    if unknown:
        raise ValidationError(
            f"default_client_kwargs has unknown option(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(_CLIENT_ARGS)}"
        )
    return dict(value)


def _own_copy(error: BaseException) -> BaseException:
    """A fresh exception like ``error`` for one waiter, so tracebacks do not pile up on one."""
    try:
        clone = copy.copy(error)
    except Exception:
        return PoolError(f"creating the client failed: {type(error).__name__}")
    clone.__traceback__ = None
    return clone
