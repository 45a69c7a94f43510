"""``STSStandIn``: a real HTTP server on 127.0.0.1 that answers like AWS STS, faults on demand.

moto plays STS's happy path; this stand-in also plays what moto cannot: throttling, access
denied, a rejected MFA code, a server that never answers, broken XML, credentials that are
already expired. It speaks STS's query protocol (form-encoded ``Action=...`` POSTs, XML
answers) so real aiobotocore clients talk to it unchanged: point ``endpoint_url`` at it.

    async with STSStandIn(clock=frozen_clock) as sts:
        sts.script("throttle", "ok", action="AssumeRole")
        ...  # a client with endpoint_url=sts.endpoint_url
        assert sts.count("AssumeRole") == 2

The stand-in runs on the event loop that started it (aiohttp is asyncio-only), or on its own
loop in a thread with ``serve_in_thread()``. The outcomes are the shared vocabulary of
`aiorefresh.testing._outcomes`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import ClassVar
from xml.sax.saxutils import escape

from aiohttp import web

from .._types import Identity, TemporaryCredentials
from ..errors import ConfigurationError
from ._outcomes import (
    STS_OUTCOMES,
    Delay,
    Disconnect,
    Fail,
    Hang,
    Malformed,
    Outcome,
    Respond,
    Succeed,
)
from ._server import ScriptedServer, raw_response

__all__ = [
    "ACTIONS",
    "OUTCOMES",
    "Delay",
    "Disconnect",
    "Fail",
    "Hang",
    "Malformed",
    "Outcome",
    "RecordedRequest",
    "Respond",
    "STSStandIn",
    "Succeed",
]

ACTIONS = frozenset(
    {"AssumeRole", "AssumeRoleWithWebIdentity", "GetCallerIdentity", "GetSessionToken"}
)
"""The STS actions the stand-in answers."""

OUTCOMES: Mapping[str, Outcome] = STS_OUTCOMES
"""The string shortcuts ``script()`` accepts, and the outcome each one stands for."""

_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
_BROKEN_XML = f'<AssumeRoleResponse xmlns="{_NAMESPACE}"><AssumeRoleResult><Credentials><Acc'
_UNSIGNED_ACTIONS = frozenset({"AssumeRoleWithWebIdentity"})
_SECRET_PARAMS = frozenset({"TokenCode", "WebIdentityToken", "SAMLAssertion"})
_MASK = "****"
_ROLE_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):iam::(?P<account>\d{12}):role/(?:.*/)?(?P<name>[^/]+)"
)
_CREDENTIAL = re.compile(r"Credential=(?P<key>[A-Za-z0-9]+)/")
_ACCOUNT_ID = re.compile(r"\d{12}")
_DURATIONS = {  # action: (min, default, max) seconds, as STS documents them
    "AssumeRole": (900, 3600, 43200),
    "AssumeRoleWithWebIdentity": (900, 3600, 43200),
    "GetSessionToken": (900, 43200, 129600),
}


# ------------------------------------------------------------------------------ records


@dataclasses.dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the stand-in received; ``repr`` masks MFA codes, tokens and assertions.

    ``params`` holds the raw form parameters (for assertions); ``access_key`` is the key id
    that signed the request (``None`` if unsigned).
    """

    action: str
    params: Mapping[str, str]
    access_key: str | None
    session_token: str | None
    outcome: Outcome
    received_at: datetime

    def __repr__(self) -> str:
        params = {k: _MASK if k in _SECRET_PARAMS else v for k, v in self.params.items()}
        token = _MASK if self.session_token else None
        return (
            f"RecordedRequest(action={self.action!r}, params={params!r}, "
            f"access_key={self.access_key!r}, session_token={token!r}, "
            f"outcome={self.outcome!r}, received_at={self.received_at.isoformat()!r})"
        )


class _Refusal(Exception):
    """An STS error answer raised from inside an action."""

    def __init__(self, fail: Fail) -> None:
        super().__init__(fail.code)
        self.fail = fail


def _validation_error(message: str) -> _Refusal:
    return _Refusal(Fail("ValidationError", f"1 validation error detected: {message}", 400))


@dataclasses.dataclass(frozen=True, slots=True)
class _Issued:
    credentials: TemporaryCredentials
    identity: Identity


