"""``LeasePool[K, V]``: values made by a factory, keyed, leased to tasks, per event loop; it
knows nothing of what it holds (clients for `ClientPool`, child sessions for a fleet).

- A lease is counted before any ``await`` at which eviction could run, so a value is never
  closed while leased: eviction takes an entry out of the index, a leased one closes when its
  last lease ends, and until then the key's next lease reuses it (back in the index if room
  can be made). Creations in flight are never evicted. So a key has one open value at most
  (``clear()`` aside), and ``max_size`` bounds the open values plus one per busy evicted key.
- Creation is single flight: waiters hold their lease; a failure reaches each waiter as its
  own copy; a cancelled creator hands the creation to a waiter.
- Each event loop has its own partition (a `LoopScope`), closed by ``aclose()`` there or when
  the loop shuts down; values are closed in tasks of the pool, never in a caller's cancel."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import warnings
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, TypeVar, cast

import anyio

from ._loops import LoopScope, PerLoop, close_later
from ._types import LeaseFactory, PoolStats
from ._util import check_seconds, fresh_copy, utc_now
from .errors import ConfigurationError, PoolError, SessionClosedError, ValidationError

__all__ = ["Lease", "LeaseFactory", "LeasePool", "PoolStats"]

logger = logging.getLogger("aiorefresh")

K = TypeVar("K")
V = TypeVar("V")

Create = Callable[[K], Awaitable[V]]
"""A lease's own way to create its value, for what the key must not keep (explicit keys)."""

_CREATING, _READY, _FAILED, _ABANDONED, _CLOSED = range(5)  # entry states


class _Entry(Generic[K, V]):
    """One value (or its pending creation) and its leases."""

    __slots__ = (
        "error",
        "idle_since",
        "key",
        "leases",
        "part",
        "pinned",
        "ready",
        "retired",
        "state",
        "tick",
        "uses",
        "value",
    )

    def __init__(self, key: K, part: _Partition[K, V]) -> None:
        self.key = key
        self.part = part
        self.value: V = cast(V, None)
        self.state = _CREATING
        self.error: BaseException | None = None
        self.ready = asyncio.Event()
        self.leases = 1  # its creator's
        self.uses = 1
        self.tick = part.tick
        self.pinned = False
        self.retired = False  # out of the index: closes when its last lease ends
        self.idle_since: datetime | None = None

    def __repr__(self) -> str:
        return f"<entry {self.key!r} leases={self.leases}>"


