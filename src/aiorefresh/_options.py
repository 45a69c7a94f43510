"""The options every session takes, bundled into value objects (as httpx's ``Timeout`` and
``Limits``): refresh options and pool options, checked once and inherited by child sessions
as objects."""

from __future__ import annotations

import dataclasses
import sys
import warnings
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from . import _client_key
from ._types import Clock, CredentialCache, CredentialFetcher, TemporaryCredentials
from ._util import check_bool, check_optional_str, check_seconds, utc_now
from .errors import ConfigurationError, ValidationError

if sys.version_info >= (3, 11):  # pragma: no cover - version-dependent import
    from typing import NotRequired
else:  # pragma: no cover
    from typing_extensions import NotRequired

if TYPE_CHECKING:
    from ._engine import RefreshEngine, RefreshEvent

__all__ = ["EvictionPolicy", "PoolOptions", "RefreshOptions", "SessionOptions"]

EvictionPolicy = Literal["LRU", "LFU"]
"""Which unpinned client ``max_clients`` evicts first: least recently or least often used."""


@dataclasses.dataclass(frozen=True, slots=True)
class RefreshOptions:
    """When and how long a session refreshes; see the "Refresh semantics" page."""

    advisory_timeout: float | None = None
    mandatory_timeout: float | None = None
    refresh_jitter: float = 0.0
    refresh_timeout: float | None = 30.0
    clock: Clock = utc_now
    on_refresh: Callable[[RefreshEvent], object] | None = None
    defer_refresh: bool = True
    retry_on_expired_token: bool = True

    @classmethod
    def checked(
        cls,
        *,
        advisory_timeout: object = None,
        mandatory_timeout: object = None,
        refresh_jitter: object = 0.0,
        refresh_timeout: object = 30.0,
        clock: object = None,
        on_refresh: object = None,
        defer_refresh: object = True,
        retry_on_expired_token: object = True,
    ) -> RefreshOptions:
        """The options, each checked (typed errors naming the option), before any I/O."""
        check_bool("defer_refresh", defer_refresh)
        check_bool("retry_on_expired_token", retry_on_expired_token)
        advisory = check_seconds("advisory_timeout", advisory_timeout)
        mandatory = check_seconds("mandatory_timeout", mandatory_timeout)
        if advisory is not None and mandatory is not None and mandatory > advisory:
            raise ConfigurationError(
                f"mandatory_timeout ({mandatory_timeout}) must not exceed advisory_timeout "
                f"({advisory_timeout})"
            )
        jitter = check_seconds("refresh_jitter", refresh_jitter, allow_none=False)
        if jitter is not None and jitter >= 1:
            raise ConfigurationError(f"refresh_jitter must be a fraction in [0, 1), got {jitter}")
        limit = check_seconds("refresh_timeout", refresh_timeout, positive=True)
        if clock is not None:
            now = clock() if callable(clock) else None
            if not isinstance(now, datetime) or now.utcoffset() is None:
                raise ValidationError(
                    "clock must be a callable returning a timezone-aware datetime, got "
                    f"{type(clock).__name__} returning {type(now).__name__}"
                    + (" (naive)" if isinstance(now, datetime) else "")
                )
        if on_refresh is not None and not callable(on_refresh):
            raise ValidationError(f"on_refresh must be callable, got {type(on_refresh).__name__}")
        return cls(
            advisory_timeout=advisory,
            mandatory_timeout=mandatory,
            refresh_jitter=jitter or 0.0,
            refresh_timeout=limit,
            clock=clock or utc_now,  # type: ignore[arg-type]
            on_refresh=on_refresh,
            defer_refresh=bool(defer_refresh),
            retry_on_expired_token=bool(retry_on_expired_token),
        )

    def engine(
        self,
        fetcher: CredentialFetcher,
        *,
        name: str,
        freeze: Callable[[TemporaryCredentials], Any] | None = None,
        notify: bool = True,
    ) -> RefreshEngine:
        """A refresh engine for ``fetcher`` with these options (``notify``: call on_refresh)."""
        from ._engine import RefreshEngine

        return RefreshEngine(
            fetcher,
            advisory_timeout=self.advisory_timeout,
            mandatory_timeout=self.mandatory_timeout,
            refresh_jitter=self.refresh_jitter,
            refresh_timeout=self.refresh_timeout,
            clock=self.clock,
            on_refresh=self.on_refresh if notify else None,
            freeze=freeze,
            name=name,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class PoolOptions:
    """How a session pools its clients; see the "Client pool" page."""

    max_clients: int | None = None
    eviction_policy: EvictionPolicy = "LRU"
    idle_timeout: float | None = None
    close_timeout: float = 10.0
    default_client_kwargs: Mapping[str, Any] | None = None

    @classmethod
    def checked(
        cls,
        *,
        max_clients: object = None,
        eviction_policy: object = "LRU",
        idle_timeout: object = None,
        close_timeout: object = 10.0,
        default_client_kwargs: object = None,
    ) -> PoolOptions:
        """The options, each checked (typed errors naming the option), before any I/O."""
        if max_clients is not None and (
            isinstance(max_clients, bool) or not isinstance(max_clients, int)
        ):
            raise ValidationError(
                f"max_clients must be an int or None, got {type(max_clients).__name__}"
            )
        if max_clients is not None and max_clients < 0:
            raise ConfigurationError(f"max_clients must be >= 0 or None, got {max_clients!r}")
        if not isinstance(eviction_policy, str):
            raise ValidationError(
                f"eviction_policy must be 'LRU' or 'LFU', got {type(eviction_policy).__name__}"
            )
        if eviction_policy not in ("LRU", "LFU"):
            raise ConfigurationError(
                f"eviction_policy must be 'LRU' or 'LFU', got {eviction_policy!r}"
            )
        idle = check_seconds("idle_timeout", idle_timeout)
        close = check_seconds("close_timeout", close_timeout, allow_none=False)
        defaults = check_client_kwargs("default_client_kwargs", default_client_kwargs)
        return cls(
            max_clients=max_clients,
            eviction_policy=eviction_policy,  # type: ignore[arg-type]
            idle_timeout=idle,
            close_timeout=close if close is not None else 10.0,
            default_client_kwargs=defaults,
        )


def check_client_kwargs(name: str, value: object) -> dict[str, Any] | None:
    """``create_client`` keyword arguments: known names, each of the right type, explicit keys
    whole (a token or a secret key without its key id is refused, not dropped)."""
    if value is None:
        return None
    return _client_key.check_client_kwargs(name, value)


class SessionOptions(TypedDict, total=False):
    """The keyword options every method takes (the per-method constructor overloads add the
    method's own); defaults in brackets."""

    defer_refresh: NotRequired[bool]
    advisory_timeout: NotRequired[float | None]
    mandatory_timeout: NotRequired[float | None]
    refresh_jitter: NotRequired[float]
    refresh_timeout: NotRequired[float | None]
    retry_on_expired_token: NotRequired[bool]
    clock: NotRequired[Clock | None]
    on_refresh: NotRequired[Callable[[RefreshEvent], object] | None]
    credential_cache: NotRequired[CredentialCache | None]
    max_clients: NotRequired[int | None]
    eviction_policy: NotRequired[EvictionPolicy]
    idle_timeout: NotRequired[float | None]
    close_timeout: NotRequired[float]
    default_client_kwargs: NotRequired[Mapping[str, Any] | None]
    botocore_session_owner: NotRequired[bool]
    http_backend: NotRequired[str | None]


def warn_if_endpoints_differ(sts_kwargs: object, pool: PoolOptions) -> None:
    """Credentials come from one STS endpoint and clients go to another: say so, once."""
    if not isinstance(sts_kwargs, Mapping) or not sts_kwargs.get("endpoint_url"):
        return
    if (pool.default_client_kwargs or {}).get("endpoint_url"):
        return
    warnings.warn(
        "sts_client_kwargs sets endpoint_url but default_client_kwargs does not: credentials "
        "come from that endpoint while whoami(), client('sts') and the ExpiredToken retry "
        "use AWS's; set default_client_kwargs={'endpoint_url': ...} too if that is not meant",
        UserWarning,
        stacklevel=3,
    )


def check_session_arguments(
    aws_access_key_id: object,
    aws_secret_access_key: object,
    aws_session_token: object,
    region_name: object,
    botocore_session: object,
    profile_name: object,
    aws_account_id: object,
) -> tuple[str, str, str | None, str | None] | None:
    """aioboto3.Session's own arguments, checked; returns the explicit keys, if any."""
    for name, value in (
        ("aws_access_key_id", aws_access_key_id),
        ("aws_secret_access_key", aws_secret_access_key),
        ("aws_session_token", aws_session_token),
        ("region_name", region_name),
        ("profile_name", profile_name),
        ("aws_account_id", aws_account_id),
    ):
        check_optional_str(name, value)
    if (aws_access_key_id is None) != (aws_secret_access_key is None):
        raise ConfigurationError(
            "aws_access_key_id and aws_secret_access_key must be given together"
        )
    if aws_access_key_id is None and (aws_session_token is not None or aws_account_id is not None):
        extra = "aws_session_token" if aws_session_token is not None else "aws_account_id"
        raise ConfigurationError(
            f"{extra} needs aws_access_key_id and aws_secret_access_key (it belongs to them)"
        )
    from ._aiobotocore import is_session

    if botocore_session is not None and not is_session(botocore_session):
        raise ValidationError(
            "botocore_session must be an aiobotocore.session.AioSession, got "
            f"{type(botocore_session).__name__}"
        )
    if aws_access_key_id is None:
        return None
    token = aws_session_token if isinstance(aws_session_token, str) else None
    account = aws_account_id if isinstance(aws_account_id, str) else None
    return (str(aws_access_key_id), str(aws_secret_access_key), token, account)
