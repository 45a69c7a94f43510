"""MFA token providers: a callable, a coroutine function or a command, as one awaitable.

``make_mfa_provider`` validates what the user passed, eagerly and without I/O, and returns an
``MFATokenProvider``: a no-argument coroutine function that yields exactly one 6-digit code.
Commands run as async subprocesses (never through a shell) so the event loop keeps serving
other tasks while a user touches a YubiKey; sync callables run in a worker thread.

Codes never appear in logs, reprs or error messages. AWS refuses a code that was already used,
so the provider remembers (as a salted digest) the last code it handed out and, when the same
code comes back within a few TOTP steps, waits for the next 30-second step and asks again.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import inspect
import math
import os
import re
import secrets
import shlex
import subprocess
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread

from .errors import ConfigurationError, MFAError, ValidationError

__all__ = [
    "DEFAULT_COMMAND_TIMEOUT",
    "MAX_REUSE_WAIT",
    "MFATokenProvider",
    "extract_token",
    "make_mfa_provider",
    "validate_token_code",
]

MFATokenProvider = Callable[[], Awaitable[str]]
"""What the rest of the library calls: ``await provider()`` returns one 6-digit code."""

DEFAULT_COMMAND_TIMEOUT = 30.0
"""Seconds an MFA command may run before it is killed (option ``timeout``)."""

_TOKEN_GROUP = re.compile(r"(?<![0-9])[0-9]{6}(?![0-9])")
_TOKEN_CODE = re.compile(r"[0-9]{6}")
_COMMAND_OPTIONS = frozenset({"timeout", "env", "cwd"})
_REFUSED_OPTIONS = {
    "stdout": "aiorefresh reads the code from the command's standard output",
    "stderr": "the command's standard error is never read (it may hold the code)",
    "shell": "commands never run through a shell; pass a list of arguments",
    "executable": "the program is the first argument of the command",
    "preexec_fn": "it is not safe with threads and cannot run in an async subprocess",
}
_MAX_OUTPUT = 64 * 1024
_KILL_WAIT = 5.0

# TOTP: a code lives for one 30-second step. A repeat within a few steps is the same code
# (AWS rejects it as used); the wait for the next step gets a margin for clock skew and is
# bounded so a broken clock cannot stall a refresh.
_TOTP_STEP = 30.0
_STEP_MARGIN = 1.0
MAX_REUSE_WAIT = 35.0
_REUSE_WINDOW = timedelta(seconds=90)

Sleep = Callable[[float], Awaitable[Any]]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def extract_token(output: str, *, source: str = "mfa_token_provider") -> str:
    """The one 6-digit code in ``output``; text around it (``your code: 123456``) is fine.

    Raises ``MFAError`` unless there is exactly one group of exactly six digits: a tool that
    lists several accounts must not silently pick the wrong one. The message says how many
    groups came back, never the output.
    """
    if not isinstance(output, str):
        raise MFAError(f"{source} returned {type(output).__name__}; expected str")
    found = _TOKEN_GROUP.findall(output)
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
    provider: Callable[..., str] | Callable[..., Awaitable[str]] | Sequence[str] | str,
    kwargs: Mapping[str, Any] | None = None,
    *,
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
      as "touch your key" reach the terminal) and never read.

    Everything is checked here, before anything runs: wrong types raise ``ValidationError``,
    refused or unknown options ``ConfigurationError``; messages name ``parameter`` (and
    ``<parameter>_kwargs``). ``clock`` (aware ``datetime``) and ``sleep`` drive the wait for
    the next TOTP step when the same code comes back twice; tests inject both.
    """
    options_name = f"{parameter}_kwargs"
    options = _check_kwargs(kwargs, options_name)
    clock = clock if clock is not None else _utc_now
    if not callable(clock):
        raise ValidationError("clock must be a callable returning an aware datetime")
    if not callable(sleep):
        raise ValidationError("sleep must be an async callable taking seconds")

    if isinstance(provider, _MFAProvider) and not options:
        return provider
    source: _Source
    if isinstance(provider, str):
        source = _command_from_string(provider, options, parameter, options_name)
    elif isinstance(provider, (list, tuple)):
        source = _command_from_sequence(provider, options, parameter, options_name)
    elif callable(provider):
        source = _callable_source(provider, options, parameter, options_name)
    else:
        raise ValidationError(
            f"{parameter} must be a coroutine function, a callable, a list of command "
            f"arguments or a command string, got {type(provider).__name__}"
        )
    return _MFAProvider(source, clock=clock, sleep=sleep, parameter=parameter)


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


