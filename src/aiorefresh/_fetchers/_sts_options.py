"""Checks of the STS methods' options, before any network call.

Each check returns a clean copy (``None`` values dropped, ``RoleSessionName`` filled in) or
raises `ValidationError` (wrong type, unknown key) or `ConfigurationError` (bad value), naming
the parameter and key. Values that could be secrets (``TokenCode``) are never echoed.
"""

from __future__ import annotations

import re
import secrets
import warnings
from collections.abc import Mapping
from typing import Any

from .._client_key import check_client_values
from .._util import check_mapping
from ..errors import ConfigurationError, ValidationError
from ..mfa import validate_token_code

__all__ = [
    "CHAINED_MAX_DURATION",
    "ROLE_ARN",
    "SESSION_NAME",
    "cap_chained_duration",
    "generated_session_name",
    "validate_assume_role_kwargs",
    "validate_session_token_kwargs",
    "validate_sts_client_kwargs",
    "validate_web_identity_kwargs",
]

ROLE_ARN = re.compile(r"arn:aws[a-zA-Z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}", re.ASCII)
SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
"""What STS accepts as a role ARN and as a RoleSessionName (profiles check theirs too)."""
_GENERATED_PREFIX = "aiorefresh-"
CHAINED_MAX_DURATION = 3600
"""AWS caps a session made by role chaining at one hour."""

_ASSUME_ROLE_TYPES: dict[str, type | tuple[type, ...]] = {
    "RoleArn": str,
    "RoleSessionName": str,
    "PolicyArns": list,
    "Policy": str,
    "DurationSeconds": int,
    "Tags": list,
    "TransitiveTagKeys": list,
    "ExternalId": str,
    "SerialNumber": str,
    "TokenCode": str,
    "SourceIdentity": str,
    "ProvidedContexts": list,
}
_SESSION_TOKEN_TYPES: dict[str, type | tuple[type, ...]] = {
    "DurationSeconds": int,
    "SerialNumber": str,
    "TokenCode": str,
}
_WEB_IDENTITY_TYPES: dict[str, type | tuple[type, ...]] = {
    "RoleArn": str,
    "RoleSessionName": str,
    "DurationSeconds": int,
    "Policy": str,
    "PolicyArns": list,
    "ProviderId": str,
}
_CLIENT_TYPES: dict[str, type | tuple[type, ...]] = {
    "region_name": str,
    "endpoint_url": str,
    "api_version": str,
    "use_ssl": bool,
    "verify": (bool, str),
    "config": object,  # a botocore Config: checked by check_client_values
    "aws_access_key_id": str,
    "aws_secret_access_key": str,
    "aws_session_token": str,
    "aws_account_id": str,
}
_PLAIN_TEXT = ("ExternalId", "SourceIdentity", "SerialNumber", "ProviderId")


def generated_session_name() -> str:
    """A random ``RoleSessionName`` for callers who give none."""
    return f"{_GENERATED_PREFIX}{secrets.token_hex(4)}"


def _check_role_arn(arn: object, parameter: str) -> str:
    if not isinstance(arn, str):
        raise ValidationError(f"{parameter}['RoleArn'] is required: an IAM role ARN")
    if not ROLE_ARN.fullmatch(arn):
        raise ConfigurationError(
            f"{parameter}['RoleArn'] must look like arn:<partition>:iam::<12-digit account>:"
            f"role/<name> (ASCII, no spaces or newlines), got {arn!r}"
        )
    return arn


def _check_duration(params: dict[str, Any], parameter: str, low: int, high: int) -> None:
    duration = params.get("DurationSeconds")
    if duration is not None and not low <= duration <= high:
        raise ConfigurationError(
            f"{parameter}['DurationSeconds'] must be between {low} and {high}, got {duration}"
        )


