"""Hand-off to other processes: environ(), awscli(), snapshots and snapshot files.

Real subprocesses run ``python -c`` with botocore (or aiorefresh) against moto.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from aiorefresh import (
    ConfigurationError,
    CredentialRefreshError,
    RefreshableSession,
    SessionClosedError,
    ValidationError,
    utc_now,
)
from aiorefresh.testing import CountingFetcher, FrozenClock, MotoServer

READER = "arn:aws:iam::123456789012:role/reader"
WRITER = "arn:aws:iam::123456789012:role/writer"
AWS_NAMES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SECURITY_TOKEN",
    "AWS_ACCOUNT_ID",
)
HERMETIC = {
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
WHOAMI_WITH_BOTOCORE = """
import sys
import botocore.session

sts = botocore.session.get_session().create_client("sts", endpoint_url=sys.argv[1])
print(sts.get_caller_identity()["Arn"])
"""
WHOAMI_FROM_SNAPSHOT = """
import asyncio
import sys

from aiorefresh import RefreshableSession


async def main():
    session = RefreshableSession.from_snapshot_file(
        sys.argv[2], default_client_kwargs={"endpoint_url": sys.argv[1]}
    )
    async with session:
        print((await session.whoami()).arn)


asyncio.run(main())
"""


def custom(fetcher: CountingFetcher, **kwargs: Any) -> RefreshableSession:
    kwargs.setdefault("region_name", "eu-west-1")
    return RefreshableSession(custom_credentials_method=fetcher, clock=fetcher.clock, **kwargs)


def role_session(endpoint: str, role: str, name: str) -> RefreshableSession:
    return RefreshableSession(
        assume_role_kwargs={"RoleArn": role, "RoleSessionName": name},
        sts_client_kwargs={"endpoint_url": endpoint},
        default_client_kwargs={"endpoint_url": endpoint},
        region_name="us-east-1",
        clock=FrozenClock(utc_now()),  # moto issues credentials relative to the real time
    )


def files_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def aws_variables() -> dict[str, str]:
    return {name: os.environ[name] for name in AWS_NAMES if name in os.environ}


async def run_python(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest.fixture
def profile_env(aws_env: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A parent environment with a profile, a stale token and a stale expiry set."""
    config = tmp_path / "parent-config"
    config.write_text("[profile parent-profile]\n[profile parent-default]\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "parent-profile")
    monkeypatch.setenv("AWS_DEFAULT_PROFILE", "parent-default")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "parent-token")
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", "2000-01-01T00:00:00Z")
    monkeypatch.delenv("AWS_ACCOUNT_ID", raising=False)
    return aws_variables()


# -- environ() --------------------------------------------------------------------------------


async def test_environ_holds_the_keys_region_and_expiry(counting_fetcher: CountingFetcher) -> None:
    async with custom(counting_fetcher) as session:
        env = await session.environ()
    assert env == {
        "AWS_ACCESS_KEY_ID": "ASIATEST000001",
        "AWS_SECRET_ACCESS_KEY": "secret-1",
        "AWS_SESSION_TOKEN": "token-1",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_CREDENTIAL_EXPIRATION": "2030-01-01T01:00:00Z",
    }


async def test_environ_of_long_term_keys_has_no_token_and_no_expiry(aws_env: Any) -> None:
    async with RefreshableSession(
        aws_access_key_id="AKIALONGTERM", aws_secret_access_key="long-secret"
    ) as session:
        env = await session.environ()
    assert env["AWS_ACCESS_KEY_ID"] == "AKIALONGTERM"
    assert "AWS_SESSION_TOKEN" not in env
    assert "AWS_CREDENTIAL_EXPIRATION" not in env


async def test_environ_rounds_the_expiry_down_to_whole_seconds(
    counting_fetcher: CountingFetcher,
) -> None:
    counting_fetcher.lifetime = timedelta(minutes=30, seconds=0.75)
    async with custom(counting_fetcher) as session:
        env = await session.environ()
    assert env["AWS_CREDENTIAL_EXPIRATION"] == "2030-01-01T00:30:00Z"