def _command_from_string(
    command: str, options: dict[str, Any], parameter: str, options_name: str
) -> _Command:
    try:
        argv = shlex.split(command, posix=os.name != "nt")
    except ValueError as exc:
        raise ConfigurationError(
            f"{parameter} is a command string that shlex cannot split ({exc}); "
            "pass a list of arguments instead"
        ) from None
    if not argv:
        raise ValidationError(f"{parameter} is an empty command string; expected a command")
    return _Command(argv, options, parameter, options_name)


def _command_from_sequence(
    command: Sequence[object], options: dict[str, Any], parameter: str, options_name: str
) -> _Command:
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
    return _Command(argv, options, parameter, options_name)


def _callable_source(
    function: Callable[..., Any], options: dict[str, Any], parameter: str, options_name: str
) -> _Callable:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # builtins without a signature: checked when called
        signature = None
    if signature is not None:
        try:
            signature.bind(**options)
        except TypeError as exc:
            raise ConfigurationError(
                f"{options_name} do not match the signature of {parameter} "
                f"{_describe(function)}: {exc}"
            ) from None
    is_coroutine = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - objects with an async __call__
    )
    return _Callable(function, options, parameter, is_coroutine=is_coroutine)


def _describe(function: object) -> str:
    name = getattr(function, "__qualname__", None) or type(function).__qualname__
    return str(name)


# ------------------------------------------------------------------------------ sources


class _Source:
    """One way of getting raw output (a str) that should hold one code."""

    async def output(self) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class _Callable(_Source):
    """A coroutine function (awaited) or a sync callable (in a worker thread)."""

    def __init__(
        self,
        function: Callable[..., Any],
        options: dict[str, Any],
        parameter: str,
        *,
        is_coroutine: bool,
    ) -> None:
        self._function = function
        self._options = options
        self._parameter = parameter
        self._is_coroutine = is_coroutine

    async def output(self) -> str:
        try:
            if self._is_coroutine:
                result = await self._function(**self._options)
            else:
                call = functools.partial(self._function, **self._options)
                # A blocking provider (a prompt) must not keep a cancelled refresh waiting.
                result = await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
                if inspect.isawaitable(result):
                    result = await result
        except MFAError:
            raise
        except Exception as exc:
            raise MFAError(f"{self._parameter} raised {type(exc).__name__}") from exc
        if not isinstance(result, str):
            raise MFAError(f"{self._parameter} returned {type(result).__name__}; expected str")
        return result

    def describe(self) -> str:
        kind = "coroutine function" if self._is_coroutine else "callable"
        return f"{kind} {_describe(self._function)}"


