"""The options of the ``iot`` method: checking them, reading PEM sources, normalising the
endpoint, and building the client TLS context exactly once.

Everything here runs at construction and never touches the network. Messages name the
parameter and what was expected, and never echo key material, a password, or the
credentials part (``user:password@``) of an endpoint.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeAlias
from urllib.parse import SplitResult, urlsplit

from .._util import check_bool, check_optional_str, check_seconds
from ..errors import ConfigurationError, ValidationError

__all__ = [
    "DESCRIBE_HINT",
    "IoTConfig",
    "PEMSource",
    "normalise_endpoint",
    "ssl_reason",
    "validate_iot_options",
]

PEMSource: TypeAlias = str | bytes | bytearray | os.PathLike[str]
"""A path (``str`` or ``os.PathLike[str]`` such as ``pathlib.Path``, ``~`` expanded) or PEM
content (``bytes``/``bytearray``, or a ``str`` starting with ``-----BEGIN``)."""

_ROLE_ALIAS = re.compile(r"[\w=,@-]{1,128}", re.ASCII)
_THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
_HOST_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?")
_MIN_DURATION, _MAX_DURATION = 900, 43200
DESCRIBE_HINT = (
    "find yours with `aws iot describe-endpoint --endpoint-type iot:CredentialProvider` "
    "(it looks like <prefix>.credentials.iot.<region>.amazonaws.com), "
    "or pass discover_endpoint=True"
)


class _PasswordNeeded(Exception):
    """Raised by the password callback: the key is encrypted and no password was given."""


@dataclass(frozen=True)
class IoTConfig:
    """The validated options of the ``iot`` method; build it with `validate_iot_options`.

    PEM contents are loaded once, at validation; the paths they came from are kept (paths are
    not secret) so the TLS context loads the certificate and key straight from them. The TLS
    context itself is built once, when the config is made, and shared by every fetcher and
    event loop that uses this config (it is neither shown in the repr nor compared).
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
    ssl_context: ssl.SSLContext = field(init=False, repr=False, compare=False)
    """The client TLS context: trusted CAs, server verification and the device certificate."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ssl_context", _build_ssl_context(self))

    def __copy__(self) -> IoTConfig:
        return self  # immutable: a copy would only rebuild the same TLS context

    def __deepcopy__(self, memo: dict[int, object]) -> IoTConfig:
        return self

    def __reduce__(self) -> tuple[type[IoTConfig], tuple[object, ...]]:
        # an SSLContext cannot be pickled: the receiving side builds its own from the options
        return (type(self), tuple(getattr(self, f.name) for f in fields(self) if f.init))


# --------------------------------------------------------------------------- validation


def validate_iot_options(
    *,
    endpoint: str | None,
    role_alias: str | None,
    certificate: PEMSource | None,
    private_key: PEMSource | None,
    thing_name: str | None = None,
    ca: PEMSource | None = None,
    private_key_password: str | bytes | bytearray | None = None,
    duration_seconds: int | None = None,
    timeout: float = 10.0,
    verify_peer: bool = True,
    discover_endpoint: bool = False,
) -> IoTConfig:
    """Check every ``iot`` option, load the PEM files and build the TLS context once.

    Building the context here means a key that does not match the certificate, a wrong
    ``private_key_password`` or a malformed CA fails at construction rather than at the first
    refresh. Raises `ValidationError` for wrong types and missing options and
    `ConfigurationError` for bad values, each naming the parameter; no network call is made.
    """
    check_bool("verify_peer", verify_peer)
    check_bool("discover_endpoint", discover_endpoint)
    if endpoint is None:
        if not discover_endpoint:
            raise ConfigurationError(
                "endpoint is required for method='iot': pass the credentials provider host; "
                + DESCRIBE_HINT
            )
        normalised = None
    else:
        if discover_endpoint:
            raise ConfigurationError("pass either endpoint or discover_endpoint=True, not both")
        normalised = normalise_endpoint(endpoint, parameter="endpoint")
    role_alias = _check_role_alias(role_alias)
    thing = check_optional_str("thing_name", thing_name)
    if thing is not None and not _THING_NAME.fullmatch(thing):
        raise ConfigurationError(
            "thing_name must be 1 to 128 characters of letters, digits, ':', '_' or '-'"
        )
    _check_duration(duration_seconds)
    seconds = check_seconds("timeout", timeout, allow_none=False, positive=True)
    assert seconds is not None
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
    return IoTConfig(
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
        timeout=seconds,
        verify_peer=verify_peer,
        discover_endpoint=discover_endpoint,
    )


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


def _check_duration(duration_seconds: object) -> None:
    if duration_seconds is None:
        return
    if isinstance(duration_seconds, bool) or not isinstance(duration_seconds, int):
        raise ValidationError(
            f"duration_seconds must be an int or None, got {type(duration_seconds).__name__}"
        )
    if not _MIN_DURATION <= duration_seconds <= _MAX_DURATION:
        raise ConfigurationError(
            f"duration_seconds must be between {_MIN_DURATION} and {_MAX_DURATION}, "
            f"got {duration_seconds}"
        )


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


# --------------------------------------------------------------------------- endpoint


def normalise_endpoint(value: object, *, parameter: str) -> str:
    """``https://host[:port][/prefix]`` from a bare host or an https URL; rejects data endpoints.

    An endpoint holding ``@`` is refused before anything of it is echoed (whatever the scheme,
    ``user:password@`` must never reach a message); other messages show it without its query
    and fragment.
    """
    if not isinstance(value, str):
        raise ValidationError(
            f"{parameter} must be a host name or an https:// URL, got {type(value).__name__}"
        )
    text = value.strip()
    if not text:
        raise ConfigurationError(f"{parameter} must not be empty; " + DESCRIBE_HINT)
    if "@" in text:
        raise ConfigurationError(
            f"{parameter} must not carry credentials (user:password@) nor any '@'; give the "
            "host name or https://host[:port][/path]"
        )
    shown = repr(re.split(r"[?#]", text, maxsplit=1)[0][:200])
    if "://" not in text:
        text = "https://" + text
    try:
        parts = _urlsplit(text)
    except ValueError:
        raise ConfigurationError(f"{parameter} {shown} is not a valid host or URL") from None
    scheme = parts.scheme.lower()
    if scheme == "http":
        raise ConfigurationError(
            f"{parameter} {shown} uses http://; the credentials provider authenticates the "
            "device certificate with mutual TLS, which needs https://"
        )
    if scheme != "https":
        raise ConfigurationError(f"{parameter} {shown} must be an https:// URL or a host name")
    host = parts.hostname or ""
    if parts.query or parts.fragment or not _valid_host(host):
        raise ConfigurationError(
            f"{parameter} {shown} must be a host name or https://host[:port][/path] "
            "without credentials, query or fragment"
        )
    if _is_data_endpoint(host):
        raise ConfigurationError(
            f"{parameter} {host!r} is an AWS IoT data (or other) endpoint, not the credentials "
            "provider endpoint; " + DESCRIBE_HINT
        )
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return f"https://{netloc}{parts.path.rstrip('/')}"


def _urlsplit(text: str) -> SplitResult:
    """``urlsplit`` that also raises `ValueError` for a bad port (which ``urlsplit`` defers)."""
    parts = urlsplit(text)
    _ = parts.port
    return parts


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


# --------------------------------------------------------------------------- PEM sources


def _looks_like_path(text: str) -> bool:
    return "\n" not in text and "\0" not in text and len(text) <= 4096


def _where(path: Path | None) -> str:
    return f" ('{path}')" if path is not None else ""


def _read_pem(value: PEMSource | None, parameter: str) -> tuple[bytes, Path | None]:
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
    text: object = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str):
        raise ValidationError(
            f"{parameter} must be a path (str or pathlib.Path) or PEM content (bytes, or a str "
            f"starting with -----BEGIN), got {type(value).__name__}"
        )
    if not _looks_like_path(text):
        raise ConfigurationError(
            f"{parameter} is neither PEM content (it does not start with -----BEGIN) nor a path"
        )
    path = Path(text).expanduser()
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

    ``ssl`` loads a certificate chain only from files, so in-memory PEM is written to one
    private temporary file (mode 0600, in a fresh 0700 directory) that is removed as soon as
    it is loaded; paths are loaded in place. Raises `ConfigurationError` naming the parameter.
    """
    if config.ca_pem is not None:
        try:
            context = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH, cadata=config.ca_pem.decode("ascii")
            )
        except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigurationError(
                f"ca{_where(config.ca_path)} could not be loaded as PEM CA certificates: "
                f"{ssl_reason(exc)}"
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
            f"{ssl_reason(exc)}"
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
            f"private_key{key_where} is not a valid PEM private key: {ssl_reason(exc)}"
        ) from None
    except ValueError as exc:  # a password longer than OpenSSL accepts
        raise ConfigurationError(f"private_key_password was refused: {exc}") from None
    except OSError as exc:
        raise ConfigurationError(
            "certificate or private_key could not be read while building the TLS context: "
            f"{exc.strerror or type(exc).__name__}"
        ) from None


