"""Value types shared by every layer: credentials, identity, and the option dictionaries."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, Protocol, TypedDict, TypeVar, runtime_checkable

from .errors import CredentialRefreshError

__all__ = [
    "AssumeRoleConfig",
    "Clock",
    "CredentialCache",
    "CredentialFetcher",
    "Identity",
    "STSClientConfig",
    "TemporaryCredentials",
    "mask_id",
]

_MASK = "****"
NEVER = datetime.max.replace(tzinfo=timezone.utc)
"""The expiry of keys that never expire."""


@dataclasses.dataclass(frozen=True, slots=True)
class TemporaryCredentials:
    """One set of AWS credentials with the moment they stop working.

    ``repr`` shows the access key id (not a secret) and masks the secret key and token.
    """

    access_key: str
    """The access key id (``ASIA...`` for temporary keys); not a secret."""
    secret_key: str = dataclasses.field(repr=False)
    """The secret access key: never logged or shown."""
    token: str | None = dataclasses.field(default=None, repr=False)
    """The session token of temporary keys (``None`` for long-term keys)."""
    expiry_time: datetime = dataclasses.field(default=NEVER)
    """When the keys stop working: an aware ``datetime`` (far future for static keys)."""
    account_id: str | None = None
    """The AWS account the keys belong to, when the source says."""

    def __post_init__(self) -> None:
        # One time zone everywhere: comparing tz-local datetimes costs about 3x more per read.
        expiry = self.expiry_time
        aware = isinstance(expiry, datetime) and expiry.utcoffset() is not None
        if aware and expiry.tzinfo is not timezone.utc:
            object.__setattr__(self, "expiry_time", expiry.astimezone(timezone.utc))

    def __repr__(self) -> str:
        return (
            f"TemporaryCredentials(access_key={self.access_key!r}, secret_key={_MASK!r}, "
            f"token={_MASK if self.token else None!r}, "
            f"expiry_time={self.expiry_time.isoformat()!r}, "
            f"account_id={self.account_id!r})"
        )

    @classmethod
    def from_mapping(
        cls, value: Mapping[str, Any], *, source: str = "credentials"
    ) -> TemporaryCredentials:
        """Build credentials from botocore keys or STS keys; errors name ``source`` and the key.

        Accepted key sets: ``access_key``/``secret_key``/``token``/``expiry_time`` (botocore and
        boto3-refresh-session) or ``AccessKeyId``/``SecretAccessKey``/``SessionToken``/
        ``Expiration`` (STS, and the AWS CLI cache). Expiry is an aware ``datetime`` or an
        ISO-8601 string with an offset.
        """
        if not isinstance(value, Mapping):
            raise CredentialRefreshError(
                f"{source} returned {type(value).__name__}; expected a mapping with "
                "access_key/secret_key/token/expiry_time (or AccessKeyId/SecretAccessKey/"
                "SessionToken/Expiration) or a TemporaryCredentials"
            )
        if "AccessKeyId" in value or "SecretAccessKey" in value:
            names = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")
        else:
            names = ("access_key", "secret_key", "token", "expiry_time")
        ak_name, sk_name, tok_name, exp_name = names
        missing = [n for n in (ak_name, sk_name, exp_name) if value.get(n) is None]
        if missing:
            raise CredentialRefreshError(
                f"{source} returned a mapping without {', '.join(missing)}"
            )
        access_key = value[ak_name]
        secret_key = value[sk_name]
        token = value.get(tok_name)
        for name, item, optional in (
            (ak_name, access_key, False),
            (sk_name, secret_key, False),
            (tok_name, token, True),
        ):
            if optional and item is None:
                continue
            if not isinstance(item, str) or not item:
                raise CredentialRefreshError(
                    f"{source} returned {name} of type {type(item).__name__}; "
                    "expected a non-empty str"
                )
        account_id = value.get("account_id", value.get("AccountId"))
        if account_id is not None and not isinstance(account_id, str):
            raise CredentialRefreshError(
                f"{source} returned account_id of type {type(account_id).__name__}; "
                "expected str or None"
            )
        return cls(
            access_key=access_key,
            secret_key=secret_key,
            token=token,
            expiry_time=parse_expiry(value[exp_name], name=exp_name, source=source),
            account_id=account_id,
        )

    def to_botocore(self) -> dict[str, str | None]:
        """The mapping botocore's refreshable credentials expect (expiry as ISO-8601)."""
        return {
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "token": self.token,
            "expiry_time": self.expiry_time.isoformat(),
        }


