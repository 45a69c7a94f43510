"""MFA token providers: every shape of provider, the output rule, what a command leaves behind,
time budgets, failures, code reuse, and codes never shown."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import sys
import threading
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from aiorefresh.errors import ConfigurationError, MFAError, ValidationError
from aiorefresh.mfa import (
    DEFAULT_COMMAND_TIMEOUT,
    MFATokenProvider,
    MFATokenProviderLike,
    extract_token,
    make_mfa_provider,
    validate_token_code,
)
from aiorefresh.testing import FrozenClock

PY = sys.executable
CODE = "123456"

posix_only = pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX")


def command(script: str) -> list[str]:
    """A command that runs ``script`` with this Python."""
    return [PY, "-c", script]


def spawner(pid_file: Path, *, before: str = "", after: str = "", child_stdout: bool) -> list[str]:
    """A command that runs ``before``, starts a child that sleeps 60 s (holding the command's
    stdout if ``child_stdout``), writes the child's pid to ``pid_file``, then runs ``after``."""
    stdout = "" if child_stdout else ", stdout=subprocess.DEVNULL"
    return command(
        "import subprocess, sys, time\n"
        f"{before}\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']{stdout})\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        f"{after}\n"
    )


class FakeSleep:
    """Records the waits and moves the frozen clock instead of sleeping."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.clock.advance(seconds)


def codes(*values: str) -> Iterator[str]:
    yield from values


async def read_when_written(path: Path) -> str:
    """Poll for a file another process writes: no event crosses a process boundary."""
    file = anyio.Path(path)
    with anyio.fail_after(10):
        while True:
            text = await file.read_text() if await file.exists() else ""
            if text:
                return text
            await anyio.sleep(0.02)


def is_dead(pid: int) -> bool:
    """No such process, or a zombie: dead, but not yet collected by the parent it was handed
    to (a container's init may never collect it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return Path("/proc/self").exists()  # gone meanwhile; without /proc, cannot tell
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


async def dies(pid: int) -> bool:
    """Whether ``pid`` dies within 10 s (polled: another process's death sends no event)."""
    with anyio.move_on_after(10):
        while True:
            if is_dead(pid):
                return True
            await anyio.sleep(0.02)
    return False


# ------------------------------------------------------------------ kinds of provider


async def test_coroutine_provider_is_awaited_with_kwargs() -> None:
    async def provider(*, serial: str) -> str:
        assert serial == "arn:aws:iam::123456789012:mfa/me"
        return CODE

    get_token = make_mfa_provider(provider, {"serial": "arn:aws:iam::123456789012:mfa/me"})

    assert await get_token() == CODE


async def test_object_with_async_call_is_awaited() -> None:
    class Provider:
        async def __call__(self) -> str:
            return CODE

    assert await make_mfa_provider(Provider())() == CODE


async def test_sync_provider_runs_in_a_worker_thread() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def provider(prefix: str) -> str:
        seen.append(threading.get_ident())
        return prefix + CODE

    assert await make_mfa_provider(provider, {"prefix": "code: "})() == CODE
    assert seen
    assert seen[0] != loop_thread


async def test_sync_provider_returning_an_awaitable_is_awaited() -> None:
    async def fetch() -> str:
        return CODE

    assert await make_mfa_provider(lambda: fetch())() == CODE


async def test_command_list_prints_the_code() -> None:
    assert await make_mfa_provider(command(f"print('{CODE}')"))() == CODE


async def test_command_tuple_is_accepted() -> None:
    assert await make_mfa_provider(tuple(command(f"print('{CODE}')")))() == CODE


async def test_command_string_is_split_without_a_shell() -> None:
    # A shell would run `echo 654321` after `;`; shlex hands `;` to Python as an argument.
    script = f"import sys; assert sys.argv[1:] == [';', 'echo', '654321']; print('{CODE}')"
    line = f"{shlex.quote(PY)} -c \"{script}\" ';' echo 654321"

    assert await make_mfa_provider(line)() == CODE


async def test_text_around_the_code_is_ignored() -> None:
    provider = make_mfa_provider(command(f"print('Touch your key... your code: {CODE} (30s)')"))

    assert await provider() == CODE


async def test_command_gets_env_and_cwd(tmp_path: Path) -> None:
    script = (
        "import os; "
        "print(os.environ['MFA_CODE'] if os.path.samefile('.', os.environ['WANT']) else '')"
    )
    env = {**os.environ, "MFA_CODE": CODE, "WANT": str(tmp_path)}

    provider = make_mfa_provider(command(script), {"env": env, "cwd": tmp_path})

    assert await provider() == CODE


async def test_same_provider_object_is_returned_unchanged() -> None:
    provider = make_mfa_provider(command(f"print('{CODE}')"))

    assert make_mfa_provider(provider) is provider  # type: ignore[arg-type]


# ------------------------------------------------------------------- command failures


async def test_command_that_times_out_is_killed() -> None:
    provider = make_mfa_provider(command("import time; time.sleep(60)"), {"timeout": 0.5})

    with pytest.raises(MFAError, match=r"timed out after 0\.5 s and was killed"):
        await provider()


async def test_command_exiting_non_zero_reports_the_status_not_the_output() -> None:
    provider = make_mfa_provider(command(f"import sys; print('{CODE}'); sys.exit(3)"))

    with pytest.raises(MFAError, match="exited with status 3") as caught:
        await provider()
    assert CODE not in str(caught.value)


async def test_command_printing_no_digits_is_an_error() -> None:
    provider = make_mfa_provider(command("print('no token today')"))

    with pytest.raises(MFAError, match="no 6-digit code"):
        await provider()


async def test_command_printing_two_codes_is_an_error_naming_the_count() -> None:
    provider = make_mfa_provider(command("print('prod 123456'); print('dev 654321')"))

    with pytest.raises(MFAError, match="2 6-digit groups") as caught:
        await provider()
    assert "123456" not in str(caught.value)
    assert "654321" not in str(caught.value)


async def test_missing_command_names_the_program() -> None:
    provider = make_mfa_provider(["aiorefresh-no-such-mfa-tool", "--secret-flag"])

    with pytest.raises(MFAError, match="'aiorefresh-no-such-mfa-tool' was not found") as caught:
        await provider()
    assert "--secret-flag" not in str(caught.value)


async def test_missing_working_directory_is_reported_as_such(tmp_path: Path) -> None:
    provider = make_mfa_provider(command(f"print('{CODE}')"), {"cwd": str(tmp_path / "gone")})

    with pytest.raises(MFAError, match="working directory"):
        await provider()


async def test_event_loop_keeps_serving_tasks_while_a_command_runs(tmp_path: Path) -> None:
    # The command prints only once another task on the loop has answered it mid-run: a
    # provider that blocked the loop would never let that task run, and would time out.
    started, go = tmp_path / "started", tmp_path / "go"
    script = (
        "import os, time\n"
        f"open({str(started)!r}, 'w').write('1')\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
        f"print('{CODE}')\n"
    )
    provider = make_mfa_provider(command(script))
    answers: list[str] = []

    async def ask() -> None:
        answers.append(await provider())

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask)
        await read_when_written(started)
        await anyio.Path(go).write_text("go")
    assert answers == [CODE]