def _check_session_name(params: dict[str, Any], parameter: str) -> None:
    name = params.get("RoleSessionName")
    if name is None:
        params["RoleSessionName"] = generated_session_name()
    elif not SESSION_NAME.fullmatch(name):
        raise ConfigurationError(
            f"{parameter}['RoleSessionName'] must be 2-64 ASCII letters, digits "
            f"or +=,.@_- (no spaces or newlines), got {name!r}"
        )


def _check_plain_text(params: dict[str, Any], parameter: str) -> None:
    for key in _PLAIN_TEXT:
        value = params.get(key)
        if value is not None and (value != value.strip() or not value.isascii() or not value):
            raise ConfigurationError(
                f"{parameter}[{key!r}] must be non-empty ASCII without leading or trailing "
                "white space"
            )


def _check_list_of_dicts(params: dict[str, Any], key: str, parameter: str, keys: set[str]) -> None:
    items = params.get(key)
    if items is None:
        return
    for item in items:
        if not isinstance(item, Mapping) or not keys <= set(item):
            raise ValidationError(
                f"{parameter}[{key!r}] must be a list of dicts with keys {sorted(keys)}"
            )


def validate_assume_role_kwargs(
    value: object, *, parameter: str = "assume_role_kwargs"
) -> dict[str, Any]:
    """Check AssumeRole parameters before any network call; fills in ``RoleSessionName``."""
    params = check_mapping(parameter, value, _ASSUME_ROLE_TYPES)
    _check_role_arn(params.get("RoleArn"), parameter)
    _check_session_name(params, parameter)
    _check_duration(params, parameter, 900, 43200)
    _check_plain_text(params, parameter)
    _check_list_of_dicts(params, "PolicyArns", parameter, {"arn"})
    _check_list_of_dicts(params, "Tags", parameter, {"Key", "Value"})
    if "TokenCode" in params:
        validate_token_code(params["TokenCode"], parameter=f"{parameter}['TokenCode']")
    return params


def validate_session_token_kwargs(
    value: object, *, parameter: str = "session_token_kwargs"
) -> dict[str, Any]:
    """Check GetSessionToken parameters before any network call."""
    params = check_mapping(parameter, value if value is not None else {}, _SESSION_TOKEN_TYPES)
    _check_duration(params, parameter, 900, 129600)
    _check_plain_text(params, parameter)
    if "TokenCode" in params:
        validate_token_code(params["TokenCode"], parameter=f"{parameter}['TokenCode']")
    return params


def validate_web_identity_kwargs(
    value: object, *, parameter: str = "web_identity_kwargs"
) -> dict[str, Any]:
    """Check AssumeRoleWithWebIdentity parameters before any network call."""
    params = check_mapping(parameter, value, _WEB_IDENTITY_TYPES)
    _check_role_arn(params.get("RoleArn"), parameter)
    _check_session_name(params, parameter)
    _check_duration(params, parameter, 900, 43200)
    _check_plain_text(params, parameter)
    _check_list_of_dicts(params, "PolicyArns", parameter, {"arn"})
    return params


def validate_sts_client_kwargs(
    value: object, *, parameter: str = "sts_client_kwargs"
) -> dict[str, Any]:
    """Check the private STS client's options (region, endpoint, config, explicit keys)."""
    if value is None:
        return {}
    params = check_mapping(parameter, value, _CLIENT_TYPES)
    # The same checks as default_client_kwargs (a Config, an http(s) endpoint, keys whole).
    check_client_values(params, parameter, lambda key: f"{parameter}[{key!r}]")
    return params


def cap_chained_duration(params: dict[str, Any]) -> None:
    """AWS caps role-chained sessions at one hour: cap DurationSeconds and warn if it was more."""
    duration = params.get("DurationSeconds")
    if duration is not None and duration > CHAINED_MAX_DURATION:
        warnings.warn(
            f"DurationSeconds {duration} capped at {CHAINED_MAX_DURATION}: AWS limits "
            "role-chained sessions to one hour",
            UserWarning,
            stacklevel=3,
        )
        params["DurationSeconds"] = CHAINED_MAX_DURATION
