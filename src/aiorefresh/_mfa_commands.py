"""MFA command providers: a command run as an async subprocess, of which only stdout is read.

Split out of `aiorefresh.mfa`, which makes them (``make_mfa_provider``) and is the public
module. Commands never run through a shell. On POSIX each runs in a session of its own and its
process group is killed when it ends, so whatever it started dies with it. A command may stay
running after printing its code (a tool that lingers, or waits for a key): once a whole line
holding one code has been read, output is read for a short grace more (a second code still
makes the output ambiguous) and the command is stopped.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import subprocess
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.abc

from ._util import check_seconds
from .errors import ConfigurationError, MFAError, ValidationError

__all__ = ["GRACE", "TOKEN_GROUP", "Command", "Source"]

TOKEN_GROUP = re.compile(r"(?<![0-9])[0-9]{6}(?![0-9])")
"""A code: a group of exactly six digits."""

GRACE = 0.2
"""Seconds output is still read once a whole line holding one code has been read."""

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


class Source:
    """One way of getting raw output (a str) that should hold one code."""

    default_timeout: float | None = None
    label = ""
    """What the source is, for messages and reprs: never an argument or an option value."""
    timeout_note = ""

    async def output(self) -> str:
        raise NotImplementedError


def _has_code_line(data: bytes | bytearray) -> bool:
    """Whether a whole line of ``data`` (ended by a newline) holds exactly one code."""
    lines = bytes(data[: data.rfind(b"\n") + 1]).decode("utf-8", errors="replace")
    return any(len(TOKEN_GROUP.findall(line)) == 1 for line in lines.splitlines())


class Command(Source):
    """A command run as an async subprocess; only its stdout is read."""

    timeout_note = " and was killed" + (", with everything it started" if _POSIX else "")

    def __init__(
        self,
        argv: list[str],
        options: dict[str, Any],
        parameter: str,
        options_name: str,
        *,
        default_timeout: float,
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
            options.get("timeout", default_timeout),
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
                return await _collect(process, _Pipe(read_fd))
            finally:
                await _end(process)
        finally:
            os.close(read_fd)

    async def _run_elsewhere(self) -> tuple[bytes, int | None]:
        process = await self._start(subprocess.PIPE)
        try:
            assert process.stdout is not None
            data = bytearray()
            deadline = math.inf
            while True:
                with anyio.CancelScope(deadline=deadline) as scope:
                    try:
                        chunk = await process.stdout.receive()
                    except anyio.EndOfStream:
                        break
                if scope.cancelled_caught:
                    return bytes(data), 0  # stopped once it had printed its code
                data += chunk
                if len(data) > _MAX_OUTPUT:
                    return bytes(data), None
                if deadline == math.inf and _has_code_line(data):
                    deadline = anyio.current_time() + GRACE
            with anyio.CancelScope(deadline=deadline):
                return bytes(data), await process.wait()
            return bytes(data), 0  # its code printed and its output closed, but still running
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


class _Pipe:
    """Our non-blocking read end of the command's stdout, and what was read from it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.data = bytearray()
        self.code_read = False
        """Whether reading stopped on a code: its line was read and the grace is over."""

    async def read(self, scope: anyio.CancelScope) -> None:
        """Read until EOF, past the limit, or the grace after a line with one code; cancel
        ``scope`` (the wait for the command's exit) past the limit or once the grace is over.
        After a plain EOF without a code the command's exit (or its timeout) decides."""
        deadline = math.inf
        while self.take_available():
            if deadline == math.inf and _has_code_line(self.data):
                deadline = anyio.current_time() + GRACE
            with anyio.CancelScope(deadline=deadline) as waiting:
                await anyio.wait_readable(self.fd)
            if waiting.cancelled_caught:
                break
        else:  # EOF or past the limit
            if len(self.data) > _MAX_OUTPUT:
                scope.cancel()
                return
            if deadline == math.inf:
                if not _has_code_line(self.data):
                    return
                deadline = anyio.current_time() + GRACE
            await anyio.sleep_until(deadline)  # an EOF comes with the exit: let it report
        self.code_read = True
        scope.cancel()

    def take_available(self) -> bool:
        """Append what the pipe holds now, without blocking; False at EOF or past the limit."""
        while len(self.data) <= _MAX_OUTPUT:
            try:
                chunk = os.read(self.fd, _MAX_OUTPUT + 1)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not chunk:
                return False
            self.data += chunk
        return False


async def _collect(process: anyio.abc.Process, pipe: _Pipe) -> tuple[bytes, int | None]:
    """Read the pipe while the command runs, until it exits or has printed its code.

    Once the command exits, what is in the pipe is taken and the status is its own (also when
    it exits during the grace after its code: ``exit 3`` stays an error). A command still
    running once its code was read is stopped and counts as status 0; None means the output
    grew past the limit.
    """
    status: int | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(pipe.read, group.cancel_scope)
        status = await process.wait()
        group.cancel_scope.cancel()
    if status is not None:
        _kill(process)  # a background child may still hold the pipe: it ends with the command
        pipe.take_available()
        return bytes(pipe.data), status
    return bytes(pipe.data), 0 if pipe.code_read else None


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
