"""Handing a session's credentials to other processes: environment variables and snapshots.

`environ` builds a new dict for ``create_subprocess_exec(env=...)`` and touches nothing global:
it is the safe form. `awscli` sets the same variables in ``os.environ`` for a block, which is
process-global (every thread and task sees them), and restores the environment exactly after.
A snapshot is a plain dict (or a 0600 JSON file) of the current keys; a session made from one
has static credentials that stop at the snapshot's expiry with a `CredentialRefreshError`.

Snapshots and the variables hold secrets: they are never logged, and a snapshot file must be
treated like a password (`temp_snapshot` removes its file on exit, errors included).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.to_thread

from ._engine import MIN_LIFETIME
from ._types import Clock, TemporaryCredentials, parse_expiry
from ._util import check_optional_str, utc_now
from .errors import ConfigurationError, CredentialRefreshError, ValidationError

if sys.version_info >= (3, 11):  # pragma: no cover - version-dependent import
    from typing import Unpack
else:  # pragma: no cover
    from typing_extensions import Unpack

if TYPE_CHECKING:
    from ._options import SessionOptions
    from ._session import RefreshableSession

__all__ = [
    "ENV_NAMES",
    "SNAPSHOT_VERSION",
    "SnapshotFetcher",
    "awscli",
    "environ",
    "from_snapshot",
    "from_snapshot_file",
    "read_snapshot",
    "temp_snapshot",
    "to_snapshot",
]

ENV_NAMES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CREDENTIAL_EXPIRATION",
)
"""The variables `environ` fills (those without a value, such as the token of long-term keys,
are left out)."""

# Variables that would change which credentials or account a child uses if left behind: a
# profile (its region, its credential_process), the legacy token name, a stale account id.
_OVERRIDING = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SECURITY_TOKEN", "AWS_ACCOUNT_ID")

SNAPSHOT_VERSION = 1
"""The ``aiorefresh_snapshot`` format version `to_snapshot` writes."""

_SNAPSHOT_KEYS = frozenset(
    {
        "aiorefresh_snapshot",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "region_name",
        "expiration",
        "account_id",
    }
)
_NEVER = datetime.max.replace(tzinfo=timezone.utc)


# -- environment variables --------------------------------------------------------------------


def credentials_environ(creds: TemporaryCredentials, region: str | None) -> dict[str, str]:
    """The `ENV_NAMES` variables for ``creds`` and ``region``; absent values are left out."""
    env = {"AWS_ACCESS_KEY_ID": creds.access_key, "AWS_SECRET_ACCESS_KEY": creds.secret_key}
    if creds.token is not None:
        env["AWS_SESSION_TOKEN"] = creds.token
    if region is not None:
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region
    if creds.expiry_time < _NEVER:
        # Whole seconds, rounded down: a child never believes the keys live longer than they do.
        stamp = creds.expiry_time.astimezone(timezone.utc).replace(microsecond=0, tzinfo=None)
        env["AWS_CREDENTIAL_EXPIRATION"] = stamp.isoformat() + "Z"
    return env


async def environ(
    session: RefreshableSession, *, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A new dict of the session's credentials and region as AWS environment variables.

    With ``base`` (say ``os.environ``), a copy of it with those variables set and the ones
    that would override them (``AWS_PROFILE``, ``AWS_DEFAULT_PROFILE``, ``AWS_SECURITY_TOKEN``,
    ``AWS_ACCOUNT_ID``, and stale `ENV_NAMES`) removed. Nothing global is read or changed.
    """
    if base is not None and not isinstance(base, Mapping):
        raise ValidationError(f"base must be a mapping of str to str, got {type(base).__name__}")
    session._check_open()
    creds = await session._engine.get()
    values = credentials_environ(creds, session.region_name)
    if base is None:
        return values
    merged = {k: v for k, v in base.items() if k not in _OVERRIDING and k not in ENV_NAMES}
    merged.update(values)
    return merged


class _Block:
    """One active `awscli` block: the managed variables as they were when it was entered."""

    __slots__ = ("before",)

    def __init__(self, before: dict[str, str | None]) -> None:
        self.before = before


