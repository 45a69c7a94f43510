"""The method table: each credential method's options, how it is inferred, and its builder.

An option lives in its method's row and in ``OPTION_DEFAULTS`` here, and in the session's
signature and that method's overload (what editors and mypy read); ``tests/test_methods.py``
checks that the four agree. The session hands `build` a `BuildContext` and every option of
the row (the default where not given); the builder validates them (no I/O) and returns the
fetcher.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ._types import Clock, CredentialCache, CredentialFetcher
from .errors import ConfigurationError, ValidationError

if TYPE_CHECKING:
    from ._engine import RefreshEngine

__all__ = [
    "METHODS",
    "BuildContext",
    "Method",
    "SourceFetcher",
    "OPTION_DEFAULTS",
    "choose_method",
    "given_options",
    "row_options",
]


class SourceFetcher(Protocol):
    """Makes the session's source fetcher; ``mfa_token_provider`` answers a role profile's
    ``mfa_serial``."""

    def __call__(
        self,
        *,
        mfa_token_provider: Any = None,
        mfa_token_provider_kwargs: Mapping[str, Any] | None = None,
        sts_client_kwargs: Mapping[str, Any] | None = None,
    ) -> CredentialFetcher: ...


@dataclasses.dataclass(frozen=True)
class BuildContext:
    """What a builder may use from the session being built."""

    profile_name: str | None
    region_name: str | None
    clock: Clock
    source_fetcher: SourceFetcher
    """The session's source credentials: the explicit keys, a role profile's chain of
    AssumeRole fetchers (which use the MFA provider given here), or the default chain."""
    source: Callable[[], RefreshEngine]
    """An engine over `source_fetcher` (made on first call): what STS methods sign with."""
    credential_cache: CredentialCache | None = None
    """The session's credential cache, for AssumeRole fetchers (``None``: none)."""


Builder = Callable[[BuildContext, Mapping[str, Any]], CredentialFetcher]


@dataclasses.dataclass(frozen=True)
class Method:
    """One row of the table."""

    name: str
    options: tuple[str, ...]
    """The method's own options (each with its default in ``OPTION_DEFAULTS``)."""
    infer_from: tuple[str, ...]
    """Options whose presence selects this method when ``method`` is not given."""
    source_keys: bool
    """Whether explicit ``aws_access_key_id``/... may be given (as the source credentials)."""
    build: Builder


OPTION_DEFAULTS: dict[str, Any] = {
    "custom_credentials_method": None,
    "custom_credentials_method_args": None,
    "assume_role_kwargs": None,
    "sts_client_kwargs": None,
    "session_token_kwargs": None,
    "web_identity_kwargs": None,
    "web_identity_token": None,
    "mfa_token_provider": None,
    "mfa_token_provider_kwargs": None,
    "endpoint": None,
    "role_alias": None,
    "certificate": None,
    "private_key": None,
    "private_key_password": None,
    "thing_name": None,
    "ca": None,
    "duration_seconds": None,
    "timeout": 10.0,
    "verify_peer": True,
    "discover_endpoint": False,
}
"""Every method option and its default: an option counts as given when it differs."""

DEFAULT_METHOD = "default"


def _require(options: Mapping[str, Any], name: str, method: str, what: str) -> Any:
    value = options.get(name)
    if value is None:
        raise ValidationError(f"{name} is required for method {method!r} ({what})")
    return value


def _build_custom(ctx: BuildContext, options: Mapping[str, Any]) -> CredentialFetcher:
    from ._fetchers.custom import CustomFetcher

    method = _require(options, "custom_credentials_method", "custom", "a callable")
    return CustomFetcher(method, options.get("custom_credentials_method_args"))


def _build_default(ctx: BuildContext, options: Mapping[str, Any]) -> CredentialFetcher:
    """The source credentials themselves: explicit keys, a role profile through aiorefresh's
    fetchers (``mfa_token_provider`` for its ``mfa_serial``, ``sts_client_kwargs`` for its
    STS clients), or aiobotocore's chain."""
    if options.get("mfa_token_provider_kwargs") is not None and not options.get(
        "mfa_token_provider"
    ):
        raise ConfigurationError("mfa_token_provider_kwargs needs mfa_token_provider")
    sts_kwargs = None
    if options.get("sts_client_kwargs") is not None:
        sts_kwargs = _sts_client_kwargs(ctx, options)
        signing = sorted(k for k in sts_kwargs if k.startswith("aws_"))
        if signing:
            raise ConfigurationError(
                f"sts_client_kwargs of method 'default' must not hold {', '.join(signing)}: "
                "a role profile's AssumeRole calls are signed by the profile's source"
            )
    return ctx.source_fetcher(
        mfa_token_provider=options.get("mfa_token_provider"),
        mfa_token_provider_kwargs=options.get("mfa_token_provider_kwargs"),
        sts_client_kwargs=sts_kwargs,
    )


def _sts_client_kwargs(ctx: BuildContext, options: Mapping[str, Any]) -> dict[str, Any]:
    from ._fetchers._sts_options import validate_sts_client_kwargs

    kwargs = validate_sts_client_kwargs(options.get("sts_client_kwargs"))
    if ctx.region_name is not None:
        kwargs.setdefault("region_name", ctx.region_name)
    return kwargs


