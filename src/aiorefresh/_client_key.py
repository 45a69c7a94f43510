"""``create_client``/``resource`` arguments -> one canonical client key, memoised.

Two calls get the same key when every argument that changes the client is equal: positional
and keyword forms alike, a missing region resolved to the default region, ``default_client_kwargs``
applied under the call's arguments, Configs compared by their options, explicit keys compared
only through a SHA-256 digest (never kept in clear). Keys are canonical (one object per
distinct key), so a pool's index hashes them by identity.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from ._aiobotocore import config_key, detached_config, merge_configs
from ._util import check_keys, freeze
from .errors import ValidationError

__all__ = [
    "CLIENT_ARGS",
    "ClientKey",
    "ClientKeys",
    "check_client_kwargs",
    "config_key",
    "detached_config",
    "merge_configs",
]

CLIENT_ARGS = (
    "region_name",
    "api_version",
    "use_ssl",
    "verify",
    "endpoint_url",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "config",
    "aws_account_id",
)
"""``create_client``'s arguments after ``service_name``, in its positional order."""

SECRET_ARGS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
MEMO_SIZE = 512

# Positions in the raw argument tuple: kind first, then create_client's order.
KIND, SERVICE, REGION, API, SSL, VERIFY, ENDPOINT = range(7)
AK, SK, TOKEN, CONFIG, ACCOUNT = range(7, 12)

Raw = tuple[Any, ...]
"""``(kind, service_name, region_name, ..., aws_account_id)`` as the caller gave them."""


# -- keys -------------------------------------------------------------------------------------


def _digest(access_key: object, secret_key: object, token: object) -> str:
    material = "\0".join(repr(part) for part in (access_key, secret_key, token))
    return hashlib.sha256(material.encode()).hexdigest()


class _Parts:
    """The normalised parts of a key with their hash computed once."""

    __slots__ = ("_hash", "parts")

    def __init__(self, parts: tuple[object, ...]) -> None:
        self.parts = parts
        self._hash = hash(parts)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if other is self:
            return True
        return isinstance(other, _Parts) and other._hash == self._hash and other.parts == self.parts


class ClientKey:
    """One client configuration: its kind, label and the non-secret ``create_client`` kwargs.

    Canonical per configuration, so it compares and hashes by identity (the fast path).
    """

    __slots__ = ("__weakref__", "kind", "kwargs", "label", "parts")

    def __init__(self, parts: _Parts, kind: str, kwargs: dict[str, Any], label: str) -> None:
        self.parts = parts
        self.kind = kind
        self.kwargs = kwargs
        self.label = label

    def __repr__(self) -> str:
        return f"<{self.label}>"


def check_client_kwargs(name: str, value: object) -> dict[str, Any]:
    """A copy of ``value``: ``create_client`` keyword arguments other than ``service_name``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"{name} must be a mapping or None, got {type(value).__name__}")
    check_keys(name, value, CLIENT_ARGS)
    return dict(value)


class ClientKeys:
    """Resolves lease arguments to canonical `ClientKey` objects, and back to create kwargs."""

    def __init__(
        self,
        *,
        default_region: str | None = None,
        default_client_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if default_region is not None and not isinstance(default_region, str):
            raise ValidationError(
                f"default_region must be a str or None, got {type(default_region).__name__}"
            )
        self._default_region = default_region
        self._defaults = check_client_kwargs("default_client_kwargs", default_client_kwargs)
        self._memo: dict[Raw, ClientKey] = {}
        self._lock = threading.Lock()
        self._canonical: weakref.WeakValueDictionary[_Parts, ClientKey] = (
            weakref.WeakValueDictionary()
        )

    def resolve(self, raw: Raw) -> ClientKey:
        """The key of ``raw`` lease arguments (memoised; explicit keys only as a digest)."""
        if raw[AK] is None and raw[SK] is None and raw[TOKEN] is None:
            memo_key = raw
        else:
            memo_key = (*raw[:AK], _digest(raw[AK], raw[SK], raw[TOKEN]), *raw[CONFIG:])
        try:
            key = self._memo.get(memo_key)
        except TypeError:  # an unhashable argument: compute every time
            return self._build(raw)
        if key is None:
            key = self._build(raw)
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            self._memo[memo_key] = key
        return key

    def kwargs(self, key: ClientKey, raw: Raw | None) -> dict[str, Any]:
        """``create_client`` kwargs for ``key``: explicit keys from ``raw`` (else the defaults'),
        and a config botocore may rewrite without touching the caller's."""
        kwargs = dict(key.kwargs)
        if kwargs.get("config") is not None:
            kwargs["config"] = detached_config(kwargs["config"])
        for position, name in zip((AK, SK, TOKEN), SECRET_ARGS, strict=True):
            value = None if raw is None else raw[position]
            kwargs[name] = value if value is not None else self._defaults.get(name)
        return kwargs

    def _build(self, raw: Raw) -> ClientKey:
        kind, service = raw[KIND], raw[SERVICE]
        if not isinstance(kind, str):
            raise ValidationError(f"kind must be a str, got {type(kind).__name__}")
        if not isinstance(service, str) or not service:
            raise ValidationError(f"service_name must be a non-empty str, got {service!r}")
        defaults = self._defaults
        values = dict(zip(CLIENT_ARGS, raw[REGION:], strict=True))
        for name in CLIENT_ARGS:
            if values[name] is None and name in defaults:
                values[name] = defaults[name]
        if raw[SSL] is True and "use_ssl" in defaults:
            values["use_ssl"] = defaults["use_ssl"]
        if values["region_name"] is None:
            values["region_name"] = self._default_region
        if raw[CONFIG] is not None and defaults.get("config") is not None:
            values["config"] = merge_configs(defaults["config"], raw[CONFIG])
        secrets = tuple(values.pop(name) for name in SECRET_ARGS)
        digest = None if secrets == (None, None, None) else _digest(*secrets)
        parts = _Parts(
            (
                kind,
                service,
                values["region_name"],
                values["api_version"],
                freeze(values["use_ssl"]),
                freeze(values["verify"]),
                values["endpoint_url"],
                digest,
                config_key(values["config"]),
                values["aws_account_id"],
            )
        )
        label = f"{kind} {service} {values['region_name'] or '(default region)'}"
        if values["endpoint_url"]:
            label += f" {values['endpoint_url']}"
        if digest is not None:
            label += f" keys:sha256:{digest[:12]}"
        if values["aws_account_id"] is None:
            del values["aws_account_id"]
        with self._lock:
            key = self._canonical.get(parts)
            if key is None:
                kwargs = {"service_name": service, **values}
                key = self._canonical[parts] = ClientKey(parts, kind, kwargs, label)
        return key