async def test_cancelling_a_call_kills_the_command(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(30)"
    )
    provider = make_mfa_provider(command(script))

    async with anyio.create_task_group() as tg:
        tg.start_soon(provider)
        pid = int(await read_when_written(pid_file))
        tg.cancel_scope.cancel()

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_cancelled_sync_provider_does_not_keep_the_caller_waiting() -> None:
    release = threading.Event()
    finished = threading.Event()

    def blocking() -> str:
        release.wait(10)
        finished.set()
        return CODE

    provider = make_mfa_provider(blocking)
    try:
        with anyio.move_on_after(0.2):
            await provider()
        assert not finished.is_set()  # the caller left while the provider was still blocked
    finally:
        release.set()


# ------------------------------------------------- what a command leaves behind (POSIX)


@posix_only
async def test_a_command_that_times_out_is_killed_with_the_processes_it_started(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "child"
    provider = make_mfa_provider(
        spawner(pid_file, after="time.sleep(60)", child_stdout=False), {"timeout": 3}
    )

    with pytest.raises(MFAError, match="timed out"):
        await provider()
    assert await dies(int(await read_when_written(pid_file)))


@posix_only
@pytest.mark.parametrize("how", ["cancel scope", "task.cancel()"])
async def test_cancelling_a_call_kills_the_processes_the_command_started(
    tmp_path: Path, how: str
) -> None:
    pid_file = tmp_path / "child"
    provider = make_mfa_provider(spawner(pid_file, after="time.sleep(60)", child_stdout=False))

    if how == "cancel scope":
        async with anyio.create_task_group() as tg:
            tg.start_soon(provider)
            pid = int(await read_when_written(pid_file))
            tg.cancel_scope.cancel()
    else:
        task = asyncio.ensure_future(provider())
        pid = int(await read_when_written(pid_file))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert await dies(pid)


@posix_only
async def test_a_command_that_prints_too_much_is_killed_with_the_processes_it_started(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "child"
    flood = "sys.stdout.write('x' * 100_000); sys.stdout.flush(); time.sleep(60)"
    provider = make_mfa_provider(spawner(pid_file, after=flood, child_stdout=False))

    with pytest.raises(MFAError, match="more than 64 KiB"):
        await provider()
    assert await dies(int(await read_when_written(pid_file)))


@posix_only
async def test_concurrent_commands_each_kill_only_their_own_processes(tmp_path: Path) -> None:
    # Command i is still running when command i-1 has exited and its group was killed: a kill
    # that reached further would show as command i killed by a signal.
    count = 8

    def script(i: int) -> str:
        wait = (
            f"while not os.path.exists({str(tmp_path / f'returned-{i - 1}')!r}): time.sleep(0.01)"
        )
        return "import os, time\n" + (wait if i else "") + f"\nprint('{i:06d}')\n"

    providers = [make_mfa_provider(command(script(i))) for i in range(count)]
    answers: dict[int, str] = {}

    async def ask(i: int) -> None:
        answers[i] = await providers[i]()
        await anyio.Path(tmp_path / f"returned-{i}").write_text("1")

    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(ask, i)
    assert answers == {i: f"{i:06d}" for i in range(count)}


# --------------------------------------------- background children holding stdout (POSIX)


@posix_only
@pytest.mark.parametrize("end", ["\n", ""], ids=["line", "no newline"])
async def test_code_is_returned_once_the_command_exits_though_a_child_holds_stdout(
    tmp_path: Path, end: str
) -> None:
    # Reading to EOF would wait 60 s for the child and time out after 30.
    before = f"print('your code: {CODE}', end={end!r}, flush=True)"
    provider = make_mfa_provider(spawner(tmp_path / "child", before=before, child_stdout=True))

    assert await provider() == CODE


@posix_only
async def test_a_child_holding_stdout_is_killed_once_the_command_exits(tmp_path: Path) -> None:
    pid_file = tmp_path / "child"
    before = f"print('{CODE}', flush=True)"
    provider = make_mfa_provider(spawner(pid_file, before=before, child_stdout=True))

    await provider()
    assert await dies(int(await read_when_written(pid_file)))


@posix_only
async def test_two_codes_are_refused_though_a_child_holds_stdout(tmp_path: Path) -> None:
    before = "print('prod 123456'); print('dev 654321', flush=True)"
    provider = make_mfa_provider(spawner(tmp_path / "child", before=before, child_stdout=True))

    with pytest.raises(MFAError, match="2 6-digit groups"):
        await provider()


@posix_only
async def test_exit_status_is_reported_though_a_child_holds_stdout(tmp_path: Path) -> None:
    after = "sys.exit(3)"
    provider = make_mfa_provider(spawner(tmp_path / "child", after=after, child_stdout=True))

    with pytest.raises(MFAError, match="exited with status 3"):
        await provider()


# ------------------------------------------------------------------------- time budget


def test_a_command_provider_has_a_30_second_timeout_by_default() -> None:
    provider = make_mfa_provider(command("print(1)"))

    assert provider.timeout == DEFAULT_COMMAND_TIMEOUT == 30.0


def test_a_command_provider_exposes_its_timeout_option() -> None:
    assert make_mfa_provider(command("print(1)"), {"timeout": 5}).timeout == 5.0


def test_the_timeout_keyword_sets_a_command_provider_timeout() -> None:
    assert make_mfa_provider(command("print(1)"), timeout=5).timeout == 5.0


def test_a_callable_provider_has_no_timeout_unless_given() -> None:
    async def provider() -> str:
        return CODE

    assert make_mfa_provider(provider).timeout is None
    assert make_mfa_provider(provider, timeout=2).timeout == 2.0


def test_the_timeout_of_a_provider_is_read_only() -> None:
    provider = make_mfa_provider(command("print(1)"))

    with pytest.raises(AttributeError):
        provider.timeout = 5  # type: ignore[misc]


async def test_a_coroutine_provider_that_outlives_its_timeout_is_cancelled_and_an_error() -> None:
    cancelled = anyio.Event()

    async def provider() -> str:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()
        return CODE

    with pytest.raises(MFAError, match=r"coroutine function .*provider timed out after 0\.2 s"):
        await make_mfa_provider(provider, timeout=0.2)()
    with anyio.fail_after(5):
        await cancelled.wait()


async def test_a_sync_provider_that_outlives_its_timeout_is_an_error() -> None:
    release = threading.Event()

    def provider() -> str:
        release.wait(10)
        return CODE

    try:
        with pytest.raises(MFAError, match=r"timed out after 0\.2 s"):
            await make_mfa_provider(provider, timeout=0.2)()
    finally:
        release.set()


async def test_a_reused_code_waits_for_the_next_step_when_that_fits_in_the_timeout(
    frozen_clock: FrozenClock,
) -> None:
    frozen_clock.advance(10)  # the next step starts in 20 s
    answers = codes("111111", "111111", "222222")
    sleep = FakeSleep(frozen_clock)

    async def provider() -> str:
        return next(answers)

    get_token = make_mfa_provider(provider, timeout=60, clock=frozen_clock, sleep=sleep)

    assert [await get_token(), await get_token()] == ["111111", "222222"]
    assert sleep.calls == [pytest.approx(21.0)]


async def test_a_reused_code_whose_next_step_is_past_the_timeout_is_an_error_without_waiting(
    frozen_clock: FrozenClock,
) -> None:
    frozen_clock.advance(10)  # the next step starts in 20 s: after a 10 s budget
    sleep = FakeSleep(frozen_clock)

    async def provider() -> str:
        return CODE

    get_token = make_mfa_provider(provider, timeout=10, clock=frozen_clock, sleep=sleep)
    await get_token()

    with pytest.raises(MFAError, match="already used.*timeout of 10 s") as caught:
        await get_token()
    assert sleep.calls == []
    assert CODE not in str(caught.value)


async def test_a_command_with_a_reused_code_stays_inside_its_timeout(
    frozen_clock: FrozenClock,
) -> None:
    frozen_clock.advance(1)  # the next step starts in 29 s: after a 20 s command budget
    sleep = FakeSleep(frozen_clock)
    get_token = make_mfa_provider(
        command(f"print('{CODE}')"), {"timeout": 20}, clock=frozen_clock, sleep=sleep
    )
    await get_token()

    with pytest.raises(MFAError, match="timeout of 20 s"):
        await get_token()
    assert sleep.calls == []


# ----------------------------------------------------------------- callable failures


async def test_exception_from_provider_becomes_mfa_error_with_cause() -> None:
    async def provider() -> str:
        raise RuntimeError(f"device said {CODE}")

    with pytest.raises(MFAError, match="raised RuntimeError") as caught:
        await make_mfa_provider(provider)()
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert CODE not in str(caught.value)


async def test_provider_returning_a_non_str_is_an_error_naming_the_type() -> None:
    async def provider() -> Any:
        return 123456

    with pytest.raises(MFAError, match="returned int; expected str") as caught:
        await make_mfa_provider(provider)()
    assert CODE not in str(caught.value)


async def test_cancelled_error_raised_by_a_coroutine_provider_itself_is_an_mfa_error() -> None:
    async def provider() -> str:
        prompt: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        prompt.cancel()  # e.g. a UI library cancelled its own prompt
        return await prompt

    with pytest.raises(MFAError, match="raised CancelledError"):
        await make_mfa_provider(provider)()


async def test_cancelled_error_raised_by_a_sync_provider_is_an_mfa_error() -> None:
    def provider() -> str:
        raise asyncio.CancelledError

    with pytest.raises(MFAError, match="raised CancelledError"):
        await make_mfa_provider(provider)()


async def test_the_caller_is_not_left_cancelled_by_a_provider_raising_cancelled_error() -> None:
    async def provider() -> str:
        raise asyncio.CancelledError

    with pytest.raises(MFAError):
        await make_mfa_provider(provider)()
    await asyncio.sleep(0)  # would raise CancelledError if the caller's task were cancelled
    assert await make_mfa_provider(command(f"print('{CODE}')"))() == CODE


async def test_cancelling_the_caller_task_cancels_a_coroutine_provider_and_propagates() -> None:
    entered, cancelled = anyio.Event(), anyio.Event()

    async def provider() -> str:
        entered.set()
        try:
            await anyio.sleep_forever()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return CODE

    task = asyncio.ensure_future(make_mfa_provider(provider)())
    await entered.wait()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    with anyio.fail_after(5):
        await cancelled.wait()


async def test_cancelling_a_cancel_scope_around_a_coroutine_provider_is_a_cancellation() -> None:
    entered = anyio.Event()

    async def provider() -> str:
        entered.set()
        await anyio.sleep_forever()
        return CODE

    get_token = make_mfa_provider(provider)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(get_token)
            await entered.wait()
            scope.cancel()
    assert scope.cancelled_caught


# -------------------------------------------------------------------------- code reuse


async def test_same_code_twice_waits_for_the_next_step_then_returns_the_new_code(
    frozen_clock: FrozenClock,
) -> None:
    frozen_clock.advance(10)  # 10 s into a 30-second TOTP step
    answers = codes("111111", "111111", "222222")
    sleep = FakeSleep(frozen_clock)

    async def provider() -> str:
        return next(answers)

    get_token = make_mfa_provider(provider, clock=frozen_clock, sleep=sleep)

    assert await get_token() == "111111"
    assert await get_token() == "222222"
    assert sleep.calls == [pytest.approx(21.0)]  # 20 s to the next step, plus a 1 s margin


async def test_provider_that_keeps_returning_the_used_code_is_an_error(
    frozen_clock: FrozenClock,
) -> None:
    sleep = FakeSleep(frozen_clock)

    async def provider() -> str:
        return CODE

    get_token = make_mfa_provider(provider, clock=frozen_clock, sleep=sleep)
    await get_token()

    with pytest.raises(MFAError, match="already used") as caught:
        await get_token()
    assert CODE not in str(caught.value)
    assert len(sleep.calls) == 1
    assert sleep.calls[0] <= 35


async def test_same_code_long_after_is_not_a_reuse(frozen_clock: FrozenClock) -> None:
    sleep = FakeSleep(frozen_clock)

    async def provider() -> str:
        return CODE

    get_token = make_mfa_provider(provider, clock=frozen_clock, sleep=sleep)
    await get_token()
    frozen_clock.advance(3600)

    assert await get_token() == CODE
    assert sleep.calls == []


async def test_different_codes_never_wait(frozen_clock: FrozenClock) -> None:
    sleep = FakeSleep(frozen_clock)
    answers = codes("111111", "222222")

    async def provider() -> str:
        return next(answers)

    get_token = make_mfa_provider(provider, clock=frozen_clock, sleep=sleep)

    assert [await get_token(), await get_token()] == ["111111", "222222"]
    assert sleep.calls == []


# ----------------------------------------------------------------------- eager checks


@pytest.mark.parametrize("option", ["stdout", "stderr", "shell", "executable", "preexec_fn"])
def test_refused_command_options_are_configuration_errors(option: str) -> None:
    with pytest.raises(ConfigurationError, match=option):
        make_mfa_provider(command("print(1)"), {option: None})


def test_unknown_command_options_are_named() -> None:
    with pytest.raises(ConfigurationError, match="'tiemout'"):
        make_mfa_provider(command("print(1)"), {"tiemout": 5})


@pytest.mark.parametrize("timeout", [True, "30", None])
def test_timeout_of_the_wrong_type_is_a_validation_error(timeout: object) -> None:
    with pytest.raises(ValidationError, match="timeout"):
        make_mfa_provider(command("print(1)"), {"timeout": timeout})


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan")])
def test_timeout_out_of_range_is_a_configuration_error(timeout: float) -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        make_mfa_provider(command("print(1)"), {"timeout": timeout})


def test_env_must_map_str_to_str_and_values_are_not_echoed() -> None:
    with pytest.raises(ValidationError, match="env") as caught:
        make_mfa_provider(command("print(1)"), {"env": {"TOKEN": b"hunter2"}})
    assert "hunter2" not in str(caught.value)


def test_cwd_of_the_wrong_type_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="cwd"):
        make_mfa_provider(command("print(1)"), {"cwd": 3})


@pytest.mark.parametrize(
    "provider",
    [None, 42, [], (), ["python", 1], [""], "", "   ", b"echo 123456", {"cmd": "x"}],
    ids=repr,
)
def test_unusable_provider_is_a_validation_error_naming_the_parameter(provider: Any) -> None:
    with pytest.raises(ValidationError, match="my_mfa"):
        make_mfa_provider(provider, parameter="my_mfa")


def test_unbalanced_quotes_in_a_command_string_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="shlex"):
        make_mfa_provider("ykman oath code 'aws")


