"""The one scripting vocabulary of the stand-in servers: how a server answers one request.

Every server in ``aiorefresh.testing`` takes these from ``server.script(...)``; each turns them
into its own protocol (an STS XML document, an IoT JSON answer). Each server also has string
shortcuts (``"throttle"``, ``"hang"`` ...) in its ``OUTCOMES`` table.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any, TypeAlias

from ..errors import ConfigurationError, ValidationError

__all__ = [
    "Delay",
    "Disconnect",
    "Fail",
    "Hang",
    "Malformed",
    "Outcome",
    "Respond",
    "Succeed",
    "IOT_OUTCOMES",
    "STS_OUTCOMES",
    "resolve_outcome",
    "scripted_status",
]


def _check_status(kind: str, status: object) -> None:
    if isinstance(status, bool) or not isinstance(status, int):
        raise ValidationError(f"{kind}(status=...) must be an int, got {type(status).__name__}")
    if not 100 <= status <= 599:
        raise ConfigurationError(f"{kind}(status=...) must be an HTTP status 100-599, got {status}")


@dataclasses.dataclass(frozen=True, slots=True)
class Succeed:
    """Answer as the service does; ``lifetime`` (may be negative) sets how long credentials live."""

    lifetime: timedelta | None = None

    def __post_init__(self) -> None:
        if self.lifetime is not None and not isinstance(self.lifetime, timedelta):
            raise ValidationError(
                f"Succeed(lifetime=...) must be a timedelta or None, "
                f"got {type(self.lifetime).__name__}"
            )


@dataclasses.dataclass(frozen=True, slots=True)
class Fail:
    """Answer with the service's error: ``code`` and ``message`` under HTTP ``status``.

    STS sends an XML error document (``type`` is its ``Sender``/``Receiver``); IoT sends
    ``{"message": ...}`` with ``code`` in ``x-amzn-ErrorType`` (no header when ``code`` is "").
    """

    code: str
    message: str
    status: int = 400
    type: str = "Sender"

    def __post_init__(self) -> None:
        _check_status("Fail", self.status)


@dataclasses.dataclass(frozen=True, slots=True)
class Hang:
    """Never answer; when the server closes, the request gets a 503 and the handler ends."""


@dataclasses.dataclass(frozen=True, slots=True)
class Disconnect:
    """Close the connection without answering."""


@dataclasses.dataclass(frozen=True, slots=True)
class Malformed:
    """Answer HTTP ``status`` with ``body``, a broken document (``None``: the server's own)."""

    body: str | bytes | None = None
    status: int = 200

    def __post_init__(self) -> None:
        _check_status("Malformed", self.status)


@dataclasses.dataclass(frozen=True, slots=True)
class Respond:
    """Answer exactly this: ``status``, ``body`` (a mapping is sent as JSON), headers.

    Without ``content_type``: JSON for a mapping, HTML for text starting with ``<``, else plain
    text. The ``repr`` shows the body's size only: scripted bodies often carry fake secrets.
    """

    status: int
    body: Mapping[str, Any] | str | bytes = b""
    content_type: str | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_status("Respond", self.status)
        if not isinstance(self.body, (Mapping, str, bytes, bytearray)):
            raise ValidationError(
                f"Respond(body=...) must be a mapping, str or bytes, got {type(self.body).__name__}"
            )

    def payload(self) -> tuple[bytes, str]:
        """The body as bytes and its content type."""
        if isinstance(self.body, Mapping):
            raw, guessed = json.dumps(dict(self.body)).encode(), "application/json"
        else:
            raw = self.body.encode() if isinstance(self.body, str) else bytes(self.body)
            guessed = "text/html" if raw.lstrip().startswith(b"<") else "text/plain"
        return raw, self.content_type or guessed

    def __repr__(self) -> str:
        size = len(self.payload()[0])
        return (
            f"Respond(status={self.status}, body=<{size} bytes>, "
            f"content_type={self.content_type!r}, headers={sorted(self.headers)!r})"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Delay:
    """Wait ``seconds`` (wall time), then answer with ``then``; closing the server cuts it short."""

    seconds: float
    then: Succeed | Fail | Malformed | Respond | Disconnect | str = "ok"

    def __post_init__(self) -> None:
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, (int, float)):
            raise ValidationError(
                f"Delay(seconds=...) must be a number, got {type(self.seconds).__name__}"
            )
        if not 0 <= self.seconds < float("inf"):
            raise ConfigurationError(
                f"Delay(seconds=...) must be zero or more, got {self.seconds!r}"
            )
        if isinstance(self.then, str):
            if self.then not in _KNOWN_NAMES:
                raise ConfigurationError(
                    f"Delay(then=...) names an unknown outcome {self.then!r}; "
                    f"expected one of {', '.join(sorted(_KNOWN_NAMES))}"
                )
        elif not isinstance(self.then, (Succeed, Fail, Malformed, Respond, Disconnect)):
            raise ConfigurationError(
                "Delay(then=...) must be a Succeed, Fail, Malformed, Respond, Disconnect or a "
                f"shortcut name, got {type(self.then).__name__}"
            )


Outcome: TypeAlias = Succeed | Fail | Hang | Disconnect | Malformed | Respond | Delay
"""How a stand-in answers one request."""

_OUTCOME_TYPES = (Succeed, Fail, Hang, Disconnect, Malformed, Respond, Delay)

STS_OUTCOMES: Mapping[str, Outcome] = MappingProxyType(
    {
        "ok": Succeed(),
        "access_denied": Fail(
            "AccessDenied", "User is not authorized to perform this operation", 403
        ),
        "bad_mfa": Fail(
            "AccessDenied",
            "MultiFactorAuthentication failed with invalid MFA one time pass code.",
            403,
        ),
        "invalid_token": Fail(
            "InvalidClientTokenId", "The security token included in the request is invalid.", 403
        ),
        "expired_token": Fail(
            "ExpiredToken", "The security token included in the request is expired", 400
        ),
        "throttle": Fail("Throttling", "Rate exceeded", 400),
        "server_error": Fail("InternalFailure", "An internal error occurred.", 500, "Receiver"),
        "hang": Hang(),
        "malformed": Malformed(),
        "expired": Succeed(lifetime=timedelta(minutes=-5)),
        "disconnect": Disconnect(),
    }
)
"""``STSStandIn``'s string shortcuts, and the outcome each one stands for."""

IOT_OUTCOMES: Mapping[str, Outcome] = MappingProxyType(
    {
        "ok": Succeed(),
        "access_denied": Fail("ForbiddenException", "Access Denied", 403),
        "unauthorized": Fail("UnauthorizedException", "Unauthorized", 401),
        "throttle": Fail("ThrottlingException", "Rate exceeded", 429),
        "server_error": Fail("InternalFailureException", "Internal failure", 500),
        "service_unavailable": Fail("ServiceUnavailableException", "Service unavailable", 503),
        "hang": Hang(),
        "malformed": Malformed(),
        "expired": Succeed(lifetime=timedelta(minutes=-5)),
        "disconnect": Disconnect(),
    }
)
"""``IoTCredentialsServer``'s string shortcuts, and the outcome each one stands for."""

_KNOWN_NAMES = frozenset(STS_OUTCOMES) | frozenset(IOT_OUTCOMES)


def resolve_outcome(
    value: object, shortcuts: Mapping[str, Outcome], *, server: str, also: str = ""
) -> Outcome:
    """``value`` as an outcome of ``server``: a vocabulary value, or a name in ``shortcuts``.

    A `Delay` naming a shortcut is resolved too, so what is recorded is what is played.
    """
    kinds = "Succeed/Fail/Hang/Disconnect/Malformed/Respond/Delay" + also
    if isinstance(value, str):
        try:
            return shortcuts[value]
        except KeyError:
            raise ConfigurationError(
                f"unknown outcome {value!r} for {server}; expected one of "
                f"{', '.join(shortcuts)} or a {kinds}"
            ) from None
    if isinstance(value, Delay) and isinstance(value.then, str):
        then = resolve_outcome(value.then, shortcuts, server=server)
        if isinstance(then, (Hang, Delay)):
            raise ConfigurationError(f"Delay(then={value.then!r}) cannot hang or delay again")
        return Delay(value.seconds, then)
    if isinstance(value, _OUTCOME_TYPES):
        return value
    raise ValidationError(
        f"outcome must be a shortcut name (str) or a {kinds}, got {type(value).__name__}"
    )


def scripted_status(outcome: Outcome) -> int:
    """The HTTP status ``outcome`` answers with (0 when it never answers)."""
    if isinstance(outcome, Delay):
        then = outcome.then
        return 200 if isinstance(then, str) else scripted_status(then)
    if isinstance(outcome, (Fail, Malformed, Respond)):
        return outcome.status
    if isinstance(outcome, Succeed):
        return 200
    return 0
