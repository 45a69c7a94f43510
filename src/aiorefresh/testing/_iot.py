"""A local stand-in for the AWS IoT Core credentials provider, with real mutual TLS.

``IoTCredentialsServer`` is an aiohttp server on a loopback port that requires a client
certificate signed by its own test CA (generated with ``cryptography``), answers
``GET /role-aliases/<alias>/credentials`` like the real service, and can be scripted to fail,
hang or answer garbage. Needs the ``testing`` extra (``cryptography``, ``aiohttp``).
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import json
import os
import secrets
import socket
import ssl
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .._types import TemporaryCredentials

__all__ = [
    "ClientCertificate",
    "IoTCredentialsServer",
    "IoTFiles",
    "IoTOutcome",
    "IoTRequest",
]

_ACCESS_DENIED = {"message": "Access Denied"}


@dataclass(frozen=True)
class ClientCertificate:
    """A device certificate and its private key (PEM; the key encrypted if a password was set)."""

    certificate_pem: bytes
    private_key_pem: bytes = field(repr=False)
    common_name: str = "aiorefresh-test-thing"


@dataclass(frozen=True)
class IoTFiles:
    """Where `IoTCredentialsServer.write_files` put the PEM files."""

    ca: Path
    certificate: Path
    private_key: Path


@dataclass(frozen=True)
class IoTRequest:
    """One request the server received, after TLS, and the status it answered."""

    method: str
    path: str
    role_alias: str | None
    thing_name: str | None
    duration_seconds: str | None
    headers: Mapping[str, str]
    client_common_name: str | None
    peer: tuple[Any, ...] | None
    status: int


@dataclass(frozen=True)
class IoTOutcome:
    """One scripted answer; build it with the ``IoTCredentialsServer`` static methods."""

    kind: Literal["ok", "respond", "hang", "disconnect"]
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    lifetime: timedelta | None = None


class IoTCredentialsServer:
    """The AWS IoT credentials provider on ``127.0.0.1``: mutual TLS, role alias, thing name.

    Credentials it issues expire ``lifetime`` (or the requested duration) after ``clock()``.
    Requests for another role alias, or without the configured thing name, get 403
    ``{"message": "Access Denied"}`` as from the real service; a malformed duration header 400.
    Use as ``async with IoTCredentialsServer() as server:`` and pass ``server.endpoint``,
    ``server.ca_pem``, ``server.client_cert_pem`` and ``server.client_key_pem`` to the fetcher.
    ``maximum_tls_version=ssl.TLSVersion.TLSv1_2`` makes a refused client certificate fail the
    handshake itself (with TLS 1.3 it shows as a closed connection on the first read).
    """

    def __init__(
        self,
        *,
        role_alias: str = "aiorefresh-test",
        thing_name: str | None = None,
        clock: Callable[[], datetime] | None = None,
        lifetime: timedelta = timedelta(hours=1),
        host: str = "127.0.0.1",
        maximum_tls_version: ssl.TLSVersion | None = None,
    ) -> None:
        self.role_alias = role_alias
        self.maximum_tls_version = maximum_tls_version
        self.thing_name = thing_name
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.lifetime = lifetime
        self.host = host
        self.endpoint = ""
        self.requests: list[IoTRequest] = []
        self.issued: list[TemporaryCredentials] = []
        self._script: collections.deque[IoTOutcome] = collections.deque()
        self._ca_key, self._ca_cert = _make_ca("aiorefresh test CA")
        self._other_ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None
        self._server_key, self._server_cert = _issue(
            self._ca_key, self._ca_cert, "aiorefresh test IoT endpoint", server_host=host
        )
        self.ca_pem = _cert_pem(self._ca_cert)
        client = self.issue_client_certificate()
        self.client_cert_pem = client.certificate_pem
        self.client_key_pem = client.private_key_pem
        self._runner: web.AppRunner | None = None
        self._released: asyncio.Event | None = None

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> IoTCredentialsServer:
        """Listen on a free port of ``host``; sets ``endpoint`` to ``https://host:port``."""
        if self._runner is not None:
            raise RuntimeError("IoTCredentialsServer is already started")
        self._released = asyncio.Event()
        app = web.Application()
        app.router.add_get("/role-aliases/{alias}/credentials", self._credentials)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.bind((self.host, 0))
            site = web.SockSite(runner, sock, ssl_context=self._server_context())
            await site.start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        port = sock.getsockname()[1]
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        self.endpoint = f"https://{netloc}:{port}"
        return self

    async def aclose(self) -> None:
        """Release hanging requests and stop listening; idempotent."""
        if self._released is not None:
            self._released.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> IoTCredentialsServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ----------------------------------------------------------------- scripting

    def script(self, *outcomes: IoTOutcome) -> None:
        """Queue the answers to the next requests (after the alias and thing checks pass)."""
        for outcome in outcomes:
            if not isinstance(outcome, IoTOutcome):
                raise TypeError(f"script() takes IoTOutcome values, got {type(outcome).__name__}")
        self._script.extend(outcomes)

    @staticmethod
    def ok(lifetime: timedelta | None = None) -> IoTOutcome:
        """Issue credentials (with a custom ``lifetime`` if given)."""
        return IoTOutcome("ok", lifetime=lifetime)

    @staticmethod
    def respond(
        status: int,
        body: Mapping[str, Any] | str | bytes = b"",
        *,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> IoTOutcome:
        """Answer ``status`` with ``body``: a mapping as JSON, text (HTML if it starts with <)."""
        if isinstance(body, Mapping):
            raw, guessed = json.dumps(body).encode(), "application/json"
        else:
            raw = body.encode() if isinstance(body, str) else bytes(body)
            guessed = "text/html" if raw.lstrip().startswith(b"<") else "text/plain"
        return IoTOutcome("respond", status, raw, content_type or guessed, dict(headers or {}))

    @staticmethod
    def error(status: int, message: str, *, error_type: str | None = None) -> IoTOutcome:
        """A JSON error as the service sends it: ``{"message": ...}`` and ``x-amzn-ErrorType``."""
        headers = {"x-amzn-ErrorType": f"{error_type}:"} if error_type else {}
        return IoTCredentialsServer.respond(status, {"message": message}, headers=headers)

    @staticmethod
    def malformed() -> IoTOutcome:
        """200 with a body that is not JSON."""
        return IoTCredentialsServer.respond(
            200, b'{"credentials": {"accessKeyId": ', content_type="application/json"
        )

    @staticmethod
    def hang() -> IoTOutcome:
        """Never answer (until ``aclose``): for timeout tests."""
        return IoTOutcome("hang")

    @staticmethod
    def disconnect() -> IoTOutcome:
        """Close the connection without answering."""
        return IoTOutcome("disconnect")

    def count(self) -> int:
        """How many requests reached the HTTP layer (TLS rejections are not counted)."""
        return len(self.requests)

    @property
    def connections(self) -> int:
        """How many distinct TLS connections carried the recorded calls."""
        return len({request.peer for request in self.requests})

    # ----------------------------------------------------------------- certificates

    def issue_client_certificate(
        self,
        *,
        common_name: str = "aiorefresh-test-thing",
        password: str | bytes | None = None,
        trusted: bool = True,
    ) -> ClientCertificate:
        """A new device certificate, signed by this server's CA (or, untrusted, by another CA).

        With ``password`` the key is PKCS#8 encrypted (``-----BEGIN ENCRYPTED PRIVATE KEY``).
        """
        ca_key, ca_cert = (self._ca_key, self._ca_cert) if trusted else self._untrusted_ca()
        key, cert = _issue(ca_key, ca_cert, common_name)
        encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
        if password is not None:
            secret = password.encode() if isinstance(password, str) else password
            encryption = serialization.BestAvailableEncryption(secret)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        return ClientCertificate(_cert_pem(cert), key_pem, common_name)

    @property
    def untrusted_ca_pem(self) -> bytes:
        """A CA that signed neither the server's certificate nor trusted client certificates."""
        return _cert_pem(self._untrusted_ca()[1])

    def write_files(
        self, directory: str | os.PathLike[str], client: ClientCertificate | None = None
    ) -> IoTFiles:
        """Write the CA, a client certificate and its key (mode 0600) into ``directory``."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        certificate = client.certificate_pem if client else self.client_cert_pem
        key = client.private_key_pem if client else self.client_key_pem
        files = IoTFiles(
            ca=folder / "AmazonRootCA1.pem",
            certificate=folder / "device.pem.crt",
            private_key=folder / "private.pem.key",
        )
        files.ca.write_bytes(self.ca_pem)
        files.certificate.write_bytes(certificate)
        _write_private(files.private_key, key)
        return files

    def _untrusted_ca(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        if self._other_ca is None:
            self._other_ca = _make_ca("aiorefresh untrusted CA")
        return self._other_ca

    def _server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(
            ssl.Purpose.CLIENT_AUTH, cadata=self.ca_pem.decode("ascii")
        )
        context.verify_mode = ssl.CERT_REQUIRED
        if self.maximum_tls_version is not None:
            context.maximum_version = self.maximum_tls_version
        with tempfile.TemporaryDirectory(prefix="aiorefresh-iot-server-") as directory:
            certificate = Path(directory, "server.pem")
            key = Path(directory, "server.key")
            certificate.write_bytes(_cert_pem(self._server_cert))
            _write_private(
                key,
                self._server_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            context.load_cert_chain(certificate, key)
        return context

    # ----------------------------------------------------------------- handlers

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        self._record(request, None, 404)
        return web.json_response({"message": "Not Found"}, status=404)

    async def _credentials(self, request: web.Request) -> web.StreamResponse:
        alias = request.match_info["alias"]
        thing = request.headers.get("x-amzn-iot-thingname")
        duration = request.headers.get("x-amzn-iot-credential-duration-seconds")
        denied = alias != self.role_alias or (
            self.thing_name is not None and thing != self.thing_name
        )
        if denied:
            return self._answer(request, alias, self.respond(403, _ACCESS_DENIED))
        lifetime = self.lifetime
        if duration is not None:
            if not duration.isdigit() or not 900 <= int(duration) <= 43200:
                outcome = self.respond(400, {"message": "Invalid credential duration"})
                return self._answer(request, alias, outcome)
            lifetime = timedelta(seconds=int(duration))
        outcome = self._script.popleft() if self._script else self.ok()
        if outcome.kind == "hang":
            self._record(request, alias, 0)
            assert self._released is not None
            await self._released.wait()
            return web.Response(status=503, text="server closed")
        if outcome.kind == "disconnect":
            self._record(request, alias, 0)
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=503)
        if outcome.kind == "ok":
            return self._issue_credentials(request, alias, outcome.lifetime or lifetime)
        return self._answer(request, alias, outcome)

    def _issue_credentials(
        self, request: web.Request, alias: str, lifetime: timedelta
    ) -> web.StreamResponse:
        number = len(self.issued) + 1
        expiry = (self.clock() + lifetime).astimezone(timezone.utc).replace(microsecond=0)
        credentials = TemporaryCredentials(
            access_key=f"ASIAIOT{number:013d}",
            secret_key=f"iotSecret{number:06d}{secrets.token_hex(12)}",
            token=f"iotToken{number:06d}{secrets.token_hex(24)}",
            expiry_time=expiry,
        )
        self.issued.append(credentials)
        body = {
            "credentials": {
                "accessKeyId": credentials.access_key,
                "secretAccessKey": credentials.secret_key,
                "sessionToken": credentials.token,
                "expiration": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        }
        return self._answer(request, alias, self.respond(200, body))

    def _answer(self, request: web.Request, alias: str | None, outcome: IoTOutcome) -> web.Response:
        self._record(request, alias, outcome.status)
        headers = {"x-amzn-RequestId": secrets.token_hex(16), **outcome.headers}
        return web.Response(
            status=outcome.status,
            body=outcome.body,
            content_type=outcome.content_type,
            headers=headers,
        )

    def _record(self, request: web.Request, alias: str | None, status: int) -> None:
        transport = request.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        peercert = transport.get_extra_info("peercert") if transport is not None else None
        self.requests.append(
            IoTRequest(
                method=request.method,
                path=request.path,
                role_alias=alias,
                thing_name=request.headers.get("x-amzn-iot-thingname"),
                duration_seconds=request.headers.get("x-amzn-iot-credential-duration-seconds"),
                headers=dict(request.headers),
                client_common_name=_common_name(peercert),
                peer=tuple(peer) if peer is not None else None,
                status=status,
            )
        )


def _common_name(peercert: object) -> str | None:
    if not isinstance(peercert, dict):
        return None
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.chmod(path, 0o600)


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _validity() -> tuple[datetime, datetime]:
    now = datetime.now(timezone.utc)
    return now - timedelta(days=1), now + timedelta(days=30)


def _make_ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA that satisfies OpenSSL's strict X.509 checks (Python 3.13+)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    not_before, not_after = _validity()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    *,
    server_host: str | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A leaf certificate signed by ``ca``: a server one (with SANs) or a client one."""
    key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = _validity()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server_host is not None:
        names: list[x509.GeneralName] = [x509.DNSName("localhost")]
        addresses = {ipaddress.ip_address("127.0.0.1")}
        try:
            addresses.add(ipaddress.ip_address(server_host))
        except ValueError:
            names.append(x509.DNSName(server_host))
        names += [x509.IPAddress(address) for address in sorted(addresses, key=str)]
        builder = builder.add_extension(
            x509.SubjectAlternativeName(names), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return key, builder.sign(ca_key, hashes.SHA256())