@contextlib.contextmanager
def _client_files(config: IoTConfig) -> Iterator[tuple[str, str | None]]:
    """File names for ``load_cert_chain``: the given paths, or one private temporary file
    holding what was given in memory (certificate and key together when both were)."""
    certificate_path, key_path = config.certificate_path, config.private_key_path
    if certificate_path is not None and key_path is not None:
        yield str(certificate_path), str(key_path)
        return
    directory = tempfile.mkdtemp(prefix="aiorefresh-iot-")
    try:
        if certificate_path is None and key_path is None:
            both = config.certificate_pem.rstrip(b"\n") + b"\n" + config.private_key_pem
            yield _write_private(directory, both), None
        elif certificate_path is None:
            yield _write_private(directory, config.certificate_pem), str(key_path)
        else:
            yield str(certificate_path), _write_private(directory, config.private_key_pem)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _write_private(directory: str, data: bytes) -> str:
    """Write ``data`` to a new file only this user can read; its path."""
    path = os.path.join(directory, "client.pem")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(path, flags, 0o600), "wb") as file:
        file.write(data)
    return path


def ssl_reason(exc: BaseException) -> str:
    """The short OpenSSL reason of ``exc`` (e.g. ``CERTIFICATE_VERIFY_FAILED``)."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    if isinstance(exc, ssl.SSLError) and len(exc.args) > 1:
        return str(exc.args[1])
    return type(exc).__name__