@pytest.mark.parametrize("timeout", [True, "30"])
def test_timeout_keyword_of_the_wrong_type_is_a_validation_error(timeout: object) -> None:
    with pytest.raises(ValidationError, match="timeout"):
        make_mfa_provider(command("print(1)"), timeout=timeout)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan")])
def test_timeout_keyword_out_of_range_is_a_configuration_error(timeout: float) -> None:
    async def provider() -> str:
        return CODE

    with pytest.raises(ConfigurationError, match="timeout"):
        make_mfa_provider(provider, timeout=timeout)


def test_a_command_timeout_given_twice_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="given twice"):
        make_mfa_provider(command("print(1)"), {"timeout": 5}, timeout=5)


def test_a_made_provider_cannot_be_given_new_options() -> None:
    provider = make_mfa_provider(command("print(1)"))

    with pytest.raises(ConfigurationError, match="already an MFATokenProvider"):
        make_mfa_provider(provider, timeout=5)


def test_kwargs_must_be_a_mapping_named_after_the_parameter() -> None:
    with pytest.raises(ValidationError, match="mfa_token_provider_kwargs"):
        make_mfa_provider(command("print(1)"), ["timeout"])  # type: ignore[arg-type]


def test_kwargs_not_matching_the_callable_are_refused_up_front() -> None:
    def provider(*, serial: str) -> str:
        return CODE

    with pytest.raises(ConfigurationError, match="mfa_token_provider_kwargs"):
        make_mfa_provider(provider, {"serail": "x"})


