"""aiobotocore sessions: new ones (sharing what botocore loads), engine-signed ones, and a
caller's session adopted without owning it."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aiobotocore.session import AioSession

from ._credentials import EngineCredentials, install_credentials
from ._loaders import emitter_copy, share_loaded_data
from ._retry import ExpiredTokenRetry

if TYPE_CHECKING:
    from .._engine import RefreshEngine

T = TypeVar("T")
_MISSING = object()

__all__ = ["is_session", "AdoptedSession", "adoption_of", "engine_session", "new_session"]

_adoptions: weakref.WeakKeyDictionary[AioSession, AdoptedSession] = weakref.WeakKeyDictionary()
"""Caller's sessions adopted without owning them, until released: what builds over one (the
aioboto3 customisations of `ClientOpener`) finds here what to register its undoing with."""


def new_session(*, profile_name: str | None = None, region_name: str | None = None) -> AioSession:
    """A fresh aiobotocore session (no I/O until credentials or config are asked for).

    It shares the process's loaded models, endpoint data and built-in handlers (`_loaders`):
    a session costs a few hundred microseconds and kilobytes, not milliseconds and megabytes.
    """
    session = AioSession(
        profile=profile_name, event_hooks=emitter_copy(), include_builtin_handlers=False
    )
    share_loaded_data(session)
    if region_name is not None:
        session.set_config_variable("region", region_name)
    return session


def engine_session(
    engine: RefreshEngine,
    *,
    profile_name: str | None = None,
    region_name: str | None = None,
) -> AioSession:
    """A session whose credentials are ``engine``'s: how a source engine signs its calls.

    An ExpiredToken answer to keys the engine issued (a link of a chain revoked or expired
    early) refreshes them and retries the call once, as pooled clients do.
    """
    session = new_session(profile_name=profile_name, region_name=region_name)
    install_credentials(session, EngineCredentials(engine, f"aiorefresh-{engine.name}"))
    ExpiredTokenRetry(engine, f"source {engine.name}").install(session)
    return session


class AdoptedSession:
    """A caller's ``botocore_session`` that aiorefresh uses without owning it.

    Taking it installs our credentials (and configuration); `release` puts back exactly what
    was there, so the caller's object is as it was once the session is closed. With
    ``owner=True`` the session is ours to keep as we left it (aiohttp's ``connector_owner``).
    """

    def __init__(self, session: AioSession, *, owner: bool) -> None:
        self.session = session
        self.owner = owner
        self._saved_credentials = session._credentials
        self._saved_config: dict[str, Any] = {}
        self._undo: list[Callable[[], None]] = []
        if not owner:
            _adoptions[session] = self

    @property
    def original_credentials(self) -> Any:
        """The credentials the caller's session held before we took it (may be ``None``)."""
        return self._saved_credentials

    def set_config(self, name: str, value: str) -> None:
        """Set a config variable, remembering the caller's value."""
        if name not in self._saved_config:
            self._saved_config[name] = self.session.instance_variables().get(name)
        self.session.set_config_variable(name, value)

    def on_release(self, undo: Callable[[], None]) -> None:
        """Run ``undo`` on `release` (for hooks registered on the caller's emitter)."""
        self._undo.append(undo)

    def undoably(self, build: Callable[[], T]) -> T:
        """``build()``, with what it changes on the session undone at `release`: handlers it
        registers, folders it appends to the loader's ``search_paths`` and the user agent
        (what ``aioboto3.Session(botocore_session=...)`` changes)."""
        session = self.session
        emitter = session.get_component("event_emitter")
        loader = session.get_component("data_loader")
        paths_before = list(loader.search_paths)
        agent_before = _user_agent(session)
        registered: list[tuple[str, Any, str | None, bool]] = []
        real_register = session.register

        def register(
            event_name: str,
            handler: Any,
            unique_id: str | None = None,
            unique_id_uses_count: bool = False,
        ) -> None:
            if unique_id is None and _registered(emitter, event_name, handler):
                # The caller's own aioboto3.Session put the same handler there: a second one
                # would inject the same methods twice (a RuntimeError at the first client).
                return
            # A unique id already taken makes the registration a no-op: nothing to undo.
            taken = unique_id is not None and unique_id in _unique_ids(emitter)
            real_register(event_name, handler, unique_id, unique_id_uses_count)
            if not taken or unique_id_uses_count:
                registered.append((event_name, handler, unique_id, unique_id_uses_count))

        shadowed = vars(session).get("register", _MISSING)
        session.register = register
        try:
            result = build()
        finally:
            if shadowed is _MISSING:
                del session.register
            else:
                session.register = shadowed
            now = list(loader.search_paths)
            if now[: len(paths_before)] == paths_before:
                added = now[len(paths_before) :]  # appended (perhaps again: a duplicate)
            else:
                added = [path for path in now if path not in paths_before]
            agent_after = _user_agent(session)

            def undo() -> None:
                for event_name, handler, unique_id, uses_count in reversed(registered):
                    if unique_id is None:
                        session.unregister(event_name, handler)
                    else:
                        session.unregister(
                            event_name, unique_id=unique_id, unique_id_uses_count=uses_count
                        )
                paths = loader.search_paths
                for path in reversed(added):  # the last occurrence: the one appended
                    if path in paths:
                        del paths[len(paths) - 1 - paths[::-1].index(path)]
                if any(path not in paths for path in added):
                    _forget_resource_models(loader)  # what the removed folder answered
                if agent_after != agent_before and _user_agent(session) == agent_after:
                    (
                        session.user_agent_name,
                        session.user_agent_version,
                        session.user_agent_extra,
                    ) = agent_before

            self.on_release(undo)
        return result

    def release(self) -> None:
        """Give the session back as it was (nothing to do when we own it)."""
        if self.owner:
            return
        if _adoptions.get(self.session) is self:
            del _adoptions[self.session]
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        self.session._credentials = self._saved_credentials
        for name, value in self._saved_config.items():
            self.session.set_config_variable(name, value)
        self._saved_config.clear()


def _user_agent(session: AioSession) -> tuple[Any, Any, Any]:
    return (session.user_agent_name, session.user_agent_version, session.user_agent_extra)


def _unique_ids(emitter: Any) -> Any:
    """The unique ids registered on ``emitter`` (an ``EventAliaser`` over a hierarchical one)."""
    inner = getattr(emitter, "_emitter", emitter)
    return getattr(inner, "_unique_id_handlers", ())


def _registered(emitter: Any, event_name: str, handler: Any) -> bool:
    """Whether ``emitter`` has a handler for ``event_name`` equal to ``handler``: the same
    object, or the same function code over equal closure values (two ``lazy_call``s of one
    target, as every ``boto3.Session`` registers)."""
    inner = getattr(emitter, "_emitter", emitter)
    trie = getattr(inner, "_handlers", None)
    if trie is None:
        return False
    return any(_same_handler(known, handler) for known in trie.prefix_search(event_name))


def _same_handler(known: Any, handler: Any) -> bool:
    if known is handler:
        return True
    code = getattr(handler, "__code__", None)
    if code is None or getattr(known, "__code__", None) is not code:
        return False
    try:
        cells = [cell.cell_contents for cell in handler.__closure__ or ()]
        return bool(cells == [cell.cell_contents for cell in known.__closure__ or ()])
    except ValueError:  # an empty cell
        return False


def _forget_resource_models(loader: Any) -> None:
    """Drop the loader's cached answers about resource models (``resources-1``), which came
    from a folder no longer searched; the next question reads the remaining folders."""
    cache = getattr(loader, "_cache", None)
    if isinstance(cache, dict):
        for key in [key for key in cache if isinstance(key, tuple) and "resources-1" in key]:
            del cache[key]


def adoption_of(session: AioSession) -> AdoptedSession | None:
    """The `AdoptedSession` holding ``session`` without owning it, if any (until released)."""
    return _adoptions.get(session)


def is_session(value: object) -> bool:
    """Whether ``value`` is an aiobotocore session (what ``botocore_session=`` takes)."""
    return isinstance(value, AioSession)
