"""The credential cache: the AWS CLI's key and layout, shared with botocore and other processes,
and what it does with files it cannot trust. Real files in ``tmp_path``, real STS servers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import stat
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import botocore.credentials
import botocore.session
import pytest
from botocore.utils import JSONFileCache as BotocoreFileCache

from aiorefresh import (
    AssumeRoleFetcher,
    ConfigurationError,
    CredentialCache,
    JSONFileCache,
    MemoryCache,
    RefreshableSession,
    ValidationError,
    utc_now,
)
from aiorefresh.testing import FrozenClock, MotoServer, STSStandIn

ROLE = "arn:aws:iam::123456789012:role/reader"
MFA_DEVICE = "arn:aws:iam::123456789012:mfa/alice"
SOURCE_KEYS = {"aws_access_key_id": "AKIASOURCE0000000001", "aws_secret_access_key": "src-secret"}


@pytest.fixture
async def sts(frozen_clock: FrozenClock) -> AsyncIterator[STSStandIn]:
    """A stand-in that accepts any MFA code (the clock stands still, codes repeat)."""
    async with STSStandIn(clock=frozen_clock, mfa_reuse_window=None) as server:
        yield server


@contextlib.asynccontextmanager
async def assume_role(
    sts: STSStandIn, clock: FrozenClock, cache: CredentialCache | None, **params: Any
) -> AsyncIterator[AssumeRoleFetcher]:
    params.setdefault("RoleArn", ROLE)
    fetcher = AssumeRoleFetcher(
        params,
        client_kwargs={"endpoint_url": sts.endpoint_url, "region_name": "us-east-1", **SOURCE_KEYS},
        credential_cache=cache,
        clock=clock,
        mfa_token_provider=(lambda: "123456") if "SerialNumber" in params else None,
    )
    try:
        yield fetcher
    finally:
        await fetcher.aclose()


def cli_entry(access_key: str, expiry: datetime) -> dict[str, Any]:
    """An entry as the AWS CLI writes it (botocore's strftime with %Z gives 'UTC')."""
    return {
        "Credentials": {
            "AccessKeyId": access_key,
            "SecretAccessKey": f"secret-of-{access_key}",
            "SessionToken": f"token-of-{access_key}",
            "Expiration": expiry.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SUTC"),
            "AccountId": "123456789012",
        },
        "AssumedRoleUser": {"AssumedRoleId": "AROAEXAMPLE:cli", "Arn": f"{ROLE}/cli"},
    }


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- the AWS CLI's key and layout -----------------------------------------------------------------


def botocore_fetch(
    sts: STSStandIn, directory: Path, params: Mapping[str, Any]
) -> botocore.credentials.AssumeRoleCredentialFetcher:
    """botocore's own assume-role fetcher with the AWS CLI's file cache, against ``sts``."""
    client_creator = functools.partial(
        botocore.session.get_session().create_client,
        endpoint_url=sts.endpoint_url,
        region_name="us-east-1",
    )
    extra = {k: v for k, v in params.items() if k != "RoleArn"}
    fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
        client_creator=client_creator,
        source_credentials=botocore.credentials.Credentials("AKIASOURCE0000000001", "src"),
        role_arn=params["RoleArn"],
        extra_args=extra,
        mfa_prompter=lambda prompt: "123456",
        cache=BotocoreFileCache(str(directory)),
    )
    fetcher.fetch_credentials()
    return fetcher


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"RoleArn": ROLE}, id="generated-session-name"),
        pytest.param({"RoleArn": ROLE, "RoleSessionName": "alice"}, id="session-name"),
        pytest.param(
            {"RoleArn": ROLE, "ExternalId": "ext-1", "DurationSeconds": 1800}, id="external-id"
        ),
        pytest.param({"RoleArn": ROLE, "SerialNumber": MFA_DEVICE}, id="mfa-serial"),
        pytest.param(
            {"RoleArn": ROLE, "Policy": '{"Version": "2012-10-17", "Statement": []}'},
            id="policy-keys-sorted",
        ),
    ],
)
async def test_the_cache_key_is_the_one_botocores_assume_role_fetcher_computes(
    aws_env: Any, sts: STSStandIn, frozen_clock: FrozenClock, tmp_path: Path, params: dict
) -> None:
    await anyio.to_thread.run_sync(botocore_fetch, sts, tmp_path, params)
    async with assume_role(sts, frozen_clock, JSONFileCache(tmp_path), **params) as fetcher:
        key = fetcher.cache_key
    assert names(tmp_path) == [f"{key}.json"]


