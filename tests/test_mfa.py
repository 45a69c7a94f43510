"""MFA token providers: every shape of provider, time budgets, failures of callable providers,
code reuse, and codes never shown."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from _mfa_helpers import CODE, PY, FakeSleep, command
from aiorefresh.errors import MFAError
from aiorefresh.mfa import DEFAULT_COMMAND_TIMEOUT, make_mfa_provider
from aiorefresh.testing import FrozenClock


def codes(*values: str) -> Iterator[str]:
    yield from values


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
    # The code without its newline: a whole line holding one code would end the wait early.
    script = f"import sys, time; sys.stdout.write('{CODE}'); sys.stdout.flush(); time.sleep(60)"
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
