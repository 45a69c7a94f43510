"""MFA token providers: a callable, a coroutine function or a command, as one awaitable.

``make_mfa_provider`` validates what the user passed, eagerly and without I/O, and returns an
``MFATokenProvider``: awaiting it yields exactly one 6-digit code, within the provider's own
``timeout``. Commands run as async subprocesses (never through a shell), on POSIX in a
session of their own, so whatever they start dies with them; sync callables run in a worker
thread.

Codes never appear in logs, reprs or error messages. AWS refuses a code that was already used,
so the provider remembers (as a salted digest) the last code it handed out and, when the same
code comes back within a few TOTP steps, waits for the next 30-second step and asks again.
Concurrent calls of one provider take turns, so each sees the code handed out before it.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import re
import secrets
import shlex
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import anyio

from ._mfa_commands import TOKEN_GROUP, Command, Source
from ._util import call_user, check_seconds, is_async_callable, signature_accepts, utc_now
from .errors import ConfigurationError, MFAError, ValidationError

__all__ = [
    "DEFAULT_COMMAND_TIMEOUT",
    "MAX_REUSE_WAIT",
    "MFATokenProvider",
    "MFATokenProviderLike",
    "extract_token",
    "make_mfa_provider",
    "validate_token_code",
]

MFATokenProviderLike: TypeAlias = (
    Callable[..., Awaitable[str]] | Callable[..., str] | Sequence[str] | str
)
"""What users may pass as an MFA provider: a coroutine function (or an object with an async
``__call__``, such as an ``MFATokenProvider``), a sync callable, a list or tuple of command
arguments, or a command string."""

DEFAULT_COMMAND_TIMEOUT = 30.0
"""Seconds a command provider may take before it is killed (option ``timeout``)."""

_TOKEN_CODE = re.compile(r"[0-9]{6}")

# TOTP: a code lives for one 30-second step. A repeat within a few steps is the same code
# (AWS rejects it as used); the wait for the next step gets a margin for clock skew and is
# bounded so a broken clock cannot stall a refresh.
_TOTP_STEP = 30.0
_STEP_MARGIN = 1.0
MAX_REUSE_WAIT = 35.0
_REUSE_WINDOW = timedelta(seconds=90)

Sleep = Callable[[float], Awaitable[Any]]


def extract_token(output: str, *, source: str = "mfa_token_provider") -> str:
    """The one 6-digit code in ``output``; text around it (``your code: 123456``) is fine.

    Raises ``MFAError`` unless there is exactly one group of exactly six digits: a tool that
    lists several accounts must not silently pick the wrong one. The message says how many
    groups came back, never the output.
    """
    if not isinstance(output, str):
        raise MFAError(f"{source} returned {type(output).__name__}; expected str")
    found = TOKEN_GROUP.findall(output)
    if len(found) == 1:
        return str(found[0])
    if not found:
        raise MFAError(f"{source} returned no 6-digit code; expected exactly one")
    raise MFAError(
        f"{source} returned {len(found)} 6-digit groups; expected exactly one "
        "(select a single account or credential in the command)"
    )


def validate_token_code(code: object, *, parameter: str = "TokenCode") -> str:
    """``code`` if it is a str of exactly six ASCII digits; errors name ``parameter`` only.

    A non-str is a ``ValidationError`` (pass codes as str: leading zeros matter); a str of
    another shape is a ``ConfigurationError``. The value is never echoed.
    """
    if not isinstance(code, str):
        raise ValidationError(
            f"{parameter} must be a str of 6 digits, got {type(code).__name__} "
            "(pass it as a str: leading zeros matter)"
        )
    if _TOKEN_CODE.fullmatch(code) is None:
        raise ConfigurationError(
            f"{parameter} must be exactly 6 ASCII digits (got {len(code)} characters)"
        )
    return code


def make_mfa_provider(
    provider: MFATokenProviderLike,
    kwargs: Mapping[str, Any] | None = None,
    *,
    timeout: float | None = None,
    clock: Callable[[], datetime] | None = None,
    parameter: str = "mfa_token_provider",
    sleep: Sleep = anyio.sleep,
) -> MFATokenProvider:
    """Turn a coroutine function, sync callable or command into an ``MFATokenProvider``.

    - coroutine function: awaited as ``provider(**kwargs)``;
    - sync callable: called as ``provider(**kwargs)`` in a worker thread (if it returns an
      awaitable, that is awaited on the loop);
    - list/tuple of arguments (preferred) or a command string (split with ``shlex``, never
      given to a shell): run as an async subprocess. ``kwargs`` are options: ``timeout``
      (seconds, default 30), ``env`` (replaces the environment, as in ``subprocess``) and
      ``cwd``. Standard input is ``/dev/null``; standard error is inherited (so prompts such
      as "touch your key" reach the terminal) and never read. On POSIX the command runs in a
      new session, without a controlling terminal (it cannot read a PIN from the terminal;
      use a callable for that), and everything it started is killed when it exits, times out
      or is cancelled. A command need not exit: once it has printed a whole line holding one
      code, its output is read for 0.2 s more (a second code is still refused as ambiguous)
      and it is stopped.

    ``timeout`` (seconds) bounds one call of the provider, the wait for the next TOTP step
    included, and is exposed as ``provider.timeout``; it is the one way to bound a callable
    (whose ``kwargs`` are its own). None means the default: 30 s (or ``kwargs['timeout']``)
    for a command, no limit for a callable. A provider made earlier is returned unchanged:
    make one and share it wherever the same MFA device is used, so that its calls take turns
    and its reuse guard sees every code handed out.

    Everything is checked here, before anything runs: wrong types raise ``ValidationError``,
    refused or unknown options ``ConfigurationError``; messages name ``parameter`` (and
    ``<parameter>_kwargs``). ``clock`` (aware ``datetime``) and ``sleep`` drive the wait for
    the next TOTP step when the same code comes back twice; tests inject both.
    """
    options_name = f"{parameter}_kwargs"
    options = _check_kwargs(kwargs, options_name)
    budget = check_seconds("timeout", timeout, positive=True)
    clock = clock if clock is not None else utc_now
    if not callable(clock):
        raise ValidationError("clock must be a callable returning an aware datetime")
    if not callable(sleep):
        raise ValidationError("sleep must be an async callable taking seconds")

    if isinstance(provider, MFATokenProvider):
        if options or budget is not None:
            raise ConfigurationError(
                f"{parameter} is already an MFATokenProvider; give its {options_name} and "
                "timeout when you make it"
            )
        return provider
    source: Source
    if isinstance(provider, (str, list, tuple)):
        source = Command(
            _argv(provider, parameter),
            options,
            parameter,
            options_name,
            default_timeout=DEFAULT_COMMAND_TIMEOUT,
        )
    elif callable(provider):
        source = _callable_source(provider, options, parameter, options_name)
    else:
        raise ValidationError(
            f"{parameter} must be a coroutine function, a callable, a list of command "
            f"arguments or a command string, got {type(provider).__name__}"
        )
    if budget is not None and isinstance(source, Command) and "timeout" in options:
        raise ConfigurationError(
            f"the timeout of {parameter} is given twice (timeout and {options_name}"
            "['timeout']); give it once"
        )
    return MFATokenProvider(
        source,
        timeout=budget if budget is not None else source.default_timeout,
        clock=clock,
        sleep=sleep,
        parameter=parameter,
    )


# --------------------------------------------------------------------------- validation


def _check_kwargs(kwargs: object, name: str) -> dict[str, Any]:
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping):
        raise ValidationError(f"{name} must be a mapping or None, got {type(kwargs).__name__}")
    bad = [type(key).__name__ for key in kwargs if not isinstance(key, str)]
    if bad:
        raise ValidationError(f"{name} keys must be str, got {', '.join(sorted(set(bad)))}")
    return dict(kwargs)


def _argv(command: str | Sequence[object], parameter: str) -> list[str]:
    """The arguments of a command given as a string (split with ``shlex``) or a list/tuple."""
    if isinstance(command, str):
        try:
            command = shlex.split(command, posix=os.name != "nt")
        except ValueError as exc:
            raise ConfigurationError(
                f"{parameter} is a command string that shlex cannot split ({exc}); "
                "pass a list of arguments instead"
            ) from None
        if not command:
            raise ValidationError(f"{parameter} is an empty command string; expected a command")
    if not command:
        raise ValidationError(f"{parameter} is an empty list; expected the command's arguments")
    bad = sorted({type(arg).__name__ for arg in command if not isinstance(arg, str)})
    if bad:
        raise ValidationError(
            f"{parameter} command arguments must all be str, got {', '.join(bad)}"
        )
    argv = [str(arg) for arg in command]
    if not argv[0]:
        raise ValidationError(f"{parameter} command has an empty program name")
    return argv


def _callable_source(
    function: Callable[..., Any], options: dict[str, Any], parameter: str, options_name: str
) -> _Callable:
    mismatch = signature_accepts(function, options)
    if mismatch is not None:
        raise ConfigurationError(
            f"{options_name} do not match the signature of {parameter} "
            f"{_describe(function)}: {mismatch}"
        )
    return _Callable(function, options, parameter)


def _describe(function: object) -> str:
    name = getattr(function, "__qualname__", None) or type(function).__qualname__
    return str(name)


# ------------------------------------------------------------------------------ sources


class _Callable(Source):
    """A coroutine function (awaited) or a sync callable (in a worker thread)."""

    def __init__(
        self, function: Callable[..., Any], options: dict[str, Any], parameter: str
    ) -> None:
        self._function = function
        self._options = options
        self._parameter = parameter
        self._is_async = is_async_callable(function)
        kind = "coroutine function" if self._is_async else "callable"
        self.label = f"{kind} {_describe(function)}"

    async def output(self) -> str:
        call = call_user(self._function, is_async=self._is_async, **self._options)
        task = await _run_in_own_task(call)
        if task.cancelled():
            # Nothing cancelled this call (that would have raised above): the provider itself
            # raised CancelledError, and that is a failed prompt, not a closed session.
            raise MFAError(f"{self._parameter} raised CancelledError")
        error = task.exception()
        if error is not None:
            if isinstance(error, MFAError) or not isinstance(error, Exception):
                raise error
            raise MFAError(f"{self._parameter} raised {type(error).__name__}") from error
        result = task.result()
        if not isinstance(result, str):
            raise MFAError(f"{self._parameter} returned {type(result).__name__}; expected str")
        return result


async def _run_in_own_task(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Run ``coro`` in a task of its own and return it once done, whatever its outcome.

    A CancelledError that ``coro`` raises by itself then shows as a cancelled task, while one
    aimed at the caller still cancels the caller (on every Python, with no ``cancelling()``).
    A cancelled caller cancels ``coro`` and does not wait for it: a stuck prompt must not
    hold a refresh, just as a worker thread is abandoned.
    """
    task = asyncio.ensure_future(coro)
    try:
        await asyncio.wait((task,))
    except BaseException:
        task.cancel()
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        raise
    return task


