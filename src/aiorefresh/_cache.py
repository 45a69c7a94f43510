"""Credential caches: one in memory, and the AWS CLI's JSON files shared with other processes.

`JSONFileCache` keeps ``~/.aws/cli/cache`` as the AWS CLI does: one ``<key>.json`` per role,
the key a SHA-1 of the AssumeRole parameters (`assume_role_cache_key`), so credentials one
tool got with an MFA code serve the other. Every file operation runs in a worker thread;
writes are atomic (a temporary file in the same directory, fsync, rename), so any number of
writing processes leave one complete file. A file that cannot be trusted (corrupt, truncated,
foreign, a symlink, another user's) is ignored with a log line that never shows its content,
and the next refresh replaces it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio.to_thread

from ._types import CredentialCache, TemporaryCredentials
from ._util import is_async_callable
from .errors import ConfigurationError, CredentialRefreshError, ValidationError

__all__ = [
    "DEFAULT_CLI_CACHE",
    "MIN_REMAINING",
    "JSONFileCache",
    "MemoryCache",
    "assume_role_cache_key",
    "assumed_role_account",
    "check_credential_cache",
    "credentials_from_entry",
    "entry_from_credentials",
]

logger = logging.getLogger("aiorefresh")

DEFAULT_CLI_CACHE = "~/.aws/cli/cache"
"""Where the AWS CLI keeps assumed-role credentials."""

MIN_REMAINING = timedelta(seconds=60)
"""A cached entry is used only while it has at least this long left (the mandatory window)."""

_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}", re.ASCII)
_MAX_ENTRY = 64 * 1024  # bytes; a credentials document is well under 4 KiB
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted at the path must not hang a read
_ZONE_NAMES = ("UTC", "GMT")  # botocore writes datetimes with strftime('%Z')


# -- keys and entries ---------------------------------------------------------------------------


def assume_role_cache_key(params: Mapping[str, Any], *, generated_name: bool) -> str:
    """The AWS CLI's cache key for AssumeRole ``params``: the SHA-1 of their sorted JSON.

    Computed as botocore's assume-role fetcher computes it, so both find the same file: a
    generated ``RoleSessionName`` (``generated_name``) is left out, since it changes on every
    run, and a ``Policy`` document enters with its keys sorted. ``TokenCode`` never enters.
    """
    args = {key: value for key, value in params.items() if key != "TokenCode"}
    if generated_name:
        args.pop("RoleSessionName", None)
    policy = args.get("Policy")
    if isinstance(policy, str):
        with contextlib.suppress(ValueError):  # not JSON: STS refuses it; the key stays stable
            args["Policy"] = json.loads(policy)
    text = json.dumps(args, sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def entry_from_credentials(creds: TemporaryCredentials) -> dict[str, Any]:
    """The cache entry for ``creds``, in the layout the AWS CLI writes and reads."""
    expiration = creds.expiry_time.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    credentials: dict[str, Any] = {
        "AccessKeyId": creds.access_key,
        "SecretAccessKey": creds.secret_key,
        "SessionToken": creds.token,
        "Expiration": expiration,
    }
    if creds.account_id is not None:
        credentials["AccountId"] = creds.account_id
    return {"Credentials": credentials}


def assumed_role_account(answer: Mapping[str, Any]) -> str | None:
    """The account id in ``answer['AssumedRoleUser']['Arn']`` (an AssumeRole answer, or a cache
    entry the AWS CLI wrote from one), or ``None``."""
    user = answer.get("AssumedRoleUser")
    arn = user.get("Arn") if isinstance(user, Mapping) else None
    if not isinstance(arn, str):
        return None
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 and parts[4] else None


def credentials_from_entry(entry: object, *, key: str) -> TemporaryCredentials | None:
    """The credentials of a cache entry, or ``None`` (logged, never shown) if it is foreign.

    An entry without ``Credentials.AccountId`` (older AWS CLIs store STS's answer as it came)
    takes the account from ``AssumedRoleUser.Arn``, as a fresh AssumeRole does.
    """
    creds = entry.get("Credentials") if isinstance(entry, Mapping) else None
    if not isinstance(entry, Mapping) or not isinstance(creds, Mapping):
        _ignored(key, "it has no Credentials object")
        return None
    mapping = {
        name: creds.get(name)
        for name in ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration", "AccountId")
    }
    if mapping["AccountId"] is None:
        mapping["AccountId"] = assumed_role_account(entry)
    token = mapping["SessionToken"]
    if not isinstance(token, str) or not token:
        _ignored(key, "its Credentials have no SessionToken")
        return None
    expiration = mapping["Expiration"]
    if isinstance(expiration, str):
        text = expiration.strip()
        for zone in _ZONE_NAMES:
            if text.endswith(zone):
                text = text[: -len(zone)] + "+00:00"
        mapping["Expiration"] = text
    try:
        return TemporaryCredentials.from_mapping(mapping, source="cache entry")
    except CredentialRefreshError:
        _ignored(key, "its Credentials are incomplete or malformed")
        return None


def _ignored(key: str, reason: str) -> None:
    logger.warning(
        "credential cache entry %s ignored: %s; the next refresh replaces it", key, reason
    )


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise ValidationError(f"credential cache key must be a str, got {type(key).__name__}")
    if _KEY.fullmatch(key) is None:
        raise ConfigurationError(
            "credential cache key must be 1-200 ASCII letters, digits or _.- and must not "
            "start with a dot"
        )
    return key


def _dumps(value: object) -> str:
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"credential cache value must be a mapping, got {type(value).__name__}"
        )
    try:
        return json.dumps(value, default=_iso_datetime)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"credential cache value must be JSON-serialisable ({type(exc).__name__})"
        ) from None


def _iso_datetime(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def check_credential_cache(value: object) -> CredentialCache:
    """``value`` if it implements `CredentialCache`; ``None`` gives a new `MemoryCache`."""
    if value is None:
        return MemoryCache()
    missing = [
        name
        for name in ("get", "set", "delete")
        if not is_async_callable(getattr(value, name, None))
    ]
    if missing:
        raise ValidationError(
            "credential_cache must implement CredentialCache (async get, set and delete, as "
            f"MemoryCache and JSONFileCache do); {type(value).__name__} has no async "
            f"{', '.join(missing)}"
        )
    return value  # type: ignore[return-value]


# -- caches ---------------------------------------------------------------------------------------


class MemoryCache:
    """Entries in this process's memory: each session has its own unless you share one object.

    Values are kept as JSON text, so what a caller later changes in a mapping it stored (or
    got back) never changes the entry.
    """

    def __init__(self) -> None:
        self._entries: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<MemoryCache entries={len(self._entries)}>"

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> dict[str, Any] | None:
        """The entry under ``key``, or ``None``."""
        text = self._entries.get(_check_key(key))
        return None if text is None else dict(json.loads(text))

    async def set(self, key: str, value: Mapping[str, Any]) -> None:
        """Store ``value`` (a JSON-compatible mapping) under ``key``."""
        self._entries[_check_key(key)] = _dumps(value)

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        self._entries.pop(_check_key(key), None)


class JSONFileCache:
    """The AWS CLI's credential cache: one JSON file per key in ``path``, shared across
    processes and with the AWS CLI itself.

    The directory is created 0700 (an existing one is left as it is) and files are written
    0600, atomically. No file I/O happens on the event loop. ``get`` returns ``None`` for a
    file that is missing or cannot be trusted: not JSON, truncated, not an object, larger than
    64 KiB, not a regular file, a symlink (never followed, so nothing outside the directory
    is read), or owned by another user.
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_CLI_CACHE) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise ValidationError(
                f"JSONFileCache path must be a str or path, got {type(path).__name__}"
            )
        text = os.fspath(path)
        if not isinstance(text, str):
            raise ValidationError("JSONFileCache path must be a str path, not bytes")
        if not text:
            raise ConfigurationError("JSONFileCache path must not be empty")
        self.path = Path(os.path.expanduser(text))
        """The cache directory (``~`` expanded)."""

    def __repr__(self) -> str:
        return f"JSONFileCache({str(self.path)!r})"

    def file_for(self, key: str) -> Path:
        """The file that holds ``key``."""
        return self.path / f"{_check_key(key)}.json"

    async def get(self, key: str) -> dict[str, Any] | None:
        """The entry under ``key``, or ``None`` (missing, or ignored with a log line)."""
        file = self.file_for(key)
        return await anyio.to_thread.run_sync(_read, file, key, abandon_on_cancel=True)

    async def set(self, key: str, value: Mapping[str, Any]) -> None:
        """Replace the entry under ``key`` atomically (temporary file, fsync, rename)."""
        file = self.file_for(key)
        text = _dumps(value)
        await anyio.to_thread.run_sync(_write, file, text, abandon_on_cancel=True)

    async def delete(self, key: str) -> None:
        """Remove the entry under ``key`` (a symlink there is removed, not its target)."""
        file = self.file_for(key)
        await anyio.to_thread.run_sync(_delete, file, abandon_on_cancel=True)


