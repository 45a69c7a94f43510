"""Role profiles of the shared config, as chains of aiorefresh fetchers.

A profile with ``role_arn`` becomes a base (the static keys of the last ``source_profile``,
that profile's own credential chain, or the ``credential_source``) in a refresh engine, and
one `AssumeRoleFetcher` per role, each signed by the previous link's engine. So ``refresh()``
makes a new AssumeRole, the session's clock drives every decision, MFA codes come from
``mfa_token_provider`` (never from a prompt) and answers go to the credential cache under the
AWS CLI's keys. Profiles without a role are left to aiobotocore's chain.

The config is read when the session is built, as botocore and aioboto3 read it; the fetchers
made here read files (a source profile's chain) in worker threads only.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from . import _aiobotocore
from ._fetchers._sts_options import ROLE_ARN, SESSION_NAME
from ._fetchers.chain import ChainFetcher, StaticFetcher
from ._fetchers.sts import AssumeRoleFetcher
from ._types import CredentialCache, CredentialFetcher, TemporaryCredentials, parse_expiry
from .errors import ConfigurationError, NoCredentialsFound
from .mfa import make_mfa_provider

if TYPE_CHECKING:
    from aiobotocore.session import AioSession

    from ._engine import RefreshEngine
    from ._options import RefreshOptions

__all__ = [
    "CREDENTIAL_SOURCES",
    "CredentialSource",
    "EnvironmentFetcher",
    "ProfileChain",
    "ProviderFetcher",
    "RoleLink",
    "RoleProfile",
    "StaticKeys",
    "build_role_fetcher",
    "load_role_profile",
    "resolve_role_profile",
    "unused_mfa_provider",
]

CREDENTIAL_SOURCES: Mapping[str, str | None] = {
    "Environment": None,
    "Ec2InstanceMetadata": "iam-role",
    "EcsContainer": "container-role",
}
"""The ``credential_source`` values botocore knows (in any case), each with the provider of
aiobotocore's chain that serves it (the environment is read here)."""


# -- what a profile says --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StaticKeys:
    """The base of a chain: long-term keys written in a profile."""

    profile: str
    access_key: str
    secret_key: str = dataclasses.field(repr=False)
    token: str | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True)
class CredentialSource:
    """The base of a chain: ``credential_source`` (``Environment``, ``Ec2InstanceMetadata``,
    ``EcsContainer``)."""

    profile: str
    name: str


@dataclasses.dataclass(frozen=True)
class ProfileChain:
    """The base of a chain: a source profile without a role or keys (SSO, process, web
    identity), resolved by aiobotocore's chain for that profile."""

    profile: str


Base = StaticKeys | CredentialSource | ProfileChain


@dataclasses.dataclass(frozen=True)
class RoleLink:
    """One role to assume: the profile that names it and its AssumeRole parameters."""

    profile: str
    params: Mapping[str, Any]

    @property
    def mfa_serial(self) -> str | None:
        """The MFA device the role's trust policy asks for, if any."""
        serial = self.params.get("SerialNumber")
        return serial if isinstance(serial, str) else None


@dataclasses.dataclass(frozen=True)
class RoleProfile:
    """A role profile resolved: its base and the roles from the base outward (the last one
    is the profile's own role)."""

    name: str
    base: Base
    roles: tuple[RoleLink, ...]

    @property
    def needs_mfa(self) -> bool:
        """Whether any role of the chain asks for an MFA code."""
        return any(link.mfa_serial is not None for link in self.roles)


# -- reading the config ---------------------------------------------------------------------------


def load_role_profile(
    session: AioSession,
    profile: str,
    *,
    explicit: bool,
    environ: Mapping[str, str] | None = None,
) -> RoleProfile | None:
    """``profile`` resolved from ``session``'s shared config, or ``None`` when it has no role.

    As in botocore's chain, keys in the environment win over a profile that was not named
    explicitly (``AWS_PROFILE`` or ``default``). Reads the config files synchronously: call it
    while the session is built, never from async code.
    """
    environ = os.environ if environ is None else environ
    if not explicit and environ.get("AWS_ACCESS_KEY_ID"):
        return None
    try:
        config = session.full_config
    except Exception as exc:  # botocore's ConfigParseError names the file only
        raise ConfigurationError(
            f"the shared config cannot be read ({type(exc).__name__}); check the files named "
            "by AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE"
        ) from exc
    profiles = config.get("profiles") if isinstance(config, Mapping) else None
    return resolve_role_profile(profiles if isinstance(profiles, Mapping) else {}, profile)


