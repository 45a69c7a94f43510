"""``ClientPool``: the session's pool of aiobotocore clients and aioboto3 resources.

Client keys (`_client_key`) over a generic `LeasePool` (`_pool`): ``lease(...)`` takes
``AioSession.create_client``'s arguments, resolves them to one canonical key (memoised) and
leases that key's client; the pool never touches aiobotocore itself, a `ClientFactory` does.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Literal, Protocol

from ._client_key import AK, MEMO_SIZE, SK, TOKEN, ClientKey, ClientKeys, Raw
from ._pool import Lease, LeasePool, PoolStats, Ticket, check_bound
from .errors import ValidationError

__all__ = ["ClientFactory", "ClientPool", "PoolStats"]

_PLAIN = (None, True, None, None, None, None, None)  # api_version ... aws_session_token


class ClientFactory(Protocol):
    """Creates and closes the pool's clients; the pool never touches aiobotocore itself."""

    async def create(self, kind: str, kwargs: dict[str, Any]) -> Any:
        """A ready (entered) client for ``AioSession.create_client(**kwargs)``-style ``kwargs``."""
        ...

    async def close(self, kind: str, client: Any) -> None:
        """Close a client this factory created."""
        ...


class _Maker:
    """The lease pool's factory: a client factory fed with the kwargs of each key."""

    __slots__ = ("_factory", "_keys")

    def __init__(self, factory: ClientFactory, keys: ClientKeys) -> None:
        self._factory = factory
        self._keys = keys

    async def create(self, key: ClientKey) -> Any:
        return await self._factory.create(key.kind, self._keys.kwargs(key, None))

    async def create_with(self, raw: Raw, key: ClientKey) -> Any:
        """Create with the explicit keys of ``raw``, which the key holds only as a digest."""
        return await self._factory.create(key.kind, self._keys.kwargs(key, raw))

    async def close(self, key: ClientKey, client: Any) -> None:
        await self._factory.close(key.kind, client)


_new_lease = object.__new__


class _ClientLease(Lease[ClientKey, Any]):
    """``async with pool.lease(...) as client``; says what to do when used as the client."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"{name!r}: session.client(...) (and pool.lease(...)) returns a lease, not a client; "
            "use `async with session.client(...) as client:`, or "
            "`client = await session.get_client(...)` for a client kept across tasks",
            name=name,
            obj=self,
        )


class ClientPool:
    """Clients keyed by every argument that changes them, leased to tasks, per event loop.

    ``async with pool.lease("s3") as s3`` leases the one client of that configuration,
    creating it once however many tasks ask at the same time. ``await pool.get("s3")`` pins a
    client for code that keeps clients in attributes. ``max_clients`` bounds the unpinned
    clients of each loop: an evicted client still in use closes when its last lease ends,
    and the next lease of its configuration reuses it meanwhile (``0`` disables pooling: a
    client per lease). ``idle_timeout`` closes clients nobody leased for that many seconds,
    at the next pool operation.

    Creation is single-flight: tasks asking for a client being created wait for it, holding
    their lease. If the creation fails, every waiting task gets its error and the next lease
    tries again; if the creating task is cancelled, one waiting task takes the creation over.
    A loop's clients close with `aclose` on that loop, or when that loop shuts down.
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
        check_bound("max_clients", max_clients, eviction_policy)
        keys = ClientKeys(
            default_region=default_region, default_client_kwargs=default_client_kwargs
        )
        self._keys = keys
        # Lease tickets of argument tuples, and of (kind, service, region, config) for calls
        # that give nothing else (a smaller lookup on the hot path).
        self._tickets: dict[Raw, Ticket[ClientKey, Any]] = {}
        self._plain: dict[tuple[Any, ...], Ticket[ClientKey, Any]] = {}
        self._maker = _Maker(factory, keys)
        self._pool: LeasePool[ClientKey, Any] = LeasePool(
            self._maker,
            max_size=max_clients,
            eviction_policy=eviction_policy,
            idle_timeout=idle_timeout,
            close_timeout=close_timeout,
            clock=clock,
            name=name,
            noun="client",
        )
        self._name = name
        self._max = max_clients
        self._policy = eviction_policy

    def __repr__(self) -> str:
        stats = self.stats()
        return (
            f"<ClientPool {self._name!r} size={stats.size} leased={stats.leased} "
            f"max_clients={self._max} policy={self._policy}>"
        )

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
        ticket = None
        if (
            endpoint_url is None
            and api_version is None
            and use_ssl is True
            and verify is None
            and aws_access_key_id is None
            and aws_secret_access_key is None
            and aws_session_token is None
            and aws_account_id is None
        ):  # the common calls, lease("s3", region, config=...): a small lookup
            try:
                ticket = self._plain.get((kind, service_name, region_name, config))
            except TypeError:  # an unhashable config
                ticket = None
        if ticket is None:
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
            try:
                ticket = self._tickets.get(raw)
            except TypeError:  # an unhashable argument
                ticket = None
            if ticket is None:
                ticket = self._ticket(raw)
        lease = _new_lease(_ClientLease)  # without an __init__ call: this is the hot path
        lease._ticket = ticket
        lease._entry = None
        return lease

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
        _, key, create = self._ticket(raw)
        return await self._pool.pin(key, create=create)

    def clear_nowait(self) -> None:
        """Like `clear`, without waiting for the unleased clients to finish closing."""
        self._pool.clear_nowait()

    async def clear(self) -> None:
        """Close this loop's clients: unleased ones now, leased ones when released.

        Pinned clients stay (their holders keep using them); the pool stays usable.
        """
        await self._pool.clear()

    async def aclose(self) -> None:
        """Close this event loop's clients; then `lease` and `get` raise here.

        Waits up to ``close_timeout`` seconds for the loop's leases to end, then closes every
        client of the loop, pinned ones included (leases still held then lose their client,
        with a warning). Other loops' clients are untouched. Idempotent. Without it, a loop's
        clients close when the loop shuts down (the end of ``asyncio.run``).
        """
        await self._pool.aclose()

    def stats(self) -> PoolStats:
        """A snapshot of the counters, summed over every event loop (callable from any thread)."""
        return self._pool.stats()

    def _ticket(self, raw: Raw) -> Ticket[ClientKey, Any]:
        """The lease ticket of ``raw`` arguments, remembered unless they hold explicit keys:
        then it carries a creation that passes them on (the key keeps only their digest)."""
        key = self._keys.resolve(raw)
        if raw[AK] is not None or raw[SK] is not None or raw[TOKEN] is not None:
            return (self._pool, key, functools.partial(self._maker.create_with, raw))
        ticket: Ticket[ClientKey, Any] = (self._pool, key, None)
        if len(self._tickets) >= MEMO_SIZE:
            self._tickets.clear()
            self._plain.clear()
        with contextlib.suppress(TypeError):  # unhashable arguments are not remembered
            self._tickets[raw] = ticket
            if raw[3:10] == _PLAIN and raw[11] is None:
                self._plain[(raw[0], raw[1], raw[2], raw[10])] = ticket
        return ticket
