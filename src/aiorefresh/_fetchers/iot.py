"""The ``iot`` method: temporary AWS credentials from the AWS IoT Core credentials provider.

A device presents its X.509 certificate over mutual TLS to
``https://<prefix>.credentials.iot.<region>.amazonaws.com/role-aliases/<alias>/credentials``
and receives credentials of the IAM role behind the role alias. `validate_iot_options` (in
``_iot_options``) checks everything and builds the TLS context once, before any network call;
`IoTCredentialFetcher` then makes one HTTPS request per call over one ``aiohttp`` session per
event loop. Errors carry the HTTP status and the service's documented error fields, never
anything else of an answer body (which may hold credentials).
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

import aiohttp

from .. import _aiobotocore
from ..__about__ import __version__
from .._loops import PerLoop, running_loop
from .._types import TemporaryCredentials
from ..errors import (
    AiorefreshError,
    ConfigurationError,
    CredentialRefreshError,
    IoTCredentialError,
    NonRecoverableIoTError,
    ValidationError,
)
from ._iot_options import IoTConfig, PEMSource, normalise_endpoint, ssl_reason, validate_iot_options

__all__ = [
    "IoTConfig",
    "IoTCredentialFetcher",
    "PEMSource",
    "discover_credentials_endpoint",
    "validate_iot_options",
]

logger = logging.getLogger("aiorefresh")

_USER_AGENT = f"aiorefresh/{__version__}"
_MAX_BODY = 64 * 1024  # a credentials answer is ~1.5 KB; never buffer an unbounded body
_MAX_MESSAGE = 200
_ERROR_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,99}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9-]{1,128}")
_DISCOVERING = "discovering the AWS IoT credentials provider endpoint"
_WHAT = "method='iot' (aiohttp)"


# --------------------------------------------------------------------------- discovery


async def discover_credentials_endpoint(
    *,
    region_name: str | None = None,
    endpoint_url: str | None = None,
    profile_name: str | None = None,
) -> str:
    """The account's credentials provider host, from ``iot:DescribeEndpoint``.

    Calls ``DescribeEndpoint(endpointType="iot:CredentialProvider")`` with a new aiobotocore
    session of ``profile_name`` (its credentials and region; default: the default chain), so it
    needs ``iot:DescribeEndpoint`` permission and a region. ``endpoint_url`` (or
    ``AWS_ENDPOINT_URL_IOT``) points it elsewhere, e.g. moto. The client is built off the event
    loop by the adapter (`aiorefresh._aiobotocore.describe_credentials_endpoint`). Failures raise
    `IoTCredentialError`: 401/403, an unknown profile and a missing region non-recoverable.
    """
    found = await _aiobotocore.describe_credentials_endpoint(
        region_name=region_name, endpoint_url=endpoint_url, profile_name=profile_name
    )
    if isinstance(found, str):
        return found
    raise _discovery_error(found, profile_name) from found.cause


def _discovery_error(
    failure: _aiobotocore.DiscoveryFailure, profile_name: str | None
) -> IoTCredentialError:
    """The error for a failed ``DescribeEndpoint``: an error answer shows its status and error
    code only, never its message (botocore copies a body that is not JSON into it)."""
    if failure.kind == "no-region":
        return NonRecoverableIoTError(
            f"{_DISCOVERING} needs a region: pass region_name, set one in the profile or set "
            "AWS_REGION"
        )
    if failure.kind == "no-profile":
        return NonRecoverableIoTError(
            f"{_DISCOVERING} failed: profile_name {profile_name!r} is not in the AWS config files"
        )
    if failure.kind == "no-address":
        return IoTCredentialError(f"{_DISCOVERING} failed: the answer has no endpointAddress")
    if failure.kind == "other":
        return IoTCredentialError(f"{_DISCOVERING} failed: {_no_userinfo(failure.detail or '')}")
    status = failure.status_code
    code = _safe(failure.code, _ERROR_TYPE)
    detail = f"HTTP {status}" if status is not None else "an error"
    detail += f" {code}" if code else ""
    denied = failure.kind == "denied"
    hint = " (the caller needs iot:DescribeEndpoint permission)" if denied else ""
    cls = NonRecoverableIoTError if denied else IoTCredentialError
    return cls(
        f"{_DISCOVERING} failed: {detail}{hint}",
        status_code=status,
        code=code,
        request_id=_safe(failure.request_id, _REQUEST_ID),
    )


def _no_userinfo(text: str) -> str:
    """``text`` with the ``user:password@`` of any URL in it masked."""
    return re.sub(r"(://)[^/\s@]*@", r"\1***@", text)


# --------------------------------------------------------------------------- the fetcher


class IoTCredentialFetcher:
    """Fetches credentials from the AWS IoT credentials provider, one request per call.

    The TLS context comes built from the config; HTTP sessions belong to one event loop, so
    there is one per loop (`aiorefresh._loops.PerLoop`), reused across refreshes and closed by
    `aclose` or, if nobody calls it, when that loop shuts down. Single flight and refresh
    timing are the engine's job: concurrent calls each make a request of their own.
    """

    def __init__(
        self, config: IoTConfig, *, discover: Callable[[], Awaitable[str]] | None = None
    ) -> None:
        if not isinstance(config, IoTConfig):
            raise ValidationError(
                f"config must be an IoTConfig (see validate_iot_options), "
                f"got {type(config).__name__}"
            )
        if config.endpoint is None and discover is None:
            if not config.discover_endpoint:
                raise ConfigurationError("IoTConfig has no endpoint and discover_endpoint is False")
            discover = discover_credentials_endpoint
        self._config = config
        self._discover = discover
        self._endpoint = config.endpoint
        self._sessions: PerLoop[aiohttp.ClientSession] = PerLoop(
            self._session_for, on_shutdown=_close_session
        )
        headers = {"Accept": "application/json", "User-Agent": _USER_AGENT}
        if config.thing_name is not None:
            headers["x-amzn-iot-thingname"] = config.thing_name
        if config.duration_seconds is not None:
            headers["x-amzn-iot-credential-duration-seconds"] = str(config.duration_seconds)
        self._headers: Mapping[str, str] = headers

    @property
    def config(self) -> IoTConfig:
        """The validated options this fetcher was built with."""
        return self._config

    @property
    def endpoint(self) -> str | None:
        """The credentials provider URL; ``None`` until discovery has run."""
        return self._endpoint

    def __repr__(self) -> str:
        return (
            f"IoTCredentialFetcher(endpoint={self._endpoint!r}, "
            f"role_alias={self._config.role_alias!r}, thing_name={self._config.thing_name!r})"
        )

    async def __aenter__(self) -> IoTCredentialFetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def __call__(self) -> TemporaryCredentials:
        loop = running_loop(_WHAT)
        endpoint = self._endpoint or await self._resolve_endpoint()
        alias = self._config.role_alias
        url = f"{endpoint}/role-aliases/{alias}/credentials"
        session = self._session(loop)
        try:
            async with session.get(url, headers=self._headers, allow_redirects=False) as response:
                body = await response.content.read(_MAX_BODY)
                status, headers = response.status, response.headers
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise IoTCredentialError(
                f"AWS IoT credentials request to {_host(endpoint)} for role alias {alias!r} "
                f"timed out after {self._config.timeout:g} s"
            ) from exc
        except (aiohttp.ClientError, ssl.SSLError, OSError) as exc:
            raise _transport_error(exc, endpoint, alias) from exc
        if status != 200:
            raise _status_error(status, headers, body, alias)
        credentials = _parse_credentials(body, headers, alias)
        logger.debug(
            "AWS IoT credentials for role alias %s expire at %s",
            alias,
            credentials.expiry_time.isoformat(),
        )
        return credentials

    async def aclose(self) -> None:
        """Close this event loop's HTTP session; the fetcher stays usable and opens a new one
        when called again. Other loops keep theirs (a refresh may be running there) until they
        call ``aclose()`` or shut down. Off any asyncio loop there is nothing to close."""
        if self._sessions.peek() is None:
            return
        session = self._sessions.pop()
        if session is not None:
            await session.close()

    def _session(self, loop: asyncio.AbstractEventLoop | None = None) -> aiohttp.ClientSession:
        """This loop's HTTP session (a new one if it was closed from outside)."""
        loop = loop or running_loop(_WHAT)
        session = self._sessions.get(loop)
        if session.closed:
            self._sessions.pop(loop)
            session = self._sessions.get(loop)
        return session

    def _session_for(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        return self._new_session()

    def _new_session(self) -> aiohttp.ClientSession:
        """An HTTP session on the running loop: the config's TLS context, ``timeout`` per
        request."""
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._config.ssl_context),
            timeout=aiohttp.ClientTimeout(total=self._config.timeout),
        )

    async def _resolve_endpoint(self) -> str:
        assert self._discover is not None
        try:
            discovered = await self._discover()
        except CredentialRefreshError:
            raise
        except AiorefreshError as exc:
            raise NonRecoverableIoTError(f"{_DISCOVERING} failed: {exc}") from exc
        except Exception as exc:
            raise IoTCredentialError(
                f"{_DISCOVERING} failed: {type(exc).__name__}: {_no_userinfo(str(exc))}"
            ) from exc
        try:
            endpoint = normalise_endpoint(discovered, parameter="discovered endpoint")
        except AiorefreshError as exc:
            raise NonRecoverableIoTError(str(exc)) from exc
        if self._endpoint is None:  # concurrent discoveries agree; the first one is kept
            self._endpoint = endpoint
        return self._endpoint


