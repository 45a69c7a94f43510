"""Who a session is, and what it holds, without reaching into its internals from user code.

`whoami` asks STS once per set of credentials however many tasks ask; `account_alias` asks IAM;
`print_who_am_i` writes both to stdout. The state helpers (`expiry_time`, `is_expired`) read
the engine without any network call; `clear_cache` drops pooled clients and the cached identity.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

from ._aiobotocore import client_error_code
from ._types import Identity
from ._util import check_bool, check_seconds

if TYPE_CHECKING:
    from ._session import RefreshableSession

__all__ = [
    "account_alias",
    "clear_cache",
    "expiry_time",
    "is_expired",
    "print_who_am_i",
    "whoami",
]


# -- identity ---------------------------------------------------------------------------------


async def whoami(session: RefreshableSession) -> Identity:
    """STS GetCallerIdentity for the session's current credentials, cached by access key.

    Concurrent callers on one event loop share one request; new credentials with a new access
    key (after a refresh) ask again.
    """
    creds = await session._engine.get()
    cached = session._identity
    if cached is not None and cached[0] == creds.access_key:
        return cached[1]
    async with session._identity_locks.get():
        cached = session._identity
        if cached is not None and cached[0] == creds.access_key:
            return cached[1]
        async with session.client("sts") as sts:
            answer = await sts.get_caller_identity()
        identity = Identity(
            account_id=answer["Account"], arn=answer["Arn"], user_id=answer["UserId"]
        )
        session._identity = (creds.access_key, identity)
        return identity


async def account_alias(session: RefreshableSession) -> str | None:
    """The account's alias (IAM ListAccountAliases), or ``None`` when it has none.

    Not cached: an alias can be changed at any time, and this is no hot path.
    """
    async with session.client("iam") as iam:
        answer = await iam.list_account_aliases()
    aliases = answer.get("AccountAliases") or []
    return str(aliases[0]) if aliases else None


async def print_who_am_i(session: RefreshableSession, masked: bool = True) -> None:
    """Write the account, alias, principal, region and credential expiry to stdout.

    ``masked`` hides the middle of the account id (in the ARN too) and of the user id, for
    screen shares and CI logs. An identity without IAM rights to read the alias still prints.
    """
    check_bool("masked", masked)
    identity = await whoami(session)
    try:
        alias = await account_alias(session)
    except Exception as exc:
        code = client_error_code(exc)
        if code is None:
            raise
        alias_text = f"unknown (ListAccountAliases: {code})"
    else:
        alias_text = alias if alias is not None else "none"
    expiry = expiry_time(session)
    if expiry is None or expiry.year == datetime.max.year:
        expires = "never (long-term keys)"
    else:
        expires = expiry.isoformat(timespec="seconds")
    rows = (
        ("account", identity.masked_account_id if masked else identity.account_id),
        ("alias", alias_text),
        ("principal", identity.masked_arn if masked else identity.arn),
        ("user id", identity.masked_user_id if masked else identity.user_id),
        ("region", session.region_name or "not set"),
        ("credentials", f"{session.method}, expire {expires}"),
    )
    sys.stdout.write("".join(f"{name + ':':<13}{value}\n" for name, value in rows))


# -- state without network --------------------------------------------------------------------


def expiry_time(session: RefreshableSession) -> datetime | None:
    """When the credentials held now expire; ``None`` before the first fetch."""
    creds = session._engine.current
    return None if creds is None else creds.expiry_time


def is_expired(session: RefreshableSession, delta: float = 0) -> bool:
    """Whether the held credentials are unusable within ``delta`` seconds (or hold none)."""
    seconds = check_seconds("delta", delta, allow_none=False) or 0.0
    expiry = expiry_time(session)
    if expiry is None:
        return True
    return session.clock() >= expiry - timedelta(seconds=seconds)


def clear_cache(session: RefreshableSession) -> None:
    """Forget the cached identity and drop this event loop's pooled clients.

    Unleased clients close now, leased ones when their lease ends; pinned clients (from
    ``get_client``) stay with their holders. The credentials are kept: `invalidate` drops them.
    """
    session._identity = None
    session.pool.clear_nowait()


class IdentityCalls:
    """The session's identity and state calls (boto-session-manager's names, no I/O where
    none is needed); mixed into `RefreshableSession`."""

    async def whoami(self) -> Identity:
        """Who the credentials are (STS GetCallerIdentity), asked once per access key."""
        return await whoami(cast("RefreshableSession", self))

    async def get_identity(self) -> Identity:
        """The same as `whoami` (the name boto3-refresh-session users know)."""
        return await whoami(cast("RefreshableSession", self))

    async def account_alias(self) -> str | None:
        """The account's alias (IAM ListAccountAliases, on each call), or ``None``."""
        return await account_alias(cast("RefreshableSession", self))

    async def print_who_am_i(self, masked: bool = True) -> None:
        """Write account, alias, principal, region and expiry to stdout, ids masked."""
        await print_who_am_i(cast("RefreshableSession", self), masked)

    @property
    def aws_region(self) -> str | None:
        """`region_name` under boto-session-manager's name."""
        return cast("RefreshableSession", self).region_name

    @property
    def expiry_time(self) -> datetime | None:
        """When the held credentials expire, without I/O; ``None`` before the first fetch."""
        return expiry_time(cast("RefreshableSession", self))

    def is_expired(self, delta: float = 0) -> bool:
        """Whether ``delta`` seconds or fewer remain (or nothing was fetched), without I/O."""
        return is_expired(cast("RefreshableSession", self), delta)

    def clear_cache(self) -> None:
        """Drop this loop's pooled clients (closed as their leases end) and the identity."""
        clear_cache(cast("RefreshableSession", self))