# ----------------------------------------------------------------------------- stand-in


class STSStandIn(ScriptedServer[RecordedRequest]):
    """A scripted STS on ``127.0.0.1`` for aiobotocore clients; ``async with`` starts and stops it.

    - ``script(*outcomes, action=None)`` queues how the next requests (of ``action``, or of
      any action) are answered; an empty queue answers successfully.
    - Issued credentials are unique per call (``ASIA...`` keys) and expire ``lifetime`` after
      ``clock()``; with ``lifetime=None`` the request's ``DurationSeconds`` (or STS's default)
      decides, as in STS.
    - ``GetCallerIdentity`` answers who signed the request: the role (or user) an issued key
      belongs to, or a fixed IAM user for keys it did not issue. Issued keys used after they
      expire get ``ExpiredToken``; without their session token, ``InvalidClientTokenId``.
    - An MFA code used again within ``mfa_reuse_window`` is rejected like STS does (``None``
      turns that off).

    ``with sts.serve_in_thread():`` serves from a private loop instead (the ``sts_standin``
    fixture does), for any test runner and loop scope.
    """

    OUTCOMES: ClassVar[Mapping[str, Outcome]] = OUTCOMES
    ACTIONS: ClassVar[frozenset[str]] = ACTIONS

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        lifetime: timedelta | None = None,
        account_id: str = "123456789012",
        host: str = "127.0.0.1",
        port: int = 0,
        mfa_reuse_window: timedelta | None = timedelta(seconds=90),
    ) -> None:
        if lifetime is not None and (
            not isinstance(lifetime, timedelta) or lifetime <= timedelta(0)
        ):
            raise ConfigurationError("lifetime must be a positive timedelta or None")
        if not isinstance(account_id, str) or _ACCOUNT_ID.fullmatch(account_id) is None:
            raise ConfigurationError("account_id must be a str of 12 digits")
        super().__init__(host=host, port=port)
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._lifetime = lifetime
        self.account_id = account_id
        """The account of the fixed user; issued role credentials take the role ARN's account."""
        self._mfa_reuse_window = mfa_reuse_window
        self._issued: dict[str, _Issued] = {}
        self._used_codes: dict[tuple[str, str], datetime] = {}
        self.issued: list[TemporaryCredentials] = []
        """Every set of credentials handed out, in order."""
        self.user = Identity(
            account_id=account_id,
            arn=f"arn:aws:iam::{account_id}:user/sts-standin",
            user_id="AIDASTANDINUSER00001",
        )
        """The identity of keys the stand-in did not issue (the caller's long-term keys)."""

    def reset(self) -> None:
        """Forget queued outcomes and recorded requests (issued keys stay valid)."""
        super().reset()

    def identity_of(self, access_key: str) -> Identity:
        """Who ``GetCallerIdentity`` says signs with ``access_key``."""
        issued = self._issued.get(access_key)
        return issued.identity if issued is not None else self.user

    # -- HTTP

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._handle)

    def _closed_answer(self) -> web.StreamResponse:
        return _error_response(Fail("ServiceUnavailable", "The stand-in closed.", 503))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        params: dict[str, str] = dict(request.query.items())
        if request.method == "POST":
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        action = params.get("Action", "")
        match = _CREDENTIAL.search(
            request.headers.get("Authorization", "") or request.query.get("X-Amz-Credential", "")
        )
        outcome = self._take(action)
        record = RecordedRequest(
            action=action,
            params=MappingProxyType(params),
            access_key=match.group("key") if match else None,
            session_token=request.headers.get("X-Amz-Security-Token")
            or request.query.get("X-Amz-Security-Token"),
            outcome=outcome,
            received_at=self._clock(),
        )
        self._record(record)
        return await self._play(request, outcome, lambda played: self._answer(record, played))

    def _answer(self, record: RecordedRequest, outcome: Outcome) -> web.StreamResponse:
        if isinstance(outcome, Fail):
            return _error_response(outcome)
        if isinstance(outcome, Malformed):
            body = _BROKEN_XML if outcome.body is None else outcome.body
            return _xml_response(body, status=outcome.status)
        if isinstance(outcome, Respond):
            return raw_response(outcome, **{"x-amzn-RequestId": str(uuid.uuid4())})
        assert isinstance(outcome, Succeed)
        try:
            return _xml_response(self._perform(record, outcome.lifetime))
        except _Refusal as refusal:
            return _error_response(refusal.fail)

    # -- actions

    def _perform(self, record: RecordedRequest, lifetime: timedelta | None) -> str:
        actions: Mapping[str, Callable[[RecordedRequest, timedelta | None], str]] = {
            "AssumeRole": self._assume_role,
            "AssumeRoleWithWebIdentity": self._assume_role_with_web_identity,
            "GetCallerIdentity": self._get_caller_identity,
            "GetSessionToken": self._get_session_token,
        }
        handler = actions.get(record.action)
        if handler is None:
            raise _Refusal(
                Fail(
                    "InvalidAction",
                    f"Could not find operation {record.action} for version 2011-06-15",
                )
            )
        if record.action not in _UNSIGNED_ACTIONS:
            self._authenticate(record)
        return handler(record, lifetime)

    def _authenticate(self, record: RecordedRequest) -> None:
        if record.access_key is None:
            raise _Refusal(
                Fail("MissingAuthenticationToken", "Request is missing Authentication Token", 403)
            )
        issued = self._issued.get(record.access_key)
        if issued is None:
            return
        if record.session_token != issued.credentials.token:
            fail = OUTCOMES["invalid_token"]
            assert isinstance(fail, Fail)
            raise _Refusal(fail)
        if self._clock() >= issued.credentials.expiry_time:
            fail = OUTCOMES["expired_token"]
            assert isinstance(fail, Fail)
            raise _Refusal(fail)

    def _assume_role(self, record: RecordedRequest, lifetime: timedelta | None) -> str:
        role_arn = _required(record, "RoleArn")
        session = _required(record, "RoleSessionName")
        duration = self._duration(record)
        self._check_mfa(record)
        identity = self._role_identity(role_arn, session)
        credentials = self._issue(identity, lifetime or duration)
        result = _credentials_xml(credentials) + _assumed_role_user_xml(identity)
        return _document(record.action, result)

    def _assume_role_with_web_identity(
        self, record: RecordedRequest, lifetime: timedelta | None
    ) -> str:
        role_arn = _required(record, "RoleArn")
        session = _required(record, "RoleSessionName")
        _required(record, "WebIdentityToken")
        duration = self._duration(record)
        identity = self._role_identity(role_arn, session)
        credentials = self._issue(identity, lifetime or duration)
        result = (
            "<SubjectFromWebIdentityToken>sts-standin-subject</SubjectFromWebIdentityToken>"
            + _credentials_xml(credentials)
            + _assumed_role_user_xml(identity)
            + "<Provider>sts-standin</Provider><Audience>sts.amazonaws.com</Audience>"
        )
        return _document(record.action, result)

    def _get_session_token(self, record: RecordedRequest, lifetime: timedelta | None) -> str:
        duration = self._duration(record)
        assert record.access_key is not None
        signer = self._issued.get(record.access_key)
        if signer is not None:
            raise _Refusal(
                Fail("AccessDenied", "Cannot call GetSessionToken with session credentials", 403)
            )
        self._check_mfa(record)
        identity = self.identity_of(record.access_key)
        credentials = self._issue(identity, lifetime or duration)
        return _document(record.action, _credentials_xml(credentials))

    def _get_caller_identity(self, record: RecordedRequest, lifetime: timedelta | None) -> str:
        assert record.access_key is not None
        identity = self.identity_of(record.access_key)
        result = (
            f"<Arn>{escape(identity.arn)}</Arn><UserId>{escape(identity.user_id)}</UserId>"
            f"<Account>{escape(identity.account_id)}</Account>"
        )
        return _document(record.action, result)

    # -- helpers

    def _duration(self, record: RecordedRequest) -> timedelta:
        low, default, high = _DURATIONS[record.action]
        text = record.params.get("DurationSeconds")
        if text is None:
            seconds = default
        else:
            try:
                seconds = int(text)
            except ValueError:
                raise _validation_error(
                    "Value at 'durationSeconds' failed to satisfy constraint: "
                    "Member must be an integer"
                ) from None
            if seconds < low:
                raise _validation_error(
                    f"Value '{seconds}' at 'durationSeconds' failed to satisfy constraint: "
                    f"Member must have value greater than or equal to {low}"
                )
            if seconds > high:
                raise _validation_error(
                    f"Value '{seconds}' at 'durationSeconds' failed to satisfy constraint: "
                    f"Member must have value less than or equal to {high}"
                )
        return self._lifetime or timedelta(seconds=seconds)

    def _check_mfa(self, record: RecordedRequest) -> None:
        code = record.params.get("TokenCode")
        if code is None:
            return
        if re.fullmatch(r"[0-9]{6}", code) is None:
            raise _validation_error(
                "Value at 'tokenCode' failed to satisfy constraint: Member must be 6 digits"
            )
        device = record.params.get("SerialNumber", "")
        now = self._clock()
        used_at = self._used_codes.get((device, code))
        window = self._mfa_reuse_window
        if used_at is not None and window is not None and now - used_at < window:
            fail = OUTCOMES["bad_mfa"]
            assert isinstance(fail, Fail)
            raise _Refusal(fail)
        self._used_codes[(device, code)] = now

    def _role_identity(self, role_arn: str, session: str) -> Identity:
        match = _ROLE_ARN.fullmatch(role_arn)
        if match is None:
            raise _validation_error(
                "Value at 'roleArn' failed to satisfy constraint: Member must be a role ARN"
            )
        digest = hashlib.sha256(role_arn.encode()).hexdigest().upper()
        role_id = "AROA" + digest[:17]
        return Identity(
            account_id=match["account"],
            arn=f"arn:{match['partition']}:sts::{match['account']}:assumed-role/"
            f"{match['name']}/{session}",
            user_id=f"{role_id}:{session}",
        )

    def _issue(self, identity: Identity, lifetime: timedelta) -> TemporaryCredentials:
        number = len(self._issued) + 1
        expiry = (self._clock() + lifetime).astimezone(timezone.utc).replace(microsecond=0)
        credentials = TemporaryCredentials(
            access_key=f"ASIASTANDIN{number:09d}",
            secret_key=secrets.token_urlsafe(30),
            token=secrets.token_urlsafe(96),
            expiry_time=expiry,
            account_id=identity.account_id,
        )
        self._issued[credentials.access_key] = _Issued(credentials, identity)
        self.issued.append(credentials)
        return credentials

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]} issued={len(self.issued)}>"


