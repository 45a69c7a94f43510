"""The adapter: the one package that knows aiobotocore's and botocore's shapes.

Credentials objects (`_credentials`), sessions (`_sessions`), what botocore loads, shared once
per process and loaded off the event loop (`_loaders`), client open/close and the private STS
client (`_clients`), the IoT ``DescribeEndpoint`` call of endpoint discovery (`_discovery`), the
ExpiredToken hook (`_retry`: event names, handler arguments, response tuples), ``Config``
comparison and merging (`_config`) and the classification of botocore errors (`_errors`). Each
private name used is listed in ``PRIVATE_SURFACE`` and checked by
``tests/test_aiobotocore_surface.py`` on both aiobotocore lines, so an upstream change of shape
fails loudly in CI instead of silently in production.
"""

from __future__ import annotations

from ._clients import (
    POOLED_MAX_CONNECTIONS,
    ClientOpener,
    PrivateClient,
    close_client,
    open_client,
    pooled_config,
    unsigned_config,
)
from ._config import config_key, detached_config, merge_configs
from ._credentials import (
    EngineCredentials,
    credentials_expiry,
    freeze,
    install_credentials,
    refuse_mfa_prompts,
    session_credentials,
)
from ._discovery import DiscoveryFailure, DiscoveryKind, describe_credentials_endpoint
from ._errors import CLASSIFICATION, NON_RECOVERABLE_CODES, classify, client_error_code
from ._loaders import build_off_loop, shared_loader, warm_service
from ._retry import EXPIRED_TOKEN_CODES, NEEDS_RETRY, REQUEST_CREATED, ExpiredTokenRetry, error_code
from ._sessions import AdoptedSession, adoption_of, engine_session, is_session, new_session

__all__ = [
    "CLASSIFICATION",
    "EXPIRED_TOKEN_CODES",
    "NEEDS_RETRY",
    "NON_RECOVERABLE_CODES",
    "POOLED_MAX_CONNECTIONS",
    "PRIVATE_SURFACE",
    "REQUEST_CREATED",
    "AdoptedSession",
    "ClientOpener",
    "DiscoveryFailure",
    "DiscoveryKind",
    "EngineCredentials",
    "ExpiredTokenRetry",
    "PrivateClient",
    "adoption_of",
    "build_off_loop",
    "classify",
    "client_error_code",
    "close_client",
    "config_key",
    "credentials_expiry",
    "describe_credentials_endpoint",
    "detached_config",
    "engine_session",
    "error_code",
    "freeze",
    "install_credentials",
    "is_session",
    "merge_configs",
    "new_session",
    "open_client",
    "pooled_config",
    "refuse_mfa_prompts",
    "session_credentials",
    "shared_loader",
    "unsigned_config",
    "warm_service",
]

PRIVATE_SURFACE: dict[str, tuple[str, ...]] = {
    # AioSession.get_credentials() returns _credentials when it is set, else runs the chain;
    # new sessions share loaded data through lazy registrations in the component locators.
    "aiobotocore.session.AioSession": ("_credentials", "_components", "_internal_components"),
    # The assume-role provider of the chain asks its _prompter (getpass by default) for MFA codes.
    "aiobotocore.credentials.AioAssumeRoleProvider": ("_prompter",),
    # The deferred credentials keep these fields; get_access_key() etc. read them after _refresh().
    "aiobotocore.credentials.AioDeferredRefreshableCredentials": (
        "_refresh",
        "_access_key",
        "_secret_key",
        "_token",
        "_account_id",
        "_expiry_time",
        "_frozen_credentials",
    ),
    # Which options a Config was given explicitly (so a pooled client's default can yield).
    "botocore.config.Config": ("_user_provided_options",),
    # What aioboto3 adds to an adopted session, undone at release (`AdoptedSession.undoably`):
    # handlers already registered (not registered twice), a unique id already taken (not ours
    # to remove), cached resource models.
    "botocore.hooks.EventAliaser": ("_emitter",),
    "botocore.hooks.HierarchicalEmitter": ("_handlers", "_unique_id_handlers"),
    "botocore.loaders.Loader": ("_cache",),
}
