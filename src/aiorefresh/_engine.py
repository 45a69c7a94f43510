"""The refresh engine: decides when to call a fetcher, and makes sure it is called once.

Credentials are process-wide; what belongs to an event loop (the in-flight fetch, the tasks
the engine owns) is kept per loop through `aiorefresh._loops`. Reading fresh credentials takes
no lock, awaits nothing and allocates nothing.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import inspect
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import anyio

from ._loops import LoopScope, PerLoop
from ._types import Clock, CredentialFetcher, TemporaryCredentials
from ._util import fresh_copy, short, utc_now
from .errors import (
    CredentialRefreshError,
    NonRecoverableCredentialError,
    SessionClosedError,
)

__all__ = [
    "MIN_LIFETIME",
    "RefreshEngine",
    "RefreshEvent",
    "RefreshStats",
    "compute_windows",
]

logger = logging.getLogger("aiorefresh")

Phase = Literal["initial", "advisory", "mandatory", "expired", "forced"]

MANDATORY_DEFAULT = timedelta(seconds=60)
MIN_LIFETIME = timedelta(seconds=5)
"""An answer that lives less than this is a failed fetch: it would expire before it is used."""
_ADVISORY_SHORT = timedelta(minutes=5)  # lifetime <= 20 min
_ADVISORY_MEDIUM = timedelta(minutes=15)  # lifetime < 90 min
_ADVISORY_LONG = timedelta(minutes=60)
_ADVISORY_BACKOFF = (300.0, 600.0)  # seconds, after a failed advisory refresh
_MANDATORY_BACKOFF = (5.0, 10.0)  # seconds, after a transient failure in the mandatory window
_NONRECOVERABLE_MEMORY = (5.0, 10.0)  # seconds a non-recoverable error is re-raised
# Nothing valid to serve: back the source off 0.25 s, 0.5 s, 1 s, ... up to 4 s (jittered).
_EMPTY_BACKOFF_BASE = 0.25
_EMPTY_BACKOFF_CAP = 4.0
_MIN = datetime.min.replace(tzinfo=timezone.utc)


def compute_windows(
    lifetime: timedelta,
    *,
    advisory: timedelta | None = None,
    mandatory: timedelta | None = None,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> tuple[timedelta, timedelta]:
    """The effective (advisory, mandatory) windows for credentials of ``lifetime``.

    Defaults follow AWS's cross-SDK behaviour: mandatory 60 s; advisory 5, 15 or 60 minutes
    by lifetime. Whatever their source, the advisory window is at most half the lifetime and
    the mandatory window at most a quarter, so short-lived credentials are not refreshed on
    every call. ``jitter`` shortens the advisory window by a random fraction up to itself.
    """
    if advisory is None:
        if lifetime <= timedelta(minutes=20):
            advisory = _ADVISORY_SHORT
        elif lifetime < timedelta(minutes=90):
            advisory = _ADVISORY_MEDIUM
        else:
            advisory = _ADVISORY_LONG
    if mandatory is None:
        mandatory = MANDATORY_DEFAULT
    lifetime = max(lifetime, timedelta(0))
    advisory = min(advisory, lifetime / 2)
    mandatory = min(mandatory, lifetime / 4, advisory)
    if jitter:
        advisory = max(mandatory, advisory * (1.0 - (rng or random).uniform(0.0, jitter)))
    return advisory, mandatory


@dataclasses.dataclass(frozen=True, slots=True)
class RefreshStats:
    """Counters of a session's refresh engine, for health checks and metrics."""

    refreshes: int
    """Successful fetches."""
    failures: int
    """Failed fetches."""
    last_refresh: datetime | None
    """When the last successful fetch finished (session clock)."""
    last_failure: datetime | None
    """When the last failed fetch finished (session clock)."""
    last_error: str | None
    """The last failure's message (never a secret)."""
    next_due: datetime | None
    """When the next (advisory) refresh is due; ``None`` before the first fetch."""
    expiry_time: datetime | None
    """When the current credentials expire; ``None`` when there are none."""