class _Command(_Source):
    """A command run as an async subprocess, with a timeout; only its stdout is read."""

    def __init__(
        self, argv: list[str], options: dict[str, Any], parameter: str, options_name: str
    ) -> None:
        refused = sorted(set(options) & set(_REFUSED_OPTIONS))
        if refused:
            reasons = "; ".join(f"{name!r}: {_REFUSED_OPTIONS[name]}" for name in refused)
            raise ConfigurationError(f"{options_name} may not set {reasons}")
        unknown = sorted(set(options) - _COMMAND_OPTIONS)
        if unknown:
            raise ConfigurationError(
                f"{options_name} has unknown option(s) {', '.join(map(repr, unknown))} for a "
                f"command; allowed: {', '.join(sorted(_COMMAND_OPTIONS))}"
            )
        self._argv = argv
        self._parameter = parameter
        self._timeout = _check_timeout(
            options.get("timeout", DEFAULT_COMMAND_TIMEOUT), options_name
        )
        self._env = _check_env(options.get("env"), options_name)
        self._cwd = _check_cwd(options.get("cwd"), options_name)

    @property
    def program(self) -> str:
        return self._argv[0]

    async def output(self) -> str:
        process = await self._start()
        timed_out = False
        async with process:
            try:
                with anyio.move_on_after(self._timeout) as scope:
                    data = await self._read(process)
                    status = await process.wait()
                timed_out = scope.cancelled_caught
            except BaseException:
                _kill(process)
                raise
            if timed_out:
                _kill(process)
        if timed_out:
            raise MFAError(
                f"{self._parameter} command {self.program!r} timed out after "
                f"{self._timeout:g} s and was killed"
            )
        if status != 0:
            how = (
                f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
            )
            raise MFAError(f"{self._parameter} command {self.program!r} {how}")
        return data.decode("utf-8", errors="replace")

    async def _start(self) -> anyio.abc.Process:
        try:
            return await anyio.open_process(
                self._argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=None,
                cwd=self._cwd,
                env=self._env,
            )
        except FileNotFoundError as exc:
            if self._cwd is not None and exc.filename == self._cwd:
                message = f"{self._parameter} working directory (cwd) does not exist"
            else:
                message = f"{self._parameter} command {self.program!r} was not found"
            raise MFAError(message) from exc
        except OSError as exc:
            raise MFAError(
                f"{self._parameter} command {self.program!r} could not start ({type(exc).__name__})"
            ) from exc

    async def _read(self, process: anyio.abc.Process) -> bytes:
        assert process.stdout is not None
        chunks: list[bytes] = []
        size = 0
        async for chunk in process.stdout:
            size += len(chunk)
            if size > _MAX_OUTPUT:
                raise MFAError(
                    f"{self._parameter} command {self.program!r} printed more than "
                    f"{_MAX_OUTPUT // 1024} KiB; expected one 6-digit code"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def describe(self) -> str:
        return f"command {self.program!r}, timeout={self._timeout:g}"


def _kill(process: anyio.abc.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):  # exited meanwhile
            process.kill()


def _check_timeout(value: object, options_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(
            f"{options_name}['timeout'] must be a number of seconds, got {type(value).__name__}"
        )
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(
            f"{options_name}['timeout'] must be a positive finite number of seconds"
        )
    return float(value)


def _check_env(value: object, options_name: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"{options_name}['env'] must be a mapping of str to str, got {type(value).__name__}"
        )
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise ValidationError(
                f"{options_name}['env'] must map str to str; an entry has a "
                f"{type(key).__name__} name and a {type(item).__name__} value"
            )
    return dict(value)


def _check_cwd(value: object, options_name: str) -> str | os.PathLike[str] | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike) and isinstance(os.fspath(value), str):
        return value
    raise ValidationError(
        f"{options_name}['cwd'] must be a str or path, got {type(value).__name__}"
    )


# ----------------------------------------------------------------------------- provider


class _MFAProvider:
    """An ``MFATokenProvider``: one code per call, never the code it handed out last time."""

    __slots__ = ("_clock", "_last_at", "_last_digest", "_parameter", "_salt", "_sleep", "_source")

    def __init__(
        self,
        source: _Source,
        *,
        clock: Callable[[], datetime],
        sleep: Sleep,
        parameter: str,
    ) -> None:
        self._source = source
        self._clock = clock
        self._sleep = sleep
        self._parameter = parameter
        # The last code is kept as a salted digest, so no raw code lingers in the object.
        self._salt = secrets.token_bytes(16)
        self._last_digest: bytes | None = None
        self._last_at: datetime | None = None

    async def __call__(self) -> str:
        code = await self._fetch()
        if self._is_reused(code):
            await self._sleep(self._until_next_step())
            code = await self._fetch()
            if self._is_reused(code):
                raise MFAError(
                    f"{self._parameter} returned the code already used, again after the next "
                    "30-second step; AWS refuses a code twice"
                )
        self._last_digest = self._digest(code)
        self._last_at = self._clock()
        return code

    async def _fetch(self) -> str:
        return extract_token(await self._source.output(), source=self._parameter)

    def _digest(self, code: str) -> bytes:
        return hmac.digest(self._salt, code.encode("ascii"), "sha256")

    def _is_reused(self, code: str) -> bool:
        if self._last_digest is None or self._last_at is None:
            return False
        if self._clock() - self._last_at >= _REUSE_WINDOW:
            return False  # a repeat long after is a coincidence, not the same code
        return hmac.compare_digest(self._digest(code), self._last_digest)

    def _until_next_step(self) -> float:
        into_step = self._clock().timestamp() % _TOTP_STEP
        return min(_TOTP_STEP - into_step + _STEP_MARGIN, MAX_REUSE_WAIT)

    def __repr__(self) -> str:
        return f"<MFATokenProvider {self._parameter}: {self._source.describe()}>"
