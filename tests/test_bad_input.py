"""Bad input is refused by the constructor (issue 10, item 7): a specification.

Every test builds a ``RefreshableSession`` that would be valid (see the controls first) but
for one bad option, and checks that the constructor itself raises

(a) a typed aiorefresh error: ``ValidationError`` (wrong type, unknown key) or
    ``ConfigurationError`` (bad value, inconsistent options);
(b) whose message names the parameter (and the key, for a mapping);
(c) before any network call: the tests are synchronous (no event loop, nothing awaited),
    endpoints point at a closed port of 127.0.0.1, and every socket call is recorded;
(d) without any secret in the message or in the exceptions chained to it.

Inputs the code does not yet refuse are ``xfail(strict=True)``; the reason says where the
check belongs.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from aiorefresh import RefreshableSession
from aiorefresh._util import MAX_SECONDS
from aiorefresh.errors import AiorefreshError, ConfigurationError, ValidationError
from aiorefresh.testing import IoTCredentialsServer

pytestmark = pytest.mark.usefixtures("aws_env")

ROLE = "arn:aws:iam::123456789012:role/reader"
MFA_SERIAL = "arn:aws:iam::123456789012:mfa/someone"
CLOSED = "http://127.0.0.1:1"
"""A closed port: a request there would fail, and the socket spy would see it first."""

KEY_ID = "AKIAEXAMPLEBADINPUT1"
SECRET_KEY = "s3cr3t/BadInput+SecretAccessKey0000000000"
SESSION_TOKEN = "FwoGZXIvYXdzEBadInputSessionToken//////////"
WEB_TOKEN = "eyJhbGciOiJSUzI1NiJ9.bad-input-web-identity-token"
ARG_SECRET = "hunter2-custom-method-argument"
SECRETS = (SECRET_KEY, SESSION_TOKEN, WEB_TOKEN, ARG_SECRET)

INF = float("inf")
HUGE = MAX_SECONDS * 10
"""Finite but past what the loop's timers take (the ``OverflowError`` of the issue)."""


# ------------------------------------------------------------------ fixtures and helpers