@dataclasses.dataclass(frozen=True, slots=True)
class RefreshEvent:
    """What ``on_refresh`` receives after every fetch, successful or not."""

    ok: bool
    """Whether the fetch produced usable credentials."""
    phase: Phase
    """Why it ran: ``initial``, ``advisory``, ``mandatory``, ``expired`` or ``forced``."""
    expiry_time: datetime | None
    """Expiry of the new credentials (``None`` on failure)."""
    error: CredentialRefreshError | None
    """The failure, if any."""
    duration: float
    """Seconds the fetch took (monotonic wall time)."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Snapshot:
    creds: TemporaryCredentials
    frozen: Any = dataclasses.field(repr=False)
    advisory_at: datetime
    mandatory_at: datetime
    expiry: datetime


@dataclasses.dataclass(slots=True)
class _Outcome:
    snapshot: _Snapshot | None
    error: CredentialRefreshError | None


class _EngineScope(LoopScope):
    """The engine's part of one event loop: its owned tasks and the one in-flight refresh."""

    __slots__ = ("refresh",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.refresh: asyncio.Task[_Outcome] | None = None


class RefreshEngine:
    """Keeps one set of credentials fresh by calling ``fetcher`` when the windows say so.

    Advisory window: one background fetch, callers get the current credentials at once.
    Mandatory window: callers wait for the one fetch; a transient failure serves the
    still-valid credentials. Expired or never fetched: never returned; callers wait, failures
    raise, and a failing source is backed off so callers get the remembered error at once.
    """

    def __init__(
        self,
        fetcher: CredentialFetcher,
        *,
        advisory_timeout: float | None = None,
        mandatory_timeout: float | None = None,
        refresh_jitter: float = 0.0,
        refresh_timeout: float | None = 30.0,
        clock: Clock | None = None,
        on_refresh: Callable[[RefreshEvent], object] | None = None,
        freeze: Callable[[TemporaryCredentials], Any] | None = None,
        name: str = "credentials",
    ) -> None:
        self.fetcher = fetcher
        self._advisory = None if advisory_timeout is None else timedelta(seconds=advisory_timeout)
        self._mandatory = (
            None if mandatory_timeout is None else timedelta(seconds=mandatory_timeout)
        )
        self._jitter = refresh_jitter
        self._timeout = refresh_timeout
        self.clock: Clock = clock or utc_now
        self._on_refresh = on_refresh
        self._freeze = freeze or (lambda creds: creds)
        self.name = name
        self._snap: _Snapshot | None = None
        self._recent_keys: collections.deque[str] = collections.deque(maxlen=8)
        self._retry_at = _MIN
        self._remembered: CredentialRefreshError | None = None
        self._remembered_until = _MIN
        self._empty_failures = 0
        self._refreshes = 0
        self._failures = 0
        self._last_refresh: datetime | None = None
        self._last_failure: datetime | None = None
        self._last_error: str | None = None
        self._scopes: PerLoop[_EngineScope] = PerLoop(_EngineScope)
        self._subscribers: list[
            weakref.WeakMethod[Callable[[TemporaryCredentials, Any], None]]
        ] = []

    def __repr__(self) -> str:
        return f"<RefreshEngine {self.name!r}>"

    # -- reading ---------------------------------------------------------------------------

    async def get(self) -> TemporaryCredentials:
        """Current usable credentials, refreshing first if the windows require it."""
        snap = self._snap
        if snap is not None and self.clock() < snap.advisory_at:
            return snap.creds
        return (await self._slow_get()).creds

    async def get_frozen(self) -> Any:
        """Like `get`, in the shape ``freeze`` gives (botocore's ReadOnlyCredentials)."""
        snap = self._snap
        if snap is not None and self.clock() < snap.advisory_at:
            return snap.frozen
        return (await self._slow_get()).frozen

    @property
    def current(self) -> TemporaryCredentials | None:
        """The credentials held now, without any check or refresh (may be expired)."""
        snap = self._snap
        return None if snap is None else snap.creds

    def needs_refresh(self, within: float | None = None) -> bool:
        """Whether a read now would refresh: nothing held, inside the advisory window, or
        (with ``within``) fewer than that many seconds left."""
        snap = self._snap
        if snap is None:
            return True
        now = self.clock()
        if now >= snap.advisory_at:
            return True
        return within is not None and snap.expiry - now < timedelta(seconds=within)

    async def _slow_get(self) -> _Snapshot:
        now = self.clock()
        snap = self._snap
        if snap is None or now >= snap.expiry:
            self._raise_remembered(now, transient_too=True)
            return await self._wait_for_refresh("initial" if snap is None else "expired")
        if now >= snap.mandatory_at:
            self._raise_remembered(now)
            if now < self._retry_at:
                return snap
            try:
                return await self._wait_for_refresh("mandatory")
            except NonRecoverableCredentialError:
                raise
            except CredentialRefreshError:
                current = self._snap or snap
                if self.clock() < current.expiry:
                    return current
                raise
        if now >= self._retry_at and not self._scopes.get().closed:
            self._start_refresh("advisory")
        return snap

    def _raise_remembered(self, now: datetime, *, transient_too: bool = False) -> None:
        """Re-raise a recent failure instead of asking the source again while it backs off."""
        err = self._remembered
        if err is None or now >= self._remembered_until:
            return
        if transient_too or isinstance(err, NonRecoverableCredentialError):
            raise fresh_copy(err, fallback=_plain_copy)

    # -- refreshing ------------------------------------------------------------------------

    async def refresh(self, *, force: bool = True) -> TemporaryCredentials:
        """Fetch now (``force``), or only if the windows say so; raises on failure."""
        if not force:
            return await self.get()
        return (await self._wait_for_refresh("forced")).creds

    def invalidate(self, access_key: str | None = None) -> bool:
        """Forget the current credentials: the next caller waits for a fresh fetch.

        With ``access_key``, only if the current credentials still have that key (so a late
        answer about old credentials does not throw away fresh ones). Returns whether it did.
        """
        snap = self._snap
        if snap is None or (access_key is not None and snap.creds.access_key != access_key):
            return False
        self._snap = None
        self._retry_at = _MIN
        return True

    def seed(self, creds: TemporaryCredentials) -> None:
        """Hold ``creds`` without fetching (keys known up front, such as explicit static keys)."""
        outcome = self._accept(creds)
        if outcome.snapshot is None:
            assert outcome.error is not None
            raise outcome.error
        self._hold(outcome.snapshot)

    def subscribe(self, method: Callable[[TemporaryCredentials, Any], None]) -> None:
        """Call the bound ``method(creds, frozen)`` with every new set (held weakly): how
        aiobotocore's credentials object keeps its fields current without work on each read."""
        self._subscribers.append(weakref.WeakMethod(method))
        snap = self._snap
        if snap is not None:
            method(snap.creds, snap.frozen)

    def _hold(self, snap: _Snapshot) -> None:
        self._snap = snap
        self._recent_keys.append(snap.creds.access_key)
        for ref in list(self._subscribers):
            method = ref()
            if method is None:
                self._subscribers.remove(ref)
            else:
                method(snap.creds, snap.frozen)

    def issued(self, access_key: str) -> bool:
        """Whether ``access_key`` belongs to one of the last few credential sets fetched."""
        return access_key in self._recent_keys

    def stats(self) -> RefreshStats:
        """A snapshot of the counters."""
        snap = self._snap
        return RefreshStats(
            refreshes=self._refreshes,
            failures=self._failures,
            last_refresh=self._last_refresh,
            last_failure=self._last_failure,
            last_error=self._last_error,
            next_due=None if snap is None else max(snap.advisory_at, self._retry_at),
            expiry_time=None if snap is None else snap.expiry,
        )

    def _start_refresh(self, phase: Phase) -> asyncio.Task[_Outcome]:
        scope = self._scopes.get()
        if scope.closed:
            raise SessionClosedError(
                f"{self.name}: the session was closed on this event loop; no refresh started"
            )
        task = scope.refresh
        if task is None:
            task = scope.refresh = scope.spawn(self._run(phase, scope), name=f"{self.name} refresh")
        return task

    async def _wait_for_refresh(self, phase: Phase) -> _Snapshot:
        task = self._start_refresh(phase)
        # asyncio.wait leaves the shared task running when this waiter is cancelled.
        await asyncio.wait((task,))
        if task.cancelled():
            raise SessionClosedError(
                f"{self.name}: the refresh was cancelled because the session closed"
            )
        outcome = task.result()
        if outcome.error is not None:
            raise fresh_copy(outcome.error, fallback=_plain_copy)
        snapshot = outcome.snapshot
        assert snapshot is not None
        if self.clock() >= snapshot.expiry:
            # The loop was too busy to hand the answer out in time: never serve it.
            raise CredentialRefreshError(
                f"{self.name}: the credentials fetched for this caller expired at "
                f"{snapshot.expiry.isoformat()} before they could be handed out"
            )
        return snapshot

    async def _run(self, phase: Phase, scope: _EngineScope) -> _Outcome:
        started = time.monotonic()
        try:
            outcome = await self._fetch_once()
        finally:
            scope.refresh = None
        now = self.clock()
        if outcome.error is None:
            assert outcome.snapshot is not None
            self._hold(outcome.snapshot)
            self._refreshes += 1
            self._last_refresh = now
            self._retry_at = _MIN
            self._remembered = None
            self._empty_failures = 0
            logger.debug(
                "%s: refreshed (%s); expires %s", self.name, phase, outcome.snapshot.expiry
            )
        else:
            self._record_failure(outcome.error, now, phase)
        if self._on_refresh is not None:
            self._notify(outcome, phase, time.monotonic() - started, scope)
        return outcome

    def _notify(self, outcome: _Outcome, phase: Phase, duration: float, scope: LoopScope) -> None:
        assert self._on_refresh is not None
        event = RefreshEvent(
            ok=outcome.error is None,
            phase=phase,
            expiry_time=None if outcome.snapshot is None else outcome.snapshot.expiry,
            error=outcome.error,
            duration=duration,
        )
        try:
            result = self._on_refresh(event)
            if inspect.isawaitable(result):
                scope.spawn(self._await_callback(result), name=f"{self.name} on_refresh")
        except Exception:
            logger.exception("%s: on_refresh callback failed", self.name)

    async def _await_callback(self, result: Awaitable[object]) -> None:
        try:
            await result
        except Exception:
            logger.exception("%s: on_refresh callback failed", self.name)

    async def _fetch_once(self) -> _Outcome:
        creds: object = None
        try:
            with anyio.move_on_after(self._timeout) as scope:
                creds = await self.fetcher()
        except CredentialRefreshError as exc:
            return _Outcome(None, exc)
        except asyncio.CancelledError as exc:
            if _being_cancelled():
                raise
            return _Outcome(None, _wrap(f"{self.name}: the fetcher raised CancelledError", exc))
        except Exception as exc:
            return _Outcome(
                None, _wrap(f"{self.name}: fetch failed: {type(exc).__name__}: {short(exc)}", exc)
            )
        if scope.cancelled_caught:
            return _Outcome(
                None,
                CredentialRefreshError(f"{self.name}: refresh timed out after {self._timeout} s"),
            )
        return self._accept(creds)

    def _accept(self, creds: object) -> _Outcome:
        """A snapshot of a fetcher's answer, or the error saying why it is unusable."""
        if not isinstance(creds, TemporaryCredentials):
            return _failed(
                f"{self.name}: fetcher returned {type(creds).__name__}; "
                "expected TemporaryCredentials"
            )
        expiry = creds.expiry_time
        if not isinstance(expiry, datetime) or expiry.utcoffset() is None:
            return _failed(
                f"{self.name}: fetched credentials have a naive or missing expiry_time; "
                "expected a timezone-aware datetime"
            )
        lifetime = expiry - self.clock()
        if lifetime <= timedelta(0):
            return _failed(
                f"{self.name}: fetched credentials already expired at {expiry.isoformat()}"
            )
        if lifetime < MIN_LIFETIME:
            return _failed(
                f"{self.name}: fetched credentials expire in {lifetime.total_seconds():.3f} s, "
                f"less than the usable minimum of {MIN_LIFETIME.total_seconds():g} s"
            )
        advisory, mandatory = compute_windows(
            lifetime, advisory=self._advisory, mandatory=self._mandatory, jitter=self._jitter
        )
        return _Outcome(
            _Snapshot(
                creds=creds,
                frozen=self._freeze(creds),
                advisory_at=expiry - advisory,
                mandatory_at=expiry - mandatory,
                expiry=expiry,
            ),
            None,
        )

    def _record_failure(self, error: CredentialRefreshError, now: datetime, phase: Phase) -> None:
        self._failures += 1
        self._last_failure = now
        self._last_error = str(error)
        snap = self._snap
        if isinstance(error, NonRecoverableCredentialError):
            self._remember(error, now + _seconds(random.uniform(*_NONRECOVERABLE_MEMORY)))
        if snap is None or now >= snap.expiry:
            self._empty_failures += 1
            if not isinstance(error, NonRecoverableCredentialError):
                step = _EMPTY_BACKOFF_BASE * 2 ** min(self._empty_failures - 1, 16)
                delay = min(step, _EMPTY_BACKOFF_CAP) * random.uniform(0.5, 1.0)
                self._remember(error, now + _seconds(delay))
            logger.warning("%s: refresh failed (%s): %s", self.name, phase, error)
            return
        if phase == "forced" and now < snap.advisory_at:
            logger.warning(
                "%s: forced refresh failed, keeping current credentials: %s", self.name, error
            )
            return
        if now < snap.mandatory_at:
            backoff = _seconds(random.uniform(*_ADVISORY_BACKOFF))
            self._retry_at = min(now + backoff, snap.mandatory_at)
            logger.warning(
                "%s: advisory refresh failed, keeping current credentials until %s: %s",
                self.name,
                self._retry_at,
                error,
            )
        else:
            backoff = _seconds(random.uniform(*_MANDATORY_BACKOFF))
            self._retry_at = min(now + backoff, snap.expiry)
            logger.warning(
                "%s: mandatory refresh failed, serving still-valid credentials until %s: %s",
                self.name,
                self._retry_at,
                error,
            )

    def _remember(self, error: CredentialRefreshError, until: datetime) -> None:
        self._remembered = error
        self._remembered_until = until

    # -- lifecycle -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Cancel and await what the engine owns on this event loop, and start nothing more
        here. Other loops keep working: each closes its own part before it ends."""
        scope = self._scopes.get()
        scope.closed = True
        await scope.cancel_tasks()


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _being_cancelled() -> bool:
    """Whether the running task has a cancellation pending (not one a fetcher made up)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return cancelling is None or bool(cancelling())  # Python 3.10: assume it is ours


def _failed(message: str) -> _Outcome:
    return _Outcome(None, CredentialRefreshError(message))


def _wrap(message: str, cause: BaseException) -> CredentialRefreshError:
    err = CredentialRefreshError(message)
    err.__cause__ = cause
    return err


def _plain_copy(err: CredentialRefreshError) -> CredentialRefreshError:
    return CredentialRefreshError(str(err), code=err.code, request_id=err.request_id)
