"""MFA token providers: a callable, a coroutine function or a command, as one awaitable.

``make_mfa_provider`` validates what the user passed, eagerly and without I/O, and returns an
``MFATokenProvider``: awaiting it yields exactly one 6-digit code, within the provider's own
``timeout``. Commands run as async subprocesses (never through a shell), on POSIX in a
session of their own, so whatever they start dies with them; sync callables run in a worker
thread.

Codes never appear in logs, reprs or error messages. AWS refuses a code that was already used,
so the provider remembers (as a salted digest) the last code it handed out and, when the same
code comes back within a few TOTP steps, waits for the next 30-second step and asks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import re
import secrets
import shlex
import signal
import subprocess
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import anyio
import anyio.abc

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
# POSIX: the command leads a new session, and its process group is killed when it ends. The
# output pipe is our own, so what it printed before exiting can be taken without waiting for
# an EOF that a background child holding the pipe would delay. Elsewhere only the command
# itself is killed, and its output is read to EOF.
_POSIX = os.name == "posix"

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
      or is cancelled.

    ``timeout`` (seconds) bounds one call of the provider, the wait for the next TOTP step
    included, and is exposed as ``provider.timeout``; it is the one way to bound a callable
    (whose ``kwargs`` are its own). None means the default: 30 s (or ``kwargs['timeout']``)
    for a command, no limit for a callable. A provider made earlier is returned unchanged.

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
    source: _Source
    if isinstance(provider, (str, list, tuple)):
        source = _Command(_argv(provider, parameter), options, parameter, options_name)
    elif callable(provider):
        source = _callable_source(provider, options, parameter, options_name)
    else:
        raise ValidationError(
            f"{parameter} must be a coroutine function, a callable, a list of command "
            f"arguments or a command string, got {type(provider).__name__}"
        )
    if budget is not None and isinstance(source, _Command) and "timeout" in options:
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


class _Source:
    """One way of getting raw output (a str) that should hold one code."""

    default_timeout: float | None = None
    label = ""
    """What the source is, for messages and reprs: never an argument or an option value."""
    timeout_note = ""

    async def output(self) -> str:
        raise NotImplementedError


class _Callable(_Source):
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


class _Command(_Source):
    """A command run as an async subprocess; only its stdout is read."""

    timeout_note = " and was killed" + (", with everything it started" if _POSIX else "")

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
        self.label = f"command {argv[0]!r}"
        self.default_timeout = check_seconds(
            f"{options_name}['timeout']",
            options.get("timeout", DEFAULT_COMMAND_TIMEOUT),
            allow_none=False,
            positive=True,
        )
        self._env = _check_env(options.get("env"), options_name)
        self._cwd = _check_cwd(options.get("cwd"), options_name)

    async def output(self) -> str:
        data, status = await (self._run_posix() if _POSIX else self._run_elsewhere())
        where = f"{self._parameter} {self.label}"
        if len(data) > _MAX_OUTPUT:
            raise MFAError(
                f"{where} printed more than {_MAX_OUTPUT // 1024} KiB; expected one 6-digit code"
            )
        if status != 0:
            assert status is not None
            how = (
                f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
            )
            raise MFAError(f"{where} {how}")
        return data.decode("utf-8", errors="replace")

    async def _run_posix(self) -> tuple[bytes, int | None]:
        read_fd, write_fd = os.pipe()
        try:
            os.set_blocking(read_fd, False)
            try:
                process = await self._start(write_fd)
            finally:
                os.close(write_fd)  # the command holds the only write end now
            try:
                return await _collect(process, read_fd)
            finally:
                await _end(process)
        finally:
            os.close(read_fd)

    async def _run_elsewhere(self) -> tuple[bytes, int | None]:
        process = await self._start(subprocess.PIPE)
        try:
            assert process.stdout is not None
            data = bytearray()
            async for chunk in process.stdout:
                data += chunk
                if len(data) > _MAX_OUTPUT:
                    return bytes(data), None
            return bytes(data), await process.wait()
        finally:
            await _end(process)

    async def _start(self, stdout: int) -> anyio.abc.Process:
        try:
            return await anyio.open_process(
                self._argv,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=None,
                cwd=self._cwd,
                env=self._env,
                start_new_session=_POSIX,
            )
        except FileNotFoundError as exc:
            if self._cwd is not None and exc.filename == self._cwd:
                message = f"{self._parameter} working directory (cwd) does not exist"
            else:
                message = f"{self._parameter} {self.label} was not found"
            raise MFAError(message) from exc
        except OSError as exc:
            raise MFAError(
                f"{self._parameter} {self.label} could not start ({type(exc).__name__})"
            ) from exc


async def _collect(process: anyio.abc.Process, fd: int) -> tuple[bytes, int | None]:
    """Read the pipe while the command runs; once it exits, take what is in the pipe and stop.

    The status is None when the output grew past the limit before the command exited.
    """
    data = bytearray()
    status: int | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(_read_to_eof, fd, data, group.cancel_scope)
        status = await process.wait()
        group.cancel_scope.cancel()
    if status is not None:
        _kill(process)  # a background child may still hold the pipe: it ends with the command
        _take_available(fd, data)
    return bytes(data), status


async def _read_to_eof(fd: int, data: bytearray, scope: anyio.CancelScope) -> None:
    while _take_available(fd, data):
        await anyio.wait_readable(fd)
    if len(data) > _MAX_OUTPUT:
        scope.cancel()


def _take_available(fd: int, data: bytearray) -> bool:
    """Append what ``fd`` holds now, without blocking; False at EOF or past the limit."""
    while len(data) <= _MAX_OUTPUT:
        try:
            chunk = os.read(fd, _MAX_OUTPUT + 1)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not chunk:
            return False
        data += chunk
    return False


async def _end(process: anyio.abc.Process) -> None:
    """Kill what is left of the command and reap it, even when the caller is cancelled."""
    with anyio.CancelScope(shield=True):
        _kill(process)
        await process.aclose()


def _kill(process: anyio.abc.Process) -> None:
    if _POSIX:
        # The command leads its own process group (a new session), so this reaches the
        # processes it started too, also after the command itself has exited.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    elif process.returncode is None:
        with contextlib.suppress(ProcessLookupError):  # exited meanwhile
            process.kill()


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


class MFATokenProvider:
    """Awaiting it returns one 6-digit code, never the code it handed out last time.

    Made by ``make_mfa_provider``. ``timeout`` (seconds, or None for no limit) bounds each
    call: asking, waiting for the next TOTP step after a reused code, and asking again.
    """

    __slots__ = ("_clock", "_last", "_parameter", "_salt", "_sleep", "_source", "_timeout")

    def __init__(
        self,
        source: _Source,
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

    @property
    def timeout(self) -> float | None:
        """Seconds one call may take (None: no limit of its own)."""
        return self._timeout

    async def __call__(self) -> str:
        if self._timeout is None:
            return await self._ask(deadline=float("inf"))
        with anyio.move_on_after(self._timeout) as scope:
            return await self._ask(deadline=scope.deadline)
        raise MFAError(
            f"{self._parameter} {self._source.label} timed out after {self._timeout:g} s"
            f"{self._source.timeout_note}"
        )

    async def _ask(self, *, deadline: float) -> str:
        code = await self._fetch()
        if self._is_reused(code):
            wait = self._until_next_step()
            if anyio.current_time() + wait > deadline:
                raise MFAError(
                    f"{self._parameter} returned the code already used, and the next 30-second "
                    f"step starts after its timeout of {self._timeout:g} s; AWS refuses a code "
                    "twice"
                )
            await self._sleep(wait)
            code = await self._fetch()
            if self._is_reused(code):
                raise MFAError(
                    f"{self._parameter} returned the code already used, again after the next "
                    "30-second step; AWS refuses a code twice"
                )
        self._last = (self._digest(code), self._clock())
        return code

    async def _fetch(self) -> str:
        return extract_token(await self._source.output(), source=self._parameter)

    def _digest(self, code: str) -> bytes:
        return hmac.digest(self._salt, code.encode("ascii"), "sha256")

    def _is_reused(self, code: str) -> bool:
        if self._last is None:
            return False
        digest, handed_out_at = self._last
        if self._clock() - handed_out_at >= _REUSE_WINDOW:
            return False  # a repeat long after is a coincidence, not the same code
        return hmac.compare_digest(self._digest(code), digest)

    def _until_next_step(self) -> float:
        into_step = self._clock().timestamp() % _TOTP_STEP
        return min(_TOTP_STEP - into_step + _STEP_MARGIN, MAX_REUSE_WAIT)

    def __repr__(self) -> str:
        budget = "no timeout" if self._timeout is None else f"timeout={self._timeout:g}"
        return f"<MFATokenProvider {self._parameter}: {self._source.label}, {budget}>"