# -- file operations (worker threads only) --------------------------------------------------------


def _read(file: Path, key: str) -> dict[str, Any] | None:
    try:
        if stat.S_ISLNK(os.lstat(file).st_mode):
            _ignored(key, "it is a symlink, which is never followed")
            return None
        fd = os.open(file, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        reason = "it is a symlink, which is never followed" if exc.errno == errno.ELOOP else None
        _ignored(key, reason or f"it cannot be opened ({exc.strerror or type(exc).__name__})")
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            _ignored(key, "it is not a regular file")
            return None
        if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
            _ignored(key, "it belongs to another user")
            return None
        data = _read_at_most(fd, _MAX_ENTRY + 1)
    except OSError as exc:
        _ignored(key, f"it cannot be read ({exc.strerror or type(exc).__name__})")
        return None
    finally:
        os.close(fd)
    if len(data) > _MAX_ENTRY:
        _ignored(key, f"it is larger than {_MAX_ENTRY} bytes")
        return None
    try:
        value = json.loads(data.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError both are
        _ignored(key, "it is not valid JSON (corrupt or truncated)")
        return None
    if not isinstance(value, dict):
        _ignored(key, "it is not a JSON object")
        return None
    return value


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _write(file: Path, text: str) -> None:
    directory = file.parent
    _ensure_directory(directory)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{file.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp made it 0600
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, file)  # replaces a symlink itself, never writes through it
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def _ensure_directory(directory: Path) -> None:
    if directory.is_dir():
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        return  # another process made it first
    os.chmod(directory, 0o700)  # a umask could have taken bits we need


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX); elsewhere directories cannot be opened."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _delete(file: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(file)
