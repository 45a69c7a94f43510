"""The pytest fixtures and the small helpers behind them."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from .._types import TemporaryCredentials

__all__ = [
    "AWS_TEST_ENV",
    "CountingFetcher",
    "FrozenClock",
    "MotoServer",
    "aws_env",
    "counting_fetcher",
    "frozen_clock",
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

try:  # pytest-asyncio in strict mode needs its own decorator for async fixtures
    import pytest_asyncio

    _async_fixture: Any = pytest_asyncio.fixture
except ImportError:  # pragma: no cover - auto-mode runners (anyio's plugin) take plain fixtures
    _async_fixture = pytest.fixture

_CLEARED = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE")


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


class MotoServer:
    """moto's threaded server on a free loopback port.

    moto's in-process ``mock_aws`` does not work with aiobotocore; its server does.
    """

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint_url = ""

    def start(self) -> MotoServer:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def reset(self) -> None:
        """Forget every resource moto holds (``POST /moto-api/reset``)."""
        import urllib.request

        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Mapping[str, str]:
    """Fake AWS keys and region in the environment, no config files; restored afterwards."""
    for name in _CLEARED:
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


@_async_fixture  # type: ignore[untyped-decorator,unused-ignore]
async def sts_standin(frozen_clock: FrozenClock) -> AsyncIterator[Any]:
    """A running ``STSStandIn`` on ``frozen_clock``: script faults, count calls."""
    from ._sts import STSStandIn

    async with STSStandIn(clock=frozen_clock) as server:
        yield server


@pytest.fixture
def counting_fetcher(frozen_clock: FrozenClock) -> CountingFetcher:
    """A custom fetcher on ``frozen_clock`` issuing one-hour credentials and counting calls."""
    return CountingFetcher(frozen_clock)
