"""Client options are typed, keyed and handed back exactly (issues 8 #7, 9, 10 #7).

Per-call ``session.client(...)`` arguments get the checks ``default_client_kwargs`` gets, once
per distinct call (then memoised); explicit keys come whole, never mixed with the defaults';
a Config's explicitly set ``max_pool_connections`` is part of its client's key; a str
``verify`` is a CA bundle path, read by botocore at the first request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from botocore.config import Config
from botocore.exceptions import HTTPClientError

from aiorefresh import ClientPool, RefreshableSession
from aiorefresh import _client_key as client_key
from aiorefresh._aiobotocore import POOLED_MAX_CONNECTIONS
from aiorefresh.errors import AiorefreshError, ConfigurationError, ValidationError
from aiorefresh.testing import MotoServer

try:
    import aioboto3
except ImportError:  # line B: aiobotocore 3.x, no aioboto3
    aioboto3 = None

KEY_ID = "AKIAEXAMPLECLIENTOPT"
SECRET_KEY = "s3cr3t/ClientOptions+SecretAccessKey000000"
SESSION_TOKEN = "FwoGZXIvYXdzEClientOptionsSessionToken/////"
SECRETS = (SECRET_KEY, SESSION_TOKEN)


class Factory:
    """A client factory whose clients are the kwargs they were made with."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def create(self, kind: str, kwargs: dict[str, Any]) -> Any:
        self.calls.append(dict(kwargs))
        return object()

    async def close(self, kind: str, client: Any) -> None:
        return None


@pytest.fixture
def session(aws_env: Any, moto_server: MotoServer) -> RefreshableSession:
    return RefreshableSession(default_client_kwargs={"endpoint_url": moto_server.endpoint_url})


def _no_secret_in(error: BaseException) -> None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = f"{current} {current.args!r}"
        assert not [secret for secret in SECRETS if secret in text], text
        current = current.__cause__ or current.__context__


# -- per-call arguments: typed errors naming the argument --------------------------------------

BAD_CALLS = [
    pytest.param({"region_name": 5}, ValidationError, "region_name", id="region_name=5"),
    pytest.param({"endpoint_url": 5}, ValidationError, "endpoint_url", id="endpoint_url=5"),
    pytest.param(
        {"endpoint_url": "ftp://127.0.0.1:1"},
        ConfigurationError,
        "endpoint_url",
        id="endpoint_url=ftp",
    ),
    pytest.param({"config": "x"}, ValidationError, "config", id="config=x"),
    pytest.param({"config": {"retries": 1}}, ValidationError, "config", id="config=dict"),
    pytest.param({"api_version": 2006}, ValidationError, "api_version", id="api_version=int"),
    pytest.param({"use_ssl": "yes"}, ValidationError, "use_ssl", id="use_ssl=yes"),
    pytest.param({"use_ssl": None}, ValidationError, "use_ssl", id="use_ssl=None"),
    pytest.param({"verify": ["ca.pem"]}, ValidationError, "verify", id="verify=list"),
    pytest.param({"aws_account_id": 1234}, ValidationError, "aws_account_id", id="account=int"),
    pytest.param(
        {"aws_access_key_id": KEY_ID, "aws_secret_access_key": 5},
        ValidationError,
        "aws_secret_access_key",
        id="secret=5",
    ),
    pytest.param(
        {"aws_session_token": SESSION_TOKEN},
        ConfigurationError,
        "aws_session_token",
        id="token-only",
    ),
    pytest.param(
        {"aws_secret_access_key": SECRET_KEY, "aws_session_token": SESSION_TOKEN},
        ConfigurationError,
        "aws_access_key_id",
        id="secret-and-token",
    ),
    pytest.param(
        {"aws_access_key_id": KEY_ID}, ConfigurationError, "aws_secret_access_key", id="key-only"
    ),
]


@pytest.mark.parametrize(("bad", "expected", "name"), BAD_CALLS)
async def test_a_bad_client_argument_is_a_typed_error_naming_it(
    session: RefreshableSession, bad: dict[str, Any], expected: type[AiorefreshError], name: str
) -> None:
    async with session:
        with pytest.raises(AiorefreshError) as caught:
            async with session.client("s3", **bad):
                raise AssertionError("a client was leased")
        assert type(caught.value) is expected, f"{type(caught.value).__name__}: {caught.value}"
        assert name in str(caught.value)
        assert "client('s3')" in str(caught.value)
        _no_secret_in(caught.value)
        with pytest.raises(expected, match=name):
            await session.get_client("s3", **bad)
        assert session.pool.stats().size == 0


@pytest.mark.skipif(aioboto3 is None, reason="resources need aioboto3 (line A)")
@pytest.mark.parametrize(("bad", "expected", "name"), BAD_CALLS[:4])
async def test_a_bad_resource_argument_is_a_typed_error_naming_it(
    session: RefreshableSession, bad: dict[str, Any], expected: type[AiorefreshError], name: str
) -> None:
    async with session:
        with pytest.raises(expected, match=rf"resource\('s3'\): {name}"):
            session.resource("s3", **bad)


