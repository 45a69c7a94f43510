"""aiorefresh: asyncio-native, auto-refreshing AWS sessions and pooled clients.

``RefreshableSession`` is a drop-in for ``aioboto3.Session`` whose credentials renew
themselves (single-flight, never expired) and whose clients are pooled and leased. This module
is the whole public surface, with the public modules ``aiorefresh.errors``, ``aiorefresh.mfa``
and ``aiorefresh.testing``; every other module is private.
"""

from __future__ import annotations

import contextlib

from .__about__ import __version__
from ._cache import JSONFileCache, MemoryCache
from ._clients import ClientFactory, ClientPool, PoolStats
from ._engine import RefreshEvent, RefreshStats
from ._fetchers.chain import ChainFetcher, StaticFetcher
from ._fetchers.custom import CustomFetcher
from ._fetchers.iot import IoTConfig, IoTCredentialFetcher, PEMSource, validate_iot_options
from ._fetchers.sts import AssumeRoleFetcher, SessionTokenFetcher, WebIdentityFetcher
from ._fleet import FleetStats, SessionFleet
from ._options import EvictionPolicy
from ._session import RefreshableSession
from ._types import (
    AssumeRoleConfig,
    Clock,
    CredentialCache,
    CredentialFetcher,
    Identity,
    STSClientConfig,
    TemporaryCredentials,
)
from ._util import utc_now
from .errors import (
    AiorefreshError,
    ConfigurationError,
    CredentialRefreshError,
    IoTCredentialError,
    MFAError,
    NoCredentialsFound,
    NonRecoverableCredentialError,
    NonRecoverableIoTError,
    NonRecoverableMFAError,
    PoolError,
    SessionClosedError,
    ValidationError,
)
from .mfa import make_mfa_provider

__all__ = [
    "AiorefreshError",
    "AssumeRoleConfig",
    "AssumeRoleFetcher",
    "ChainFetcher",
    "ClientFactory",
    "ClientPool",
    "Clock",
    "ConfigurationError",
    "CredentialCache",
    "CredentialFetcher",
    "CredentialRefreshError",
    "CustomFetcher",
    "EvictionPolicy",
    "FleetStats",
    "Identity",
    "IoTConfig",
    "IoTCredentialError",
    "IoTCredentialFetcher",
    "JSONFileCache",
    "MFAError",
    "MemoryCache",
    "NoCredentialsFound",
    "NonRecoverableCredentialError",
    "NonRecoverableIoTError",
    "NonRecoverableMFAError",
    "PEMSource",
    "PoolError",
    "PoolStats",
    "RefreshEvent",
    "RefreshStats",
    "RefreshableSession",
    "STSClientConfig",
    "SessionClosedError",
    "SessionFleet",
    "SessionTokenFetcher",
    "StaticFetcher",
    "TemporaryCredentials",
    "ValidationError",
    "WebIdentityFetcher",
    "__version__",
    "make_mfa_provider",
    "utc_now",
    "validate_iot_options",
]


def _publish() -> None:
    """Make reprs, tracebacks and docs say ``aiorefresh.X`` for names of private modules."""
    public_modules = (__name__, f"{__name__}.errors", f"{__name__}.mfa", f"{__name__}.testing")
    for name in __all__:
        value = globals()[name]
        module = str(getattr(value, "__module__", ""))
        if module.startswith(f"{__name__}.") and module not in public_modules:
            with contextlib.suppress(AttributeError, TypeError):  # aliases such as Clock
                value.__module__ = __name__


_publish()
