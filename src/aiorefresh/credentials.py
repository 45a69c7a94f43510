"""The refresh engine: decides when to call a fetcher, and makes sure it is called once.

Credentials are process-wide; what belongs to an event loop (the in-flight fetch, the tasks
the engine owns) lives in a per-loop map guarded by a thread lock. Reading fresh credentials
takes no lock, awaits nothing and allocates nothing.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import dataclasses
import inspect
import logging
import random
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import anyio

from ._types import CredentialFetcher, TemporaryCredentials
from .errors import (
    CredentialRefreshError,
    NonRecoverableCredentialError,
    SessionClosedError,
)

__all__ = [
    "Clock",
    "RefreshEngine",
    "RefreshEvent",
    "RefreshStats",
    "compute_windows",
    "utc_now",
]

logger = logging.getLogger("aiorefresh")

Clock = Callable[[], datetime]
"""A callable returning the current time as an aware ``datetime``."""

Phase = Literal["initial", "advisory", "mandatory", "expired", "forced"]

MANDATORY_DEFAULT = timedelta(seconds=60)
_ADVISORY_SHORT = timedelta(minutes=5)  # lifetime <= 20 min
_ADVISORY_MEDIUM = timedelta(minutes=15)  # lifetime < 90 min
_ADVISORY_LONG = timedelta(minutes=60)
_ADVISORY_BACKOFF = (300.0, 600.0)  # seconds, after a failed advisory refresh
_MANDATORY_BACKOFF = (5.0, 10.0)  # seconds, after a transient failure in the mandatory window
_NONRECOVERABLE_MEMORY = (5.0, 10.0)  # seconds a non-recoverable error is re-raised
_MIN = datetime.min.replace(tzinfo=timezone.utc)


def utc_now() -> datetime:
    """The default clock: aware UTC now (several times cheaper than a tz-local clock)."""
    return datetime.now(timezone.utc)


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


class _LoopState:
    """What the engine owns on one event loop (the loop itself only weakly)."""

    __slots__ = ("closed", "loop", "owned", "refresh")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = weakref.ref(loop)
        self.refresh: asyncio.Task[_Outcome] | None = None
        self.owned: set[asyncio.Task[Any]] = set()
        self.closed = False

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(_retrieve)
        self.owned.add(task)
        task.add_done_callback(self.owned.discard)
        return task


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class RefreshEngine:
    """Keeps one set of credentials fresh by calling ``fetcher`` when the windows say so.

    Advisory window: one background fetch, callers get the current credentials at once.
    Mandatory window: callers wait for the one fetch; a transient failure serves the
    still-valid credentials. Expired: never returned; callers wait, failures raise.
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
        self._fetcher = fetcher
        self._advisory = None if advisory_timeout is None else timedelta(seconds=advisory_timeout)
        self._mandatory = (
            None if mandatory_timeout is None else timedelta(seconds=mandatory_timeout)
        )
        self._jitter = refresh_jitter
        self._timeout = refresh_timeout
        self.clock: Clock = clock or utc_now
        self._on_refresh = on_refresh
        self._freeze = freeze or (lambda creds: creds)
        self._name = name
        self._snap: _Snapshot | None = None
        self._recent_keys: collections.deque[str] = collections.deque(maxlen=8)
        self._retry_at = _MIN
        self._nonrecoverable: NonRecoverableCredentialError | None = None
        self._nonrecoverable_until = _MIN
        self._refreshes = 0
        self._failures = 0
        self._last_refresh: datetime | None = None
        self._last_failure: datetime | None = None
        self._last_error: str | None = None
        self._lock = threading.Lock()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )

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

    async def _slow_get(self) -> _Snapshot:
        now = self.clock()
        snap = self._snap
        if snap is None or now >= snap.expiry:
            self._raise_remembered(now)
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
        if now >= self._retry_at and not self._state().closed:
            self._start_refresh("advisory")
        return snap

    def _raise_remembered(self, now: datetime) -> None:
        err = self._nonrecoverable
        if err is not None and now < self._nonrecoverable_until:
            raise _fresh_copy(err)

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

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._loops.get(loop)
            if state is None:
                state = self._loops[loop] = _LoopState(loop)
            return state

    def _start_refresh(self, phase: Phase) -> asyncio.Task[_Outcome]:
        state = self._state()
        if state.closed:
            raise SessionClosedError(
                f"{self._name}: the session was closed on this event loop; no refresh started"
            )
        task = state.refresh
        if task is None:
            task = state.refresh = state.spawn(self._run(phase, state))
        return task

    async def _wait_for_refresh(self, phase: Phase) -> _Snapshot:
        task = self._start_refresh(phase)
        # asyncio.wait leaves the shared task running when this waiter is cancelled.
        await asyncio.wait((task,))
        if task.cancelled():
            raise CredentialRefreshError(
                f"{self._name}: the refresh was cancelled (session closed)"
            )
        outcome = task.result()
        if outcome.error is not None:
            raise _fresh_copy(outcome.error)
        assert outcome.snapshot is not None
        return outcome.snapshot

    async def _run(self, phase: Phase, state: _LoopState) -> _Outcome:
        started = time.monotonic()
        try:
            outcome = await self._fetch_once()
        finally:
            state.refresh = None
        now = self.clock()
        if outcome.error is None:
            assert outcome.snapshot is not None
            self._snap = outcome.snapshot
            self._recent_keys.append(outcome.snapshot.creds.access_key)
            self._refreshes += 1
            self._last_refresh = now
            self._retry_at = _MIN
            self._nonrecoverable = None
            logger.debug(
                "%s: refreshed (%s); expires %s", self._name, phase, outcome.snapshot.expiry
            )
        else:
            self._record_failure(outcome.error, now, phase)
        if self._on_refresh is not None:
            event = RefreshEvent(
                ok=outcome.error is None,
                phase=phase,
                expiry_time=None if outcome.snapshot is None else outcome.snapshot.expiry,
                error=outcome.error,
                duration=time.monotonic() - started,
            )
            try:
                result = self._on_refresh(event)
                if inspect.isawaitable(result):
                    state.spawn(self._await_callback(result))
            except Exception:
                logger.exception("%s: on_refresh callback failed", self._name)
        return outcome

    async def _await_callback(self, result: Awaitable[object]) -> None:
        try:
            await result
        except Exception:
            logger.exception("%s: on_refresh callback failed", self._name)

    async def _fetch_once(self) -> _Outcome:
        creds: object = None
        try:
            with anyio.move_on_after(self._timeout) as scope:
                creds = await self._fetcher()
        except CredentialRefreshError as exc:
            return _Outcome(None, exc)
        except Exception as exc:
            return _Outcome(
                None, _wrap(f"{self._name}: fetch failed: {type(exc).__name__}: {_short(exc)}", exc)
            )
        if scope.cancelled_caught:
            return _Outcome(
                None,
                CredentialRefreshError(f"{self._name}: refresh timed out after {self._timeout} s"),
            )
        if not isinstance(creds, TemporaryCredentials):
            return _Outcome(
                None,
                CredentialRefreshError(
                    f"{self._name}: fetcher returned {type(creds).__name__}; "
                    "expected TemporaryCredentials"
                ),
            )
        expiry = creds.expiry_time
        if not isinstance(expiry, datetime) or expiry.utcoffset() is None:
            return _Outcome(
                None,
                CredentialRefreshError(
                    f"{self._name}: fetched credentials have a naive or missing expiry_time; "
                    "expected a timezone-aware datetime"
                ),
            )
        now = self.clock()
        lifetime = expiry - now
        if lifetime <= timedelta(0):
            return _Outcome(
                None,
                CredentialRefreshError(
                    f"{self._name}: fetched credentials already expired at "
                    f"{creds.expiry_time.isoformat()}"
                ),
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
            self._nonrecoverable = error
            self._nonrecoverable_until = now + timedelta(
                seconds=random.uniform(*_NONRECOVERABLE_MEMORY)
            )
        if snap is None or now >= snap.expiry:
            logger.warning("%s: refresh failed (%s): %s", self._name, phase, error)
            return
        if phase == "forced" and now < snap.advisory_at:
            logger.warning(
                "%s: forced refresh failed, keeping current credentials: %s", self._name, error
            )
            return
        if now < snap.mandatory_at:
            backoff = timedelta(seconds=random.uniform(*_ADVISORY_BACKOFF))
            self._retry_at = min(now + backoff, snap.mandatory_at)
            logger.warning(
                "%s: advisory refresh failed, keeping current credentials until %s: %s",
                self._name,
                self._retry_at,
                error,
            )
        else:
            backoff = timedelta(seconds=random.uniform(*_MANDATORY_BACKOFF))
            self._retry_at = min(now + backoff, snap.expiry)
            logger.warning(
                "%s: mandatory refresh failed, serving still-valid credentials until %s: %s",
                self._name,
                self._retry_at,
                error,
            )

    # -- lifecycle -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Cancel and await what the engine owns on this event loop, and start nothing more
        here. Other loops keep working: each closes its own part before it ends."""
        state = self._state()
        state.closed = True
        tasks = list(state.owned)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _wrap(message: str, cause: BaseException) -> CredentialRefreshError:
    err = CredentialRefreshError(message)
    err.__cause__ = cause
    return err


def _fresh_copy(err: CredentialRefreshError) -> CredentialRefreshError:
    """A new exception like ``err`` for one waiter, so tracebacks do not pile up on one object."""
    try:
        clone = copy.copy(err)
    except Exception:
        clone = CredentialRefreshError(str(err), code=err.code, request_id=err.request_id)
    clone.__cause__ = err.__cause__ if err.__cause__ is not None else err
    clone.__traceback__ = None
    return clone
