"""The ``iot`` method: temporary AWS credentials from the AWS IoT Core credentials provider.

A device presents its X.509 certificate over mutual TLS to
``https://<prefix>.credentials.iot.<region>.amazonaws.com/role-aliases/<alias>/credentials``
and receives credentials of the IAM role behind the role alias. Everything that can be checked
is checked by `validate_iot_options` before any network call; `IoTCredentialFetcher`
then performs one HTTPS request per call over one ``aiohttp`` session per event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import math
import os
import re
import shutil
import ssl
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union
from urllib.parse import urlsplit

import aiohttp

from ..__about__ import __version__
from .._types import TemporaryCredentials
from ..errors import (
    AiorefreshError,
    ConfigurationError,
    CredentialRefreshError,
    IoTCredentialError,
    NonRecoverableIoTError,
    ValidationError,
)

__all__ = [
    "IoTConfig",
    "IoTCredentialFetcher",
    "PEMSource",
    "discover_credentials_endpoint",
    "validate_iot_options",
]

logger = logging.getLogger(__name__)

PEMSource = Union[str, bytes, "os.PathLike[str]"]
"""A path (``str`` or ``pathlib.Path``, ``~`` expanded) or PEM content (``bytes``, or a ``str``
starting with ``-----BEGIN``)."""

_ROLE_ALIAS = re.compile(r"[\w=,@-]{1,128}", re.ASCII)
_THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
_HOST_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?")
_MIN_DURATION, _MAX_DURATION = 900, 43200
_EXCERPT = 200
_DESCRIBE_HINT = (
    "find yours with `aws iot describe-endpoint --endpoint-type iot:CredentialProvider` "
    "(it looks like <prefix>.credentials.iot.<region>.amazonaws.com), "
    "or pass discover_endpoint=True"
)
_USER_AGENT = f"aiorefresh/{__version__}"


_MAX_BODY = 64 * 1024


class _PasswordNeeded(Exception):
    """Raised by the password callback: the key is encrypted and no password was given."""


@dataclass(frozen=True)
class IoTConfig:
    """The validated options of the ``iot`` method; build it with `validate_iot_options`.

    PEM contents are loaded once, at validation; the paths they came from are kept (paths are
    not secret) so the TLS context loads the certificate and key straight from them.
    """

    endpoint: str | None
    """Normalised ``https://host[:port][/prefix]`` URL; ``None`` when it is discovered."""
    role_alias: str
    certificate_pem: bytes = field(repr=False)
    private_key_pem: bytes = field(repr=False)
    ca_pem: bytes | None = field(default=None, repr=False)
    private_key_password: bytes | None = field(default=None, repr=False)
    certificate_path: Path | None = None
    private_key_path: Path | None = None
    ca_path: Path | None = None
    thing_name: str | None = None
    duration_seconds: int | None = None
    timeout: float = 10.0
    verify_peer: bool = True
    discover_endpoint: bool = False


# --------------------------------------------------------------------------- validation