async def _close_session(session: aiohttp.ClientSession) -> None:
    await session.close()


def _host(endpoint: str) -> str:
    return urlsplit(endpoint).netloc


# --------------------------------------------------------------------------- transport errors

_CLIENT_CERT_HINT = (
    "if this happens on every attempt, the server may have refused the client certificate: "
    "check that certificate is registered and ACTIVE in AWS IoT and that private_key matches it"
)


def _transport_error(exc: BaseException, endpoint: str, alias: str) -> IoTCredentialError:
    """One readable `IoTCredentialError` for a failure below HTTP (TCP or TLS)."""
    host = _host(endpoint)
    prefix = f"AWS IoT credentials request to {host} for role alias {alias!r} failed"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return IoTCredentialError(
            f"{prefix}: the server certificate could not be verified "
            f"({ssl_reason(exc.certificate_error)}); pass ca= with the CA that signed it "
            "(or verify_peer=False, for tests only)"
        )
    alert = _tls_alert(exc)
    if alert is not None:
        return IoTCredentialError(
            f"{prefix}: the server ended the TLS handshake ({alert}); "
            "it most likely refused the client certificate: check that certificate is "
            "registered and ACTIVE in AWS IoT and signed by a CA it trusts"
        )
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        return IoTCredentialError(f"{prefix}: TLS error: {exc}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        if isinstance(cause, ConnectionRefusedError):
            return IoTCredentialError(f"{prefix}: connection refused")
        if isinstance(cause, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
            return IoTCredentialError(
                f"{prefix}: the server reset the connection during the TLS handshake; "
                + _CLIENT_CERT_HINT
            )
        reason = cause.strerror or str(cause) or type(cause).__name__
        return IoTCredentialError(f"{prefix}: could not connect ({reason})")
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, OSError)):
        return IoTCredentialError(
            f"{prefix}: the connection was closed before an answer ({exc or type(exc).__name__}); "
            + _CLIENT_CERT_HINT
        )
    if isinstance(exc, aiohttp.ClientPayloadError):
        return IoTCredentialError(f"{prefix}: the answer was cut off")
    return IoTCredentialError(f"{prefix}: {type(exc).__name__}")


