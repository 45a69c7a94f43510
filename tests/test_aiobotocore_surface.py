"""Guards for the aiobotocore/botocore internals `_aiobotocore` relies on, on each line.

If upstream changes the shape of anything listed in PRIVATE_SURFACE, these fail loudly.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest
from aiobotocore.credentials import AioDeferredRefreshableCredentials
from aiobotocore.session import AioSession

from aiorefresh import _aiobotocore
from aiorefresh._engine import RefreshEngine
from aiorefresh.testing import CountingFetcher, FrozenClock


def _resolve(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(
    ("owner", "attribute"),
    [(owner, attr) for owner, attrs in _aiobotocore.PRIVATE_SURFACE.items() for attr in attrs],
)
def test_private_attribute_still_exists(owner: str, attribute: str) -> None:
    cls = _resolve(owner)
    if attribute.startswith("_refresh"):
        assert inspect.iscoroutinefunction(getattr(cls, attribute))
        return
    if cls is AioSession:
        instance: Any = AioSession()
    elif cls is AioDeferredRefreshableCredentials:
        instance = AioDeferredRefreshableCredentials(refresh_using=lambda: None, method="probe")
    elif cls.__name__ == "Config":
        instance = cls(max_pool_connections=3)
    else:
        resolver = AioSession().get_component("credential_provider")
        instance = resolver.get_provider("assume-role")
        assert isinstance(instance, cls)
    assert attribute in vars(instance), f"{owner}.{attribute} is gone"


def test_refusing_prompts_replaces_the_assume_role_prompter() -> None:
    session = AioSession()

    def refuse(prompt: str) -> str:
        raise RuntimeError(prompt)

    _aiobotocore.refuse_mfa_prompts(session, refuse)
    provider = session.get_component("credential_provider").get_provider("assume-role")
    assert provider._prompter is refuse


async def test_aiosession_returns_installed_credentials_without_the_chain() -> None:
    session = AioSession()
    marker = object()
    _aiobotocore.install_credentials(session, marker)
    assert await session.get_credentials() is marker


async def test_aiobotocore_accessors_read_through_the_engine(frozen_clock: FrozenClock) -> None:
    engine = RefreshEngine(CountingFetcher(frozen_clock), clock=frozen_clock)
    creds = _aiobotocore.EngineCredentials(engine, "aiorefresh-test")
    assert await creds.get_access_key() == "ASIATEST000001"
    assert await creds.get_secret_key() == "secret-1"
    assert await creds.get_token() == "token-1"
    frozen = await creds.get_frozen_credentials()
    assert (frozen.access_key, frozen.token) == ("ASIATEST000001", "token-1")


def test_read_only_credentials_take_an_account_id() -> None:
    from botocore.credentials import ReadOnlyCredentials

    assert "account_id" in ReadOnlyCredentials._fields


def test_request_signer_reads_frozen_credentials_asynchronously() -> None:
    from aiobotocore.signers import AioRequestSigner

    source = inspect.getsource(AioRequestSigner)
    assert "await credentials.get_frozen_credentials()" in source.replace(
        "self._credentials", "credentials"
    )


def test_credential_expiry_is_read_from_botocore_credentials(frozen_clock: FrozenClock) -> None:
    creds = AioDeferredRefreshableCredentials(refresh_using=lambda: None, method="probe")
    creds._expiry_time = frozen_clock()
    assert _aiobotocore.credentials_expiry(creds) == frozen_clock()