async def test_environ_returns_a_new_dict_and_leaves_os_environ_alone(
    profile_env: dict[str, str], counting_fetcher: CountingFetcher
) -> None:
    async with custom(counting_fetcher) as session:
        first = await session.environ()
        first["AWS_REGION"] = "changed"
        second = await session.environ()
    assert second["AWS_REGION"] == "eu-west-1"
    assert aws_variables() == profile_env


async def test_environ_over_a_base_drops_profiles_and_stale_credentials(
    counting_fetcher: CountingFetcher,
) -> None:
    base = {
        "PATH": "/usr/bin",
        "AWS_PROFILE": "other",
        "AWS_DEFAULT_PROFILE": "other",
        "AWS_SECURITY_TOKEN": "stale",
        "AWS_ACCOUNT_ID": "999999999999",
        "AWS_CREDENTIAL_EXPIRATION": "2000-01-01T00:00:00Z",
        "AWS_SESSION_TOKEN": "stale",
    }
    async with custom(counting_fetcher) as session:
        env = await session.environ(base=base)
    assert env["PATH"] == "/usr/bin"
    assert env["AWS_SESSION_TOKEN"] == "token-1"
    assert env["AWS_CREDENTIAL_EXPIRATION"] == "2030-01-01T01:00:00Z"
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SECURITY_TOKEN", "AWS_ACCOUNT_ID"):
        assert name not in env
    assert base["AWS_PROFILE"] == "other"


async def test_environ_over_a_base_drops_a_stale_token_of_long_term_keys(aws_env: Any) -> None:
    async with RefreshableSession(
        aws_access_key_id="AKIALONGTERM", aws_secret_access_key="long-secret"
    ) as session:
        env = await session.environ(base={"AWS_SESSION_TOKEN": "stale"})
    assert "AWS_SESSION_TOKEN" not in env


async def test_environ_refuses_a_base_that_is_not_a_mapping(
    counting_fetcher: CountingFetcher,
) -> None:
    async with custom(counting_fetcher) as session:
        with pytest.raises(ValidationError, match="base must be a mapping"):
            await session.environ(base=["AWS_PROFILE"])  # type: ignore[arg-type]
    assert counting_fetcher.calls == 0


async def test_a_closed_session_hands_nothing_over(counting_fetcher: CountingFetcher) -> None:
    async with custom(counting_fetcher) as session:
        await session.refreshable_credentials()
    with pytest.raises(SessionClosedError):
        await session.environ()
    with pytest.raises(SessionClosedError):
        await session.to_snapshot()


async def test_a_subprocess_given_environ_signs_as_the_assumed_role(
    aws_env: Any, moto_server: MotoServer
) -> None:
    async with role_session(moto_server.endpoint_url, READER, "child") as session:
        env = {**await session.environ(), **HERMETIC}
        out = await run_python(WHOAMI_WITH_BOTOCORE, moto_server.endpoint_url, env=env)
    assert out.strip() == "arn:aws:sts::123456789012:assumed-role/reader/child"


# -- awscli() ---------------------------------------------------------------------------------


async def test_awscli_sets_the_variables_and_removes_the_profile(
    profile_env: dict[str, str], counting_fetcher: CountingFetcher
) -> None:
    async with custom(counting_fetcher) as session, session.awscli() as env:
        assert os.environ["AWS_ACCESS_KEY_ID"] == "ASIATEST000001"
        assert os.environ["AWS_SESSION_TOKEN"] == "token-1"
        assert os.environ["AWS_REGION"] == "eu-west-1"
        assert "AWS_PROFILE" not in os.environ
        assert "AWS_DEFAULT_PROFILE" not in os.environ
        assert env == {name: os.environ[name] for name in env}


async def test_awscli_restores_the_environment_exactly(
    profile_env: dict[str, str], counting_fetcher: CountingFetcher
) -> None:
    async with custom(counting_fetcher) as session:
        async with session.awscli():
            pass
    assert aws_variables() == profile_env


async def test_awscli_restores_the_environment_when_the_block_raises(
    profile_env: dict[str, str], counting_fetcher: CountingFetcher
) -> None:
    async with custom(counting_fetcher) as session:
        with pytest.raises(RuntimeError, match="inside"):
            async with session.awscli():
                raise RuntimeError("inside")
    assert aws_variables() == profile_env