def resolve_role_profile(
    profiles: Mapping[str, Mapping[str, Any]], name: str
) -> RoleProfile | None:
    """Follow ``source_profile`` from ``name`` to a base, as botocore does; ``None`` when
    ``name`` has no role. Inconsistent profiles raise `ConfigurationError`, naming them."""
    profile = profiles.get(name)
    if not isinstance(profile, Mapping) or not _has_role(profile):
        return None
    roles: list[RoleLink] = []
    visited = [name]
    current, settings = name, profile
    while True:
        roles.append(_role_link(current, settings))
        source = settings.get("source_profile")
        credential_source = settings.get("credential_source")
        if source and credential_source:
            raise ConfigurationError(
                f"profile {current!r} sets both source_profile and credential_source; set one"
            )
        if credential_source:
            base: Base = CredentialSource(
                current, _check_credential_source(current, credential_source)
            )
            break
        if not source:
            raise ConfigurationError(
                f"profile {current!r} has role_arn but neither source_profile nor "
                "credential_source: say where the credentials that assume the role come from"
            )
        settings = profiles.get(source)  # type: ignore[assignment]
        if not isinstance(settings, Mapping):
            raise ConfigurationError(
                f"profile {current!r} names source_profile {source!r}, which is not in the shared "
                "config or credentials files (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE)"
            )
        keys = _static_keys(source, settings)
        if keys is not None:  # also a profile naming itself to take its own keys
            base = keys
            break
        if source in visited:
            raise ConfigurationError(
                f"profiles {' -> '.join(repr(p) for p in [*visited, source])} form a loop of "
                "source_profile without keys to start from"
            )
        if not _has_role(settings):
            if not any(settings.get(key) for key in _PROFILE_PROVIDER_KEYS):
                # botocore refuses it too, rather than reaching container or instance metadata
                raise ConfigurationError(
                    f"profile {current!r} names source_profile {source!r}, which has no "
                    "credentials: give it aws_access_key_id/aws_secret_access_key, "
                    "credential_process, an SSO configuration or web_identity_token_file"
                )
            base = ProfileChain(source)
            break
        visited.append(source)
        current = source
    return RoleProfile(name=name, base=base, roles=tuple(reversed(roles)))


_PROFILE_PROVIDER_KEYS = (
    "credential_process",
    "sso_session",
    "sso_start_url",
    "sso_account_id",
    "web_identity_token_file",
)
"""Settings by which a source profile without keys can still have credentials of its own."""


def _has_role(profile: Mapping[str, Any]) -> bool:
    # botocore leaves a profile with web_identity_token_file to its web identity provider.
    return bool(profile.get("role_arn")) and "web_identity_token_file" not in profile


def _static_keys(name: str, profile: Mapping[str, Any]) -> StaticKeys | None:
    access_key = profile.get("aws_access_key_id")
    secret_key = profile.get("aws_secret_access_key")
    if access_key is None and secret_key is None:
        return None
    if not access_key or not secret_key:
        present = "aws_access_key_id" if access_key else "aws_secret_access_key"
        raise ConfigurationError(
            f"profile {name!r} has {present} without its partner: set both "
            "aws_access_key_id and aws_secret_access_key"
        )
    token = profile.get("aws_session_token") or profile.get("aws_security_token") or None
    return StaticKeys(name, str(access_key), str(secret_key), None if token is None else str(token))


def _check_credential_source(profile: str, value: object) -> str:
    for canonical in CREDENTIAL_SOURCES:
        if canonical.lower() == str(value).strip().lower():
            return canonical
    raise ConfigurationError(
        f"profile {profile!r} has credential_source {value!r}; expected one of "
        f"{', '.join(CREDENTIAL_SOURCES)}"
    )


