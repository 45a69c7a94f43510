"""Shared by the ``iot`` fetcher tests (test_iot_fetcher*.py), and loaded by conftest.py as a
plugin for its fixtures: ``server`` (an IoTCredentialsServer for the test role alias),
``sessions`` (every HTTP session a fetcher opens, each checked closed) and ``make_fetcher``;
the options of a fetcher against a server, and everything a user could see of an error."""

from __future__ import annotations

import socket
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aiorefresh._fetchers.iot import IoTCredentialFetcher, validate_iot_options
from aiorefresh.errors import IoTCredentialError
from aiorefresh.testing import FrozenClock, IoTCredentialsServer

ALIAS = "aiorefresh-test"
CREDENTIALS_HOST = "c2abcdefghijkl.credentials.iot.us-east-1.amazonaws.com"
SECRET = "wJalrXUtnFEMI-K7MDENG-SECRETSECRETSECRET"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE-TOKENTOKENTOKEN"

MakeFetcher = Callable[..., IoTCredentialFetcher]


DEVICE_KEY = "AKIADEVICEPROFILE001"


def write_device_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, endpoint_url: str | None = None
) -> str:
    """A profile ``device`` (region ap-southeast-2, its own keys, optionally an endpoint_url) in
    temporary AWS config files; the environment has no keys and no region, so only the profile
    can supply them. Returns the profile's name."""
    config = tmp_path / "config"
    endpoint = f"endpoint_url = {endpoint_url}\n" if endpoint_url is not None else ""
    config.write_text(f"[profile device]\nregion = ap-southeast-2\n{endpoint}")
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[device]\naws_access_key_id = {DEVICE_KEY}\n"
        "aws_secret_access_key = device-profile-secret\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    return "device"


@pytest.fixture
async def server(frozen_clock: FrozenClock) -> AsyncIterator[IoTCredentialsServer]:
    async with IoTCredentialsServer(role_alias=ALIAS, clock=frozen_clock) as running:
        yield running


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[aiohttp.ClientSession]]:
    """Every HTTP session a fetcher opens; each must be closed when the test ends."""
    created: list[aiohttp.ClientSession] = []
    original = IoTCredentialFetcher._new_session

    def spy(self: IoTCredentialFetcher) -> aiohttp.ClientSession:
        session = original(self)
        created.append(session)
        return session

    monkeypatch.setattr(IoTCredentialFetcher, "_new_session", spy)
    yield created
    assert all(session.closed for session in created), "an aiohttp session was left open"


def options_for(server: IoTCredentialsServer, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "endpoint": server.endpoint or CREDENTIALS_HOST,
        "role_alias": ALIAS,
        "certificate": server.client_cert_pem,
        "private_key": server.client_key_pem,
        "ca": server.ca_pem,
    }
    options.update(overrides)
    return options


@pytest.fixture
async def make_fetcher(
    server: IoTCredentialsServer, sessions: list[aiohttp.ClientSession]
) -> AsyncIterator[MakeFetcher]:
    """Build fetchers against ``server`` (options overridable); all closed at teardown."""
    made: list[IoTCredentialFetcher] = []

    def make(
        *, discover: Callable[[], Awaitable[str]] | None = None, **overrides: Any
    ) -> IoTCredentialFetcher:
        fetcher = IoTCredentialFetcher(
            validate_iot_options(**options_for(server, **overrides)), discover=discover
        )
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        await fetcher.aclose()


async def fetch_error(fetcher: IoTCredentialFetcher) -> IoTCredentialError:
    with pytest.raises(IoTCredentialError) as caught:
        await fetcher()
    return caught.value


def shown(error: BaseException, caplog: pytest.LogCaptureFixture) -> str:
    """Everything a user could see of ``error``: str, repr, the printed chain, and the logs."""
    printed = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return "\n".join([str(error), repr(error), printed, caplog.text])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