class _EnvironStack:
    """The `awscli` blocks active in this process, so any exit order restores exactly.

    Leaving the newest block puts back what it found; leaving an older one first hands what
    it found to the block entered after it, so the last block out restores the original.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blocks: list[_Block] = []

    def push(self, values: Mapping[str, str]) -> tuple[_Block, int]:
        """Apply ``values``; returns the block and how many others were active."""
        with self._lock:
            block = _Block({name: os.environ.get(name) for name in _MANAGED})
            self._blocks.append(block)
            _apply(values)
            return block, len(self._blocks) - 1

    def pop(self, block: _Block) -> None:
        with self._lock:
            index = next(i for i, b in enumerate(self._blocks) if b is block)
            del self._blocks[index]
            if index < len(self._blocks):
                self._blocks[index].before = block.before
            else:
                _apply({k: v for k, v in block.before.items() if v is not None})


_MANAGED = ENV_NAMES + _OVERRIDING


def _apply(values: Mapping[str, str]) -> None:
    """Set the managed variables to ``values``, removing those it does not have."""
    for name in _MANAGED:
        if name in values:
            os.environ[name] = values[name]
        else:
            os.environ.pop(name, None)


_STACK = _EnvironStack()


@contextlib.asynccontextmanager
async def awscli(session: RefreshableSession) -> AsyncIterator[dict[str, str]]:
    """Set the session's variables in ``os.environ`` for the block; restore them after."""
    values = await environ(session)
    block, active = _STACK.push(values)
    try:
        if active:
            warnings.warn(
                f"awscli() entered while {active} other awscli() block(s) are active: "
                "os.environ is process-global, so every task, thread and subprocess now sees "
                "this session's credentials; pass env=await session.environ() to subprocesses "
                "instead",
                RuntimeWarning,
                stacklevel=3,
            )
        yield dict(values)
    finally:
        _STACK.pop(block)


# -- snapshots ---------------------------------------------------------------------------------


async def to_snapshot(session: RefreshableSession) -> dict[str, Any]:
    """The current credentials, region and expiry as a JSON-ready dict (it holds secrets)."""
    session._check_open()
    creds = await session._engine.get()
    return {
        "aiorefresh_snapshot": SNAPSHOT_VERSION,
        "aws_access_key_id": creds.access_key,
        "aws_secret_access_key": creds.secret_key,
        "aws_session_token": creds.token,
        "region_name": session.region_name,
        "expiration": None if creds.expiry_time >= _NEVER else creds.expiry_time.isoformat(),
        "account_id": creds.account_id,
    }


def read_snapshot(
    snapshot: object, *, name: str = "snapshot"
) -> tuple[TemporaryCredentials, str | None]:
    """The credentials and region of a snapshot dict, checked; errors never show a value.

    ``expiration`` may be missing or ``None`` (long-term keys, and boto-session-manager's
    snapshots, which do not record it): such keys are treated as never expiring.
    """
    if not isinstance(snapshot, Mapping):
        raise ValidationError(f"{name} must be a dict, got {type(snapshot).__name__}")
    unknown = sorted(str(key) for key in snapshot if key not in _SNAPSHOT_KEYS)
    if unknown:
        raise ValidationError(
            f"{name} has unknown key(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(sorted(_SNAPSHOT_KEYS))}"
        )
    version = snapshot.get("aiorefresh_snapshot", SNAPSHOT_VERSION)
    if version != SNAPSHOT_VERSION:
        raise ConfigurationError(
            f"{name} is format version {version!r}; this aiorefresh reads {SNAPSHOT_VERSION}"
        )
    for key in ("aws_access_key_id", "aws_secret_access_key"):
        value = snapshot.get(key)
        if not isinstance(value, str) or not value:
            got = "nothing" if value is None else type(value).__name__
            raise ValidationError(f"{name}[{key!r}] must be a non-empty str, got {got}")
    for key in ("aws_session_token", "region_name", "account_id"):
        check_optional_str(f"{name}[{key!r}]", snapshot.get(key))
    expiration = snapshot.get("expiration")
    if expiration is None:
        expiry = _NEVER
    else:
        try:
            expiry = parse_expiry(expiration, name="expiration", source=name)
        except CredentialRefreshError as exc:
            raise ConfigurationError(f"{exc}; expected an ISO-8601 time with an offset") from None
    creds = TemporaryCredentials(
        access_key=snapshot["aws_access_key_id"],
        secret_key=snapshot["aws_secret_access_key"],
        token=snapshot.get("aws_session_token") or None,
        expiry_time=expiry,
        account_id=snapshot.get("account_id"),
    )
    return creds, snapshot.get("region_name")


class SnapshotFetcher:
    """Hands out a snapshot's credentials until shortly before they expire, then refuses.

    The refusal is a `CredentialRefreshError` that says the keys came from a snapshot and
    cannot be renewed, so callers never see an AWS signature error for keys that expired.
    """

    method = "snapshot"

    def __init__(self, credentials: TemporaryCredentials, clock: Clock | None = None) -> None:
        self._credentials = credentials
        self.clock: Clock = clock or utc_now

    def __repr__(self) -> str:
        return f"SnapshotFetcher({self._credentials.access_key!r})"

    async def __call__(self) -> TemporaryCredentials:
        expiry = self._credentials.expiry_time
        if self.clock() >= expiry - MIN_LIFETIME:
            raise CredentialRefreshError(
                f"the credentials of this snapshot (access key {self._credentials.access_key}) "
                f"expire{'d' if self.clock() >= expiry else ''} at {expiry.isoformat()}: a "
                "session made from a snapshot has static credentials and cannot refresh them; "
                "take a new snapshot from the original session"
            )
        return self._credentials