def test_making_a_provider_runs_nothing() -> None:
    calls: list[str] = []

    def provider() -> str:
        calls.append("called")
        return CODE

    make_mfa_provider(provider)
    make_mfa_provider(["aiorefresh-no-such-mfa-tool"])  # not looked up until called

    assert calls == []


# ------------------------------------------------------------------------------- types


def test_make_mfa_provider_takes_an_mfa_token_provider_like() -> None:
    hints = typing.get_type_hints(make_mfa_provider)

    assert hints["provider"] == MFATokenProviderLike
    assert hints["return"] is MFATokenProvider


@pytest.mark.parametrize(
    "provider",
    [command("print(1)"), "echo 123456", lambda: CODE],
    ids=["argv", "string", "callable"],
)
def test_every_kind_of_provider_becomes_an_mfa_token_provider(provider: Any) -> None:
    assert isinstance(make_mfa_provider(provider), MFATokenProvider)


# ------------------------------------------------------------------ codes never shown


def test_repr_shows_the_program_but_no_option_values() -> None:
    provider = make_mfa_provider(
        ["ykman", "oath", "accounts", "code"], {"env": {"YKMAN_PASSWORD": "hunter2"}}
    )

    text = repr(provider)
    assert "ykman" in text
    assert "hunter2" not in text
    assert "YKMAN_PASSWORD" not in text