async def test_awscli_restores_what_the_block_changed(
    profile_env: dict[str, str], counting_fetcher: CountingFetcher
) -> None:
    async with custom(counting_fetcher) as session, session.awscli():
        os.environ["AWS_REGION"] = "changed-inside"
        os.environ["AWS_PROFILE"] = "set-inside"
    assert aws_variables() == profile_env


async def test_awscli_of_long_term_keys_removes_the_parent_token(
    profile_env: dict[str, str],
) -> None:
    async with (
        RefreshableSession(
            aws_access_key_id="AKIALONGTERM", aws_secret_access_key="long-secret"
        ) as session,
        session.awscli(),
    ):
        assert os.environ["AWS_ACCESS_KEY_ID"] == "AKIALONGTERM"
        assert "AWS_SESSION_TOKEN" not in os.environ
        assert "AWS_CREDENTIAL_EXPIRATION" not in os.environ
    assert aws_variables() == profile_env


async def test_awscli_fetching_nothing_changes_nothing_when_the_fetch_fails(
    profile_env: dict[str, str], counting_fetcher: CountingFetcher
) -> None:
    counting_fetcher.fail_with = RuntimeError("source down")
    async with custom(counting_fetcher) as session:
        with pytest.raises(CredentialRefreshError):
            async with session.awscli():
                pass  # pragma: no cover - never entered
    assert aws_variables() == profile_env


async def test_nested_awscli_blocks_warn_that_the_environment_is_process_global(
    profile_env: dict[str, str], frozen_clock: FrozenClock
) -> None:
    first = custom(CountingFetcher(frozen_clock))
    second = custom(CountingFetcher(frozen_clock, account_id=None), region_name="us-west-2")
    async with first, second, first.awscli():
        with pytest.warns(RuntimeWarning, match="process-global"):
            async with second.awscli():
                assert os.environ["AWS_REGION"] == "us-west-2"
        assert os.environ["AWS_REGION"] == "eu-west-1"
    assert aws_variables() == profile_env


async def test_leaving_a_nested_block_restores_what_the_outer_block_had(
    profile_env: dict[str, str], frozen_clock: FrozenClock
) -> None:
    first = custom(CountingFetcher(frozen_clock))
    second = custom(CountingFetcher(frozen_clock), region_name="us-west-2")
    async with first, second, first.awscli():
        os.environ["AWS_REGION"] = "set-by-the-outer-block"
        with pytest.warns(RuntimeWarning):
            async with second.awscli():
                pass
        assert os.environ["AWS_REGION"] == "set-by-the-outer-block"
        assert os.environ["AWS_ACCESS_KEY_ID"] == "ASIATEST000001"
    assert aws_variables() == profile_env


async def test_a_single_awscli_block_does_not_warn(
    profile_env: dict[str, str], counting_fetcher: CountingFetcher
) -> None:
    async with custom(counting_fetcher) as session:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            async with session.awscli():
                pass


async def test_overlapping_blocks_left_out_of_order_restore_exactly(
    profile_env: dict[str, str], frozen_clock: FrozenClock
) -> None:
    first = custom(CountingFetcher(frozen_clock))
    second = custom(CountingFetcher(frozen_clock), region_name="us-west-2")
    async with first, second:
        outer = first.awscli()
        inner = second.awscli()
        await outer.__aenter__()
        with pytest.warns(RuntimeWarning):
            await inner.__aenter__()
        await outer.__aexit__(None, None, None)  # the first block ends before the second
        assert os.environ["AWS_REGION"] == "us-west-2"
        await inner.__aexit__(None, None, None)
    assert aws_variables() == profile_env


async def test_many_tasks_overlapping_awscli_blocks_leave_the_environment_as_it_was(
    profile_env: dict[str, str], frozen_clock: FrozenClock
) -> None:
    sessions = [custom(CountingFetcher(frozen_clock), region_name=f"r-{i}") for i in range(20)]
    inside = 0
    all_inside = asyncio.Event()
    releases = [asyncio.Event() for _ in sessions]

    async def hold(session: RefreshableSession, release: asyncio.Event) -> None:
        nonlocal inside
        async with session.awscli():
            inside += 1
            if inside == len(sessions):
                all_inside.set()
            await release.wait()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        tasks = [asyncio.create_task(hold(s, r)) for s, r in zip(sessions, releases, strict=True)]
        await all_inside.wait()
        for index in (3, 0, 19, 7, *range(20)):  # leave in an order unlike the entering one
            releases[index].set()
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
    for session in sessions:
        await session.aclose()
    assert aws_variables() == profile_env


