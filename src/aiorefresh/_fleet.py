"""``SessionFleet``: a child session per AWS account, by role chaining from one source session.

Children live in a generic `LeasePool` (key: the account id; value: the child session),
created once however many tasks ask at the same time, LRU-bounded by ``max_sessions``; an
evicted child is closed once no lease holds it. The credentials of a closed child are kept
(a few hundred bytes per account), so a child made again for the same account starts with
them: STS is called once per account per credential lifetime, evictions included.
`SessionFleet.fan_out` runs ``fn(client, account_id, region)`` over accounts x regions with one
bound (`FanOut`). Like client pools, children are per event loop.
"""

from __future__ import annotations

import contextlib
import re
import string
import threading
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ._fanout import (
    FanOut,
    Progress,
    ResultStream,
    awaited,
    check_callables,
    check_client_kwargs,
    check_concurrency,
    check_regions,
    check_service,
    resolve_regions,
)
from ._fetchers.sts import (
    cap_chained_duration,
    shared_mfa_provider,
    validate_assume_role_kwargs,
    validate_sts_client_kwargs,
)
from ._pool import Lease, LeasePool, PoolStats
from ._types import TemporaryCredentials
from ._util import check_bool
from .errors import (
    ConfigurationError,
    CredentialRefreshError,
    SessionClosedError,
    ValidationError,
)

if TYPE_CHECKING:
    from ._session import RefreshableSession

__all__ = ["FleetStats", "SessionFleet"]

T = TypeVar("T")

_ACCOUNT_ID = re.compile(r"\d{12}", re.ASCII)
_PLACEHOLDER = "{account_id}"
_SESSION_OPTIONS = ("sts_client_kwargs", "mfa_token_provider", "mfa_token_provider_kwargs")


@dataclass(frozen=True)
class FleetStats:
    """Counters of a fleet, summed over event loops and over every child it made."""

    sessions: int
    """Child sessions open now."""
    created: int
    """Child sessions made so far (evicted ones made again count again)."""
    sts_calls: int
    """AssumeRole calls the children made, successful or not (botocore's retries aside)."""
    refreshes: int
    """Credentials the children got from STS (the first ones included)."""
    failures: int
    """AssumeRole calls that failed."""
    evictions: int
    """Children the ``max_sessions`` bound took out of the fleet."""
    leased: int
    """Leases held now (``fleet.session(...)`` blocks and fan-out calls in flight)."""


class _Children:
    """The lease pool's factory: makes a child by role chaining, closes it, keeps the totals."""

    def __init__(self, fleet: SessionFleet) -> None:
        # Weakly: the pool's finalizer holds this factory, and must not keep a dropped fleet
        # alive (its children are then closed on their loop, like a dropped session's clients).
        self._fleet = weakref.ref(fleet)
        self._remember = fleet.remember
        self._lock = threading.Lock()  # children are made and closed on every loop's thread
        self.live: dict[int, RefreshableSession] = {}
        self.created = 0
        self.closed_counts = [0, 0]  # refreshes, failures of children already closed
        self.remembered: OrderedDict[str, TemporaryCredentials] = OrderedDict()

    async def create(self, account_id: str) -> RefreshableSession:
        fleet = self._fleet()
        if fleet is None:
            raise SessionClosedError("the fleet was garbage-collected")
        child = await fleet.source.assume_role(fleet.role_arn_for(account_id), **fleet.options)
        with self._lock:
            creds = self.remembered.pop(account_id, None)
            self.live[id(child)] = child
            self.created += 1
        if creds is not None and not _expiring(creds, child):
            with contextlib.suppress(CredentialRefreshError):  # expired meanwhile: it fetches
                child._engine.seed(creds)
        return child

    async def close(self, account_id: str, child: RefreshableSession) -> None:
        engine = child._engine
        creds, stats = engine.current, engine.stats()
        with self._lock:
            self.live.pop(id(child), None)
            self.closed_counts[0] += stats.refreshes
            self.closed_counts[1] += stats.failures
            if creds is not None:
                self.remembered[account_id] = creds
                self.remembered.move_to_end(account_id)
                while len(self.remembered) > self._remember:
                    self.remembered.popitem(last=False)
        await child.aclose()

    def totals(self) -> tuple[int, int, int, int]:
        """Open children, children made, and the refreshes and failures of all of them."""
        with self._lock:
            live = list(self.live.values())
            refreshes, failures = self.closed_counts
            created = self.created
        for child in live:
            stats = child._engine.stats()
            refreshes += stats.refreshes
            failures += stats.failures
        return len(live), created, refreshes, failures


def _expiring(creds: TemporaryCredentials, child: RefreshableSession) -> bool:
    """Whether ``creds`` are too close to expiry for a new child to start with them."""
    mandatory = child._refresh.mandatory_timeout or 60.0
    return (creds.expiry_time - child.clock()).total_seconds() <= mandatory


