"""aiorefresh: asyncio-native, auto-refreshing AWS sessions and pooled clients.

``RefreshableSession`` is a drop-in for ``aioboto3.Session`` whose credentials renew
themselves (single-flight, never expired) and whose clients are pooled and leased.
"""

from __future__ import annotations

from .__about__ import __version__
from ._types import (
    AssumeRoleConfig,
    CredentialFetcher,
    Identity,
    STSClientConfig,
    TemporaryCredentials,
)
from .credentials import RefreshEvent, RefreshStats, compute_windows, utc_now
from .errors import (
    AiorefreshError,
    ConfigurationError,
    CredentialRefreshError,
    IoTCredentialError,
    MFAError,
    NonRecoverableCredentialError,
    PoolError,
    SessionClosedError,
    ValidationError,
)
from .pool import ClientPool, PoolStats
from .session import (
    CustomRefreshableSession,
    DefaultRefreshableSession,
    IoTRefreshableSession,
    RefreshableSession,
    SessionTokenRefreshableSession,
    STSRefreshableSession,
    WebIdentityRefreshableSession,
)

__all__ = [
    "AiorefreshError",
    "AssumeRoleConfig",
    "ClientPool",
    "ConfigurationError",
    "CredentialFetcher",
    "CredentialRefreshError",
    "CustomRefreshableSession",
    "DefaultRefreshableSession",
    "Identity",
    "IoTRefreshableSession",
    "IoTCredentialError",
    "MFAError",
    "NonRecoverableCredentialError",
    "PoolError",
    "PoolStats",
    "RefreshEvent",
    "RefreshStats",
    "RefreshableSession",
    "STSClientConfig",
    "STSRefreshableSession",
    "SessionTokenRefreshableSession",
    "WebIdentityRefreshableSession",
    "SessionClosedError",
    "TemporaryCredentials",
    "ValidationError",
    "__version__",
    "compute_windows",
    "utc_now",
]