# ----------------------------------------------------------------------------- provider


class MFATokenProvider:
    """Awaiting it returns one 6-digit code, never the code it handed out last time.

    Made by ``make_mfa_provider``. ``timeout`` (seconds, or None for no limit) bounds each
    call: asking, waiting for the next TOTP step after a reused code, and asking again.
    Concurrent calls on an event loop take turns (one prompt at a time, each seeing the code
    handed out before it); a call's timeout starts with its turn. Calls from other loops'
    threads may overlap, but a code is still never handed out twice in a row.
    """

    __slots__ = (
        "_clock",
        "_guard",
        "_last",
        "_parameter",
        "_salt",
        "_sleep",
        "_source",
        "_timeout",
        "_turns",
    )

    def __init__(
        self,
        source: Source,
        *,
        timeout: float | None,
        clock: Callable[[], datetime],
        sleep: Sleep,
        parameter: str,
    ) -> None:
        self._source = source
        self._timeout = timeout
        self._clock = clock
        self._sleep = sleep
        self._parameter = parameter
        # The last code is kept as a salted digest, so no raw code lingers in the object.
        self._salt = secrets.token_bytes(16)
        self._last: tuple[bytes, datetime] | None = None  # (digest, when handed out)
        self._guard = threading.Lock()  # _last and _turns, from any loop's thread
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def timeout(self) -> float | None:
        """Seconds one call may take (None: no limit of its own)."""
        return self._timeout

    async def __call__(self) -> str:
        async with self._turn():
            if self._timeout is None:
                return await self._ask(deadline=float("inf"))
            with anyio.move_on_after(self._timeout) as scope:
                return await self._ask(deadline=scope.deadline)
        raise MFAError(
            f"{self._parameter} {self._source.label} timed out after {self._timeout:g} s"
            f"{self._source.timeout_note}"
        )

    def _turn(self) -> asyncio.Lock:
        """This event loop's lock: the calls made on it take turns."""
        loop = asyncio.get_running_loop()
        with self._guard:
            lock = self._turns.get(loop)
            if lock is None:
                lock = self._turns[loop] = asyncio.Lock()
            return lock

    async def _ask(self, *, deadline: float) -> str:
        code = await self._fetch()
        if self._hand_out(code):
            return code
        wait = self._until_next_step()
        if anyio.current_time() + wait > deadline:
            raise MFAError(
                f"{self._parameter} returned the code already used, and the next 30-second "
                f"step starts after its timeout of {self._timeout:g} s; AWS refuses a code twice"
            )
        await self._sleep(wait)
        code = await self._fetch()
        if self._hand_out(code):
            return code
        raise MFAError(
            f"{self._parameter} returned the code already used, again after the next "
            "30-second step; AWS refuses a code twice"
        )

    async def _fetch(self) -> str:
        return extract_token(await self._source.output(), source=self._parameter)

    def _digest(self, code: str) -> bytes:
        return hmac.digest(self._salt, code.encode("ascii"), "sha256")

    def _hand_out(self, code: str) -> bool:
        """Remember ``code`` as the last one handed out, unless it is that one (False)."""
        digest, now = self._digest(code), self._clock()
        with self._guard:  # checked and recorded at once, whichever thread comes first
            if self._last is not None:
                last, handed_out_at = self._last
                # A repeat long after is a coincidence, not the same code.
                if now - handed_out_at < _REUSE_WINDOW and hmac.compare_digest(digest, last):
                    return False
            self._last = (digest, now)
            return True

    def _until_next_step(self) -> float:
        into_step = self._clock().timestamp() % _TOTP_STEP
        return min(_TOTP_STEP - into_step + _STEP_MARGIN, MAX_REUSE_WAIT)

    def __repr__(self) -> str:
        budget = "no timeout" if self._timeout is None else f"timeout={self._timeout:g}"
        return f"<MFATokenProvider {self._parameter}: {self._source.label}, {budget}>"