def validate_iot_options(
    *,
    endpoint: str | None,
    role_alias: str | None,
    certificate: PEMSource | None,
    private_key: PEMSource | None,
    thing_name: str | None = None,
    ca: PEMSource | None = None,
    private_key_password: str | bytes | None = None,
    duration_seconds: int | None = None,
    timeout: float = 10.0,
    verify_peer: bool = True,
    discover_endpoint: bool = False,
) -> IoTConfig:
    """Check every ``iot`` option and load the PEM files; nothing here touches the network.

    A throwaway ``ssl.SSLContext`` is built so that a key that does not match the certificate,
    a wrong ``private_key_password`` or a malformed CA fails here, at construction, rather than
    at the first refresh. Raises `ValidationError` for wrong types and missing options
    and `ConfigurationError` for bad values, each naming the parameter.
    """
    for name, flag in (("verify_peer", verify_peer), ("discover_endpoint", discover_endpoint)):
        if not isinstance(flag, bool):
            raise ValidationError(f"{name} must be a bool, got {type(flag).__name__}")
    if endpoint is None:
        if not discover_endpoint:
            raise ConfigurationError(
                "endpoint is required for method='iot': pass the credentials provider host; "
                + _DESCRIBE_HINT
            )
        normalised = None
    else:
        if discover_endpoint:
            raise ConfigurationError("pass either endpoint or discover_endpoint=True, not both")
        normalised = _normalise_endpoint(endpoint, parameter="endpoint")
    role_alias = _check_role_alias(role_alias)
    if thing_name is not None:
        if not isinstance(thing_name, str):
            raise ValidationError(
                f"thing_name must be a str or None, got {type(thing_name).__name__}"
            )
        if not _THING_NAME.fullmatch(thing_name):
            raise ConfigurationError(
                "thing_name must be 1 to 128 characters of letters, digits, ':', '_' or '-'"
            )
    if duration_seconds is not None:
        if isinstance(duration_seconds, bool) or not isinstance(duration_seconds, int):
            raise ValidationError(
                f"duration_seconds must be an int or None, got {type(duration_seconds).__name__}"
            )
        if not _MIN_DURATION <= duration_seconds <= _MAX_DURATION:
            raise ConfigurationError(
                f"duration_seconds must be between {_MIN_DURATION} and {_MAX_DURATION}, "
                f"got {duration_seconds}"
            )
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ValidationError(f"timeout must be a number of seconds, got {type(timeout).__name__}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout}")
    password = _check_password(private_key_password)

    certificate_pem, certificate_path = _read_pem(certificate, "certificate")
    private_key_pem, private_key_path = _read_pem(private_key, "private_key")
    ca_pem, ca_path = (None, None) if ca is None else _read_pem(ca, "ca")
    if b"-----BEGIN CERTIFICATE-----" not in certificate_pem:
        raise ConfigurationError(
            f"certificate{_where(certificate_path)} does not contain a PEM certificate "
            "(-----BEGIN CERTIFICATE-----)"
        )
    if b"-----BEGIN" not in private_key_pem or b"PRIVATE KEY-----" not in private_key_pem:
        raise ConfigurationError(
            f"private_key{_where(private_key_path)} does not contain a PEM private key "
            "(-----BEGIN ... PRIVATE KEY-----)"
        )
    if password is None and b"ENCRYPTED" in private_key_pem:
        raise ConfigurationError(
            f"private_key{_where(private_key_path)} is encrypted: pass private_key_password"
        )
    if ca_pem is not None and b"-----BEGIN CERTIFICATE-----" not in ca_pem:
        raise ConfigurationError(
            f"ca{_where(ca_path)} does not contain a PEM certificate (-----BEGIN CERTIFICATE-----)"
        )
    config = IoTConfig(
        endpoint=normalised,
        role_alias=role_alias,
        certificate_pem=certificate_pem,
        private_key_pem=private_key_pem,
        ca_pem=ca_pem,
        private_key_password=password,
        certificate_path=certificate_path,
        private_key_path=private_key_path,
        ca_path=ca_path,
        thing_name=thing_name,
        duration_seconds=duration_seconds,
        timeout=float(timeout),
        verify_peer=verify_peer,
        discover_endpoint=discover_endpoint,
    )
    _build_ssl_context(config)
    return config


def _check_role_alias(role_alias: object) -> str:
    if role_alias is None:
        raise ValidationError("role_alias is required for method='iot'")
    if not isinstance(role_alias, str):
        raise ValidationError(f"role_alias must be a str, got {type(role_alias).__name__}")
    if not _ROLE_ALIAS.fullmatch(role_alias):
        raise ConfigurationError(
            "role_alias must be 1 to 128 characters of letters, digits, '_', '=', ',', '@' "
            f"or '-', got {role_alias[:130]!r}"
        )
    return role_alias


def _check_password(password: object) -> bytes | None:
    if password is None:
        return None
    if isinstance(password, str):
        return password.encode("utf-8")
    if isinstance(password, (bytes, bytearray)):
        return bytes(password)
    raise ValidationError(
        f"private_key_password must be a str, bytes or None, got {type(password).__name__}"
    )