def _tls_alert(exc: BaseException) -> str | None:
    """The TLS alert (e.g. ``TLSV13_ALERT_CERTIFICATE_REQUIRED``) behind ``exc``, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        candidates: list[object] = [current, *current.args]
        for candidate in candidates:
            reason = getattr(candidate, "reason", None)
            if (
                isinstance(candidate, ssl.SSLError)
                and isinstance(reason, str)
                and "ALERT" in reason
            ):
                return reason
        current = current.__cause__ or current.__context__
    return None


# --------------------------------------------------------------------------- answers


def _status_error(
    status: int, headers: Mapping[str, str], body: bytes, alias: str
) -> IoTCredentialError:
    """The error for a non-200 answer: its status, and the error type and message only when the
    answer is the documented error (``x-amzn-ErrorType`` and a body of exactly
    ``{"message": "..."}``); nothing else of the body, which may hold credentials."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    error_type = _safe(headers.get("x-amzn-ErrorType", "").split(":", 1)[0], _ERROR_TYPE)
    detail = f"HTTP {status} {phrase}".rstrip()
    if error_type:
        detail += f" ({error_type})"
    message = _documented_message(body)
    if message:
        detail += f": {message}"
    hint = ""
    if status in (401, 403):
        hint = (
            " (check role_alias, the certificate's IoT policy allowing "
            "iot:AssumeRoleWithCertificate on the role alias, and thing_name)"
        )
    cls = NonRecoverableIoTError if status in (401, 403) else IoTCredentialError
    return cls(
        f"AWS IoT credentials provider refused role alias {alias!r}: {detail}{hint}",
        status_code=status,
        code=error_type,
        request_id=_safe(headers.get("x-amzn-RequestId"), _REQUEST_ID),
    )