def _build_sts(ctx: BuildContext, options: Mapping[str, Any]) -> CredentialFetcher:
    from ._fetchers.sts import AssumeRoleFetcher

    params = _require(options, "assume_role_kwargs", "sts", "RoleArn at least")
    client_kwargs = _sts_client_kwargs(ctx, options)
    return AssumeRoleFetcher(
        params,
        source=None if "aws_access_key_id" in client_kwargs else ctx.source(),
        client_kwargs=client_kwargs,
        mfa_token_provider=options.get("mfa_token_provider"),
        mfa_token_provider_kwargs=options.get("mfa_token_provider_kwargs"),
        clock=ctx.clock,
        profile_name=ctx.profile_name,
        credential_cache=ctx.credential_cache,
    )


def _build_session_token(ctx: BuildContext, options: Mapping[str, Any]) -> CredentialFetcher:
    from ._fetchers.sts import SessionTokenFetcher

    client_kwargs = _sts_client_kwargs(ctx, options)
    return SessionTokenFetcher(
        options.get("session_token_kwargs") or {},
        source=None if "aws_access_key_id" in client_kwargs else ctx.source(),
        client_kwargs=client_kwargs,
        mfa_token_provider=options.get("mfa_token_provider"),
        mfa_token_provider_kwargs=options.get("mfa_token_provider_kwargs"),
        clock=ctx.clock,
        profile_name=ctx.profile_name,
    )


def _build_web_identity(ctx: BuildContext, options: Mapping[str, Any]) -> CredentialFetcher:
    from ._fetchers.sts import WebIdentityFetcher

    params = _require(options, "web_identity_kwargs", "web_identity", "RoleArn at least")
    return WebIdentityFetcher(
        params,
        options.get("web_identity_token"),
        client_kwargs=_sts_client_kwargs(ctx, options),
        profile_name=ctx.profile_name,
    )


def _build_iot(ctx: BuildContext, options: Mapping[str, Any]) -> CredentialFetcher:
    from ._fetchers import iot

    config = iot.validate_iot_options(**options)
    discover = None
    if config.endpoint is None:
        discover = functools.partial(
            iot.discover_credentials_endpoint,
            region_name=ctx.region_name,
            profile_name=ctx.profile_name,
        )
    return iot.IoTCredentialFetcher(config, discover=discover)


_STS_OPTIONS = ("sts_client_kwargs", "mfa_token_provider", "mfa_token_provider_kwargs")

METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method(
            "custom",
            ("custom_credentials_method", "custom_credentials_method_args"),
            ("custom_credentials_method",),
            False,
            _build_custom,
        ),
        Method(
            "default",
            ("mfa_token_provider", "mfa_token_provider_kwargs", "sts_client_kwargs"),
            (),
            True,
            _build_default,
        ),
        Method(
            "sts", ("assume_role_kwargs", *_STS_OPTIONS), ("assume_role_kwargs",), True, _build_sts
        ),
        Method(
            "session_token",
            ("session_token_kwargs", *_STS_OPTIONS),
            ("session_token_kwargs",),
            True,
            _build_session_token,
        ),
        Method(
            "web_identity",
            ("web_identity_kwargs", "web_identity_token", "sts_client_kwargs"),
            ("web_identity_kwargs", "web_identity_token"),
            True,
            _build_web_identity,
        ),
        Method(
            "iot",
            (
                "endpoint",
                "role_alias",
                "certificate",
                "private_key",
                "private_key_password",
                "thing_name",
                "ca",
                "duration_seconds",
                "timeout",
                "verify_peer",
                "discover_endpoint",
            ),
            ("role_alias", "certificate", "private_key", "endpoint", "discover_endpoint"),
            False,
            _build_iot,
        ),
    )
}
"""Every credential method by name."""


def row_options(row: Method, given: Mapping[str, Any]) -> dict[str, Any]:
    """Every option of ``row``: the given value, else its default (what `Method.build` takes)."""
    return {name: given.get(name, OPTION_DEFAULTS[name]) for name in row.options}


def given_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The method options that differ from their defaults."""
    given = {}
    for name, value in options.items():
        default = OPTION_DEFAULTS[name]
        if value is not default and value != default:
            given[name] = value
    return given


def choose_method(method: object, given: Mapping[str, Any]) -> Method:
    """The method named, or the one the given options imply; refuses options of another."""
    if method is None:
        implied: dict[str, str] = {}
        for candidate in METHODS.values():
            for name in candidate.infer_from:
                if name in given:
                    implied.setdefault(candidate.name, name)
        if len(implied) > 1:
            clues = ", ".join(f"{opt} ({m})" for m, opt in implied.items())
            raise ConfigurationError(
                f"options of more than one method were given: {clues}; pass method= "
                "explicitly and only that method's options"
            )
        method = next(iter(implied), DEFAULT_METHOD)
    row: Method | None = METHODS.get(method) if isinstance(method, str) else None
    if row is None:
        allowed = ", ".join(repr(name) for name in METHODS)
        raise ValidationError(f"method must be one of {allowed} or None, got {method!r}")
    foreign = sorted(set(given) - set(row.options))
    if foreign:
        raise ConfigurationError(
            f"{', '.join(foreign)} {'is' if len(foreign) == 1 else 'are'} not an option of "
            f"method {row.name!r}"
        )
    return row