# --------------------------------------------------------------------------------- XML


def _required(record: RecordedRequest, name: str) -> str:
    value = record.params.get(name)
    if not value:
        field = name[0].lower() + name[1:]
        raise _validation_error(
            f"Value null at '{field}' failed to satisfy constraint: Member must not be null"
        )
    return value


def _credentials_xml(credentials: TemporaryCredentials) -> str:
    expiration = credentials.expiry_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"<Credentials><AccessKeyId>{credentials.access_key}</AccessKeyId>"
        f"<SecretAccessKey>{escape(credentials.secret_key)}</SecretAccessKey>"
        f"<SessionToken>{escape(credentials.token or '')}</SessionToken>"
        f"<Expiration>{expiration}</Expiration></Credentials>"
    )


def _assumed_role_user_xml(identity: Identity) -> str:
    return (
        f"<AssumedRoleUser><AssumedRoleId>{escape(identity.user_id)}</AssumedRoleId>"
        f"<Arn>{escape(identity.arn)}</Arn></AssumedRoleUser>"
    )


def _document(action: str, result: str) -> str:
    return (
        f'<{action}Response xmlns="{_NAMESPACE}"><{action}Result>{result}</{action}Result>'
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    )


def _xml_response(body: str | bytes, *, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=body.encode() if isinstance(body, str) else body,
        content_type="text/xml",
        headers={"x-amzn-RequestId": str(uuid.uuid4())},
    )


def _error_response(fail: Fail) -> web.Response:
    request_id = str(uuid.uuid4())
    body = (
        f'<ErrorResponse xmlns="{_NAMESPACE}"><Error><Type>{escape(fail.type)}</Type>'
        f"<Code>{escape(fail.code)}</Code><Message>{escape(fail.message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return web.Response(
        status=fail.status,
        text=body,
        content_type="text/xml",
        headers={"x-amzn-RequestId": request_id},
    )
