"""The ExpiredToken retry: event names, handler arguments and response tuples of botocore."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiobotocore.session import AioSession

if TYPE_CHECKING:
    from .._engine import RefreshEngine

__all__ = [
    "EXPIRED_TOKEN_CODES",
    "NEEDS_RETRY",
    "REQUEST_CREATED",
    "ExpiredTokenRetry",
    "error_code",
]

logger = logging.getLogger("aiorefresh")

_SIGNING_KEY = "aiorefresh_signing_key"
_CREDENTIAL_SCOPE = re.compile(r"Credential=([A-Z0-9]+)/")
EXPIRED_TOKEN_CODES = frozenset({"ExpiredToken", "ExpiredTokenException"})
REQUEST_CREATED = "request-created"
NEEDS_RETRY = "needs-retry"


def _remember_signing_key(request: Any = None, **kwargs: Any) -> None:
    """Note which access key signed a request, so an ExpiredToken answer can be matched."""
    if request is None:
        return
    header = request.headers.get("Authorization")
    if isinstance(header, bytes):
        header = header.decode("ascii", "replace")
    match = _CREDENTIAL_SCOPE.search(header or "")
    if match is not None and isinstance(getattr(request, "context", None), dict):
        request.context[_SIGNING_KEY] = match.group(1)


def error_code(response: object) -> str | None:
    """The AWS error code of a ``needs-retry`` response tuple ``(http, parsed)``, if any."""
    parsed = response[1] if isinstance(response, tuple) and len(response) > 1 else None
    if not isinstance(parsed, dict):
        return None
    error = parsed.get("Error")
    code = error.get("Code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


class ExpiredTokenRetry:
    """Retries a request once, with fresh credentials, when AWS answers ExpiredToken for keys
    the engine issued (keys revoked or expired early); other keys are left alone."""

    def __init__(self, engine: RefreshEngine, name: str) -> None:
        self._engine = engine
        self._name = name

    def install(self, session: AioSession) -> Callable[[], None]:
        """Register on ``session``'s emitter; returns the function that unregisters."""
        emitter = session.get_component("event_emitter")
        # after the signer, which is also a request-created handler
        emitter.register_last(REQUEST_CREATED, _remember_signing_key)
        emitter.register_first(NEEDS_RETRY, self.handle)

        def uninstall() -> None:
            emitter.unregister(REQUEST_CREATED, _remember_signing_key)
            emitter.unregister(NEEDS_RETRY, self.handle)

        return uninstall

    async def handle(self, **kwargs: Any) -> int | None:
        """botocore asks every needs-retry handler; the first non-None answer is the delay."""
        response = kwargs.get("response")
        if kwargs.get("attempts") != 1 or not response:
            return None
        code = error_code(response)
        if code not in EXPIRED_TOKEN_CODES:
            return None
        context = (kwargs.get("request_dict") or {}).get("context") or {}
        signed_with = context.get(_SIGNING_KEY)
        if signed_with is None or not self._engine.issued(signed_with):
            return None  # a client with explicit keys: nothing of ours to refresh
        if self._engine.invalidate(signed_with):
            logger.info("%s: AWS answered %s; refreshing and retrying once", self._name, code)
        return 0