def _normalise_endpoint(value: object, *, parameter: str) -> str:
    """``https://host[:port][/prefix]`` from a bare host or an https URL; rejects data endpoints."""
    if not isinstance(value, str):
        raise ValidationError(
            f"{parameter} must be a host name or an https:// URL, got {type(value).__name__}"
        )
    text = value.strip()
    if not text:
        raise ConfigurationError(f"{parameter} must not be empty; " + _DESCRIBE_HINT)
    if "://" not in text:
        text = "https://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"{parameter} {value!r} is not a valid host or URL") from None
    scheme = parts.scheme.lower()
    if scheme == "http":
        raise ConfigurationError(
            f"{parameter} {value!r} uses http://; the credentials provider authenticates the "
            "device certificate with mutual TLS, which needs https://"
        )
    if scheme != "https":
        raise ConfigurationError(f"{parameter} {value!r} must be an https:// URL or a host name")
    host = parts.hostname or ""
    if "@" in parts.netloc:
        raise ConfigurationError(
            f"{parameter} must not carry credentials (user:password@); give the host name or "
            "https://host[:port][/path]"
        )
    if parts.query or parts.fragment or not _valid_host(host):
        raise ConfigurationError(
            f"{parameter} {value!r} must be a host name or https://host[:port][/path] "
            "without credentials, query or fragment"
        )
    if _is_data_endpoint(host):
        raise ConfigurationError(
            f"{parameter} {host!r} is an AWS IoT data (or other) endpoint, not the credentials "
            "provider endpoint; " + _DESCRIBE_HINT
        )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"https://{netloc}{parts.path.rstrip('/')}"


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        labels = host.rstrip(".").split(".")
        return len(host) <= 253 and all(
            len(label) <= 63 and _HOST_LABEL.fullmatch(label) for label in labels
        )
    return True


def _is_data_endpoint(host: str) -> bool:
    """Whether ``host`` is an AWS IoT endpoint other than the credentials provider."""
    labels = host.rstrip(".").split(".")
    if not (host.endswith((".amazonaws.com", ".amazonaws.com.cn"))):
        return False
    for index, label in enumerate(labels):
        if label in ("iot", "iot-fips"):
            return index == 0 or labels[index - 1] != "credentials"
    return False


def _looks_like_path(text: str) -> bool:
    return "\n" not in text and "\0" not in text and len(text) <= 4096


def _where(path: Path | None) -> str:
    return f" ('{path}')" if path is not None else ""


def _read_pem(value: object, parameter: str) -> tuple[bytes, Path | None]:
    """PEM bytes and the path they came from (``None`` for in-memory content)."""
    if value is None:
        raise ValidationError(f"{parameter} is required for method='iot'")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value), None
    if isinstance(value, str) and value.lstrip().startswith("-----BEGIN"):
        try:
            return value.encode("ascii"), None
        except UnicodeEncodeError:
            raise ConfigurationError(
                f"{parameter} contains non-ASCII characters; PEM content is ASCII"
            ) from None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ValidationError(
            f"{parameter} must be a path (str or pathlib.Path) or PEM content (bytes, or a str "
            f"starting with -----BEGIN), got {type(value).__name__}"
        )
    if not _looks_like_path(value):
        raise ConfigurationError(
            f"{parameter} is neither PEM content (it does not start with -----BEGIN) nor a path"
        )
    path = Path(value).expanduser()
    try:
        return path.read_bytes(), path
    except FileNotFoundError:
        raise ConfigurationError(f"{parameter} file '{path}' does not exist") from None
    except OSError as exc:
        raise ConfigurationError(
            f"{parameter} file '{path}' cannot be read: {exc.strerror or type(exc).__name__}"
        ) from None


# --------------------------------------------------------------------------- TLS


