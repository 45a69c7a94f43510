"""Clients: pooled Config, open/close (built off the event loop), the pool's opener, shared
clients that ``async with`` does not close, and the private per-loop client of a fetcher."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore import UNSIGNED

from .._loops import PerLoop
from ._loaders import build_off_loop
from ._sessions import adoption_of

__all__ = [
    "POOLED_MAX_CONNECTIONS",
    "ClientOpener",
    "PrivateClient",
    "close_client",
    "open_client",
    "pooled_config",
    "unsigned_config",
]

try:  # the class itself, taken now: code (and tests) may later patch aioboto3.Session with ours
    from aioboto3.session import Session as _AIOBOTO3_SESSION
except ImportError:  # pragma: no cover - line B has no aioboto3
    _AIOBOTO3_SESSION = None

POOLED_MAX_CONNECTIONS = 50
"""Connections of a pooled client when its Config does not say: botocore's default of 10 would
make 40 tasks sharing one client queue behind 10 sockets."""


def pooled_config(config: Any) -> Any:
    """``config`` for a client shared by many tasks: more connections unless the user chose."""
    if config is None:
        return AioConfig(max_pool_connections=POOLED_MAX_CONNECTIONS)
    provided = getattr(config, "_user_provided_options", {})
    if "max_pool_connections" in provided:
        return config
    return config.merge(AioConfig(max_pool_connections=POOLED_MAX_CONNECTIONS))


def unsigned_config(config: Any) -> Any:
    """``config`` for calls that must not be signed (AssumeRoleWithWebIdentity)."""
    unsigned = AioConfig(signature_version=UNSIGNED)
    return unsigned if config is None else config.merge(unsigned)


async def open_client(session: AioSession, kwargs: Mapping[str, Any]) -> Any:
    """A ready (entered) aiobotocore client for ``create_client(**kwargs)``, built in a worker
    thread (`build_off_loop`): a service's first client never stalls the event loop."""
    return await build_off_loop(lambda: session.create_client(**kwargs).__aenter__(), close_client)


async def close_client(client: Any) -> None:
    """Close a client made by `open_client` (its HTTP session included)."""
    await client.__aexit__(None, None, None)


_exit = close_client  # resources close the same way


class ClientOpener:
    """Opens and closes a session's pooled clients and resources.

    With aioboto3 installed, clients come from an ``aioboto3.Session`` over the same
    aiobotocore session, so a pooled S3 client has aioboto3's transfer methods from the first
    call, exactly as ``aioboto3.Session().client("s3")`` has.
    """

    def __init__(self, session: AioSession) -> None:
        self._session = session
        self._aioboto3: Any = None
        # A caller's session we do not own gets back what aioboto3 adds to it, on release.
        self._adopted = adoption_of(session)

    def aioboto3_session(self, *, required: bool) -> Any:
        """The ``aioboto3.Session`` over our session; ``None`` (or an error) without aioboto3."""
        if self._aioboto3 is None:
            if _AIOBOTO3_SESSION is None:
                if not required:
                    return None
                from ..errors import ConfigurationError

                raise ConfigurationError(
                    "resource() needs aioboto3: pip install 'aiorefresh[aioboto3]'"
                )
            session, build = self._session, _AIOBOTO3_SESSION
            if self._adopted is not None:
                # aioboto3 registers its handlers on the emitter and appends boto3's models
                # folder to the loader, which are the caller's: recorded, undone at release.
                self._aioboto3 = self._adopted.undoably(lambda: build(botocore_session=session))
                self._adopted.on_release(self._forget_aioboto3)
            else:
                self._aioboto3 = build(botocore_session=session)
                # Each boto3 Session appends its models' folder to the (shared) loader: keep one.
                paths = session.get_component("data_loader").search_paths
                paths[:] = dict.fromkeys(paths)
        return self._aioboto3

    def _forget_aioboto3(self) -> None:
        self._aioboto3 = None

    async def create(self, kind: str, kwargs: dict[str, Any]) -> Any:
        """A ready client (or resource), built off the event loop (`build_off_loop`)."""
        kwargs = dict(kwargs)
        kwargs["config"] = pooled_config(kwargs.get("config"))
        if kind == "resource":
            resources = self.aioboto3_session(required=True)
            return await build_off_loop(lambda: resources.resource(**kwargs).__aenter__(), _exit)
        boto3_session = self.aioboto3_session(required=False)
        if boto3_session is None:
            return _shared(await open_client(self._session, kwargs))
        client = await build_off_loop(lambda: boto3_session.client(**kwargs).__aenter__(), _exit)
        return _shared(client)

    async def close(self, kind: str, client: Any) -> None:
        if kind == "resource":
            await client.__aexit__(None, None, None)
        else:
            await client.close()


def _shared(client: Any) -> Any:
    """``client``, made safe to share: ``async with client:`` no longer closes it.

    A pooled or pinned client belongs to the session, which closes it; a task entering it
    must not close it for every other task (aiobotocore 2.x would, silently; 3.x fails an
    assertion). Its class becomes a subclass whose ``__aenter__``/``__aexit__`` do nothing;
    ``isinstance`` and every method are unchanged. The pool closes it with ``close()``.
    """
    cls = type(client)

    async def aenter(self: Any) -> Any:
        return self

    async def aexit(self: Any, *exc_info: object) -> None:
        return None

    client.__class__ = type(
        cls.__name__,
        (cls,),
        {"__aenter__": aenter, "__aexit__": aexit, "__module__": cls.__module__},
    )
    return client


class PrivateClient:
    """One client per event loop that only aiorefresh uses (the STS client of a fetcher).

    Made on first use on each loop from ``session_factory()``, reused for every call there,
    closed by `aclose` or when its loop shuts down.
    """

    def __init__(
        self, service: str, session_factory: Callable[[], AioSession], kwargs: Mapping[str, Any]
    ) -> None:
        self._service = service
        self._session_factory = session_factory
        self._kwargs = dict(kwargs)
        self._clients: PerLoop[_Slot] = PerLoop(lambda loop: _Slot(), on_shutdown=_Slot.aclose)

    async def get(self) -> Any:
        """This loop's client (created on first use)."""
        slot = self._clients.get()
        if slot.client is None:
            client = await open_client(
                self._session_factory(), {"service_name": self._service, **self._kwargs}
            )
            if not slot.take(client):  # another task of this loop won the race
                await close_client(client)
        return slot.client

    async def aclose(self) -> None:
        """Close this loop's client (other loops close theirs, or at their shutdown)."""
        slot = self._clients.pop()
        if slot is not None:
            await slot.aclose()


class _Slot:
    __slots__ = ("client",)

    def __init__(self) -> None:
        self.client: Any = None

    def take(self, client: Any) -> bool:
        """Keep ``client`` unless the slot already has one; returns whether it was kept."""
        if self.client is not None:
            return False
        self.client = client
        return True

    async def aclose(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await close_client(client)