async def test_repr_of_a_command_provider_never_shows_the_code_handed_out() -> None:
    provider = make_mfa_provider(command(f"print('{CODE}')"))
    await provider()

    assert CODE not in repr(provider)


async def test_timeout_message_never_shows_what_the_command_printed() -> None:
    script = f"import time; print('{CODE}', flush=True); time.sleep(60)"
    provider = make_mfa_provider(command(script), {"timeout": 0.5})

    with pytest.raises(MFAError, match="timed out") as caught:
        await provider()
    assert CODE not in str(caught.value)


async def test_too_much_output_message_never_shows_the_output() -> None:
    provider = make_mfa_provider(command(f"print('{CODE} ' * 20_000)"))

    with pytest.raises(MFAError, match="more than 64 KiB") as caught:
        await provider()
    assert CODE not in str(caught.value)


async def test_nothing_logged_while_providing_shows_the_code(
    caplog: pytest.LogCaptureFixture, frozen_clock: FrozenClock
) -> None:
    caplog.set_level(logging.DEBUG)
    sleep = FakeSleep(frozen_clock)
    ok = make_mfa_provider(command(f"print('{CODE}')"), clock=frozen_clock, sleep=sleep)
    failing = make_mfa_provider(command(f"import sys; print('{CODE}'); sys.exit(3)"))

    await ok()
    for provider in (ok, failing):  # a reused code, then a failed command
        with pytest.raises(MFAError):
            await provider()
    assert CODE not in caplog.text


