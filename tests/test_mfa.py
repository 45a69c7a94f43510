"""MFA token providers: every shape of provider, the output rule, failures, and code reuse."""

from __future__ import annotations

import os
import shlex
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from aiorefresh.errors import ConfigurationError, MFAError, ValidationError
from aiorefresh.mfa import extract_token, make_mfa_provider, validate_token_code
from aiorefresh.testing import FrozenClock

PY = sys.executable
CODE = "123456"


def command(script: str) -> list[str]:
    """A command that runs ``script`` with this Python."""
    return [PY, "-c", script]


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
    provider = make_mfa_provider(command("import time; time.sleep(30)"), {"timeout": 0.5})

    started = time.monotonic()
    with pytest.raises(MFAError, match=r"timed out after 0\.5 s"):
        await provider()
    assert time.monotonic() - started < 10


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


async def test_event_loop_keeps_serving_tasks_while_a_command_runs() -> None:
    provider = make_mfa_provider(command(f"import time; time.sleep(1); print('{CODE}')"))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.05)
            ticks += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        assert await provider() == CODE
        tg.cancel_scope.cancel()
    assert ticks > 10


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

    def blocking() -> str:
        release.wait(10)
        return CODE

    provider = make_mfa_provider(blocking)
    started = time.monotonic()
    try:
        with anyio.move_on_after(0.2):
            await provider()
        assert time.monotonic() - started < 2
    finally:
        release.set()


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


# -------------------------------------------------------------------------------- reprs


def test_repr_shows_the_program_but_no_option_values() -> None:
    provider = make_mfa_provider(
        ["ykman", "oath", "accounts", "code"], {"env": {"YKMAN_PASSWORD": "hunter2"}}
    )

    text = repr(provider)
    assert "ykman" in text
    assert "hunter2" not in text
    assert "YKMAN_PASSWORD" not in text


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