def parse_expiry(
    value: object, *, name: str = "expiry_time", source: str = "credentials"
) -> datetime:
    """An aware ``datetime`` from a datetime or ISO-8601 string; naive values are refused."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise CredentialRefreshError(
                f"{source} returned {name} that is not an ISO-8601 timestamp"
            ) from None
        value = parsed
    if not isinstance(value, datetime):
        raise CredentialRefreshError(
            f"{source} returned {name} of type {type(value).__name__}; "
            "expected an aware datetime or an ISO-8601 string"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise CredentialRefreshError(
            f"{source} returned a naive {name}; expected a timezone-aware datetime"
        )
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    """Who a set of credentials is, as STS GetCallerIdentity answers."""

    account_id: str
    """The 12-digit account id."""
    arn: str
    """The caller's ARN (``...:assumed-role/Role/session`` for an assumed role)."""
    user_id: str
    """The unique id of the caller (``AROA...:session`` for an assumed role)."""

    @property
    def principal_name(self) -> str:
        """The last part of the ARN: a user name, or ``role/session`` for an assumed role."""
        resource = self.arn.split(":", 5)[-1]
        return resource.split("/", 1)[1] if "/" in resource else resource

    @property
    def masked_account_id(self) -> str:
        """The account id with its middle hidden (``12*******789``), for logs and screens."""
        return mask_id(self.account_id)

    @property
    def masked_arn(self) -> str:
        """The ARN with the account id masked wherever it appears in it."""
        if not self.account_id:
            return self.arn
        return self.arn.replace(self.account_id, self.masked_account_id)

    @property
    def masked_user_id(self) -> str:
        """The unique id with its middle hidden (``AR****************ion``)."""
        return mask_id(self.user_id)


def mask_id(value: str) -> str:
    """``value`` with all but its first 2 and last 3 characters replaced by ``*`` (same
    length); values under 8 characters are masked whole, so little of them shows."""
    if len(value) < 8:
        return "*" * len(value)
    return f"{value[:2]}{'*' * (len(value) - 5)}{value[-3:]}"


Clock = Callable[[], datetime]
"""A callable returning the current time as an aware ``datetime``; drives every expiry and
backoff decision of a session (tests pass a `aiorefresh.testing.FrozenClock`)."""


@runtime_checkable
class CredentialFetcher(Protocol):
    """Produces one fresh set of credentials per call; the engine decides when to call.

    A fetcher may also have ``async def aclose()``: the session calls it on close (on each
    event loop it closes on), so a fetcher can release per-loop clients or HTTP sessions.
    """

    async def __call__(self) -> TemporaryCredentials: ...


@runtime_checkable
class CredentialCache(Protocol):
    """Where assumed-role credentials are kept between refreshes, sessions and processes.

    Values are JSON-compatible mappings in the AWS CLI's layout (``{"Credentials":
    {"AccessKeyId": ..., "SecretAccessKey": ..., "SessionToken": ..., "Expiration": ...}}``);
    keys are the AWS CLI's (a SHA-1 of the AssumeRole parameters). `MemoryCache` and
    `JSONFileCache` implement it; a shared store (Redis, a database) can too.
    """

    async def get(self, key: str) -> Mapping[str, Any] | None:
        """The entry stored under ``key``, or ``None`` (missing or unreadable)."""
        ...

    async def set(self, key: str, value: Mapping[str, Any]) -> None:
        """Store ``value`` under ``key``, replacing what was there."""
        ...

    async def delete(self, key: str) -> None:
        """Forget ``key`` (nothing happens if it is missing)."""
        ...


class _PolicyDescriptor(TypedDict):
    arn: str


class _Tag(TypedDict):
    Key: str
    Value: str


class _ProvidedContext(TypedDict, total=False):
    ProviderArn: str
    ContextAssertion: str


class AssumeRoleConfig(TypedDict, total=False):
    """The parameters of STS AssumeRole; a plain dict with these keys works everywhere."""

    RoleArn: str
    RoleSessionName: str
    PolicyArns: list[_PolicyDescriptor]
    Policy: str
    DurationSeconds: int
    Tags: list[_Tag]
    TransitiveTagKeys: list[str]
    ExternalId: str
    SerialNumber: str
    TokenCode: str
    SourceIdentity: str
    ProvidedContexts: list[_ProvidedContext]


class STSClientConfig(TypedDict, total=False):
    """Options of the private STS client a session uses to fetch credentials."""

    region_name: str
    endpoint_url: str
    api_version: str
    use_ssl: bool
    verify: bool | str
    config: Any
    aws_access_key_id: str
    aws_secret_access_key: str
    aws_session_token: str
    aws_account_id: str


_K_contra = TypeVar("_K_contra", contravariant=True)
_V = TypeVar("_V")


class LeaseFactory(Protocol[_K_contra, _V]):
    """Makes and closes the pool's values."""

    async def create(self, key: _K_contra) -> _V:
        """A new, ready value for ``key``."""

    async def close(self, key: _K_contra, value: _V) -> None:
        """Close a value this factory made for ``key``."""


@dataclasses.dataclass(frozen=True)
class PoolStats:
    """Counters of a pool, summed over event loops: ``hits`` are leases served without creating
    (waits on another task's creation included), ``misses`` leases that started one;
    ``evictions`` entries the bound or the idle timeout took out of the index (or kept out, when
    every slot held a creation); ``size`` the ready values in the index (pinned included);
    ``leased`` the leases held now. ``creations - closes`` is the number of values open now."""

    hits: int = 0
    misses: int = 0
    creations: int = 0
    evictions: int = 0
    closes: int = 0
    size: int = 0
    leased: int = 0