@pytest.fixture(autouse=True)
def network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every attempt to resolve or connect, refused and recorded; none may happen."""
    attempts: list[str] = []

    def spy(name: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            attempts.append(name)
            raise OSError(f"test_bad_input: no network ({name})")

        return refuse

    monkeypatch.setattr(socket.socket, "connect", spy("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", spy("connect_ex"))
    monkeypatch.setattr(socket, "create_connection", spy("create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", spy("getaddrinfo"))
    yield attempts
    assert attempts == [], f"a network call was made: {attempts}"


@pytest.fixture(scope="module")
def pki() -> IoTCredentialsServer:
    """Certificates for the iot method (the server is never started)."""
    return IoTCredentialsServer(role_alias="bad-input")


def sts(**overrides: Any) -> dict[str, Any]:
    """A valid ``sts`` session signing with explicit keys; endpoints on a closed port."""
    options: dict[str, Any] = {
        "aws_access_key_id": KEY_ID,
        "aws_secret_access_key": SECRET_KEY,
        "aws_session_token": SESSION_TOKEN,
        "assume_role_kwargs": {"RoleArn": ROLE, "RoleSessionName": "bad-input"},
        "sts_client_kwargs": {"endpoint_url": CLOSED},
        "default_client_kwargs": {"endpoint_url": CLOSED},
    }
    return {**options, **overrides}


def mfa_sts(**overrides: Any) -> dict[str, Any]:
    """``sts`` with MFA: a command provider (never run) answers ``SerialNumber``."""
    role = {"RoleArn": ROLE, "SerialNumber": MFA_SERIAL}
    return sts(assume_role_kwargs=role, mfa_token_provider=["true"], **overrides)


def web_identity(**overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "web_identity_kwargs": {"RoleArn": ROLE, "RoleSessionName": "bad-input"},
        "web_identity_token": lambda: WEB_TOKEN,
        "sts_client_kwargs": {"endpoint_url": CLOSED},
        "default_client_kwargs": {"endpoint_url": CLOSED},
    }
    return {**options, **overrides}


async def credentials(*, region: str = "us-east-1") -> dict[str, str]:
    raise AssertionError("a custom method must not be called at construction")


def custom(**overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "custom_credentials_method": credentials,
        "custom_credentials_method_args": {"region": "eu-west-1"},
        "default_client_kwargs": {"endpoint_url": CLOSED},
    }
    return {**options, **overrides}


def iot(pki: IoTCredentialsServer, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "endpoint": "https://127.0.0.1:1",
        "role_alias": "bad-input",
        "certificate": pki.client_cert_pem,
        "private_key": pki.client_key_pem,
        "ca": pki.ca_pem,
    }
    return {**options, **overrides}


def chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every exception chained to it (``__cause__``, ``__context__``)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def refused(
    expected: type[AiorefreshError], names: tuple[str, ...], options: Mapping[str, Any]
) -> AiorefreshError:
    """Construct with ``options``; check (a) the class, (b) the names, (d) no secret.

    (c) is the `network` fixture plus this being synchronous: the error comes out of
    ``__init__`` itself, with no loop to run anything on.
    """
    with pytest.raises(AiorefreshError) as caught:
        RefreshableSession(**options)
    error = caught.value
    assert type(error) is expected, f"{type(error).__name__}: {error}"
    message = str(error)
    for name in names:
        assert name in message, f"{name!r} not named in: {message}"
    for link in chain(error):
        text = f"{link} {link.args!r}"
        for secret in SECRETS:
            assert secret not in text, f"a secret leaked into: {text}"
    return error


# ------------------------------------------------------------------ controls


@pytest.mark.parametrize("build", [sts, mfa_sts, web_identity, custom], ids=lambda b: b.__name__)
def test_the_valid_base_of_each_case_constructs_without_a_network_call(
    build: Callable[..., dict[str, Any]],
) -> None:
    assert isinstance(RefreshableSession(**build()), RefreshableSession)


def test_the_valid_iot_base_constructs_without_a_network_call(pki: IoTCredentialsServer) -> None:
    assert RefreshableSession(**iot(pki)).method == "iot"


@pytest.mark.parametrize(
    "option", ["refresh_timeout", "idle_timeout", "close_timeout", "advisory_timeout"]
)
def test_a_timeout_of_exactly_a_year_is_accepted(option: str) -> None:
    RefreshableSession(**sts(**{option: MAX_SECONDS}))


# ------------------------------------------------------------------ timeouts

SESSION_TIMEOUTS = [
    "refresh_timeout",
    "idle_timeout",
    "close_timeout",
    "advisory_timeout",
    "mandatory_timeout",
]


@pytest.mark.parametrize("value", [INF, HUGE], ids=["infinite", "huge"])
@pytest.mark.parametrize("option", SESSION_TIMEOUTS)
def test_an_infinite_or_huge_session_timeout_is_a_configuration_error(
    option: str, value: float
) -> None:
    refused(ConfigurationError, (option,), sts(**{option: value}))


@pytest.mark.parametrize("value", [INF, HUGE], ids=["infinite", "huge"])
def test_an_infinite_or_huge_iot_timeout_is_a_configuration_error(
    pki: IoTCredentialsServer, value: float
) -> None:
    error = refused(ConfigurationError, ("timeout",), iot(pki, timeout=value))
    assert pki.client_key_pem.decode().splitlines()[1] not in str(error)


@pytest.mark.parametrize("value", [INF, HUGE], ids=["infinite", "huge"])
@pytest.mark.parametrize("method", ["sts", "session_token"])
def test_an_infinite_or_huge_mfa_command_timeout_is_a_configuration_error(
    method: str, value: float
) -> None:
    options = mfa_sts(mfa_token_provider_kwargs={"timeout": value})
    if method == "session_token":
        del options["assume_role_kwargs"]
        options.update(method="session_token", session_token_kwargs={"SerialNumber": MFA_SERIAL})
    refused(ConfigurationError, ("mfa_token_provider_kwargs['timeout']",), options)


# ------------------------------------------------------------------ role names

DEFECTS = {"trailing-newline": "\n", "trailing-crlf": "\r\n", "non-ascii": "\u00e9"}


@pytest.mark.parametrize("defect", DEFECTS.values(), ids=DEFECTS.keys())
@pytest.mark.parametrize("key", ["RoleArn", "RoleSessionName"])
@pytest.mark.parametrize("parameter", ["assume_role_kwargs", "web_identity_kwargs"])
def test_a_role_arn_or_session_name_with_a_newline_or_non_ascii_is_a_configuration_error(
    parameter: str, key: str, defect: str
) -> None:
    build = sts if parameter == "assume_role_kwargs" else web_identity
    params = {"RoleArn": ROLE, "RoleSessionName": "bad-input"}
    params[key] += defect
    refused(ConfigurationError, (f"{parameter}[{key!r}]",), build(**{parameter: params}))


# ------------------------------------------------------------------ keys without their pair


@pytest.mark.parametrize("build", [sts, web_identity, custom], ids=lambda b: b.__name__)
def test_aws_session_token_without_keys_is_a_configuration_error(
    build: Callable[..., dict[str, Any]],
) -> None:
    options = build(aws_session_token=SESSION_TOKEN)
    options.pop("aws_access_key_id", None)
    options.pop("aws_secret_access_key", None)
    refused(ConfigurationError, ("aws_session_token", "aws_access_key_id"), options)


def test_aws_secret_access_key_without_its_key_id_is_a_configuration_error() -> None:
    options = sts()
    del options["aws_access_key_id"], options["aws_session_token"]
    refused(ConfigurationError, ("aws_secret_access_key", "aws_access_key_id"), options)


def test_sts_client_kwargs_session_token_without_keys_is_a_configuration_error() -> None:
    client = {"endpoint_url": CLOSED, "aws_session_token": SESSION_TOKEN}
    refused(
        ConfigurationError,
        ("sts_client_kwargs", "aws_session_token"),
        sts(sts_client_kwargs=client),
    )


@pytest.mark.parametrize(
    "keys",
    [
        {"aws_session_token": SESSION_TOKEN},
        {"aws_secret_access_key": SECRET_KEY},
        {"aws_secret_access_key": SECRET_KEY, "aws_session_token": SESSION_TOKEN},
        {"aws_access_key_id": KEY_ID},
    ],
    ids=["token-only", "secret-only", "secret-and-token", "key-id-only"],
)
def test_default_client_kwargs_keys_without_their_pair_are_a_configuration_error(
    keys: dict[str, str],
) -> None:
    client = {"endpoint_url": CLOSED, **keys}
    refused(ConfigurationError, ("default_client_kwargs",), sts(default_client_kwargs=client))


# ------------------------------------------------------------------ client kwargs


def client_cases(parameter: str) -> list[Any]:
    """(bad entries, expected class, key named) for ``parameter``; keys ride along as secrets."""
    cases: list[Any] = [
        pytest.param({"endpoint_url": 5}, ValidationError, "endpoint_url", id="endpoint_url=5"),
        pytest.param(
            {"endpoint_url": "ftp://127.0.0.1:1"},
            ConfigurationError,
            "endpoint_url",
            id="endpoint_url=ftp",
        ),
        pytest.param({"region_name": 5}, ValidationError, "region_name", id="region_name=5"),
        pytest.param({"use_ssl": "yes"}, ValidationError, "use_ssl", id="use_ssl=yes"),
        pytest.param({"verify": 3}, ValidationError, "verify", id="verify=3"),
        pytest.param(
            {"aws_secret_access_key": 5}, ValidationError, "aws_secret_access_key", id="secret=5"
        ),
        pytest.param({"colour": "blue"}, ValidationError, "colour", id="unknown-key"),
        pytest.param({"config": "x"}, ValidationError, "config", id="config=x"),
        pytest.param({"config": {}}, ValidationError, "config", id="config=dict"),
    ]
    return cases


def _client_test(parameter: str, bad: dict[str, Any], expected: Any, key: str) -> None:
    client = {
        "endpoint_url": CLOSED,
        "aws_access_key_id": KEY_ID,
        "aws_secret_access_key": SECRET_KEY,
        "aws_session_token": SESSION_TOKEN,
        **bad,
    }
    refused(expected, (parameter, key), sts(**{parameter: client}))


@pytest.mark.parametrize(("bad", "expected", "key"), client_cases("default_client_kwargs"))
def test_a_bad_default_client_kwargs_entry_is_refused_naming_the_key(
    bad: dict[str, Any], expected: type[AiorefreshError], key: str
) -> None:
    _client_test("default_client_kwargs", bad, expected, key)


@pytest.mark.parametrize(("bad", "expected", "key"), client_cases("sts_client_kwargs"))
def test_a_bad_sts_client_kwargs_entry_is_refused_naming_the_key(
    bad: dict[str, Any], expected: type[AiorefreshError], key: str
) -> None:
    _client_test("sts_client_kwargs", bad, expected, key)


@pytest.mark.parametrize("parameter", ["default_client_kwargs", "sts_client_kwargs"])
@pytest.mark.parametrize("verify", ["maybe", "/nonexistent/ca-bundle.pem"])
def test_a_str_verify_is_taken_as_a_ca_bundle_path_and_not_checked_at_construction(
    parameter: str, verify: str
) -> None:
    """A str ``verify`` is a CA bundle path: refusing a missing one would need a filesystem
    check in the constructor, which may run on the event loop, so the path is kept as given
    and botocore reads it at the first request (tests/test_client_options.py shows the error)."""
    session = RefreshableSession(**sts(**{parameter: {"endpoint_url": CLOSED, "verify": verify}}))
    if parameter == "default_client_kwargs":
        assert session._pool_options.default_client_kwargs == {
            "endpoint_url": CLOSED,
            "verify": verify,
        }


@pytest.mark.parametrize("parameter", ["default_client_kwargs", "sts_client_kwargs"])
@pytest.mark.parametrize("value", ["endpoint_url=x", ["endpoint_url"], 5], ids=repr)
def test_client_kwargs_that_are_not_a_mapping_are_a_validation_error(
    parameter: str, value: object
) -> None:
    refused(ValidationError, (parameter,), sts(**{parameter: value}))


# ------------------------------------------------------------------ custom fetchers


async def needs_password(*, password: str) -> dict[str, str]:
    raise AssertionError("never called")


async def positional_only(region: str, /) -> dict[str, str]:
    raise AssertionError("never called")


@pytest.mark.parametrize(
    ("method", "args"),
    [
        pytest.param(needs_password, None, id="required-argument-missing"),
        pytest.param(
            needs_password, {"password": ARG_SECRET, "colour": "blue"}, id="unknown-argument"
        ),
        pytest.param(credentials, {"region": "x", "user": ARG_SECRET}, id="unknown-keyword"),
        pytest.param(positional_only, {"region": "eu-west-1"}, id="positional-only-by-name"),
    ],
)
def test_custom_credentials_method_args_not_matching_its_signature_are_a_validation_error(
    method: Callable[..., Any], args: dict[str, Any] | None
) -> None:
    options = custom(custom_credentials_method=method, custom_credentials_method_args=args)
    refused(ValidationError, ("custom_credentials_method_args", method.__qualname__), options)


@pytest.mark.parametrize("args", [["eu-west-1"], "region=eu-west-1"], ids=["list", "str"])
def test_custom_credentials_method_args_that_are_not_a_mapping_are_a_validation_error(
    args: object,
) -> None:
    refused(
        ValidationError,
        ("custom_credentials_method_args",),
        custom(custom_credentials_method_args=args),
    )


def test_a_custom_credentials_method_that_is_not_callable_is_a_validation_error() -> None:
    refused(
        ValidationError,
        ("custom_credentials_method",),
        custom(custom_credentials_method=ARG_SECRET),
    )


class NeedsRegion:
    async def __call__(self, region: str) -> Any:
        raise AssertionError("never called")


async def fetch_for(account: str) -> Any:
    raise AssertionError("never called")


async def fetch() -> Any:
    raise AssertionError("never called")


@pytest.mark.parametrize("fetcher", [NeedsRegion(), fetch_for], ids=["object", "function"])
def test_a_fetcher_whose_call_needs_arguments_is_a_validation_error(fetcher: Any) -> None:
    refused(ValidationError, ("fetcher",), {"fetcher": fetcher})


# ------------------------------------------------------------------ profiles


@pytest.mark.parametrize("build", [sts, web_identity, custom], ids=lambda b: b.__name__)
def test_a_profile_name_that_does_not_exist_is_a_configuration_error_for_every_method(
    build: Callable[..., dict[str, Any]],
) -> None:
    refused(ConfigurationError, ("profile_name", "'nowhere'"), build(profile_name="nowhere"))


def test_a_profile_name_that_does_not_exist_is_refused_with_iot(
    pki: IoTCredentialsServer,
) -> None:
    refused(ConfigurationError, ("profile_name",), iot(pki, profile_name="nowhere"))


def test_a_profile_name_that_does_not_exist_is_refused_with_a_fetcher() -> None:
    options = {"fetcher": fetch, "profile_name": "nowhere"}
    refused(ConfigurationError, ("profile_name",), options)


@pytest.mark.parametrize("build", [sts, custom], ids=lambda b: b.__name__)
def test_aws_profile_naming_a_profile_that_does_not_exist_is_a_configuration_error(
    build: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nowhere")
    refused(ConfigurationError, ("AWS_PROFILE", "'nowhere'"), build())
