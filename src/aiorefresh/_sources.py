"""A session's source credentials: what method ``default`` reads and STS methods sign with.

`Sources` holds copies of what the session was given (explicit keys, an adopted session's
credentials, the profile and region, the refresh options) and nothing of the session itself:
the fetchers and engines it makes end up under the session's clients, which its pool's
finalizer reaches, so a reference back to the session would keep a session dropped without
``aclose()`` alive (and its pooled clients open) until its event loop shuts down.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiobotocore.session import AioSession

from . import _aiobotocore, _profiles
from ._fetchers.chain import ChainFetcher, StaticFetcher
from ._types import CredentialCache, CredentialFetcher
from .errors import ConfigurationError, NonRecoverableMFAError

if TYPE_CHECKING:
    from ._engine import RefreshEngine
    from ._options import RefreshOptions

__all__ = ["Sources", "refuse_prompt"]


class Sources:
    """Makes the session's source fetcher, and the one engine over it (on first use)."""

    __slots__ = (
        "_adopted",
        "_aiosession",
        "_cache",
        "_engine",
        "_keys",
        "_owned",
        "_profile",
        "_refresh",
        "_region",
        "_sts_kwargs",
    )

    def __init__(
        self,
        aiosession: AioSession,
        *,
        adopted: _aiobotocore.AdoptedSession | None,
        profile_name: str | None,
        region_name: str | None,
        keys: tuple[str, str, str | None, str | None] | None,
        refresh: RefreshOptions,
        owned_engines: list[RefreshEngine],
        credential_cache: CredentialCache | None,
        method_options: Mapping[str, Any],
    ) -> None:
        self._aiosession = aiosession
        self._adopted = adopted.original_credentials if adopted is not None else None
        self._profile, self._region = profile_name, region_name
        self._keys = keys
        self._refresh = refresh
        self._owned = owned_engines  # the session's list: it closes them
        self._cache = credential_cache
        self._engine: RefreshEngine | None = None
        self._sts_kwargs = method_options.get("sts_client_kwargs")  # the method's, if any

    @property
    def profile_name(self) -> str:
        """The profile the session reads configuration from (as the session's property)."""
        return self._profile or self._aiosession.profile or "default"

    def fetcher(
        self,
        *,
        mfa_token_provider: Any = None,
        mfa_token_provider_kwargs: Mapping[str, Any] | None = None,
        sts_client_kwargs: Mapping[str, Any] | None = None,
        refuse_unused: bool = True,
    ) -> CredentialFetcher:
        """The explicit keys, the adopted session's credentials, a role profile's chain of
        aiorefresh fetchers (its ``mfa_serial`` answered by ``mfa_token_provider``, its STS
        clients configured by ``sts_client_kwargs``; refused for another source unless
        ``refuse_unused`` is false), or the default chain."""
        adopted, profile, region = self._adopted, self._profile, self._region
        role = None
        if self._keys is None and adopted is None:
            role = _profiles.load_role_profile(
                self._aiosession, self.profile_name, explicit=profile is not None
            )
        if role is not None:
            return _profiles.build_role_fetcher(
                role,
                refresh=self._refresh,
                owned_engines=self._owned,
                credential_cache=self._cache,
                region_name=region,
                profile_name=profile,
                mfa_token_provider=mfa_token_provider,
                mfa_token_provider_kwargs=mfa_token_provider_kwargs,
                sts_client_kwargs=sts_client_kwargs,
            )
        if mfa_token_provider is not None or mfa_token_provider_kwargs is not None:
            raise _profiles.unused_mfa_provider(self.profile_name)
        if sts_client_kwargs is not None and refuse_unused:
            raise ConfigurationError(
                f"sts_client_kwargs is used by method 'default' only for a role profile, and "
                f"profile {self.profile_name!r} has no role_arn"
            )
        if self._keys is not None:
            return StaticFetcher(*self._keys)
        # Values only (no self): the chain fetcher lives under the session's clients.
        refuse = functools.partial(refuse_prompt, self.profile_name)

        def chain_session() -> AioSession:
            session = _aiobotocore.new_session(profile_name=profile, region_name=region)
            if adopted is not None:
                _aiobotocore.install_credentials(session, adopted)
            else:
                _aiobotocore.refuse_mfa_prompts(session, refuse)
            return session

        return ChainFetcher(chain_session)

    def engine(self) -> RefreshEngine:
        """The engine over the source fetcher, made on first call; the session closes it."""
        if self._engine is None:
            # A role profile under an STS method: its links use the method's STS endpoint too.
            sts_kwargs = self._sts_kwargs
            if isinstance(sts_kwargs, Mapping):
                sts_kwargs = {k: v for k, v in sts_kwargs.items() if not k.startswith("aws_")}
            fetcher = self.fetcher(sts_client_kwargs=sts_kwargs or None, refuse_unused=False)
            self._engine = self._refresh.engine(fetcher, name="source credentials", notify=False)
            self._owned.append(self._engine)
        return self._engine


def refuse_prompt(profile_name: str, prompt: str) -> str:
    """What the chain calls instead of its blocking MFA prompt: refuse, naming the profile."""
    raise NonRecoverableMFAError(
        f"profile {profile_name!r} asks for an MFA code ({prompt.strip().rstrip(':')}); "
        "aiorefresh never blocks the event loop on a prompt: pass mfa_token_provider= "
        "(a command or coroutine that returns the code)"
    )