class SessionFleet:
    """Child sessions per AWS account, assuming ``role_arn`` by role chaining from a source.

    ``async with fleet.session(account_id) as s:`` leases the account's child session (made
    once, however many tasks ask at the same time; at most ``max_sessions`` kept per event
    loop, the least recently used closed first once no lease holds it). ``await
    fleet.fan_out(service, accounts, regions, fn)`` runs ``await fn(client, account_id,
    region)`` over every account and region. ``assume_role_kwargs`` are those of
    `RefreshableSession.assume_role` (``ExternalId``, ``DurationSeconds``,
    ``sts_client_kwargs``, ...). STS is called once per account per credential lifetime.
    """

    def __init__(
        self,
        source_session: RefreshableSession,
        role_arn: str = "arn:aws:iam::{account_id}:role/Audit",
        *,
        max_sessions: int | None = 256,
        **assume_role_kwargs: Any,
    ) -> None:
        """Check everything (no I/O): the source, the role ARN template (with
        ``{account_id}``), ``max_sessions`` (a positive int, or ``None`` for no bound) and the
        AssumeRole parameters."""
        from ._session import RefreshableSession

        if not isinstance(source_session, RefreshableSession):
            raise ValidationError(
                f"source_session must be a RefreshableSession, got {type(source_session).__name__}"
            )
        _check_template(role_arn)
        if max_sessions is not None and (
            isinstance(max_sessions, bool) or not isinstance(max_sessions, int)
        ):
            raise ValidationError(
                f"max_sessions must be a positive int or None, got {type(max_sessions).__name__}"
            )
        if max_sessions is not None and max_sessions < 1:
            raise ConfigurationError(
                f"max_sessions must be a positive int or None, got {max_sessions!r}"
            )
        if "RoleArn" in assume_role_kwargs:
            raise ConfigurationError("pass the role as role_arn (a template), not RoleArn")
        params = {k: v for k, v in assume_role_kwargs.items() if k not in _SESSION_OPTIONS}
        checked = validate_assume_role_kwargs(
            {"RoleArn": role_arn.format(account_id="123456789012"), **params},
            parameter="assume_role_kwargs",
        )
        validate_sts_client_kwargs(assume_role_kwargs.get("sts_client_kwargs"))
        cap_chained_duration(checked)  # warns once, here, rather than once per child
        if "DurationSeconds" in params:
            assume_role_kwargs["DurationSeconds"] = checked["DurationSeconds"]
        # One provider for every child: they take turns on it, and its reuse guard sees every
        # code of the device (STS refuses a TOTP code sent twice, by two children too).
        provider = shared_mfa_provider(
            checked,
            assume_role_kwargs.pop("mfa_token_provider", None),
            assume_role_kwargs.pop("mfa_token_provider_kwargs", None),
            clock=source_session._refresh.clock,
        )
        if provider is not None:
            assume_role_kwargs["mfa_token_provider"] = provider

        self.source = source_session
        """The session every child chains from."""
        self.role_arn = role_arn
        """The role ARN template; ``{account_id}`` is replaced by each account's id."""
        self.max_sessions = max_sessions
        self.options: Mapping[str, Any] = dict(assume_role_kwargs)
        """What each child's ``assume_role`` gets besides the role ARN."""
        self.remember = max(4 * (max_sessions or 256), 1024)
        """How many closed children's credentials are kept (least recently closed go first)."""
        self._children = _Children(self)
        self._pool: LeasePool[str, RefreshableSession] = LeasePool(
            self._children,
            max_size=max_sessions,
            close_timeout=source_session._pool_options.close_timeout,
            name="session fleet",
            noun="child session",
        )

    def role_arn_for(self, account_id: str) -> str:
        """The role ARN the fleet assumes in ``account_id``."""
        return self.role_arn.format(account_id=account_id)

    def session(self, account_id: str) -> Lease[str, RefreshableSession]:
        """``async with fleet.session(account_id) as session:`` leases the account's child."""
        return self._pool.lease(_check_account(account_id, "account_id"))

    async def fan_out(
        self,
        service: str,
        accounts: Iterable[str],
        regions: Iterable[str] | str,
        fn: Callable[[Any, str, str], Awaitable[T]],
        *,
        concurrency: int = 32,
        return_exceptions: bool = True,
        client_kwargs: Mapping[str, Any] | None = None,
        on_progress: Progress | None = None,
    ) -> dict[tuple[str, str], T | Exception]:
        """``await fn(client, account_id, region)`` for every account and region, at most
        ``concurrency`` at once, each on the account child's pooled client for the region;
        ``{(account_id, region): result or exception}``, accounts first, in input order.
        ``regions="all"``: every region of the service in the source session's partition.
        The other options are those of `RefreshableSession.fan_out`."""
        prepare = self._plan(
            service,
            accounts,
            regions,
            fn,
            concurrency,
            return_exceptions,
            client_kwargs,
            on_progress,
        )
        return await (await prepare()).gather()

    def iter_fan_out(
        self,
        service: str,
        accounts: Iterable[str],
        regions: Iterable[str] | str,
        fn: Callable[[Any, str, str], Awaitable[T]],
        *,
        concurrency: int = 32,
        return_exceptions: bool = True,
        client_kwargs: Mapping[str, Any] | None = None,
        on_progress: Progress | None = None,
    ) -> ResultStream[tuple[str, str]]:
        """`fan_out` as a stream of ``((account_id, region), result)`` as they complete."""
        return ResultStream(
            self._plan(
                service,
                accounts,
                regions,
                fn,
                concurrency,
                return_exceptions,
                client_kwargs,
                on_progress,
            )
        )

    def _plan(
        self,
        service: object,
        accounts: object,
        regions: object,
        fn: Any,
        concurrency: object,
        return_exceptions: object,
        client_kwargs: object,
        on_progress: Any,
    ) -> Callable[[], Awaitable[FanOut[tuple[str, str]]]]:
        name = check_service(service)
        ids = _check_accounts(accounts)
        wanted = check_regions(regions)
        check_callables(fn, on_progress, call="await fn(client, account_id, region)")
        limit = check_concurrency(concurrency)
        collect = check_bool("return_exceptions", return_exceptions)
        kwargs = check_client_kwargs(client_kwargs)

        async def call(key: tuple[str, str]) -> Any:
            account_id, region = key
            async with (
                self._pool.lease(account_id) as child,
                child.client(name, region_name=region, **kwargs) as client,
            ):
                return await awaited(
                    fn(client, account_id, region), "fn(client, account_id, region)"
                )

        async def prepare() -> FanOut[tuple[str, str]]:
            names = await resolve_regions(self.source, name, wanted)
            keys = [(account_id, region) for account_id in ids for region in names]
            return FanOut(
                keys, call, concurrency=limit, return_exceptions=collect, on_progress=on_progress
            )

        return prepare

    def stats(self) -> FleetStats:
        """A snapshot of the fleet's counters (callable from any thread)."""
        sessions, created, refreshes, failures = self._children.totals()
        pool: PoolStats = self._pool.stats()
        return FleetStats(
            sessions=sessions,
            created=created,
            sts_calls=refreshes + failures,
            refreshes=refreshes,
            failures=failures,
            evictions=pool.evictions,
            leased=pool.leased,
        )

    async def aclose(self) -> None:
        """Close this event loop's children (waiting up to the source's ``close_timeout`` for
        their leases); afterwards `session` raises `SessionClosedError` on this loop. The
        source session stays open."""
        await self._pool.aclose()

    async def __aenter__(self) -> SessionFleet:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        stats = self.stats()
        return (
            f"<SessionFleet {self.role_arn!r} sessions={stats.sessions} "
            f"max_sessions={self.max_sessions}>"
        )