def from_snapshot(
    cls: type[RefreshableSession],
    snapshot: Mapping[str, Any],
    region_name: str | None,
    options: dict[str, Any],
) -> RefreshableSession:
    """A session over a snapshot's credentials; ``options`` are the session's keywords."""
    return _session_over(cls, *read_snapshot(snapshot), region_name, options)


def _session_over(
    cls: type[RefreshableSession],
    creds: TemporaryCredentials,
    snapshot_region: str | None,
    region_name: str | None,
    options: dict[str, Any],
) -> RefreshableSession:
    check_optional_str("region_name", region_name)
    fetcher = SnapshotFetcher(creds)
    session = cls(fetcher=fetcher, region_name=region_name or snapshot_region, **options)
    fetcher.clock = session.clock
    return session


def from_snapshot_file(
    cls: type[RefreshableSession],
    path: str | os.PathLike[str],
    region_name: str | None,
    options: dict[str, Any],
) -> RefreshableSession:
    """A session over the snapshot in the JSON file at ``path``.

    Like a constructor that reads the shared config files, it reads the (small) file at once;
    call it at start-up, or through ``anyio.to_thread.run_sync`` from a busy event loop.
    """
    target = _checked_path(path)
    check_optional_str("region_name", region_name)
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"path: no snapshot file at {str(target)!r}") from None
    try:
        snapshot = json.loads(text)
    except ValueError:
        raise ConfigurationError(
            f"path: {str(target)!r} is not a JSON snapshot (write it with temp_snapshot())"
        ) from None
    creds, region = read_snapshot(snapshot, name=f"snapshot file {str(target)!r}")
    return _session_over(cls, creds, region, region_name, options)


@contextlib.asynccontextmanager
async def temp_snapshot(
    session: RefreshableSession, path: str | os.PathLike[str]
) -> AsyncIterator[Path]:
    """Write a snapshot to ``path`` (mode 0600) for the block; remove it on exit, always."""
    target = _checked_path(path)
    if not await anyio.Path(target.parent).is_dir():
        raise ConfigurationError(f"path: the directory {str(target.parent)!r} does not exist")
    data = json.dumps(await to_snapshot(session)).encode("utf-8")
    written: list[Path] = []
    try:
        await anyio.to_thread.run_sync(_write_private, target, data, written)
        yield target
    finally:
        if written:  # also when a cancellation arrived while the worker thread was writing
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_remove, target)


def _checked_path(path: object) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise ValidationError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if not os.fspath(path):
        raise ConfigurationError("path must not be empty")
    return Path(path).expanduser()


def _write_private(target: Path, data: bytes, written: list[Path]) -> None:
    """Write ``data`` to ``target`` atomically, readable by its owner only from the start
    (mkstemp makes the file 0600); appends ``target`` to ``written`` once it is there."""
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
        written.append(target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _remove(target: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        target.unlink()


class HandoffCalls:
    """The session's hand-off calls: environments for subprocesses and snapshots; mixed into
    `RefreshableSession`."""

    async def environ(self, *, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """A new dict of ``AWS_*`` variables for a subprocess's ``env=``; changes nothing global.
        ``base`` (say ``os.environ``) is copied under them, minus ``AWS_PROFILE`` and the like."""
        return await environ(cast("RefreshableSession", self), base=base)

    def awscli(self) -> contextlib.AbstractAsyncContextManager[dict[str, str]]:
        """Set those variables in ``os.environ`` for an ``async with`` block, restored exactly
        after; process-global (overlapping blocks warn): prefer `environ`."""
        return awscli(cast("RefreshableSession", self))

    async def to_snapshot(self) -> dict[str, Any]:
        """The current keys, region and expiry as a JSON-ready dict; it holds secrets."""
        return await to_snapshot(cast("RefreshableSession", self))

    @classmethod
    def from_snapshot(
        cls,
        snapshot: Mapping[str, Any],
        *,
        region_name: str | None = None,
        **options: Unpack[SessionOptions],
    ) -> RefreshableSession:
        """A session with a snapshot's static keys; after they expire, `CredentialRefreshError`."""
        return from_snapshot(
            cast("type[RefreshableSession]", cls), snapshot, region_name, dict(options)
        )

    @classmethod
    def from_snapshot_file(
        cls,
        path: str | os.PathLike[str],
        *,
        region_name: str | None = None,
        **options: Unpack[SessionOptions],
    ) -> RefreshableSession:
        """`from_snapshot` of the JSON file at ``path`` (read at once, like a config file)."""
        return from_snapshot_file(
            cast("type[RefreshableSession]", cls), path, region_name, dict(options)
        )

    def temp_snapshot(
        self, path: str | os.PathLike[str]
    ) -> contextlib.AbstractAsyncContextManager[Path]:
        """Write a snapshot file (mode 0600, a secret) for an ``async with`` block; removed
        on exit, errors included."""
        return temp_snapshot(cast("RefreshableSession", self), path)
