"""The custom method: any async or sync callable that returns credentials."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._types import TemporaryCredentials
from .._util import call_user, is_async_callable, signature_accepts
from ..errors import ValidationError

__all__ = ["CustomFetcher"]


class CustomFetcher:
    """Calls a user function for credentials: coroutine functions are awaited, sync ones run
    in a worker thread so they never block the event loop.

    The function returns a ``TemporaryCredentials`` or a mapping with botocore keys
    (``access_key``, ``secret_key``, ``token``, ``expiry_time``) or STS keys
    (``AccessKeyId``, ``SecretAccessKey``, ``SessionToken``, ``Expiration``). ``kwargs`` are
    checked against its signature here, before anything runs.
    """

    method = "custom"

    def __init__(
        self,
        method: Callable[..., Any],
        kwargs: Mapping[str, Any] | None = None,
        *,
        parameter: str = "custom_credentials_method",
    ) -> None:
        if not callable(method):
            raise ValidationError(
                f"{parameter} must be a callable returning credentials, got {type(method).__name__}"
            )
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise ValidationError(
                f"{parameter}_args must be a mapping of keyword arguments, "
                f"got {type(kwargs).__name__}"
            )
        if kwargs is not None and not all(isinstance(k, str) for k in kwargs):
            raise ValidationError(f"{parameter}_args keys must be str")
        self._name = getattr(method, "__qualname__", None) or type(method).__qualname__
        mismatch = signature_accepts(method, kwargs or {})
        if mismatch is not None:
            raise ValidationError(
                f"{parameter}_args do not match the signature of {parameter} {self._name}: "
                f"{mismatch}"
            )
        self._method = method
        self._kwargs = dict(kwargs or {})
        self._is_async = is_async_callable(method)

    def __repr__(self) -> str:
        return f"CustomFetcher({self._name})"

    async def __call__(self) -> TemporaryCredentials:
        result = await call_user(self._method, is_async=self._is_async, **self._kwargs)
        if isinstance(result, TemporaryCredentials):
            return result
        return TemporaryCredentials.from_mapping(
            result, source=f"custom credentials method {self._name}"
        )