def _documented_message(body: bytes) -> str | None:
    """The message of a body that is exactly ``{"message": str}`` (or ``"Message"``), cleaned
    and cut; ``None`` for any other body."""
    document = _json(body)
    if not isinstance(document, dict) or len(document) != 1:
        return None
    message = document.get("message", document.get("Message"))
    if not isinstance(message, str):
        return None
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in message).split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _json(body: bytes) -> object:
    """The parsed body, or a sentinel; parsed outside any ``except`` so that no decoding error
    (whose ``doc`` is the whole body) is left as ``__context__`` of the error raised next."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _NOT_JSON


_NOT_JSON = object()


def _safe(value: object, pattern: re.Pattern[str]) -> str | None:
    """``value`` when it is a str matching ``pattern`` (header-borne ids and codes)."""
    return value if isinstance(value, str) and pattern.fullmatch(value) else None


_FIELDS = ("accessKeyId", "secretAccessKey", "sessionToken", "expiration")


def _parse_credentials(body: bytes, headers: Mapping[str, str], alias: str) -> TemporaryCredentials:
    """Credentials from a 200 answer; malformed answers are non-recoverable and never echoed."""
    request_id = _safe(headers.get("x-amzn-RequestId"), _REQUEST_ID)
    source = f"AWS IoT credentials provider (role alias {alias!r})"

    def malformed(problem: str) -> NonRecoverableIoTError:
        return NonRecoverableIoTError(
            f"{source} answered 200 but {problem}", status_code=200, request_id=request_id
        )

    document = _json(body)
    if document is _NOT_JSON:
        raise malformed("the body is not JSON")
    credentials = document.get("credentials") if isinstance(document, dict) else None
    if not isinstance(credentials, dict):
        raise malformed("the body has no 'credentials' object")
    bad = [name for name in _FIELDS if not isinstance(credentials.get(name), str)]
    bad += [name for name in _FIELDS if name not in bad and not credentials[name]]
    if bad:
        raise malformed(f"credentials.{', credentials.'.join(bad)} missing or not a string")
    problem = ""
    try:
        return TemporaryCredentials.from_mapping(
            {
                "AccessKeyId": credentials["accessKeyId"],
                "SecretAccessKey": credentials["secretAccessKey"],
                "SessionToken": credentials["sessionToken"],
                "Expiration": credentials["expiration"],
            },
            source=source,
        )
    except CredentialRefreshError as exc:
        problem = str(exc).replace("Expiration", "credentials.expiration")
    raise NonRecoverableIoTError(problem, status_code=200, request_id=request_id)
