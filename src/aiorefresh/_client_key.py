"""``create_client``/``resource`` arguments -> one canonical client key, memoised.

Each distinct call's arguments are checked when its key is first built (typed errors naming
the argument, `check_client_values`), so a memoised hit costs no check.

Two calls get the same key when every argument that changes the client is equal: positional
and keyword forms alike, a missing region resolved to the default region, ``default_client_kwargs``
applied under the call's arguments, Configs compared by their options (and by whether
``max_pool_connections`` was set: the pool's default yields only to a chosen one), explicit
keys taken whole (the call's if it gives any, else the defaults') and compared only through a
SHA-256 digest (never kept in clear). Keys are canonical (one object per
distinct key), so a pool's index hashes them by identity.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from ._aiobotocore import config_key, detached_config, merge_configs
from ._util import check_keys, freeze
from .errors import ConfigurationError, ValidationError

__all__ = [
    "CLIENT_ARGS",
    "ClientKey",
    "ClientKeys",
    "check_client_kwargs",
    "check_client_values",
    "check_key_pair",
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
    """A copy of ``value``: ``create_client`` keyword arguments other than ``service_name``,
    each checked (`check_client_values`)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"{name} must be a mapping of client options, got {type(value).__name__}"
        )
    check_keys(name, value, CLIENT_ARGS)
    check_client_values(value, name, lambda key: f"{name}[{key!r}]")
    return dict(value)


_STR_ARGS = (
    "region_name",
    "api_version",
    "endpoint_url",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_account_id",
)


def check_client_values(values: Mapping[str, Any], where: str, field: Callable[[str], str]) -> None:
    """``create_client`` arguments (``None``: not given), each of the right type, and the
    explicit keys whole: a session token or a secret key needs its key id (botocore drops a
    lone token silently and fails a lone key at the first client). Messages name ``where``
    and ``field(argument)``, never a value.

    A str ``verify`` is taken as a CA bundle path, unchecked here (checking it would be file
    I/O, maybe on the event loop): botocore reads it at the client's first request, and a
    missing file fails that request (``HTTPClientError``, "No such file or directory").
    """
    for key in _STR_ARGS:
        item = values.get(key)
        if item is not None and not isinstance(item, str):
            raise ValidationError(f"{field(key)} must be a str, got {type(item).__name__}")
    use_ssl = values.get("use_ssl", True)
    if not isinstance(use_ssl, bool):  # None too: botocore would take it as False (plain http)
        raise ValidationError(f"{field('use_ssl')} must be a bool, got {type(use_ssl).__name__}")
    verify = values.get("verify")
    if verify is not None and not isinstance(verify, (bool, str)):
        raise ValidationError(
            f"{field('verify')} must be a bool or a CA bundle path, got {type(verify).__name__}"
        )
    endpoint = values.get("endpoint_url")
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise ConfigurationError(f"{field('endpoint_url')} must be an http(s):// URL")
    config = values.get("config")
    if config is not None and not callable(getattr(config, "merge", None)):
        raise ValidationError(
            f"{field('config')} must be a botocore Config or aiobotocore AioConfig, "
            f"got {type(config).__name__}"
        )
    check_key_pair(
        where,
        values.get("aws_access_key_id"),
        values.get("aws_secret_access_key"),
        values.get("aws_session_token"),
    )


def check_key_pair(where: str, access_key: object, secret_key: object, token: object) -> None:
    """Explicit keys come whole: the key id and the secret key together, a token only with
    them (``None``: not given)."""
    if access_key is None and secret_key is None and token is None:
        return
    if (access_key is None) != (secret_key is None):
        raise ConfigurationError(
            f"{where}: aws_access_key_id and aws_secret_access_key must be given together"
        )
    if access_key is None:
        raise ConfigurationError(
            f"{where}: aws_session_token needs aws_access_key_id and aws_secret_access_key "
            "(it belongs to them)"
        )


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
        kwargs.update(zip(SECRET_ARGS, self._secrets(raw), strict=True))
        return kwargs

    def _secrets(self, raw: Raw | None) -> tuple[Any, Any, Any]:
        """The explicit keys of a call: its own if it gives any (whole, as checked), else the
        defaults' (never a call's key id with a default's session token)."""
        if raw is not None and (
            raw[AK] is not None or raw[SK] is not None or raw[TOKEN] is not None
        ):
            return (raw[AK], raw[SK], raw[TOKEN])
        defaults = self._defaults
        return tuple(defaults.get(name) for name in SECRET_ARGS)  # type: ignore[return-value]

    def _build(self, raw: Raw) -> ClientKey:
        kind, service = raw[KIND], raw[SERVICE]
        if not isinstance(kind, str):
            raise ValidationError(f"kind must be a str, got {type(kind).__name__}")
        if not isinstance(service, str) or not service:
            raise ValidationError(f"service_name must be a non-empty str, got {service!r}")
        defaults = self._defaults
        values = dict(zip(CLIENT_ARGS, raw[REGION:], strict=True))
        # Checked once per distinct call (then memoised): typed errors, not botocore's
        # TypeError or AttributeError at the first client.
        label = f"{kind}({service!r})"
        check_client_values(values, label, lambda name: f"{label}: {name}")
        secrets = self._secrets(raw)
        for name in SECRET_ARGS:
            del values[name]
        for name in values:
            if values[name] is None and name in defaults:
                values[name] = defaults[name]
        if raw[SSL] is True and "use_ssl" in defaults:
            values["use_ssl"] = defaults["use_ssl"]
        if values["region_name"] is None:
            values["region_name"] = self._default_region
        if raw[CONFIG] is not None and defaults.get("config") is not None:
            values["config"] = merge_configs(defaults["config"], raw[CONFIG])
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
