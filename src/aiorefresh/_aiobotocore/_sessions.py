"""aiobotocore sessions: new ones (sharing what botocore loads), engine-signed ones, and a
caller's session adopted without owning it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiobotocore.session import AioSession

from ._credentials import EngineCredentials, install_credentials
from ._loaders import emitter_copy, share_loaded_data
from ._retry import ExpiredTokenRetry

if TYPE_CHECKING:
    from .._engine import RefreshEngine

__all__ = ["is_session", "AdoptedSession", "engine_session", "new_session"]


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

    def release(self) -> None:
        """Give the session back as it was (nothing to do when we own it)."""
        if self.owner:
            return
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        self.session._credentials = self._saved_credentials
        for name, value in self._saved_config.items():
            self.session.set_config_variable(name, value)
        self._saved_config.clear()


def is_session(value: object) -> bool:
    """Whether ``value`` is an aiobotocore session (what ``botocore_session=`` takes)."""
    return isinstance(value, AioSession)
