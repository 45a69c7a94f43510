"""Role chaining: a child session whose source is its parent's refreshing credentials.

A child is an ordinary session over an `AssumeRoleFetcher` whose source is the parent's
engine; it inherits the parent's refresh and pool options, region and profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from ._types import CredentialFetcher, STSClientConfig
from .mfa import MFATokenProviderLike

if TYPE_CHECKING:
    from ._session import RefreshableSession

__all__ = ["ChainingCalls"]


class ChainingCalls:
    """`assume_role` and the child constructor; mixed into `RefreshableSession`."""

    async def assume_role(
        self,
        RoleArn: str,
        *,
        sts_client_kwargs: STSClientConfig | Mapping[str, Any] | None = None,
        mfa_token_provider: MFATokenProviderLike | None = None,
        mfa_token_provider_kwargs: Mapping[str, Any] | None = None,
        **assume_role_kwargs: Any,
    ) -> RefreshableSession:
        """A session for ``RoleArn`` whose source is this session's refreshing credentials.

        Chains (A -> B -> C) keep renewing for as long as the process lives; AWS caps a chained
        session at one hour, so a longer ``DurationSeconds`` is capped with a warning. The
        child inherits the refresh and pool options; closing this session closes the child.
        """
        from ._fetchers.sts import AssumeRoleFetcher, cap_chained_duration, shared_mfa_provider

        parent = cast("RefreshableSession", self)
        parent._check_open()
        params = {"RoleArn": RoleArn, **assume_role_kwargs}
        # Made once, here: an MFATokenProvider given (a fleet's, shared by its children) is
        # used as it is, so one reuse guard sees every code of the device.
        provider = shared_mfa_provider(
            params, mfa_token_provider, mfa_token_provider_kwargs, clock=parent._refresh.clock
        )
        if sts_client_kwargs is None:
            inherited = getattr(parent._fetcher, "client_kwargs", None) or {}
            sts_client_kwargs = {
                k: v for k, v in inherited.items() if not k.startswith("aws_")
            } or None
        fetcher = AssumeRoleFetcher(
            params,
            source=parent._engine,
            client_kwargs=_with_region(sts_client_kwargs, parent._explicit_region),
            mfa_token_provider=provider,
            clock=parent._refresh.clock,
            profile_name=parent._profile_name,
            credential_cache=parent._credential_cache,
        )
        cap_chained_duration(fetcher.params)
        child = type(parent)._child(parent, fetcher)
        parent._children.add(child)
        return child

    @classmethod
    def _child(cls, parent: RefreshableSession, fetcher: CredentialFetcher) -> RefreshableSession:
        """A session over ``fetcher`` with the parent's options, region and profile."""
        refresh, pool = parent._refresh, parent._pool_options
        child = cast("type[RefreshableSession]", cls)(
            fetcher=fetcher,
            region_name=parent._explicit_region or parent.region_name,
            profile_name=parent._profile_name,
            advisory_timeout=refresh.advisory_timeout,
            mandatory_timeout=refresh.mandatory_timeout,
            refresh_jitter=refresh.refresh_jitter,
            refresh_timeout=refresh.refresh_timeout,
            retry_on_expired_token=refresh.retry_on_expired_token,
            clock=refresh.clock,
            on_refresh=refresh.on_refresh,
            max_clients=pool.max_clients,
            eviction_policy=pool.eviction_policy,
            idle_timeout=pool.idle_timeout,
            close_timeout=pool.close_timeout,
            default_client_kwargs=pool.default_client_kwargs,
        )
        child._parent = parent
        return child


def _with_region(kwargs: Mapping[str, Any] | None, region: str | None) -> dict[str, Any]:
    result = dict(kwargs or {})
    if region is not None:
        result.setdefault("region_name", region)
    return result
