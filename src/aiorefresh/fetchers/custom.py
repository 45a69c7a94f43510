"""The custom method: any async or sync callable that returns credentials."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import anyio.to_thread

from .._types import TemporaryCredentials
from ..errors import ValidationError

__all__ = ["CustomFetcher", "is_async_callable"]


def is_async_callable(func: object) -> bool:
    """Whether calling ``func`` returns a coroutine (functions, partials, async ``__call__``)."""
    while isinstance(func, functools.partial):
        func = func.func
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004
    )


class CustomFetcher:
    """Calls a user function for credentials: coroutine functions are awaited, sync ones run
    in a worker thread so they never block the event loop.

    The function returns a ``TemporaryCredentials`` or a mapping with botocore keys
    (``access_key``, ``secret_key``, ``token``, ``expiry_time``) or STS keys
    (``AccessKeyId``, ``SecretAccessKey``, ``SessionToken``, ``Expiration``).
    """

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
        self._method = method
        self._kwargs = dict(kwargs or {})
        self._is_async = is_async_callable(method)
        self._name = getattr(method, "__qualname__", None) or type(method).__qualname__

    def __repr__(self) -> str:
        return f"CustomFetcher({self._name})"

    async def __call__(self) -> TemporaryCredentials:
        if self._is_async:
            result = await self._method(**self._kwargs)
        else:
            # abandon_on_cancel: refresh_timeout and aclose() must not wait for a stuck thread.
            result = await anyio.to_thread.run_sync(
                functools.partial(self._method, **self._kwargs), abandon_on_cancel=True
            )
            if inspect.isawaitable(result):
                result = await result
        if isinstance(result, TemporaryCredentials):
            return result
        return TemporaryCredentials.from_mapping(
            result, source=f"custom credentials method {self._name}"
        )