def _role_link(name: str, profile: Mapping[str, Any]) -> RoleLink:
    """The AssumeRole parameters of one role profile, as botocore builds them (so the cache
    key is the AWS CLI's), each value checked with the profile's own key names."""
    role_arn = str(profile["role_arn"]).strip()
    if ROLE_ARN.fullmatch(role_arn) is None:
        raise ConfigurationError(
            f"profile {name!r}: role_arn must look like arn:<partition>:iam::<12-digit "
            f"account>:role/<name>, got {role_arn!r}"
        )
    params: dict[str, Any] = {"RoleArn": role_arn}
    session_name = profile.get("role_session_name")
    if session_name:
        if SESSION_NAME.fullmatch(str(session_name)) is None:
            raise ConfigurationError(
                f"profile {name!r}: role_session_name must be 2-64 ASCII letters, digits or "
                f"+=,.@_- (no spaces), got {session_name!r}"
            )
        params["RoleSessionName"] = str(session_name)
    external_id = profile.get("external_id")
    if external_id is not None:
        params["ExternalId"] = str(external_id)
    serial = profile.get("mfa_serial")
    if serial is not None:
        params["SerialNumber"] = str(serial)
    duration = profile.get("duration_seconds")
    if duration is not None:
        try:
            seconds = int(str(duration))
        except ValueError:
            raise ConfigurationError(
                f"profile {name!r}: duration_seconds must be a whole number of seconds"
            ) from None
        if not 900 <= seconds <= 43200:
            raise ConfigurationError(
                f"profile {name!r}: duration_seconds must be between 900 and 43200, got {seconds}"
            )
        params["DurationSeconds"] = seconds
    return RoleLink(name, params)


# -- building the chain ---------------------------------------------------------------------------


def unused_mfa_provider(profile: str) -> ConfigurationError:
    """The error for ``mfa_token_provider`` given to a default session that has no use for it."""
    return ConfigurationError(
        f"mfa_token_provider answers the mfa_serial of a role profile, and profile {profile!r} "
        "has no role with mfa_serial; for MFA with other credentials use method='sts' "
        "(assume_role_kwargs with SerialNumber) or method='session_token'"
    )


def build_role_fetcher(
    profile: RoleProfile,
    *,
    refresh: RefreshOptions,
    owned_engines: list[RefreshEngine],
    credential_cache: CredentialCache | None,
    region_name: str | None = None,
    profile_name: str | None = None,
    mfa_token_provider: Any = None,
    mfa_token_provider_kwargs: Mapping[str, Any] | None = None,
    sts_client_kwargs: Mapping[str, Any] | None = None,
) -> AssumeRoleFetcher:
    """The fetcher of ``profile``'s own role, over engines for its base and inner roles.

    The engines get the session's ``refresh`` options (its clock included) and are appended
    to ``owned_engines``, which the session closes. Every role with ``mfa_serial`` asks
    ``mfa_token_provider``; without one, only a valid cached entry serves it, otherwise
    `MFAError` is raised: nothing ever prompts. ``profile_name`` configures the private STS
    clients (endpoint, region), as the session's own clients; ``sts_client_kwargs`` (an
    endpoint, ``verify``, ``config``) goes to every link's STS client. One MFA provider serves
    every link, so a code used by one link is never sent again by another.
    """
    if mfa_token_provider_kwargs is not None and mfa_token_provider is None:
        raise ConfigurationError("mfa_token_provider_kwargs needs mfa_token_provider")
    if mfa_token_provider is not None and not profile.needs_mfa:
        raise unused_mfa_provider(profile.name)
    provider = None
    if mfa_token_provider is not None:
        provider = make_mfa_provider(
            mfa_token_provider, mfa_token_provider_kwargs, clock=refresh.clock
        )
    client_kwargs = dict(sts_client_kwargs or {})
    if region_name is not None:
        client_kwargs.setdefault("region_name", region_name)

    def engine(fetcher: CredentialFetcher, name: str) -> RefreshEngine:
        made = refresh.engine(fetcher, name=name, notify=False)
        owned_engines.append(made)
        return made

    def new_session(name: str) -> AioSession:
        return _aiobotocore.new_session(profile_name=name, region_name=region_name)

    source = engine(
        _base_fetcher(profile.base, new_session), f"profile {profile.base.profile!r} source"
    )
    fetcher: AssumeRoleFetcher | None = None
    for index, link in enumerate(profile.roles):
        if fetcher is not None:
            source = engine(fetcher, f"profile {profile.roles[index - 1].profile!r} role")
        needs_code = link.mfa_serial is not None
        fetcher = AssumeRoleFetcher(
            link.params,
            source=source,
            client_kwargs=dict(client_kwargs) or None,
            mfa_token_provider=provider if needs_code else None,
            clock=refresh.clock,
            profile_name=profile_name,
            credential_cache=credential_cache,
            mfa_required_message=_mfa_required(profile.name, link) if needs_code else None,
        )
    assert fetcher is not None  # a role profile has at least its own role
    return fetcher