async def test_an_entry_botocore_wrote_is_used_without_calling_sts(
    aws_env: Any, sts: STSStandIn, frozen_clock: FrozenClock, tmp_path: Path
) -> None:
    params = {"RoleArn": ROLE, "SerialNumber": MFA_DEVICE}
    await anyio.to_thread.run_sync(botocore_fetch, sts, tmp_path, params)
    written_by_botocore = sts.issued[-1]
    async with assume_role(sts, frozen_clock, JSONFileCache(tmp_path), **params) as fetcher:
        creds = await fetcher()
    assert creds == written_by_botocore
    assert sts.count("AssumeRole") == 1


async def test_an_entry_aiorefresh_wrote_is_used_by_botocore_without_calling_sts(
    aws_env: Any, sts: STSStandIn, frozen_clock: FrozenClock, tmp_path: Path
) -> None:
    params = {"RoleArn": ROLE, "SerialNumber": MFA_DEVICE}
    async with assume_role(sts, frozen_clock, JSONFileCache(tmp_path), **params) as fetcher:
        creds = await fetcher()
    botocore_fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
        client_creator=_never_called,
        source_credentials=botocore.credentials.Credentials("AKIASOURCE0000000001", "src"),
        role_arn=ROLE,
        extra_args={"SerialNumber": MFA_DEVICE},
        mfa_prompter=_never_called,
        cache=BotocoreFileCache(str(tmp_path)),
    )
    got = await anyio.to_thread.run_sync(botocore_fetcher.fetch_credentials)
    assert (got["access_key"], got["secret_key"], got["token"]) == (
        creds.access_key,
        creds.secret_key,
        creds.token,
    )
    assert sts.count("AssumeRole") == 1