async def test_a_subprocess_inside_awscli_inherits_the_credentials(
    aws_env: Any, moto_server: MotoServer
) -> None:
    async with role_session(moto_server.endpoint_url, WRITER, "inherited") as session:
        async with session.awscli():
            out = await run_python(WHOAMI_WITH_BOTOCORE, moto_server.endpoint_url)
    assert out.strip() == "arn:aws:sts::123456789012:assumed-role/writer/inherited"


# -- snapshots --------------------------------------------------------------------------------


async def test_to_snapshot_holds_the_keys_region_and_expiry(
    counting_fetcher: CountingFetcher,
) -> None:
    async with custom(counting_fetcher) as session:
        snapshot = await session.to_snapshot()
    assert snapshot == {
        "aiorefresh_snapshot": 1,
        "aws_access_key_id": "ASIATEST000001",
        "aws_secret_access_key": "secret-1",
        "aws_session_token": "token-1",
        "region_name": "eu-west-1",
        "expiration": "2030-01-01T01:00:00+00:00",
        "account_id": "123456789012",
    }
    assert json.loads(json.dumps(snapshot)) == snapshot


async def test_a_snapshot_round_trips_through_from_snapshot(
    counting_fetcher: CountingFetcher,
) -> None:
    async with custom(counting_fetcher) as source:
        snapshot = await source.to_snapshot()
        original = await source.refreshable_credentials()
    async with RefreshableSession.from_snapshot(snapshot, clock=counting_fetcher.clock) as copy:
        creds = await copy.refreshable_credentials()
        assert copy.method == "snapshot"
        assert copy.region_name == "eu-west-1"
        assert await copy.to_snapshot() == snapshot
    assert creds == original


async def test_from_snapshot_takes_a_region_over_the_snapshots(
    counting_fetcher: CountingFetcher,
) -> None:
    async with custom(counting_fetcher) as source:
        snapshot = await source.to_snapshot()
    session = RefreshableSession.from_snapshot(snapshot, region_name="ap-south-1")
    assert session.region_name == "ap-south-1"


async def test_a_snapshot_session_signs_as_the_source_role_on_moto(
    aws_env: Any, moto_server: MotoServer
) -> None:
    async with role_session(moto_server.endpoint_url, READER, "snapped") as source:
        snapshot = await source.to_snapshot()
    copy = RefreshableSession.from_snapshot(
        snapshot, default_client_kwargs={"endpoint_url": moto_server.endpoint_url}
    )
    async with copy:
        identity = await copy.whoami()
    assert identity.arn == "arn:aws:sts::123456789012:assumed-role/reader/snapped"


async def test_a_snapshot_session_serves_its_keys_until_they_expire(
    counting_fetcher: CountingFetcher,
) -> None:
    async with custom(counting_fetcher) as source:
        snapshot = await source.to_snapshot()
    clock = counting_fetcher.clock
    async with RefreshableSession.from_snapshot(snapshot, clock=clock) as copy:
        await copy.refreshable_credentials()
        clock.advance(minutes=59, seconds=58)
        creds = await copy.refreshable_credentials()
    assert creds.access_key == "ASIATEST000001"


async def test_a_snapshot_session_raises_credential_refresh_error_once_expired(
    counting_fetcher: CountingFetcher,
) -> None:
    async with custom(counting_fetcher) as source:
        snapshot = await source.to_snapshot()
    clock = counting_fetcher.clock
    async with RefreshableSession.from_snapshot(snapshot, clock=clock) as copy:
        await copy.refreshable_credentials()
        clock.advance(hours=1)
        with pytest.raises(CredentialRefreshError, match="snapshot") as caught:
            await copy.refreshable_credentials()
    message = str(caught.value)
    assert "expired at 2030-01-01T01:00:00+00:00" in message
    assert "cannot refresh" in message
    assert "secret-1" not in message
    assert "token-1" not in message


