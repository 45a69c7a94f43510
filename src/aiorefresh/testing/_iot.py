"""A local stand-in for the AWS IoT Core credentials provider, with real mutual TLS.

``IoTCredentialsServer`` is an aiohttp server on a loopback port that requires a client
certificate signed by its own test CA (generated with ``cryptography``), answers
``GET /role-aliases/<alias>/credentials`` like the real service, and is scripted with the
shared vocabulary (``Succeed``, ``Fail``, ``Hang``, ``Malformed``, ``Delay``, ``Disconnect``,
``Respond`` or a shortcut such as ``"throttle"``). Needs the ``testing`` extra.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import ssl
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar, Literal

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from .._types import TemporaryCredentials
from ..errors import ConfigurationError
from ._outcomes import (
    IOT_OUTCOMES,
    Disconnect,
    Fail,
    Hang,
    Malformed,
    Outcome,
    Respond,
    Succeed,
    scripted_status,
)
from ._pki import ClientCertificate, cert_pem, issue, key_pem, make_ca, write_private
from ._server import ScriptedServer, raw_response

__all__ = [
    "ClientCertificate",
    "IoTCredentialsServer",
    "IoTFiles",
    "IoTOutcome",
    "IoTRequest",
]

ACTION = "AssumeRoleWithCertificate"
"""The one action of the credentials provider (``iot:AssumeRoleWithCertificate``)."""

_ACCESS_DENIED = {"message": "Access Denied"}
_BROKEN_JSON = b'{"credentials": {"accessKeyId": '
_SECRET_HEADERS = frozenset({"authorization", "x-amz-security-token", "cookie"})
_MASK = "****"
_DURATION = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class IoTFiles:
    """Where `IoTCredentialsServer.write_files` put the PEM files."""

    ca: Path
    certificate: Path
    private_key: Path


@dataclass(frozen=True)
class IoTRequest:
    """One request the server received, after TLS, and the status it was scripted to answer.

    ``status`` is 0 for a request that hangs or is disconnected; ``outcome`` is the scripted
    outcome it took (``None`` when the server's own checks answered: wrong alias or thing,
    bad duration, unknown path). The ``repr`` masks credential-bearing headers.
    """

    method: str
    path: str
    role_alias: str | None
    thing_name: str | None
    duration_seconds: str | None
    headers: Mapping[str, str]
    client_common_name: str | None
    peer: tuple[Any, ...] | None
    status: int
    outcome: Outcome | None = None

    @property
    def action(self) -> str | None:
        """``"AssumeRoleWithCertificate"`` for a credentials request, else ``None``."""
        return ACTION if self.role_alias is not None else None

    def __repr__(self) -> str:
        headers = {k: _MASK if k.lower() in _SECRET_HEADERS else v for k, v in self.headers.items()}
        return (
            f"IoTRequest(method={self.method!r}, path={self.path!r}, "
            f"role_alias={self.role_alias!r}, thing_name={self.thing_name!r}, "
            f"duration_seconds={self.duration_seconds!r}, headers={headers!r}, "
            f"client_common_name={self.client_common_name!r}, peer={self.peer!r}, "
            f"status={self.status!r}, outcome={self.outcome!r})"
        )


@dataclass(frozen=True)
class IoTOutcome:
    """The older spelling of one scripted answer; ``script()`` still takes it.

    The ``IoTCredentialsServer`` builders now return the shared outcomes (`Succeed`,
    `Respond`, `Fail`, `Malformed`, `Hang`, `Disconnect`).
    """

    kind: Literal["ok", "respond", "hang", "disconnect"]
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    lifetime: timedelta | None = None

    def to_outcome(self) -> Outcome:
        """The same answer in the shared vocabulary."""
        if self.kind == "ok":
            return Succeed(self.lifetime)
        if self.kind == "hang":
            return Hang()
        if self.kind == "disconnect":
            return Disconnect()
        return Respond(self.status, self.body, self.content_type, dict(self.headers))


class IoTCredentialsServer(ScriptedServer[IoTRequest]):
    """The AWS IoT credentials provider on ``127.0.0.1``: mutual TLS, role alias, thing name.

    Credentials it issues expire ``lifetime`` (or the requested duration) after ``clock()``.
    Requests for another role alias, or without the configured thing name, get 403
    ``{"message": "Access Denied"}`` as from the real service; a malformed duration header 400.
    Those checks come first; a request that passes takes the next scripted outcome.
    Use as ``async with IoTCredentialsServer() as server:`` (or ``serve_in_thread()``) and pass
    ``server.endpoint``, ``server.ca_pem``, ``server.client_cert_pem`` and
    ``server.client_key_pem`` to the fetcher. ``maximum_tls_version=ssl.TLSVersion.TLSv1_2``
    makes a refused client certificate fail the handshake itself (with TLS 1.3 it shows as a
    closed connection on the first read).
    """

    OUTCOMES: ClassVar[Mapping[str, Outcome]] = IOT_OUTCOMES
    ACTIONS: ClassVar[frozenset[str]] = frozenset({ACTION})
    _OTHER_KINDS: ClassVar[str] = "/IoTOutcome"

    def __init__(
        self,
        *,
        role_alias: str = "aiorefresh-test",
        thing_name: str | None = None,
        clock: Callable[[], datetime] | None = None,
        lifetime: timedelta = timedelta(hours=1),
        host: str = "127.0.0.1",
        port: int = 0,
        maximum_tls_version: ssl.TLSVersion | None = None,
    ) -> None:
        if not isinstance(lifetime, timedelta):
            raise ConfigurationError(f"lifetime must be a timedelta, got {lifetime!r}")
        super().__init__(host=host, port=port)
        self.role_alias = role_alias
        self.maximum_tls_version = maximum_tls_version
        self.thing_name = thing_name
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.lifetime = lifetime
        self.issued: list[TemporaryCredentials] = []
        """Every set of credentials handed out, in order."""
        self._ca_key, self._ca_cert = make_ca("aiorefresh test CA")
        self._other_ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None
        self._server_key, self._server_cert = issue(
            self._ca_key, self._ca_cert, "aiorefresh test IoT endpoint", server_host=host
        )
        self.ca_pem = cert_pem(self._ca_cert)
        client = self.issue_client_certificate()
        self.client_cert_pem = client.certificate_pem
        self.client_key_pem = client.private_key_pem

    @property
    def endpoint(self) -> str:
        """``https://127.0.0.1:PORT`` once started, else ``""``."""
        return self._base_url or ""

    # ----------------------------------------------------------------- scripting

    @staticmethod
    def ok(lifetime: timedelta | None = None) -> Succeed:
        """Issue credentials (with a custom ``lifetime`` if given): ``Succeed(lifetime)``."""
        return Succeed(lifetime)

    @staticmethod
    def respond(
        status: int,
        body: Mapping[str, Any] | str | bytes = b"",
        *,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Respond:
        """Answer ``status`` with ``body``: a mapping as JSON, text (HTML if it starts with <)."""
        return Respond(status, body, content_type, dict(headers or {}))

    @staticmethod
    def error(status: int, message: str, *, error_type: str | None = None) -> Fail:
        """A JSON error as the service sends it: ``{"message": ...}`` and ``x-amzn-ErrorType``."""
        return Fail(error_type or "", message, status)

    @staticmethod
    def malformed() -> Malformed:
        """200 with a body that is not JSON: ``Malformed()``."""
        return Malformed()

    @staticmethod
    def hang() -> Hang:
        """Never answer (until the server closes): ``Hang()``."""
        return Hang()

    @staticmethod
    def disconnect() -> Disconnect:
        """Close the connection without answering: ``Disconnect()``."""
        return Disconnect()

    def _convert(self, value: object) -> Outcome | None:
        return value.to_outcome() if isinstance(value, IoTOutcome) else None

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
        key, cert = issue(ca_key, ca_cert, common_name)
        return ClientCertificate(cert_pem(cert), key_pem(key, password), common_name)

    @property
    def untrusted_ca_pem(self) -> bytes:
        """A CA that signed neither the server's certificate nor trusted client certificates."""
        return cert_pem(self._untrusted_ca()[1])

    def write_files(
        self, directory: str | PathLike[str], client: ClientCertificate | None = None
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
        write_private(files.private_key, key)
        return files

    def _untrusted_ca(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        if self._other_ca is None:
            self._other_ca = make_ca("aiorefresh untrusted CA")
        return self._other_ca

    async def _tls_context(self) -> ssl.SSLContext:
        # ssl loads a certificate chain from files only: build it off the event loop.
        return await asyncio.get_running_loop().run_in_executor(None, self._server_context)

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
            certificate.write_bytes(cert_pem(self._server_cert))
            write_private(key, key_pem(self._server_key))
            context.load_cert_chain(certificate, key)
        return context

    # ----------------------------------------------------------------- handlers

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/role-aliases/{alias}/credentials", self._credentials)
        app.router.add_route("*", "/{tail:.*}", self._not_found)

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        return self._checked(request, None, Respond(404, {"message": "Not Found"}))

    async def _credentials(self, request: web.Request) -> web.StreamResponse:
        alias = request.match_info["alias"]
        thing = request.headers.get("x-amzn-iot-thingname")
        duration = request.headers.get("x-amzn-iot-credential-duration-seconds")
        denied = alias != self.role_alias or (
            self.thing_name is not None and thing != self.thing_name
        )
        if denied:
            return self._checked(request, alias, Respond(403, _ACCESS_DENIED))
        lifetime = self.lifetime
        if duration is not None:
            if _DURATION.fullmatch(duration) is None or not 900 <= int(duration) <= 43200:
                refusal = Respond(400, {"message": "Invalid credential duration"})
                return self._checked(request, alias, refusal)
            lifetime = timedelta(seconds=int(duration))
        outcome = self._take(ACTION)
        self._record(self._request(request, alias, scripted_status(outcome), outcome))
        return await self._play(request, outcome, lambda played: self._answer(played, lifetime))

    def _checked(
        self, request: web.Request, alias: str | None, answer: Respond
    ) -> web.StreamResponse:
        """Answer from the server's own checks, before (and without taking) any script."""
        self._record(self._request(request, alias, answer.status, None))
        return raw_response(answer, **{"x-amzn-RequestId": secrets.token_hex(16)})

    def _answer(self, outcome: Outcome, lifetime: timedelta) -> web.StreamResponse:
        request_id = {"x-amzn-RequestId": secrets.token_hex(16)}
        if isinstance(outcome, Succeed):
            chosen = lifetime if outcome.lifetime is None else outcome.lifetime
            return raw_response(self._issue_credentials(chosen), **request_id)
        if isinstance(outcome, Fail):
            headers = {"x-amzn-ErrorType": f"{outcome.code}:"} if outcome.code else {}
            answer = Respond(outcome.status, {"message": outcome.message}, headers=headers)
            return raw_response(answer, **request_id)
        if isinstance(outcome, Malformed):
            body = _BROKEN_JSON if outcome.body is None else outcome.body
            return raw_response(Respond(outcome.status, body, "application/json"), **request_id)
        assert isinstance(outcome, Respond)
        return raw_response(outcome, **request_id)

    def _issue_credentials(self, lifetime: timedelta) -> Respond:
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
        return Respond(200, body)

    def _request(
        self, request: web.Request, alias: str | None, status: int, outcome: Outcome | None
    ) -> IoTRequest:
        transport = request.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        peercert = transport.get_extra_info("peercert") if transport is not None else None
        return IoTRequest(
            method=request.method,
            path=request.path,
            role_alias=alias,
            thing_name=request.headers.get("x-amzn-iot-thingname"),
            duration_seconds=request.headers.get("x-amzn-iot-credential-duration-seconds"),
            headers=dict(request.headers),
            client_common_name=_common_name(peercert),
            peer=tuple(peer) if peer is not None else None,
            status=status,
            outcome=outcome,
        )

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]} issued={len(self.issued)}>"


def _common_name(peercert: object) -> str | None:
    if not isinstance(peercert, dict):
        return None
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None
