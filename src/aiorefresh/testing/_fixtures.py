"""The pytest fixtures and the small helpers behind them."""

from __future__ import annotations

import asyncio
import os
import threading
import warnings
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from .._loops import ShutdownHandle, on_loop_shutdown, running_loop
from .._types import TemporaryCredentials
from ..errors import AiorefreshError, ConfigurationError
from ._iot import IoTCredentialsServer
from ._moto import MotoServer
from ._sts import STSStandIn

if TYPE_CHECKING:
    from .._session import RefreshableSession

__all__ = [
    "AWS_TEST_ENV",
    "CountingFetcher",
    "FrozenClock",
    "MotoServer",
    "RefreshableSessionFactory",
    "aws_env",
    "counting_fetcher",
    "frozen_clock",
    "iot_server",
    "moto_server",
    "refreshable_session",
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


# -- refreshable_session ------------------------------------------------------------------------

_STS_METHODS = frozenset({"sts", "session_token", "web_identity"})
"""The methods with a private STS client (``sts_client_kwargs``)."""

_CLOSE_TIMEOUT = 60.0
"""Seconds the fixture waits for a session to close on a loop running in another thread."""


class RefreshableSessionFactory(Protocol):
    """What the ``refreshable_session`` fixture gives: call it like ``RefreshableSession``."""

    def __call__(self, **options: Any) -> RefreshableSession:
        """A `RefreshableSession` of these options, pointed at ``moto_server``."""
        ...


class _SessionFactory:
    """Builds sessions pointed at one endpoint and closes them when the test ends."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self._made: list[tuple[RefreshableSession, asyncio.AbstractEventLoop, _Closer]] = []

    def __call__(self, **options: Any) -> RefreshableSession:
        from .._session import RefreshableSession

        loop = running_loop("the refreshable_session fixture")
        session = RefreshableSession(**self._pointed(options))
        closer = _Closer(session, loop)
        self._made.append((session, loop, closer))
        return session

    def _pointed(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` with the endpoint filled in wherever the test did not give one."""
        endpoint = {"endpoint_url": self.endpoint_url}
        options["default_client_kwargs"] = _with_defaults(
            options.get("default_client_kwargs"), endpoint
        )
        method = _method_of(options)
        if method in _STS_METHODS:
            options["sts_client_kwargs"] = _with_defaults(
                options.get("sts_client_kwargs"), endpoint
            )
        elif method == "iot" and options.get("endpoint") is None:
            raise ConfigurationError(
                "refreshable_session(method='iot') needs endpoint= (the iot_server fixture's "
                "endpoint): discovering it would ask AWS's own IoT endpoint"
            )
        return options

    def close_all(self) -> None:
        """Close every session made, last first, on the loop it was made on."""
        made, self._made = self._made, []
        for session, loop, closer in reversed(made):
            closer.close(session, loop)

    def __repr__(self) -> str:
        return f"<refreshable_session sessions={len(self._made)} endpoint={self.endpoint_url}>"


class _Closer:
    """Closes one session: on its loop's shutdown, or at the end of the test if that is sooner."""

    def __init__(self, session: RefreshableSession, loop: asyncio.AbstractEventLoop) -> None:
        self.ran = False

        async def at_shutdown() -> None:
            self.ran = True
            await session.aclose()

        self._handle: ShutdownHandle = on_loop_shutdown(at_shutdown, loop)

    def close(self, session: RefreshableSession, loop: asyncio.AbstractEventLoop) -> None:
        if loop.is_closed():
            if not self.ran:
                warnings.warn(
                    f"refreshable_session could not close {session!r}: its event loop was "
                    "closed without cancelling its tasks first (asyncio.run, asyncio.Runner "
                    "and the pytest plugins do that)",
                    ResourceWarning,
                    stacklevel=2,
                )
            return
        self._handle.cancel()
        if loop.is_running():  # in another thread: this one is in a fixture's teardown
            future = asyncio.run_coroutine_threadsafe(session.aclose(), loop)
            future.result(_CLOSE_TIMEOUT)
        else:
            loop.run_until_complete(session.aclose())


def _with_defaults(given: object, defaults: Mapping[str, Any]) -> object:
    """``given`` client options over ``defaults``; anything but a mapping is left to the
    session's own checks."""
    if given is None:
        return dict(defaults)
    if not isinstance(given, Mapping):
        return given
    return {**defaults, **given}


def _method_of(options: Mapping[str, Any]) -> str | None:
    """The credential method ``options`` select (``None``: a ``fetcher=``, or no valid one)."""
    from .._methods import OPTION_DEFAULTS, choose_method, given_options

    if options.get("fetcher") is not None:
        return None
    given = given_options({k: v for k, v in options.items() if k in OPTION_DEFAULTS})
    try:
        return choose_method(options.get("method"), given).name
    except AiorefreshError:
        return None  # the session raises the same error, naming the parameter


@pytest.fixture
def refreshable_session(
    aws_env: Mapping[str, str], moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RefreshableSessionFactory]:
    """A factory of sessions pointed at ``moto_server``, each closed when the test ends.

    ``async with refreshable_session(method="sts", assume_role_kwargs=...) as session:``
    takes `RefreshableSession`'s keywords. The private STS client (``sts_client_kwargs``),
    ``whoami()`` and every pooled client (``default_client_kwargs``) use moto's endpoint
    unless the test gives its own, and ``AWS_ENDPOINT_URL`` points any other client at moto
    too, so nothing reaches AWS by omission. The environment is `aws_env`'s. Call it from
    the test's event loop: whether the test used ``async with`` or not, passed or failed,
    each session is closed on that loop when the test ends (or when the loop shuts down, if
    that comes first). moto stamps credentials with the real time: give STS sessions the
    default clock or a `FrozenClock` started at ``utc_now()``.
    """
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    factory = _SessionFactory(moto_server.endpoint_url)
    try:
        yield factory
    finally:
        factory.close_all()