def _check_template(role_arn: object) -> None:
    """Refuse a ``role_arn`` that is not a str whose only fields are plain ``{account_id}``
    (no attribute, index, conversion or format spec: those would fail, or run, later)."""
    if not isinstance(role_arn, str):
        raise ValidationError(f"role_arn must be a str, got {type(role_arn).__name__}")
    try:
        fields = [
            (name, conversion, spec)
            for _, name, spec, conversion in string.Formatter().parse(role_arn)
            if name is not None
        ]
    except ValueError:  # an unmatched brace
        fields = None
    if fields is None or any(field != ("account_id", None, "") for field in fields):
        raise ConfigurationError(
            f"role_arn must be a template whose only field is {_PLACEHOLDER}, got {role_arn!r}"
        )
    if not fields:
        raise ConfigurationError(
            f"role_arn must contain {_PLACEHOLDER} where each account's id goes, got {role_arn!r}"
        )


def _check_account(account_id: object, name: str) -> str:
    if not isinstance(account_id, str):
        raise ValidationError(
            f"{name} must be a 12-digit AWS account id (str), got {type(account_id).__name__}"
        )
    if _ACCOUNT_ID.fullmatch(account_id) is None:
        raise ConfigurationError(f"{name} must be a 12-digit AWS account id, got {account_id!r}")
    return account_id


def _check_accounts(accounts: object) -> list[str]:
    if isinstance(accounts, str) or not isinstance(accounts, Iterable):
        what = f"the str {accounts!r}" if isinstance(accounts, str) else type(accounts).__name__
        raise ValidationError(f"accounts must be an iterable of account ids, got {what}")
    ids = [_check_account(a, f"accounts[{i}]") for i, a in enumerate(accounts)]
    if len(set(ids)) != len(ids):
        twice = sorted({a for a in ids if ids.count(a) > 1})
        raise ConfigurationError(f"accounts names {', '.join(twice)} more than once")
    return ids
