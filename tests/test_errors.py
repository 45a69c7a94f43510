"""The exception tree: one module, botocore's classes as bases, copies for many waiters."""

from __future__ import annotations

import copy
import pickle
import re

import pytest
from botocore.exceptions import BotoCoreError, CredentialRetrievalError, NoCredentialsError

import aiorefresh
from aiorefresh import errors
from aiorefresh.errors import (
    AiorefreshError,
    ConfigurationError,
    CredentialRefreshError,
    IoTCredentialError,
    MFAError,
    NoCredentialsFound,
    NonRecoverableCredentialError,
    NonRecoverableIoTError,
    NonRecoverableMFAError,
    PoolError,
    SessionClosedError,
    ValidationError,
)

TREE = {
    ValidationError: (AiorefreshError, TypeError),
    ConfigurationError: (AiorefreshError, ValueError),
    CredentialRefreshError: (AiorefreshError, CredentialRetrievalError, BotoCoreError),
    NoCredentialsFound: (CredentialRefreshError, NoCredentialsError),
    NonRecoverableCredentialError: (CredentialRefreshError,),
    NonRecoverableMFAError: (NonRecoverableCredentialError, MFAError),
    NonRecoverableIoTError: (NonRecoverableCredentialError, IoTCredentialError),
    MFAError: (CredentialRefreshError,),
    IoTCredentialError: (CredentialRefreshError,),
    PoolError: (AiorefreshError,),
    SessionClosedError: (AiorefreshError,),
}


@pytest.mark.parametrize(("cls", "bases"), TREE.items(), ids=lambda v: getattr(v, "__name__", ""))
def test_each_error_has_its_place_in_the_tree(cls: type, bases: tuple[type, ...]) -> None:
    for base in bases:
        assert issubclass(cls, base)


def test_session_closed_is_directly_under_the_base() -> None:
    assert SessionClosedError.__bases__ == (AiorefreshError,)


def test_the_docstring_draws_every_public_error() -> None:
    drawn = set(re.findall(r"\b([A-Z][A-Za-z]+Error|NoCredentialsFound)\b", errors.__doc__ or ""))
    public = set(errors.__all__)
    assert public <= drawn


def test_every_error_is_exported_from_the_package() -> None:
    assert set(errors.__all__) <= set(aiorefresh.__all__)


def test_code_catching_botocore_credential_errors_catches_refresh_failures() -> None:
    with pytest.raises(CredentialRetrievalError, match="STS said no"):
        raise CredentialRefreshError("STS said no")


def test_code_catching_no_credentials_error_catches_an_empty_chain() -> None:
    with pytest.raises(NoCredentialsError):
        raise NoCredentialsFound("nothing in the chain")


def test_message_is_exactly_what_aiorefresh_says() -> None:
    error = CredentialRefreshError("fetch failed: timeout", code="Throttling", request_id="r-1")
    assert str(error) == "fetch failed: timeout"
    assert (error.code, error.request_id) == ("Throttling", "r-1")


@pytest.mark.parametrize("clone", [copy.copy, lambda e: pickle.loads(pickle.dumps(e))])
def test_errors_survive_copy_and_pickle_with_their_fields(clone: object) -> None:
    error = NonRecoverableIoTError("refused", status_code=403, code="Forbidden", request_id="r")
    again = clone(error)  # type: ignore[operator]
    assert type(again) is NonRecoverableIoTError
    assert str(again) == "refused"
    assert (again.status_code, again.code, again.request_id) == (403, "Forbidden", "r")
