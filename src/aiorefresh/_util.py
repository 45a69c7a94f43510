"""Small helpers every layer shares: option checks, the UTC clock, calling user code, copying
errors for many waiters.

The option checks raise `ValidationError` for a wrong type, a missing value or an unknown key,
and `ConfigurationError` for a value out of range; every message names the parameter and what
was expected, and never echoes a value that could be a secret.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

import anyio.to_thread

from .errors import ConfigurationError, ValidationError

__all__ = [
    "MAX_SECONDS",
    "call_user",
    "check_bool",
    "check_keys",
    "check_mapping",
    "check_optional_str",
    "check_seconds",
    "fresh_copy",
    "freeze",
    "is_async_callable",
    "short",
    "signature_accepts",
    "utc_now",
]

E = TypeVar("E", bound=BaseException)

MAX_SECONDS = 365 * 24 * 3600.0
"""The longest timeout any option accepts (a year): larger values overflow the loop's timers."""


def utc_now(
    _now: Callable[[timezone], datetime] = datetime.now, _utc: timezone = timezone.utc
) -> datetime:
    """The default clock: aware UTC now (several times cheaper to compare than a tz-local time)."""
    return _now(_utc)


# -- option checks ----------------------------------------------------------------------------


def check_bool(name: str, value: object) -> bool:
    """``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def check_optional_str(name: str, value: object) -> str | None:
    """``value`` if it is a str or None."""
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"{name} must be a str or None, got {type(value).__name__}")
    return value


def check_seconds(
    name: str, value: object, *, allow_none: bool = True, positive: bool = False
) -> float | None:
    """A finite number of seconds in [0, a year] (``positive``: above 0), or None if allowed."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        expected = "a number of seconds" + (" or None" if allow_none else "")
        raise ValidationError(f"{name} must be {expected}, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        kind = "positive" if positive else "non-negative"
        raise ConfigurationError(
            f"{name} must be a finite, {kind} number of seconds, got {value!r}"
        )
    if number > MAX_SECONDS:
        raise ConfigurationError(
            f"{name} must be at most {MAX_SECONDS:.0f} seconds (a year), got {value!r}"
        )
    return number


def check_keys(name: str, value: Mapping[Any, Any], allowed: Any) -> None:
    """Refuse keys of ``value`` that are not in ``allowed`` (an unknown key is a typo)."""
    unknown = sorted(str(key) for key in value if key not in allowed)
    if unknown:
        raise ValidationError(
            f"{name} has unknown key(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(sorted(str(key) for key in allowed))}"
        )


def check_mapping(
    name: str, value: object, types: Mapping[str, type | tuple[type, ...]]
) -> dict[str, Any]:
    """A dict copy of ``value`` whose keys are all in ``types`` and whose values have those
    types (``None`` values are dropped; ``bool`` is not accepted as ``int``)."""
    if not isinstance(value, Mapping):
        raise ValidationError(f"{name} must be a dict, got {type(value).__name__}")
    check_keys(name, value, types)
    for key, item in value.items():
        expected = types[key]
        if item is None:
            continue
        wrong_bool = isinstance(item, bool) and expected in (int, float)
        if wrong_bool or not isinstance(item, expected):
            names = (
                expected.__name__
                if isinstance(expected, type)
                else " or ".join(t.__name__ for t in expected)
            )
            raise ValidationError(f"{name}[{key!r}] must be {names}, got {type(item).__name__}")
    return {key: item for key, item in value.items() if item is not None}


# -- calling user code ------------------------------------------------------------------------


def is_async_callable(func: object) -> bool:
    """Whether calling ``func`` returns a coroutine (functions, partials, async ``__call__``)."""
    while isinstance(func, functools.partial):
        func = func.func
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - objects with an async __call__
    )


async def call_user(
    func: Callable[..., Any], /, *args: Any, is_async: bool | None = None, **kwargs: Any
) -> Any:
    """Await ``func(...)`` if it is async; else run it in a worker thread (never on the loop).

    A worker thread is abandoned when the caller is cancelled (a stuck prompt must not hold a
    refresh or ``aclose()``). If a sync callable returns an awaitable, that is awaited here.
    """
    if is_async if is_async is not None else is_async_callable(func):
        return await func(*args, **kwargs)
    call = functools.partial(func, *args, **kwargs) if args or kwargs else func
    result = await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
    if inspect.isawaitable(result):
        result = await result
    return result


def signature_accepts(func: Callable[..., Any], kwargs: Mapping[str, Any]) -> str | None:
    """Why ``func(**kwargs)`` would fail to bind, or None when it binds (or cannot be told)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # builtins without a signature: checked when called
        return None
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        return str(exc)
    return None


# -- errors -----------------------------------------------------------------------------------


def short(exc: BaseException, limit: int = 200) -> str:
    """``str(exc)`` cut to ``limit`` characters."""
    text = str(exc)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fresh_copy(error: E, *, fallback: Callable[[E], E] | None = None) -> E:
    """A new exception like ``error`` for one of many waiters, so tracebacks don't pile up on one
    shared object; the original stays reachable as ``__cause__`` when it had none."""
    try:
        clone = copy.copy(error)
    except Exception:
        if fallback is None:
            raise
        clone = fallback(error)
    clone.__cause__ = error.__cause__ if error.__cause__ is not None else error
    clone.__traceback__ = None
    return clone


# -- hashing ----------------------------------------------------------------------------------


class _ByIdentity:
    """An unhashable value compared by identity; holding it keeps its ``id`` from being reused."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByIdentity) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)

    def __repr__(self) -> str:
        return f"<{type(self.value).__name__} at {id(self.value):#x}>"


def freeze(value: object) -> object:
    """A hashable form of ``value`` that is equal for equal plain data (dicts, lists, sets)."""
    if value is None or isinstance(value, (str, bytes, bool, int, float, type)):
        return value
    if isinstance(value, Mapping):
        items = ((freeze(k), freeze(v)) for k, v in value.items())
        return ("mapping", tuple(sorted(items, key=repr)))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(freeze(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted((freeze(v) for v in value), key=repr)))
    try:
        hash(value)
    except TypeError:
        return _ByIdentity(value)
    return value