def _build_ssl_context(config: IoTConfig) -> ssl.SSLContext:
    """The client TLS context: trusted CAs, server verification and the device certificate.

    ``ssl`` loads a certificate chain only from files, so a certificate or key given in memory
    is written to a private temporary file (mode 0600, in a fresh 0700 directory) that is
    removed as soon as it is loaded. Paths are loaded directly. Raises
    `ConfigurationError` naming the parameter at fault.
    """
    if config.ca_pem is not None:
        try:
            context = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH, cadata=config.ca_pem.decode("ascii")
            )
        except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigurationError(
                f"ca{_where(config.ca_path)} could not be loaded as PEM CA certificates: "
                f"{_ssl_reason(exc)}"
            ) from None
    else:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not config.verify_peer:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    _check_certificate(config)
    _load_client_certificate(context, config)
    return context


def _check_certificate(config: IoTConfig) -> None:
    """Parse the certificate on its own so a bad one is reported as ``certificate``."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cadata=config.certificate_pem.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigurationError(
            f"certificate{_where(config.certificate_path)} is not a valid PEM certificate: "
            f"{_ssl_reason(exc)}"
        ) from None


def _no_password() -> bytes:
    raise _PasswordNeeded


def _load_client_certificate(context: ssl.SSLContext, config: IoTConfig) -> None:
    key_where = _where(config.private_key_path)
    try:
        with _client_files(config) as (certificate_file, key_file):
            context.load_cert_chain(
                certificate_file, key_file, password=config.private_key_password or _no_password
            )
    except _PasswordNeeded:
        raise ConfigurationError(
            f"private_key{key_where} is encrypted: pass private_key_password"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ConfigurationError(
                f"private_key{key_where} does not match certificate"
                f"{_where(config.certificate_path)}"
            ) from None
        if config.private_key_password is not None:
            raise ConfigurationError(
                f"private_key{key_where} could not be decrypted with private_key_password "
                "(wrong password?) or is not a valid PEM private key"
            ) from None
        raise ConfigurationError(
            f"private_key{key_where} is not a valid PEM private key: {_ssl_reason(exc)}"
        ) from None
    except ValueError as exc:  # a password longer than OpenSSL accepts
        raise ConfigurationError(f"private_key_password was refused: {exc}") from None
    except OSError as exc:
        raise ConfigurationError(
            "certificate or private_key could not be read while building the TLS context: "
            f"{exc.strerror or type(exc).__name__}"
        ) from None


@contextlib.contextmanager
def _client_files(config: IoTConfig) -> Iterator[tuple[str, str]]:
    """File names for ``load_cert_chain``: the given paths, or private temporary copies."""
    if config.certificate_path is not None and config.private_key_path is not None:
        yield str(config.certificate_path), str(config.private_key_path)
        return
    directory = tempfile.mkdtemp(prefix="aiorefresh-iot-")
    try:
        certificate_file = (
            str(config.certificate_path)
            if config.certificate_path is not None
            else _write_private(directory, "certificate.pem", config.certificate_pem)
        )
        key_file = (
            str(config.private_key_path)
            if config.private_key_path is not None
            else _write_private(directory, "private.key", config.private_key_pem)
        )
        yield certificate_file, key_file
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _write_private(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(path, flags, 0o600), "wb") as file:
        file.write(data)
    return path


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    if isinstance(exc, ssl.SSLError) and len(exc.args) > 1:
        return str(exc.args[1])
    return type(exc).__name__


# --------------------------------------------------------------------------- discovery


async def discover_credentials_endpoint(
    *, region_name: str | None = None, endpoint_url: str | None = None
) -> str:
    """The account's credentials provider host, from ``iot:DescribeEndpoint``.

    Calls ``DescribeEndpoint(endpointType="iot:CredentialProvider")`` with a plain aiobotocore
    session and the default credential chain (so it needs ``iot:DescribeEndpoint`` permission
    and a region). ``endpoint_url`` (or ``AWS_ENDPOINT_URL_IOT``) points it elsewhere, e.g. moto.
    Failures raise `IoTCredentialError` (401/403 and a missing region non-recoverable).
    """
    from aiobotocore.session import (  # type: ignore[import-untyped, unused-ignore]
        get_session,
    )
    from botocore.exceptions import (  # type: ignore[import-untyped, unused-ignore]
        BotoCoreError,
        ClientError,
        NoRegionError,
    )

    what = "discovering the AWS IoT credentials provider endpoint"
    try:
        async with get_session().create_client(
            "iot", region_name=region_name, endpoint_url=endpoint_url
        ) as client:
            answer = await client.describe_endpoint(endpointType="iot:CredentialProvider")
    except NoRegionError:
        raise NonRecoverableIoTError(
            f"{what} needs a region: pass region_name or set AWS_REGION"
        ) from None
    except ClientError as exc:
        response: Mapping[str, Any] = getattr(exc, "response", None) or {}
        error = response.get("Error") or {}
        metadata = response.get("ResponseMetadata") or {}
        status = metadata.get("HTTPStatusCode")
        cls = NonRecoverableIoTError if status in (401, 403) else IoTCredentialError
        raise cls(
            f"{what} failed: {exc}",
            status_code=status if isinstance(status, int) else None,
            code=error.get("Code"),
            request_id=metadata.get("RequestId"),
        ) from exc
    except BotoCoreError as exc:
        raise IoTCredentialError(f"{what} failed: {exc}") from exc
    address = answer.get("endpointAddress") if isinstance(answer, Mapping) else None
    if not isinstance(address, str) or not address:
        raise IoTCredentialError(f"{what} failed: the answer has no endpointAddress")
    return address


# --------------------------------------------------------------------------- the fetcher


class IoTCredentialFetcher:
    """Fetches credentials from the AWS IoT credentials provider, one request per call.

    The TLS context is built once; HTTP sessions (which belong to one event loop) are kept one
    per loop and reused across refreshes. Call `aclose` when done. Single flight and
    refresh timing are the engine's job: concurrent calls each make a request of their own.
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
        self._ssl_context = _build_ssl_context(config)
        self._discover = discover
        self._endpoint = config.endpoint
        self._lock = threading.Lock()
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
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
        endpoint = await self._resolve_endpoint()
        alias = self._config.role_alias
        url = f"{endpoint}/role-aliases/{alias}/credentials"
        session = self._session()
        try:
            async with session.get(url, headers=self._headers, allow_redirects=False) as response:
                # a credentials answer is ~1.5 KB; never buffer an unbounded body
                body = await response.content.read(_MAX_BODY)
                status, reason, headers = response.status, response.reason, response.headers
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise IoTCredentialError(
                f"AWS IoT credentials request to {_host(endpoint)} for role alias {alias!r} "
                f"timed out after {self._config.timeout:g} s"
            ) from exc
        except (aiohttp.ClientError, ssl.SSLError, OSError) as exc:
            raise _transport_error(exc, endpoint, alias) from exc
        if status != 200:
            raise _status_error(status, reason, headers, body, alias)
        credentials = _parse_credentials(body, headers, alias)
        logger.debug(
            "AWS IoT credentials for role alias %s expire at %s",
            alias,
            credentials.expiry_time.isoformat(),
        )
        return credentials

    async def aclose(self) -> None:
        """Close this event loop's HTTP session; the fetcher stays usable and opens a new one
        when called again. Other loops keep theirs (a refresh may be running there): each
        loop calls ``aclose()`` before it ends, since a closed loop's session cannot be closed.
        """
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:  # not on asyncio (trio): no session can be ours
            return
        with self._lock:
            session = self._sessions.pop(current, None)
        if session is not None:
            await session.close()

    def _session(self) -> aiohttp.ClientSession:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigurationError(
                "method='iot' uses aiohttp and needs a running asyncio event loop "
                "(it does not run under trio)"
            ) from None
        with self._lock:
            session = self._sessions.get(loop)
            if session is None or session.closed:
                for stale in [other for other in self._sessions if other.is_closed()]:
                    del self._sessions[stale]
                session = self._sessions[loop] = self._new_session()
            return session

    def _new_session(self) -> aiohttp.ClientSession:
        """An HTTP session on the running loop: our TLS context, ``timeout`` per request."""
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._ssl_context),
            timeout=aiohttp.ClientTimeout(total=self._config.timeout),
        )

    async def _resolve_endpoint(self) -> str:
        if self._endpoint is not None:
            return self._endpoint
        assert self._discover is not None
        try:
            discovered = await self._discover()
        except CredentialRefreshError:
            raise
        except AiorefreshError as exc:
            raise NonRecoverableIoTError(
                f"discovering the AWS IoT credentials provider endpoint failed: {exc}"
            ) from exc
        except Exception as exc:
            raise IoTCredentialError(
                "discovering the AWS IoT credentials provider endpoint failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        try:
            endpoint = _normalise_endpoint(discovered, parameter="discovered endpoint")
        except AiorefreshError as exc:
            raise NonRecoverableIoTError(str(exc)) from exc
        with self._lock:
            if self._endpoint is None:
                self._endpoint = endpoint
            return self._endpoint


def _host(endpoint: str) -> str:
    return urlsplit(endpoint).netloc


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
            f"({_ssl_reason(exc.certificate_error)}); pass ca= with the CA that signed it "
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
        return IoTCredentialError(f"{prefix}: the answer was cut off ({exc})")
    return IoTCredentialError(f"{prefix}: {type(exc).__name__}: {exc}")


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


def _status_error(
    status: int, reason: str | None, headers: Mapping[str, str], body: bytes, alias: str
) -> IoTCredentialError:
    """The error for a non-200 answer: the service's ``message``, else an excerpt of the body."""
    detail = _service_message(body)
    if detail is None:
        excerpt = _excerpt(body)
        detail = f"{status} {reason or ''}".strip() + (f": {excerpt}" if excerpt else "")
    else:
        detail = f"{status}: {detail}"
    hint = ""
    if status in (401, 403):
        hint = (
            " (check role_alias, the certificate's IoT policy allowing "
            "iot:AssumeRoleWithCertificate on the role alias, and thing_name)"
        )
    error_type = headers.get("x-amzn-ErrorType", "").split(":", 1)[0]
    cls = NonRecoverableIoTError if status in (401, 403) else IoTCredentialError
    return cls(
        f"AWS IoT credentials provider refused role alias {alias!r}: {detail}{hint}",
        status_code=status,
        code=error_type or None,
        request_id=headers.get("x-amzn-RequestId"),
    )


def _service_message(body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(document, dict):
        return None
    message = document.get("message", document.get("Message"))
    if not isinstance(message, str) or not message.strip():
        return None
    return _clean(message)


def _excerpt(body: bytes) -> str:
    text = body[: _EXCERPT * 20].decode("utf-8", errors="replace")
    if text.lstrip().startswith("<"):
        text = re.sub(r"<[^>]*>", " ", text)
    return _clean(text)


def _clean(text: str) -> str:
    """Printable, single-spaced and at most ``_EXCERPT`` characters."""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


_FIELDS = ("accessKeyId", "secretAccessKey", "sessionToken", "expiration")


def _parse_credentials(body: bytes, headers: Mapping[str, str], alias: str) -> TemporaryCredentials:
    """Credentials from a 200 answer; malformed answers are non-recoverable and never echoed."""
    request_id = headers.get("x-amzn-RequestId")
    source = f"AWS IoT credentials provider (role alias {alias!r})"

    def malformed(problem: str) -> NonRecoverableIoTError:
        return NonRecoverableIoTError(
            f"{source} answered 200 but {problem}", status_code=200, request_id=request_id
        )

    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise malformed("the body is not JSON") from None
    credentials = document.get("credentials") if isinstance(document, dict) else None
    if not isinstance(credentials, dict):
        raise malformed("the body has no 'credentials' object")
    bad = [name for name in _FIELDS if not isinstance(credentials.get(name), str)]
    bad += [name for name in _FIELDS if name not in bad and not credentials[name]]
    if bad:
        raise malformed(f"credentials.{', credentials.'.join(bad)} missing or not a string")
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
        raise NonRecoverableIoTError(
            str(exc).replace("Expiration", "credentials.expiration"),
            status_code=200,
            request_id=request_id,
        ) from None
