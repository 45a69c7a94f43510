"""The pytest fixtures and the small helpers behind them."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from .._types import TemporaryCredentials
from ._iot import IoTCredentialsServer
from ._moto import MotoServer
from ._sts import STSStandIn

__all__ = [
    "AWS_TEST_ENV",
    "CountingFetcher",
    "FrozenClock",
    "MotoServer",
    "aws_env",
    "counting_fetcher",
    "frozen_clock",
    "iot_server",
    "moto_server",
    "sts_standin",
]

AWS_TEST_ENV: Mapping[str, str] = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
"""Fake keys and region, and no config files or instance metadata: nothing reaches AWS."""

_REMOVED_PREFIX = "AWS_"
"""``aws_env`` removes every variable with this prefix before setting `AWS_TEST_ENV`."""


class FrozenClock:
    """A clock that stands still until advanced: pass it as ``clock=`` to jump time in tests."""

    def __init__(self, start: datetime | None = None) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("FrozenClock start must be timezone-aware")
        self._now = start or datetime(2030, 1, 1, tzinfo=timezone.utc)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        return self._now

    def advance(self, seconds: float = 0.0, **delta: float) -> datetime:
        """Move forward by ``seconds`` (and/or ``timedelta`` keywords); returns the new now."""
        with self._lock:
            self._now += timedelta(seconds=seconds, **delta)
            return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (an aware datetime)."""
        if when.tzinfo is None:
            raise ValueError("FrozenClock.set needs a timezone-aware datetime")
        with self._lock:
            self._now = when

    def __repr__(self) -> str:
        return f"FrozenClock({self._now.isoformat()})"


class CountingFetcher:
    """A custom credentials method that counts its calls and issues ``lifetime``-long keys.

    Each call returns new keys (``ASIATEST000001`` ...) expiring ``lifetime`` after
    ``clock()``. ``fail_with`` makes the next calls raise; ``gate`` (an event) makes calls
    wait for it, so a test can hold a refresh in flight.
    """

    def __init__(
        self,
        clock: FrozenClock | None = None,
        *,
        lifetime: timedelta = timedelta(hours=1),
        account_id: str | None = "123456789012",
    ) -> None:
        self.clock = clock or FrozenClock()
        self.lifetime = lifetime
        self.account_id = account_id
        self.calls = 0
        self.fail_with: BaseException | None = None
        self.gate: Any = None  # an asyncio.Event or anyio.Event when set

    async def __call__(self) -> TemporaryCredentials:
        self.calls += 1
        number = self.calls
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return TemporaryCredentials(
            access_key=f"ASIATEST{number:06d}",
            secret_key=f"secret-{number}",
            token=f"token-{number}",
            expiry_time=self.clock() + self.lifetime,
            account_id=self.account_id,
        )


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Mapping[str, str]:
    """Fake AWS keys and region, nothing else from ``AWS_*``; the environment comes back after.

    Every ``AWS_*`` variable goes first, since any of them can reach a real account or
    endpoint: ``AWS_PROFILE``, session tokens, ``AWS_ROLE_ARN`` and
    ``AWS_WEB_IDENTITY_TOKEN_FILE``, ``AWS_CONTAINER_CREDENTIALS_*`` and
    ``AWS_CONTAINER_AUTHORIZATION_TOKEN*``, ``AWS_ENDPOINT_URL`` and every
    ``AWS_ENDPOINT_URL_<SERVICE>``, ``AWS_CREDENTIAL_EXPIRATION``, ``AWS_ACCOUNT_ID``, the
    instance metadata endpoint, FIPS/dual-stack switches. Then `AWS_TEST_ENV` is set: fake
    keys, ``us-east-1``, no config or credentials files, no instance metadata.
    """
    for name in [name for name in os.environ if name.upper().startswith(_REMOVED_PREFIX)]:
        monkeypatch.delenv(name, raising=False)
    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    return AWS_TEST_ENV


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto server for the test session; use ``endpoint_url`` (and ``reset()`` if needed)."""
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def frozen_clock() -> FrozenClock:
    """A clock standing at 2030-01-01T00:00Z until the test advances it."""
    return FrozenClock()


@pytest.fixture
def sts_standin(frozen_clock: FrozenClock) -> Iterator[STSStandIn]:
    """A running ``STSStandIn`` on ``frozen_clock``: script faults, count calls.

    It serves from its own event loop in a thread, so it answers tests on any runner
    (pytest-asyncio with any loop scope, anyio's plugin) and sync tests alike.
    """
    with STSStandIn(clock=frozen_clock).serve_in_thread() as server:
        yield server


@pytest.fixture
def iot_server(frozen_clock: FrozenClock) -> Iterator[IoTCredentialsServer]:
    """A running ``IoTCredentialsServer`` on ``frozen_clock`` (role alias ``aiorefresh-test``).

    Served from its own event loop in a thread, like ``sts_standin``.
    """
    with IoTCredentialsServer(clock=frozen_clock).serve_in_thread() as server:
        yield server


@pytest.fixture
def counting_fetcher(frozen_clock: FrozenClock) -> CountingFetcher:
    """A custom fetcher on ``frozen_clock`` issuing one-hour credentials and counting calls."""
    return CountingFetcher(frozen_clock)