class _Partition(LoopScope, Generic[K, V]):
    """What the pool holds on one event loop; only that loop's thread changes it. ``index``:
    the entries the bound counts, and pinned ones; ``retired``: entries out of the index but
    still leased or being created, one per key at most (never a key of the index)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: LeasePool[K, V]) -> None:
        super().__init__(loop)
        # Only weakly the pool: a pool dropped unclosed must die first, so that its finalizer
        # can still close the values its partitions hold (see LeasePool.__init__).
        self.pool = weakref.ref(pool)
        self.factory, self.name, self.noun = pool._factory, pool._name, pool._noun
        self.idle = pool._idle is not None
        pool._held.add(self)
        self.index: dict[K, _Entry[K, V]] = {}
        self.retired: dict[K, _Entry[K, V]] = {}
        self.live: set[_Entry[K, V]] = set()  # open values not yet handed to close
        self.pinned = 0  # pinned entries in the index
        self.leased = 0
        self.tick = 0
        self.idle_deadline: datetime | None = None
        self.shut = False  # closing everything: late creations are closed at once
        self.drained: asyncio.Event | None = None
        self.hits = self.misses = self.creations = self.evictions = self.closes = 0

    def counts(self) -> tuple[int, ...]:
        ready = sum(1 for e in list(self.index.values()) if e.state == _READY)
        return (self.hits, self.misses, self.creations, self.evictions, self.closes, ready)

    def report(self, where: str) -> None:
        """Close (on a loop still running) or warn about values still open, once."""
        live, self.live, loop = list(self.live), set(), self._loop()
        closers = [functools.partial(self.factory.close, e.key, e.value) for e in live]
        if live and not (loop is not None and close_later(loop, closers)):
            message = f"{self.name}: {len(live)} {self.noun}(s) {where} were never closed;"
            warnings.warn(f"{message} aclose() the pool on each loop", ResourceWarning, 3)


_RELEASED: Any = object()  # a lease's entry once it was given back

Ticket = tuple["LeasePool[K, V]", K, "Create[K, V] | None"]
"""What a lease is for: its pool, its key, its own way to create (reusable across leases)."""


class Lease(Generic[K, V]):
    """``async with pool.lease(key) as value``: holds one lease for the block."""

    # Each method reads one slot: a subclass may add __getattr__ (for a helpful error, as
    # ClientPool's does), which makes every attribute read on the lease slower.
    __slots__ = ("_entry", "_ticket")

    def __init__(self, ticket: Ticket[K, V]) -> None:
        self._ticket: Ticket[K, V] | None = ticket  # None once entered
        self._entry: _Entry[K, V] | None = None

    async def __aenter__(self) -> V:
        ticket = self._ticket
        if ticket is None:
            raise PoolError("a lease can be entered only once; call lease() again")
        pool, key, create = ticket
        part = pool._parts.get()
        if part.closed:
            raise pool._closed_error()
        if pool._idle is not None:
            pool._sweep(part)
        entry = part.index.get(key)
        if entry is not None and entry.state == _READY:
            # The hit path: no lock, no await.
            entry.leases += 1
            part.leased += 1
            part.tick += 1
            entry.tick = part.tick
            entry.uses += 1
            part.hits += 1
        else:
            entry = await pool._acquire(part, key, create, pin=False)
        self._ticket = None
        self._entry = entry
        return entry.value

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        entry = self._entry
        if entry is not None and entry is not _RELEASED:
            self._entry = _RELEASED
            part = entry.part
            entry.leases -= 1
            part.leased -= 1
            if part.drained is not None or (entry.leases == 0 and (entry.retired or part.idle)):
                pool = part.pool()  # else an unleased value just stays in the pool
                if pool is not None:
                    pool._released(part, entry)


class LeasePool(Generic[K, V]):
    """Values of ``factory`` keyed by ``K``, leased to tasks, one partition per event loop.

    ``max_size`` bounds the unpinned values of each loop (``0``: a value per lease, closed at
    release; ``None``: no bound), evicting by ``eviction_policy``; ``idle_timeout`` closes
    values nobody leased for that many seconds (by ``clock``), at the next lease or pin.
    """

    def __init__(
        self,
        factory: LeaseFactory[K, V],
        *,
        max_size: int | None = None,
        eviction_policy: Literal["LRU", "LFU"] = "LRU",
        idle_timeout: float | None = None,
        close_timeout: float = 10.0,
        clock: Callable[[], datetime] | None = None,
        name: str = "pool",
        noun: str = "value",
    ) -> None:
        if not all(callable(getattr(factory, method, None)) for method in ("create", "close")):
            what = type(factory).__name__
            raise ValidationError(f"factory must have async create() and close(), got {what}")
        check_bound("max_size", max_size, eviction_policy)
        idle = check_seconds("idle_timeout", idle_timeout)
        close_limit = check_seconds("close_timeout", close_timeout, allow_none=False)
        if clock is not None and not callable(clock):
            raise ValidationError(f"clock must be callable or None, got {type(clock).__name__}")
        for option, text in (("name", name), ("noun", noun)):
            if not isinstance(text, str):
                raise ValidationError(f"{option} must be a str, got {type(text).__name__}")

        self._factory = factory
        self._max = max_size
        self._policy = eviction_policy
        self._rank: Callable[[_Entry[K, V]], tuple[int, ...]] = (
            (lambda e: (e.uses, e.tick)) if eviction_policy == "LFU" else (lambda e: (e.tick,))
        )
        self._idle = None if idle is None else timedelta(seconds=idle)
        self._close_timeout = close_limit if close_limit is not None else 10.0
        self._clock: Callable[[], datetime] = clock or utc_now
        self._name = name
        self._noun = noun
        self._lock = threading.Lock()
        self._dropped = [0, 0, 0, 0, 0]  # hits, misses, creations, evictions, closes
        self._draining: set[_Partition[K, V]] = set()  # popped at loop shutdown, still closing
        self._held: set[_Partition[K, V]] = set()  # partitions not yet closed or folded
        weakref.finalize(self, _dropped, self._held)
        self._parts: PerLoop[_Partition[K, V]] = PerLoop(
            functools.partial(_Partition, pool=self),
            on_shutdown=self._close_at_shutdown,
            close_dropped=False,  # the finalizer above closes them: this one reaches self
        )

    def __repr__(self) -> str:
        stats = self.stats()
        return (
            f"<{type(self).__name__} {self._name!r} size={stats.size} leased={stats.leased} "
            f"max_size={self._max} policy={self._policy}>"
        )

    # -- public API -------------------------------------------------------------------------

    def lease(self, key: K, *, create: Create[K, V] | None = None) -> Lease[K, V]:
        """Lease the value of ``key`` for an ``async with`` block (created if needed)."""
        return Lease((self, key, create))

    async def pin(self, key: K, *, create: Create[K, V] | None = None) -> V:
        """The value of ``key``, pinned: never evicted, closed by `aclose`; leases share it."""
        part = self._parts.get()
        if self._idle is not None:
            self._sweep(part)
        entry = await self._acquire(part, key, create, pin=True)
        self._release(part, entry)
        return entry.value

    def clear_nowait(self) -> list[asyncio.Task[None]]:
        """Retire this loop's unpinned values: unleased ones close now (the returned tasks),
        leased ones when released; none is reused."""
        part = self._parts.get()
        tasks = []
        for entry in [e for e in part.index.values() if not e.pinned]:
            del part.index[entry.key]
            entry.retired = True
            if entry.leases == 0 and entry.state == _READY:
                tasks.append(self._close_soon(part, entry))
        part.retired.clear()  # still leased: they close at release and are not reused
        return tasks

    async def clear(self) -> None:
        """`clear_nowait`, then wait until the unleased values are closed."""
        await asyncio.gather(*self.clear_nowait())

    async def aclose(self) -> None:
        """Close this loop's partition (then `Lease` and `pin` raise `SessionClosedError` here):
        wait up to ``close_timeout`` for its leases to end, then close every value of the loop,
        pinned ones included. Other loops are untouched. Idempotent, and shielded."""
        part = self._parts.get()
        await part.close(functools.partial(self._shut, part))

    def stats(self) -> PoolStats:
        """A snapshot of the counters, summed over event loops (callable from any thread)."""
        with self._lock:
            counts = [*self._dropped, 0, 0]  # + size, leased
            parts = [*self._draining]
        for part in [*parts, *self._parts.values()]:
            for i, n in enumerate((*part.counts(), part.leased)):
                counts[i] += n
        return PoolStats(*counts)

    # -- leasing ----------------------------------------------------------------------------

    async def _acquire(
        self, part: _Partition[K, V], key: K, create: Create[K, V] | None, *, pin: bool
    ) -> _Entry[K, V]:
        """A leased, ready entry for ``key``: the existing one, a pending one, or a new one."""
        while True:
            if part.closed:
                raise self._closed_error()
            entry = part.index.get(key)
            if entry is None:
                if self._max == 0 and not pin:
                    return await self._create(part, key, create, pin=False)
                entry = part.retired.get(key)
                if entry is None:
                    return await self._create(part, key, create, pin=pin)
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
                    self._release(part, entry)  # gives a created value back, or just leaves
                    raise
            if entry.state == _READY and not part.shut:
                if pin and not self._pin(part, entry):
                    self._release(part, entry)  # another entry of the key took its place
                    continue
                if entry.retired and not pin:
                    self._try_unretire(part, entry)
                part.hits += 1
                return entry
            self._release(part, entry)
            if entry.state == _FAILED:
                assert entry.error is not None
                raise fresh_copy(entry.error, fallback=self._creation_failed)
            if entry.state == _CLOSED or part.closed:
                raise self._closed_error()
            # _ABANDONED: its creator was cancelled; try again (one of us creates).

    async def _create(
        self, part: _Partition[K, V], key: K, create: Create[K, V] | None, *, pin: bool
    ) -> _Entry[K, V]:
        self._drop_dead_partitions()  # a miss is rare and costly anyway
        part.tick += 1
        entry: _Entry[K, V] = _Entry(key, part)
        part.leased += 1
        part.misses += 1
        if pin:
            entry.pinned = True
            part.pinned += 1
            part.index[key] = entry
        elif self._max == 0:
            entry.retired = True  # this lease's own value
        elif self._max is None or self._room(part, True, None):
            part.index[key] = entry
        else:
            # Every slot holds a creation in flight: this value lives outside the bound
            # until its leases end (or a slot frees up), shared by the key's leases.
            entry.retired = True
            part.retired[key] = entry
            part.evictions += 1
        try:
            value = await (create or self._factory.create)(key)
        except BaseException as exc:
            self._abandon(part, entry, exc)
            raise
        entry.value = value
        part.creations += 1
        part.live.add(entry)
        if part.shut:
            # aclose() gave up waiting and closed everything while we created: close this too.
            error = self._closed_error()
            self._abandon(part, entry, error)
            await asyncio.shield(self._close_soon(part, entry))
            raise error
        entry.state = _READY
        if entry.retired:
            self._try_unretire(part, entry)
        entry.ready.set()
        return entry

    def _abandon(self, part: _Partition[K, V], entry: _Entry[K, V], exc: BaseException) -> None:
        """A creation failed or was cancelled: leave nothing behind, wake the waiters."""
        key = entry.key
        if part.index.get(key) is entry:
            del part.index[key]
            if entry.pinned:
                part.pinned -= 1
        if part.retired.get(key) is entry:
            del part.retired[key]
        entry.retired = True
        entry.pinned = False
        if isinstance(exc, Exception):
            entry.state = _FAILED
            entry.error = exc
        else:
            entry.state = _ABANDONED  # cancelled: a waiter retries the creation
        entry.ready.set()
        self._release(part, entry)

    def _release(self, part: _Partition[K, V], entry: _Entry[K, V]) -> None:
        entry.leases -= 1
        part.leased -= 1
        self._released(part, entry)

    def _released(self, part: _Partition[K, V], entry: _Entry[K, V]) -> None:
        """After a lease ended: close, reinstate or mark idle; wake a drain."""
        if entry.leases == 0 and entry.state == _READY and not entry.pinned:
            if entry.retired and not self._try_unretire(part, entry):
                if part.retired.get(entry.key) is entry:
                    del part.retired[entry.key]
                self._close_soon(part, entry)
            elif self._idle is not None:
                now = self._clock()
                entry.idle_since = now
                deadline = now + self._idle
                if part.idle_deadline is None or deadline < part.idle_deadline:
                    part.idle_deadline = deadline
        if part.leased == 0 and part.drained is not None:
            part.drained.set()

    def _pin(self, part: _Partition[K, V], entry: _Entry[K, V]) -> bool:
        """Pin ``entry`` (into the index); False if another entry of its key holds the place."""
        if entry.pinned:
            return True
        key = entry.key
        holder = part.index.get(key) or part.retired.get(key)
        if holder is not None and holder is not entry:
            return False
        if part.retired.get(key) is entry:
            del part.retired[key]
        part.index[key] = entry
        entry.retired = False
        entry.pinned = True
        part.pinned += 1
        return True

    # -- the bound --------------------------------------------------------------------------

    def _room(self, part: _Partition[K, V], busy: bool, below: _Entry[K, V] | None) -> bool:
        """Whether an unpinned slot is free, evicting for it the lowest-ranked ready entry:
        unleased first, leased ones only if ``busy``, only below ``below`` if given."""
        assert self._max is not None
        if len(part.index) - part.pinned < self._max:
            return True
        rank = self._rank
        limit = None if below is None else (False, *rank(below))
        victim: _Entry[K, V] | None = None
        best: tuple[int, ...] = ()
        for e in part.index.values():
            if e.pinned or e.state != _READY or (e.leases and not busy):
                continue
            order = (e.leases > 0, *rank(e))
            if (limit is None or order < limit) and (victim is None or order < best):
                victim, best = e, order
        if victim is None:
            return False
        self._evict(part, victim)
        return len(part.index) - part.pinned < self._max

    def _try_unretire(self, part: _Partition[K, V], entry: _Entry[K, V]) -> bool:
        """Put a retired ``entry`` back into the index if a slot is free, or can be freed from
        an unleased entry the policy ranks below it; True if it is back."""
        key = entry.key
        if part.retired.get(key) is not entry or part.shut or not self._room(part, False, entry):
            return False
        del part.retired[key]
        entry.retired = False
        part.index[key] = entry
        return True

    def _evict(self, part: _Partition[K, V], entry: _Entry[K, V]) -> None:
        del part.index[entry.key]
        entry.retired = True
        part.evictions += 1
        if entry.leases:
            part.retired[entry.key] = entry  # reused by the key's next lease
        else:
            self._close_soon(part, entry)

    def _sweep(self, part: _Partition[K, V]) -> None:
        """Evict values idle longer than ``idle_timeout`` (cheap unless one may be due)."""
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

    def _close_soon(self, part: _Partition[K, V], entry: _Entry[K, V]) -> asyncio.Task[None]:
        """Close ``entry``'s value in a task of the pool: never inside a caller's cancel."""
        entry.state = _CLOSED
        part.live.discard(entry)
        return part.spawn(self._close_value(part, entry), name=f"{self._name}: close {entry!r}")

    async def _close_value(self, part: _Partition[K, V], entry: _Entry[K, V]) -> None:
        try:
            await self._factory.close(entry.key, entry.value)
        except Exception:
            logger.warning("%s: closing %r failed", self._name, entry, exc_info=True)
        finally:
            part.closes += 1
            entry.value = cast(V, None)  # drop it: holders keep their own reference

    async def _shut(self, part: _Partition[K, V]) -> None:
        """Drain the partition's leases (bounded by ``close_timeout``), then close it all."""
        if part.leased:
            part.drained = asyncio.Event()
            with anyio.move_on_after(self._close_timeout):
                await part.drained.wait()
            if part.leased:
                held, limit = part.leased, self._close_timeout
                logger.warning(
                    "%s: %d lease(s) held after close_timeout=%ss", self._name, held, limit
                )
        part.shut = True
        for entry in [*part.index.values(), *part.retired.values()]:
            if entry.state == _CREATING:
                entry.ready.set()  # its waiters find the pool closed; the creator closes it
        part.index.clear()
        part.retired.clear()
        part.pinned = 0
        for entry in list(part.live):
            self._close_soon(part, entry)
        while part.tasks:
            await asyncio.wait(list(part.tasks))
        self._held.discard(part)

    async def _close_at_shutdown(self, part: _Partition[K, V]) -> None:
        """The loop is shutting down (``asyncio.run``'s teardown): close what it still holds."""
        with self._lock:
            self._draining.add(part)
        try:
            await part.close(functools.partial(self._shut, part))
        finally:
            self._fold(part)

    # -- partitions -------------------------------------------------------------------------

    def _fold(self, part: _Partition[K, V]) -> None:
        """Keep the counters of a partition the pool no longer holds."""
        with self._lock:
            self._draining.discard(part)
            self._held.discard(part)
            self._dropped = [a + b for a, b in zip(self._dropped, part.counts()[:5], strict=True)]

    def _drop_dead_partitions(self) -> None:
        """Forget partitions of loops closed without shutting down; warn if values leaked."""
        for loop, part in self._parts.items():
            if not loop.is_closed():
                continue
            self._parts.pop(loop)
            self._fold(part)
            part.report("of a closed event loop")

    def _closed_error(self) -> SessionClosedError:
        return SessionClosedError(f"{self._name} was closed with aclose() on this event loop")

    def _creation_failed(self, error: BaseException) -> BaseException:
        return PoolError(f"creating the {self._noun} failed: {type(error).__name__}")


def _dropped(parts: set[_Partition[Any, Any]]) -> None:
    """A pool was garbage-collected without aclose(): close what it held, on each loop."""
    for part in list(parts):
        part.report("of a pool dropped unclosed")
    parts.clear()


def check_bound(name: str, size: object, policy: object) -> None:
    """Refuse a size bound ``name`` that is not an int >= 0 or None, and an unknown policy."""
    if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
        raise ValidationError(f"{name} must be an int or None, got {type(size).__name__}")
    if size is not None and size < 0:
        raise ConfigurationError(f"{name} must be >= 0 or None, got {size!r}")
    if policy not in ("LRU", "LFU"):
        error = ConfigurationError if isinstance(policy, str) else ValidationError
        raise error(f"eviction_policy must be 'LRU' or 'LFU', got {policy!r}")
