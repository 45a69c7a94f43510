"""The method table, the constructor's signature and its per-method overloads agree.

An option is written in the table (its row and default) and in the signatures editors and mypy
read; these checks make a missed edit fail here instead of in a user's editor.
"""

from __future__ import annotations

import inspect
import sys
import typing
from typing import Any

import pytest

from aiorefresh import RefreshableSession
from aiorefresh._methods import METHODS, OPTION_DEFAULTS, row_options
from aiorefresh._options import SessionOptions

needs_get_overloads = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="typing.get_overloads is Python 3.11+"
)

AIOBOTO3_POSITIONALS = (
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "region_name",
    "botocore_session",
    "profile_name",
    "aws_account_id",
)


def implementation() -> inspect.Signature:
    return inspect.signature(RefreshableSession.__init__)


def overload_for(method: str) -> inspect.Signature:
    for candidate in typing.get_overloads(RefreshableSession.__init__):
        signature = inspect.signature(candidate)
        annotation = str(signature.parameters["method"].annotation)
        if f"Literal['{method}']" in annotation.replace('"', "'"):
            return signature
    raise AssertionError(f"no overload for method {method!r}")


def own_options(signature: inspect.Signature) -> set[str]:
    """The overload's parameters that are method options (not self, method, aioboto3's seven,
    the ``**options`` every method shares)."""
    common = {"self", "method", *AIOBOTO3_POSITIONALS}
    return {
        name
        for name, parameter in signature.parameters.items()
        if name not in common and parameter.kind is not inspect.Parameter.VAR_KEYWORD
    }


def test_every_option_default_is_the_constructors_default() -> None:
    parameters = implementation().parameters
    for name, default in OPTION_DEFAULTS.items():
        assert parameters[name].default == default, name


def test_every_option_belongs_to_a_method_row() -> None:
    in_rows = {name for row in METHODS.values() for name in row.options}
    assert in_rows == set(OPTION_DEFAULTS)


def test_the_constructor_takes_every_option_and_every_shared_option() -> None:
    parameters = set(implementation().parameters)
    assert set(OPTION_DEFAULTS) <= parameters
    assert set(SessionOptions.__annotations__) <= parameters


def test_only_method_options_and_shared_options_are_keyword_parameters() -> None:
    keyword_only = {
        name
        for name, parameter in implementation().parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert keyword_only == {"method", "fetcher", *OPTION_DEFAULTS, *SessionOptions.__annotations__}


@needs_get_overloads
@pytest.mark.parametrize("method", sorted(METHODS))
def test_each_methods_overload_lists_exactly_its_rows_options(method: str) -> None:
    assert own_options(overload_for(method)) == set(METHODS[method].options)


@needs_get_overloads
@pytest.mark.parametrize("method", sorted(METHODS))
def test_each_methods_overload_has_the_tables_defaults(method: str) -> None:
    parameters = overload_for(method).parameters
    for name in METHODS[method].options:
        default: Any = parameters[name].default
        if default is not inspect.Parameter.empty:  # a required option has none
            assert default == OPTION_DEFAULTS[name], (method, name)


def test_a_builder_gets_every_option_of_its_row_defaults_filled_in() -> None:
    row = METHODS["iot"]
    options = row_options(row, {"role_alias": "alias"})
    assert set(options) == set(row.options)
    assert options["role_alias"] == "alias"
    assert options["timeout"] == OPTION_DEFAULTS["timeout"]
