"""MFA command providers, run as real processes: how a command fails (timeouts, exit statuses,
output without exactly one code, cancellation) and that it leaves no process behind, not even
children holding its stdout (POSIX)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import anyio
import pytest

from _mfa_helpers import CODE, command
from aiorefresh.errors import MFAError
from aiorefresh.mfa import make_mfa_provider

posix_only = pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX")


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


# ------------------------------------------------ commands that keep running after their code


@posix_only
@pytest.mark.parametrize("child_stdout", [False, True], ids=["child", "child holding stdout"])
async def test_a_command_that_keeps_running_after_its_code_gives_the_code_and_is_killed(
    tmp_path: Path, child_stdout: bool
) -> None:
    # As `sh -c 'echo 123456; sleep 60'`: the code is taken a moment after its line is read,
    # long before the command's timeout, and the command dies with what it started.
    pid_file, own_pid = tmp_path / "child", tmp_path / "command"
    before = f"import os; open({str(own_pid)!r}, 'w').write(str(os.getpid()))"
    after = f"print('your code: {CODE}', flush=True); time.sleep(60)"
    argv = spawner(pid_file, before=before, after=after, child_stdout=child_stdout)
    provider = make_mfa_provider(argv, {"timeout": 20})

    with anyio.fail_after(10):  # a provider waiting for the command to exit fails here
        assert await provider() == CODE
    assert await dies(int(await read_when_written(own_pid)))
    assert await dies(int(await read_when_written(pid_file)))


@posix_only
async def test_a_shell_command_that_sleeps_after_echoing_its_code_is_not_a_timeout() -> None:
    provider = make_mfa_provider(["sh", "-c", f"echo {CODE}; exec sleep 60"], {"timeout": 20})

    with anyio.fail_after(10):
        assert await provider() == CODE


@posix_only
@pytest.mark.parametrize("pause", ["", "time.sleep(0.02); "], ids=["together", "a moment later"])
async def test_a_second_code_printed_soon_after_the_first_is_still_ambiguous(pause: str) -> None:
    script = (
        "import time\n"
        f"print('prod 123456', flush=True); {pause}print('dev 654321', flush=True)\n"
        "time.sleep(60)\n"
    )
    provider = make_mfa_provider(command(script), {"timeout": 20})

    with anyio.fail_after(10), pytest.raises(MFAError, match="2 6-digit groups") as caught:
        await provider()
    assert "123456" not in str(caught.value)
    assert "654321" not in str(caught.value)


@posix_only
async def test_a_code_without_its_newline_waits_for_the_command_to_exit() -> None:
    # Only a whole line counts: `123` then `456` must not be taken as a code too early.
    script = "import sys, time; sys.stdout.write('123'); sys.stdout.flush(); time.sleep(0.3)"
    provider = make_mfa_provider(command(script + "; print('456')"), {"timeout": 20})

    assert await provider() == CODE