async def test_the_call_is_refused_before_any_client_is_made() -> None:
    factory = Factory()
    pool = ClientPool(factory)
    with pytest.raises(ValidationError, match="region_name must be a str, got int"):
        pool.lease("s3", region_name=5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="aws_session_token needs aws_access_key_id"):
        pool.lease("s3", aws_session_token=SESSION_TOKEN)
    assert factory.calls == []
    await pool.aclose()


async def test_arguments_are_checked_once_per_distinct_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check runs when a key is first built; the memoised hit path does not repeat it."""
    checked: list[str] = []
    real: Callable[..., None] = client_key.check_client_values

    def counting(values: Any, where: str, field: Any) -> None:
        checked.append(where)
        real(values, where, field)

    monkeypatch.setattr(client_key, "check_client_values", counting)
    pool = ClientPool(Factory(), default_region="eu-west-1")
    config = Config(read_timeout=3)  # (a new Config object is a new call: checked again)
    for _ in range(3):
        async with pool.lease("s3", config=config):
            pass
        async with pool.lease("s3", "eu-west-1", endpoint_url="http://127.0.0.1:1"):
            pass
    assert len(checked) == 2
    await pool.aclose()


# -- explicit keys come whole --------------------------------------------------------------------


async def test_a_calls_keys_are_not_mixed_with_the_defaults_token() -> None:
    factory = Factory()
    defaults = {
        "aws_access_key_id": "AKIADEFAULTKEYID0000",
        "aws_secret_access_key": "default-secret",
        "aws_session_token": SESSION_TOKEN,
    }
    pool = ClientPool(factory, default_client_kwargs=defaults)
    async with pool.lease("s3", aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET_KEY):
        pass
    async with pool.lease("s3"):
        pass
    ours, theirs = factory.calls
    assert (ours["aws_access_key_id"], ours["aws_secret_access_key"]) == (KEY_ID, SECRET_KEY)
    assert ours["aws_session_token"] is None
    assert [theirs[name] for name in defaults] == list(defaults.values())
    await pool.aclose()


def test_default_client_kwargs_keys_of_a_pool_come_whole() -> None:
    with pytest.raises(ConfigurationError, match="default_client_kwargs: aws_session_token"):
        ClientPool(Factory(), default_client_kwargs={"aws_session_token": SESSION_TOKEN})


# -- Config() and Config(max_pool_connections=10) are different clients ---------------------------


@pytest.mark.parametrize("chosen_first", [False, True], ids=["unset-first", "chosen-first"])
@pytest.mark.parametrize("config_class", [Config, AioConfig])
async def test_an_explicit_max_pool_connections_gets_its_own_client(
    session: RefreshableSession, chosen_first: bool, config_class: type[Config]
) -> None:
    """``Config()`` has botocore's 10 connections too, but a pooled client raises an unset
    count to 50: each gets its own client and count, whichever comes first."""
    expected = {"unset": POOLED_MAX_CONNECTIONS, "chosen": 10}
    configs = {"unset": config_class(), "chosen": config_class(max_pool_connections=10)}
    order = ["chosen", "unset"] if chosen_first else ["unset", "chosen"]
    async with session:
        clients = {}
        for name in order:
            async with session.client("s3", config=configs[name]) as client:
                await client.list_buckets()
                clients[name] = client
        assert clients["unset"] is not clients["chosen"]
        for name, client in clients.items():
            assert client.meta.config.max_pool_connections == expected[name], name
            # ... and the HTTP session's connection limit (aiobotocore's own field).
            assert client._endpoint.http_session._max_pool_connections == expected[name], name
        # Equal configs still share: a new Config() meets the first one's client.
        async with session.client("s3", config=config_class()) as again:
            assert again is clients["unset"]


async def test_merged_configs_keep_whether_max_pool_connections_was_chosen(
    aws_env: Any, moto_server: MotoServer
) -> None:
    session = RefreshableSession(
        default_client_kwargs={
            "endpoint_url": moto_server.endpoint_url,
            "config": Config(max_pool_connections=4),
        }
    )
    async with session:
        merged = await session.get_client("s3", config=Config(read_timeout=9))
        assert merged.meta.config.max_pool_connections == 4
        assert merged.meta.config.read_timeout == 9
        plain = await session.get_client("s3")
        assert plain is not merged
        assert plain.meta.config.max_pool_connections == 4


# -- a str verify is a CA bundle path ------------------------------------------------------------


async def test_a_missing_ca_bundle_fails_the_first_request_not_the_constructor(
    session: RefreshableSession,
) -> None:
    """``verify="maybe"`` is accepted (tests/test_bad_input.py): a str is a CA bundle path,
    read by botocore when the client first sends; a missing file fails that request."""
    async with session:
        async with session.client("s3", verify="/nonexistent/aiorefresh-ca.pem") as s3:
            with pytest.raises(HTTPClientError, match="No such file"):
                await s3.list_buckets()