def _never_called(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("botocore called STS or prompted instead of reading the cache")


# -- when an entry is used ------------------------------------------------------------------------


async def test_an_entry_with_more_than_a_minute_left_is_used(
    aws_env: Any, sts: STSStandIn, frozen_clock: FrozenClock
) -> None:
    cache = MemoryCache()
    async with assume_role(sts, frozen_clock, cache, RoleSessionName="s1") as fetcher:
        await cache.set(
            fetcher.cache_key, cli_entry("ASIACACHED", frozen_clock() + timedelta(seconds=61))
        )
        creds = await fetcher()
    assert creds.access_key == "ASIACACHED"
    assert sts.count("AssumeRole") == 0


async def test_an_entry_without_an_account_id_takes_it_from_the_assumed_role_arn(
    aws_env: Any, sts: STSStandIn, frozen_clock: FrozenClock, tmp_path: Path
) -> None:
    # Older AWS CLIs write STS's answer as it came: no Credentials.AccountId.
    entry = cli_entry("ASIACACHED", frozen_clock() + timedelta(hours=1))
    del entry["Credentials"]["AccountId"]
    entry["AssumedRoleUser"]["Arn"] = "arn:aws:sts::210987654321:assumed-role/reader/cli"
    cache = JSONFileCache(tmp_path)
    async with assume_role(sts, frozen_clock, cache, RoleSessionName="s1") as fetcher:
        await cache.set(fetcher.cache_key, entry)
        creds = await fetcher()
    assert (creds.access_key, creds.account_id) == ("ASIACACHED", "210987654321")
    assert sts.count("AssumeRole") == 0


async def test_an_entry_inside_the_mandatory_window_is_not_used(
    aws_env: Any, sts: STSStandIn, frozen_clock: FrozenClock
) -> None:
    cache = MemoryCache()
    async with assume_role(sts, frozen_clock, cache, RoleSessionName="s1") as fetcher:
        await cache.set(
            fetcher.cache_key, cli_entry("ASIACACHED", frozen_clock() + timedelta(seconds=59))
        )
        creds = await fetcher()
        stored = await cache.get(fetcher.cache_key)
    assert creds.access_key == sts.issued[0].access_key
    assert stored is not None
    assert stored["Credentials"]["AccessKeyId"] == creds.access_key


async def test_a_refresh_makes_a_new_assume_role_although_its_own_entry_is_valid(
    aws_env: Any, sts: STSStandIn, frozen_clock: FrozenClock
) -> None:
    async with assume_role(sts, frozen_clock, MemoryCache()) as fetcher:
        first = await fetcher()
        second = await fetcher()
    assert first.access_key != second.access_key
    assert sts.count("AssumeRole") == 2


async def test_a_newer_entry_another_process_wrote_is_taken_instead_of_calling_sts(
    aws_env: Any, sts: STSStandIn, frozen_clock: FrozenClock, tmp_path: Path
) -> None:
    async with (
        assume_role(sts, frozen_clock, JSONFileCache(tmp_path)) as this_process,
        assume_role(sts, frozen_clock, JSONFileCache(tmp_path)) as other_process,
    ):
        first = await this_process()
        frozen_clock.advance(minutes=10)
        assert await other_process() == first  # its first fetch: the entry this process wrote
        newer = await other_process()  # its refresh: a new AssumeRole, stored
        taken = await this_process()
    assert taken == newer != first
    assert sts.count("AssumeRole") == 2


async def test_two_fetchers_sharing_a_memory_cache_make_one_assume_role(
    aws_env: Any, sts: STSStandIn, frozen_clock: FrozenClock
) -> None:
    shared = MemoryCache()
    async with (
        assume_role(sts, frozen_clock, shared) as first,
        assume_role(sts, frozen_clock, shared) as second,
    ):
        assert await first() == await second()
    assert sts.count("AssumeRole") == 1


async def test_a_cache_that_fails_does_not_fail_the_refresh(
    aws_env: Any,
    sts: STSStandIn,
    frozen_clock: FrozenClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    async with assume_role(sts, frozen_clock, JSONFileCache(not_a_directory)) as fetcher:
        creds = await fetcher()
    assert creds.access_key == sts.issued[0].access_key
    assert "storing credentials in the credential cache failed" in caplog.text


# -- the cache objects ----------------------------------------------------------------------------


async def test_a_memory_cache_hands_out_copies(aws_env: Any) -> None:
    cache = MemoryCache()
    value = cli_entry("ASIAONE", utc_now())
    await cache.set("k", value)
    value["Credentials"]["AccessKeyId"] = "changed"
    got = await cache.get("k")
    assert got is not None
    got["Credentials"]["AccessKeyId"] = "changed again"
    again = await cache.get("k")
    assert again is not None
    assert again["Credentials"]["AccessKeyId"] == "ASIAONE"


async def test_delete_forgets_an_entry_and_ignores_a_missing_one(tmp_path: Path) -> None:
    for cache in (MemoryCache(), JSONFileCache(tmp_path)):
        await cache.set("k", {"Credentials": {}})
        await cache.delete("k")
        await cache.delete("k")
        assert await cache.get("k") is None


def test_a_credential_cache_without_async_get_set_delete_is_refused_naming_the_parameter() -> None:
    class SyncCache:
        def get(self, key: str) -> None: ...
        def set(self, key: str, value: object) -> None: ...

    with pytest.raises(ValidationError, match=r"credential_cache .* get, set, delete"):
        RefreshableSession(credential_cache=SyncCache())


class DictCache:
    """A user's own cache: anything with async get, set and delete."""

    def __init__(self) -> None:
        self.entries: dict[str, Any] = {}

    async def get(self, key: str) -> Any:
        return self.entries.get(key)

    async def set(self, key: str, value: Mapping[str, Any]) -> None:
        self.entries[key] = value

    async def delete(self, key: str) -> None:
        self.entries.pop(key, None)


def test_a_session_accepts_an_object_implementing_the_protocol(aws_env: Any) -> None:
    cache = DictCache()
    assert isinstance(cache, CredentialCache)
    RefreshableSession(credential_cache=cache)


async def test_an_object_implementing_the_protocol_keeps_the_entries(
    aws_env: Any, sts: STSStandIn, frozen_clock: FrozenClock
) -> None:
    cache = DictCache()
    async with assume_role(sts, frozen_clock, cache) as fetcher:
        creds = await fetcher()
    assert cache.entries[fetcher.cache_key]["Credentials"]["AccessKeyId"] == creds.access_key


@pytest.mark.parametrize("key", ["", "../escape", ".hidden", "a/b", "x" * 201])
async def test_a_key_that_could_leave_the_directory_is_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigurationError, match="credential cache key"):
        await JSONFileCache(tmp_path).set(key, {})


def test_a_path_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(ValidationError, match="JSONFileCache path"):
        JSONFileCache(42)  # type: ignore[arg-type]


def test_the_default_path_is_the_aws_clis(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert JSONFileCache().path == tmp_path / ".aws" / "cli" / "cache"


# -- safety of the files --------------------------------------------------------------------------


async def test_the_directory_is_created_0700_and_entries_are_written_0600(tmp_path: Path) -> None:
    cache = JSONFileCache(tmp_path / "aws" / "cli" / "cache")
    await cache.set("k", cli_entry("ASIAONE", utc_now()))
    assert mode(cache.path) == 0o700
    assert mode(cache.file_for("k")) == 0o600


async def test_a_write_leaves_one_complete_file_and_no_temporary_one(tmp_path: Path) -> None:
    cache = JSONFileCache(tmp_path)
    for number in range(5):
        await cache.set("k", cli_entry(f"ASIA{number}", utc_now()))
    assert names(tmp_path) == ["k.json"]
    assert json.loads((tmp_path / "k.json").read_text())["Credentials"]["AccessKeyId"] == "ASIA4"


def planted(**credentials: str) -> bytes:
    return json.dumps({"Credentials": credentials}).encode()


CORRUPT = {
    "not-json": b"this is not json",
    "truncated": json.dumps(
        cli_entry("ASIAPLANTED", datetime(2031, 1, 1, tzinfo=timezone.utc))
    ).encode()[:80],
    "not-an-object": b'["ASIAPLANTED"]',
    "foreign-json": json.dumps({"startUrl": "https://sso", "accessToken": "sso-token"}).encode(),
    "no-session-token": planted(
        AccessKeyId="ASIAPLANTED", SecretAccessKey="planted-secret", Expiration="2031-01-01Z"
    ),
    "naive-expiration": planted(
        AccessKeyId="ASIAPLANTED",
        SecretAccessKey="planted-secret",
        SessionToken="planted-token",
        Expiration="2031-01-01T00:00:00",
    ),
    "binary": bytes(range(256)),
}


@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
async def test_an_untrustworthy_file_is_ignored_logged_without_content_and_replaced(
    aws_env: Any,
    sts: STSStandIn,
    frozen_clock: FrozenClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    content: bytes,
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiorefresh")
    cache = JSONFileCache(tmp_path)
    async with assume_role(sts, frozen_clock, cache) as fetcher:
        cache.file_for(fetcher.cache_key).write_bytes(content)
        creds = await fetcher()
    assert creds.access_key == sts.issued[0].access_key
    assert f"credential cache entry {fetcher.cache_key} ignored" in caplog.text
    for planted in ("ASIAPLANTED", "planted-secret", "planted-token", "sso-token", "not json"):
        assert planted not in caplog.text
    replaced = json.loads(cache.file_for(fetcher.cache_key).read_text())
    assert replaced["Credentials"]["AccessKeyId"] == creds.access_key


async def test_a_symlink_at_the_entry_path_is_not_followed_out_of_the_directory(
    aws_env: Any, sts: STSStandIn, frozen_clock: FrozenClock, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.json"
    planted = cli_entry("ASIAPLANTED", frozen_clock() + timedelta(hours=1))
    outside.write_text(json.dumps(planted))
    cache = JSONFileCache(tmp_path / "cache")
    async with assume_role(sts, frozen_clock, cache) as fetcher:
        cache.path.mkdir()
        cache.file_for(fetcher.cache_key).symlink_to(outside)
        creds = await fetcher()
    assert creds.access_key == sts.issued[0].access_key
    assert json.loads(outside.read_text()) == planted
    assert not cache.file_for(fetcher.cache_key).is_symlink()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
async def test_a_fifo_at_the_entry_path_does_not_hang_the_read(tmp_path: Path) -> None:
    cache = JSONFileCache(tmp_path)
    os.mkfifo(cache.file_for("k"))
    with anyio.fail_after(10):
        assert await cache.get("k") is None


# -- the event loop -------------------------------------------------------------------------------

_FILE_EVENTS = frozenset(
    {"open", "os.rename", "os.remove", "os.mkdir", "os.chmod", "tempfile.mkstemp"}
)
_watched: list[str] = []
_seen: list[tuple[str, int]] = []
_hook_installed = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _watched or event not in _FILE_EVENTS or not args:
        return
    path = args[0]
    if isinstance(path, (str, bytes, os.PathLike)) and os.fsdecode(path).startswith(_watched[0]):
        _seen.append((event, threading.get_ident()))


@pytest.fixture
def file_events(tmp_path: Path) -> Iterator[list[tuple[str, int]]]:
    """(event, thread id) of every audited file operation under ``tmp_path``."""
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit)  # audit hooks cannot be removed: this one idles when unwatched
        _hook_installed = True
    _watched.append(str(tmp_path))
    try:
        yield _seen
    finally:
        _watched.clear()
        _seen.clear()


async def test_no_file_operation_of_the_cache_runs_on_the_event_loop_thread(
    aws_env: Any,
    sts: STSStandIn,
    frozen_clock: FrozenClock,
    tmp_path: Path,
    file_events: list[tuple[str, int]],
) -> None:
    loop_thread = threading.get_ident()
    cache = JSONFileCache(tmp_path / "cache")
    async with assume_role(sts, frozen_clock, cache) as fetcher:
        await fetcher()  # miss, then write
        await cache.get(fetcher.cache_key)
        await cache.delete(fetcher.cache_key)
    events = {event for event, _ in file_events}
    assert {"open", "os.mkdir", "tempfile.mkstemp", "os.rename", "os.remove"} <= events
    assert all(thread != loop_thread for _, thread in file_events)


# -- many processes -------------------------------------------------------------------------------

WRITER = r"""
import asyncio, json, sys
from aiorefresh import AssumeRoleFetcher, JSONFileCache, TemporaryCredentials

async def main(endpoint, directory, rounds):
    cache = JSONFileCache(directory)
    fetcher = AssumeRoleFetcher(
        {"RoleArn": "arn:aws:iam::123456789012:role/reader", "RoleSessionName": "writers"},
        client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1",
                       "aws_access_key_id": "AKIASOURCE0000000001", "aws_secret_access_key": "s"},
        credential_cache=cache,
    )
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    keys = []
    for _ in range(rounds):
        creds = await fetcher()
        keys.append(creds.access_key)
        await cache.set(fetcher.cache_key, {"Credentials": {
            "AccessKeyId": creds.access_key, "SecretAccessKey": creds.secret_key,
            "SessionToken": creds.token, "Expiration": creds.expiry_time.isoformat()}})
        entry = await cache.get(fetcher.cache_key)
        TemporaryCredentials.from_mapping(entry["Credentials"])  # never a partial file
    await fetcher.aclose()
    print(json.dumps({"key": fetcher.cache_key, "handed_out": keys}), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def test_eight_processes_refreshing_the_same_role_leave_one_valid_file(
    aws_env: Any, moto_server: MotoServer, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    directory = tmp_path / "cache"
    with anyio.fail_after(90):
        writers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                WRITER,
                moto_server.endpoint_url,
                str(directory),
                "8",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=env,
            )
            for _ in range(8)
        ]
        for writer in writers:
            assert writer.stdout is not None
            assert await writer.stdout.readline() == b"ready\n"
        outputs = await asyncio.gather(*(w.communicate(b"go\n") for w in writers))
    assert [w.returncode for w in writers] == [0] * 8
    reports = [json.loads(out) for out, _ in outputs]
    key = reports[0]["key"]
    handed_out = {access_key for report in reports for access_key in report["handed_out"]}
    assert names(directory) == [f"{key}.json"]
    assert mode(directory / f"{key}.json") == 0o600
    final = json.loads((directory / f"{key}.json").read_text())
    assert final["Credentials"]["AccessKeyId"] in handed_out