async def test_an_expired_snapshot_fails_a_request_before_signing_it(
    aws_env: Any, moto_server: MotoServer
) -> None:
    async with role_session(moto_server.endpoint_url, READER, "expiring") as source:
        snapshot = await source.to_snapshot()
    clock = FrozenClock(datetime.fromisoformat(snapshot["expiration"]) + timedelta(seconds=1))
    copy = RefreshableSession.from_snapshot(
        snapshot, clock=clock, default_client_kwargs={"endpoint_url": moto_server.endpoint_url}
    )
    async with copy, copy.client("sts") as sts:
        with pytest.raises(CredentialRefreshError, match="session made from a snapshot"):
            await sts.get_caller_identity()


async def test_a_boto_session_manager_snapshot_without_expiration_is_read(aws_env: Any) -> None:
    snapshot = {
        "aws_access_key_id": "AKIALONGTERM",
        "aws_secret_access_key": "long-secret",
        "aws_session_token": None,
        "region_name": "us-east-2",
    }
    async with RefreshableSession.from_snapshot(snapshot) as session:
        creds = await session.refreshable_credentials()
        assert session.region_name == "us-east-2"
        assert session.is_expired() is False
    assert creds.token is None
    assert creds.expiry_time.year == 9999


@pytest.mark.parametrize(
    ("snapshot", "error", "match"),
    [
        ("not a dict", ValidationError, "snapshot must be a dict, got str"),
        ({"aws_secret_access_key": "s3cr3t"}, ValidationError, "'aws_access_key_id'.*nothing"),
        (
            {"aws_access_key_id": "AKIA1", "aws_secret_access_key": 7},
            ValidationError,
            "'aws_secret_access_key'.*got int",
        ),
        (
            {"aws_access_key_id": "AKIA1", "aws_secret_access_key": "s3cr3t", "secret": "s3cr3t"},
            ValidationError,
            "unknown key",
        ),
        (
            {"aws_access_key_id": "AKIA1", "aws_secret_access_key": "s3cr3t", "expiration": "soon"},
            ConfigurationError,
            "expiration that is not an ISO-8601",
        ),
        (
            {
                "aws_access_key_id": "AKIA1",
                "aws_secret_access_key": "s3cr3t",
                "expiration": "2030-01-01T00:00:00",
            },
            ConfigurationError,
            "naive expiration",
        ),
        (
            {"aiorefresh_snapshot": 9, "aws_access_key_id": "A", "aws_secret_access_key": "s"},
            ConfigurationError,
            "format version 9",
        ),
    ],
)
def test_from_snapshot_refuses_a_bad_snapshot_without_showing_secrets(
    snapshot: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as caught:
        RefreshableSession.from_snapshot(snapshot)
    assert "s3cr3t" not in str(caught.value)


def test_from_snapshot_refuses_a_region_that_is_not_a_str() -> None:
    snapshot = {"aws_access_key_id": "AKIA1", "aws_secret_access_key": "s"}
    with pytest.raises(ValidationError, match="region_name must be a str"):
        RefreshableSession.from_snapshot(snapshot, region_name=5)  # type: ignore[arg-type]


# -- snapshot files ---------------------------------------------------------------------------


async def test_temp_snapshot_writes_a_file_only_its_owner_can_read(
    tmp_path: Path, counting_fetcher: CountingFetcher
) -> None:
    async with custom(counting_fetcher) as session:
        async with session.temp_snapshot(tmp_path / "snap.json") as path:
            mode = stat.S_IMODE(path.stat().st_mode)
            written = json.loads(path.read_text())
            leftovers = files_in(tmp_path)
        assert written == await session.to_snapshot()
    assert mode == 0o600
    assert leftovers == ["snap.json"]


async def test_temp_snapshot_removes_the_file_on_exit(
    tmp_path: Path, counting_fetcher: CountingFetcher
) -> None:
    async with custom(counting_fetcher) as session:
        async with session.temp_snapshot(tmp_path / "snap.json") as path:
            assert path.exists()
    assert files_in(tmp_path) == []


async def test_temp_snapshot_removes_the_file_when_the_block_raises(
    tmp_path: Path, counting_fetcher: CountingFetcher
) -> None:
    async with custom(counting_fetcher) as session:
        with pytest.raises(RuntimeError, match="inside"):
            async with session.temp_snapshot(tmp_path / "snap.json"):
                raise RuntimeError("inside")
    assert files_in(tmp_path) == []


async def test_temp_snapshot_removes_the_file_when_the_block_is_cancelled(
    tmp_path: Path, counting_fetcher: CountingFetcher
) -> None:
    written = asyncio.Event()

    async def hold(session: RefreshableSession) -> None:
        async with session.temp_snapshot(tmp_path / "snap.json"):
            written.set()
            await asyncio.Event().wait()

    async with custom(counting_fetcher) as session:
        task = asyncio.create_task(hold(session))
        await written.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert files_in(tmp_path) == []


async def test_temp_snapshot_replaces_a_stale_file_and_removes_it(
    tmp_path: Path, counting_fetcher: CountingFetcher
) -> None:
    target = tmp_path / "snap.json"
    target.write_text("stale")
    target.chmod(0o644)
    async with custom(counting_fetcher) as session:
        async with session.temp_snapshot(target) as path:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert json.loads(path.read_text())["aws_access_key_id"] == "ASIATEST000001"
    assert not target.exists()


async def test_temp_snapshot_refuses_a_missing_directory_before_fetching(
    tmp_path: Path, counting_fetcher: CountingFetcher
) -> None:
    async with custom(counting_fetcher) as session:
        with pytest.raises(ConfigurationError, match="does not exist"):
            async with session.temp_snapshot(tmp_path / "missing" / "snap.json"):
                pass  # pragma: no cover - never entered
    assert counting_fetcher.calls == 0


async def test_temp_snapshot_refuses_a_path_that_is_not_a_path(
    counting_fetcher: CountingFetcher,
) -> None:
    async with custom(counting_fetcher) as session:
        with pytest.raises(ValidationError, match="path must be a str or os.PathLike"):
            async with session.temp_snapshot(3):  # type: ignore[arg-type]
                pass  # pragma: no cover - never entered


async def test_a_snapshot_file_round_trips_through_from_snapshot_file(
    tmp_path: Path, counting_fetcher: CountingFetcher
) -> None:
    async with custom(counting_fetcher) as source:
        original = await source.refreshable_credentials()
        async with source.temp_snapshot(tmp_path / "snap.json") as path:
            copy = RefreshableSession.from_snapshot_file(path, clock=counting_fetcher.clock)
    async with copy:
        assert await copy.refreshable_credentials() == original
        assert copy.region_name == "eu-west-1"


async def test_from_snapshot_file_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no snapshot file at"):
        RefreshableSession.from_snapshot_file(tmp_path / "absent.json")


async def test_from_snapshot_file_refuses_a_file_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    path.write_text("aws_secret_access_key = s3cr3t\n")
    with pytest.raises(ConfigurationError, match="is not a JSON snapshot") as caught:
        RefreshableSession.from_snapshot_file(path)
    assert "s3cr3t" not in str(caught.value)


async def test_a_child_process_gets_the_original_session_back_from_a_snapshot_file(
    aws_env: Any, moto_server: MotoServer, tmp_path: Path
) -> None:
    endpoint = moto_server.endpoint_url
    async with (
        role_session(endpoint, READER, "original") as original,
        role_session(endpoint, WRITER, "switched") as switched,
        original.temp_snapshot(tmp_path / "snap.json") as path,
        switched.awscli(),
    ):
        from_env = await run_python(WHOAMI_WITH_BOTOCORE, endpoint)
        from_file = await run_python(WHOAMI_FROM_SNAPSHOT, endpoint, str(path))
    assert from_env.strip() == "arn:aws:sts::123456789012:assumed-role/writer/switched"
    assert from_file.strip() == "arn:aws:sts::123456789012:assumed-role/reader/original"
    assert not path.exists()


def test_snapshot_expiry_survives_a_json_round_trip() -> None:
    expiry = datetime(2030, 6, 1, 12, 30, tzinfo=timezone.utc)
    snapshot = {
        "aws_access_key_id": "ASIA1",
        "aws_secret_access_key": "s",
        "aws_session_token": "t",
        "expiration": expiry.isoformat(),
    }
    session = RefreshableSession.from_snapshot(json.loads(json.dumps(snapshot)))
    assert session.fetcher is not None
    assert session.expiry_time is None  # nothing fetched yet: no I/O at construction
