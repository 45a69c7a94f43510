"""A loopback-only credentials endpoint in the container-credentials format, for child processes.

`CredentialsEndpoint` answers ``GET`` requests that carry its random token with the session's
current credentials (refreshed by the session's engine) as the JSON that botocore's container
provider, and every AWS SDK's, reads from ``AWS_CONTAINER_CREDENTIALS_FULL_URI``. A child
started with `CredentialsEndpoint.child_environ` keeps getting fresh credentials for as long as
it runs, and no key is ever in its environment. The endpoint listens on a loopback address only
and logs no request (an access log line would be the only place a token could leak).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
from collections.abc import Mapping
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ._util import check_optional_str
from .errors import AiorefreshError, ConfigurationError, ValidationError

if TYPE_CHECKING:
    from ._session import RefreshableSession

__all__ = ["CONTAINER_TOKEN", "CONTAINER_URI", "PATH", "REMOVED_VARIABLES", "CredentialsEndpoint"]

CONTAINER_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
CONTAINER_TOKEN = "AWS_CONTAINER_AUTHORIZATION_TOKEN"
PATH = "/credentials"
"""The one path the endpoint serves."""

REMOVED_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_ACCOUNT_ID",
)
"""What `CredentialsEndpoint.child_environ` takes out of the child's environment: variables an
SDK's chain prefers to the container endpoint (keys, a profile, web identity), the relative URI
and token file that win over the full URI and the token, and a stale account id."""

_MIN_TOKEN = 16


class CredentialsEndpoint:
    """Serves ``session``'s credentials on ``http://HOST:PORT/credentials`` to holders of
    ``token``.

    ``host`` must be a loopback address (``127.0.0.1`` by default, or ``::1``); ``port`` 0
    picks a free one. ``token`` defaults to 32 random bytes (URL-safe base64). Use it with
    ``async with`` (or `start` and `aclose`); the session stays the caller's to close.
    """

    def __init__(
        self,
        session: RefreshableSession,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
    ) -> None:
        self._runner: web.AppRunner | None = None
        self._session = session
        self._host = _check_host(host)
        if isinstance(port, bool) or not isinstance(port, int):
            raise ValidationError(f"port must be an int, got {type(port).__name__}")
        if not 0 <= port <= 65535:
            raise ConfigurationError(f"port must be between 0 and 65535, got {port}")
        self._port = port
        self.token = _check_token(token) if token is not None else secrets.token_urlsafe(32)
        """The value requests must send in their ``Authorization`` header (a secret)."""
        self.url = ""
        """``http://HOST:PORT/credentials`` once started."""
        self.served = 0
        """Requests answered with credentials."""
        self.refused = 0
        """Requests refused for a missing or wrong token."""
        self.waiting = 0
        """Requests waiting for the session's credentials now (a refresh is running)."""

    def __repr__(self) -> str:
        return f"CredentialsEndpoint({self.url or 'not started'!r}, served={self.served})"

    async def start(self) -> str:
        """Listen (on the running loop) and return the endpoint's URL."""
        if self._runner is not None:
            raise RuntimeError("a CredentialsEndpoint can be started only once")
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self._host, self._port, reuse_address=False)
        await site.start()
        port = _bound_port(runner)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self.url = f"http://{host}:{port}{PATH}"
        return self.url

    async def aclose(self) -> None:
        """Stop listening and close open connections (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> CredentialsEndpoint:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def child_environ(self, base: Mapping[str, str]) -> dict[str, str]:
        """A copy of ``base`` for a child process: the endpoint's URI and token set, the
        session's region set (if it has one), `REMOVED_VARIABLES` taken out."""
        if not self.url:
            raise RuntimeError("start the CredentialsEndpoint before building a child environment")
        env = {k: v for k, v in base.items() if k not in REMOVED_VARIABLES}
        env[CONTAINER_URI] = self.url
        env[CONTAINER_TOKEN] = self.token
        region = self._session.region_name
        if region:
            env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region
        return env

    async def _handle(self, request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            self.refused += 1
            return _error(401, "Unauthorized", f"send the {CONTAINER_TOKEN} value as Authorization")
        if request.path != PATH:
            return _error(404, "NotFound", f"the credentials are at {PATH}")
        if request.method != "GET":
            return _error(405, "MethodNotAllowed", "use GET")
        self.waiting += 1
        try:
            creds = await self._session.refreshable_credentials()
        except AiorefreshError as exc:
            # Library messages never hold a secret; the child's SDK reports the failure.
            return _error(503, type(exc).__name__, str(exc))
        finally:
            self.waiting -= 1
        self.served += 1
        body: dict[str, Any] = {
            "AccessKeyId": creds.access_key,
            "SecretAccessKey": creds.secret_key,
            "Token": creds.token,
            "Expiration": _expiration(creds.expiry_time),
        }
        if creds.account_id:
            body["AccountId"] = creds.account_id
        return web.json_response(body, headers={"Cache-Control": "no-store"})


def _check_host(host: object) -> str:
    if not isinstance(host, str):
        raise ValidationError(f"host must be a str such as '127.0.0.1', got {type(host).__name__}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ConfigurationError(
            f"host must be a loopback IP address such as '127.0.0.1' or '::1', got {host!r}: "
            "the endpoint hands out credentials and is never reachable from another machine"
        )
    return host


def _check_token(token: object) -> str:
    value = check_optional_str("token", token)
    assert value is not None
    if len(value) < _MIN_TOKEN or not value.isprintable() or any(c.isspace() for c in value):
        raise ConfigurationError(
            f"token must be at least {_MIN_TOKEN} printable characters without spaces "
            "(leave it out for a random one)"
        )
    return value


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the credentials endpoint is not listening")  # pragma: no cover


def _expiration(expiry: datetime) -> str:
    """ISO 8601 in UTC, whole seconds rounded down (the child never thinks the keys live longer)."""
    stamp = expiry.astimezone(timezone.utc).replace(microsecond=0, tzinfo=None)
    return stamp.isoformat() + "Z"


def _error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"code": code, "message": message}),
        content_type="application/json",
    )