def _mfa_required(top: str, link: RoleLink) -> str:
    where = repr(top) if link.profile == top else f"{link.profile!r} (a source of {top!r})"
    return (
        f"profile {where} asks for an MFA code ({link.mfa_serial}) and the credential cache "
        "holds no valid credentials for its role; aiorefresh never prompts: pass "
        "mfa_token_provider= to the session"
    )


def _base_fetcher(base: Base, new_session: Callable[[str], AioSession]) -> CredentialFetcher:
    if isinstance(base, StaticKeys):
        return StaticFetcher(base.access_key, base.secret_key, base.token)
    if isinstance(base, CredentialSource):
        if base.name == "Environment":
            return EnvironmentFetcher(base.profile)
        return ProviderFetcher(base.profile, base.name, lambda: new_session(base.profile))
    return ChainFetcher(lambda: new_session(base.profile))


class EnvironmentFetcher:
    """``credential_source = Environment``: the ``AWS_*`` variables, read anew on every call."""

    method = "default"

    def __init__(self, profile: str, environ: Mapping[str, str] | None = None) -> None:
        self._profile = profile
        self._environ = os.environ if environ is None else environ

    def __repr__(self) -> str:
        return f"EnvironmentFetcher(profile={self._profile!r})"

    async def __call__(self) -> TemporaryCredentials:
        env = self._environ
        access_key = env.get("AWS_ACCESS_KEY_ID")
        secret_key = env.get("AWS_SECRET_ACCESS_KEY")
        if not access_key or not secret_key:
            raise NoCredentialsFound(
                f"profile {self._profile!r} takes credential_source = Environment, and "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not both set"
            )
        token = env.get("AWS_SESSION_TOKEN") or env.get("AWS_SECURITY_TOKEN") or None
        expiration = env.get("AWS_CREDENTIAL_EXPIRATION")
        creds = TemporaryCredentials(
            access_key=access_key,
            secret_key=secret_key,
            token=token,
            account_id=env.get("AWS_ACCOUNT_ID") or None,
        )
        if expiration:
            expiry = parse_expiry(
                expiration, name="AWS_CREDENTIAL_EXPIRATION", source="the environment"
            )
            creds = dataclasses.replace(creds, expiry_time=expiry)
        return creds


class ProviderFetcher:
    """``credential_source = Ec2InstanceMetadata`` or ``EcsContainer``: that provider of
    aiobotocore's chain, from a fresh session made in a worker thread on every call, so
    credentials that expire are fetched anew."""

    method = "default"

    def __init__(self, profile: str, source: str, session: Callable[[], AioSession]) -> None:
        self._profile = profile
        self._source = source
        provider = CREDENTIAL_SOURCES[source]
        assert provider is not None
        self._provider = provider
        self._session = session

    def __repr__(self) -> str:
        return f"ProviderFetcher(profile={self._profile!r}, source={self._source!r})"

    def _find_provider(self) -> Any:
        session = self._session()
        resolver = session.get_component("credential_provider")  # reads the config files
        return resolver.get_provider(self._provider)

    async def __call__(self) -> TemporaryCredentials:
        what = f"credential_source {self._source} of profile {self._profile!r}"
        provider = await anyio.to_thread.run_sync(self._find_provider)
        creds = None
        try:
            if provider is not None:
                creds = await provider.load()
            if creds is not None:
                frozen = await creds.get_frozen_credentials()
        except Exception as exc:
            error = _aiobotocore.classify(exc, what)
            if error is exc:
                raise
            raise error from exc
        if creds is None:
            raise NoCredentialsFound(f"{what} found no credentials")
        expiry = _aiobotocore.credentials_expiry(creds)
        result = TemporaryCredentials(
            access_key=frozen.access_key,
            secret_key=frozen.secret_key,
            token=frozen.token,
            account_id=getattr(frozen, "account_id", None),
        )
        return result if expiry is None else dataclasses.replace(result, expiry_time=expiry)