async def test_repr_never_shows_the_code_handed_out() -> None:
    async def get_code(pin: str) -> str:
        return CODE

    provider = make_mfa_provider(get_code, {"pin": "9999"})
    await provider()

    text = repr(provider)
    assert "get_code" in text
    assert CODE not in text
    assert "9999" not in text


# ------------------------------------------------------------------------ extract_token


@pytest.mark.parametrize(
    ("output", "code"),
    [
        ("123456", "123456"),
        ("012345\n", "012345"),
        ("your code: 123456", "123456"),
        ("AWS (me@example.com)   654321   expires in 12s\n", "654321"),
    ],
)
def test_extract_token_finds_the_one_code(output: str, code: str) -> None:
    assert extract_token(output) == code


@pytest.mark.parametrize(
    ("output", "count"),
    [("", "no"), ("12345", "no"), ("1234567", "no"), ("123456 654321", "2"), ("1 2 3", "no")],
)
def test_extract_token_needs_exactly_one_six_digit_group(output: str, count: str) -> None:
    with pytest.raises(MFAError, match=f"{count} 6-digit") as caught:
        extract_token(output, source="ykman")
    assert "ykman" in str(caught.value)
    if output:
        assert output not in str(caught.value)


def test_extract_token_refuses_non_str() -> None:
    with pytest.raises(MFAError, match="bytes"):
        extract_token(b"123456")  # type: ignore[arg-type]


# ------------------------------------------------------------------ validate_token_code


def test_validate_token_code_accepts_six_ascii_digits() -> None:
    assert validate_token_code("012345") == "012345"


def test_validate_token_code_refuses_non_str_naming_the_parameter() -> None:
    with pytest.raises(ValidationError, match="TokenCode") as caught:
        validate_token_code(123456)
    assert "123456" not in str(caught.value)


@pytest.mark.parametrize("code", ["12345", "1234567", "12345a", " 123456", "١٢٣٤٥٦", ""])
def test_validate_token_code_refuses_other_strings_without_echoing(code: str) -> None:
    with pytest.raises(ConfigurationError, match=r"assume_role_kwargs\.TokenCode") as caught:
        validate_token_code(code, parameter="assume_role_kwargs.TokenCode")
    if code.strip():
        assert code.strip() not in str(caught.value)
