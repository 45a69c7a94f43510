"""MFA token providers checked before anything runs: the options and providers refused when one
is made, the provider types, and the output rule of extract_token and validate_token_code."""

from __future__ import annotations

import typing
from typing import Any

import pytest

from _mfa_helpers import CODE, command
from aiorefresh.errors import ConfigurationError, MFAError, ValidationError
from aiorefresh.mfa import (
    MFATokenProvider,
    MFATokenProviderLike,
    extract_token,
    make_mfa_provider,
    validate_token_code,
)

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
