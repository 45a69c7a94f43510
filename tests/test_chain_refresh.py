"""Credentials of aiobotocore's chain that can expire are fetched anew, not re-read.

A profile without a role falls through to aiobotocore's provider chain. When the chain's
credentials can expire (here ``credential_process``, a real subprocess that issues a new key on
each run), `refresh()`, `invalidate()`, the session's clock and an ExpiredToken answer each make
the provider run again.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from aiorefresh import RefreshableSession
from aiorefresh._fetchers.chain import ChainFetcher
from aiorefresh.testing import FrozenClock, STSStandIn

ISSUE = """
import json, pathlib, sys
counter = pathlib.Path(sys.argv[1])
runs = int(counter.read_text() or 0) + 1 if counter.exists() else 1
counter.write_text(str(runs))
print(json.dumps({
    "Version": 1,
    "AccessKeyId": f"ASIAPROCESS{runs:06d}",
    "SecretAccessKey": "process-secret",
    "SessionToken": "process-token",
    "Expiration": "2030-01-01T01:00:00Z",
}))
"""
"""A credential process: one new key per run, valid until an hour after `FrozenClock`'s start."""


class CredentialProcess:
    def __init__(self, tmp_path: Path) -> None:
        self.script = tmp_path / "issue.py"
        self.script.write_text(ISSUE)
        self.counter = tmp_path / "runs"
        self.config = tmp_path / "config"

    @property
    def runs(self) -> int:
        return int(self.counter.read_text()) if self.counter.exists() else 0

    def profile(self) -> str:
        command = f"{sys.executable} {self.script} {self.counter}"
        return f"[profile proc]\nregion = us-east-1\ncredential_process = {command}\n"


@pytest.fixture
def process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws_env: Any) -> CredentialProcess:
    issuer = CredentialProcess(tmp_path)
    issuer.config.write_text(issuer.profile())
    monkeypatch.setenv("AWS_CONFIG_FILE", str(issuer.config))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    return issuer


def session_of(clock: FrozenClock) -> RefreshableSession:
    return RefreshableSession(profile_name="proc", clock=clock)


async def test_a_process_profile_is_read_through_the_chain(
    process: CredentialProcess, frozen_clock: FrozenClock
) -> None:
    async with session_of(frozen_clock) as session:
        creds = await session.refreshable_credentials()
    assert isinstance(session.fetcher, ChainFetcher)
    assert creds.access_key == "ASIAPROCESS000001"
    assert process.runs == 1


async def test_refresh_runs_the_process_again_for_new_keys(
    process: CredentialProcess, frozen_clock: FrozenClock
) -> None:
    async with session_of(frozen_clock) as session:
        first = await session.refreshable_credentials()
        second = await session.refresh()
    assert (first.access_key, second.access_key) == ("ASIAPROCESS000001", "ASIAPROCESS000002")
    assert process.runs == 2


async def test_invalidate_makes_the_next_read_run_the_process_again(
    process: CredentialProcess, frozen_clock: FrozenClock
) -> None:
    async with session_of(frozen_clock) as session:
        await session.refreshable_credentials()
        session.invalidate()
        again = await session.refreshable_credentials()
    assert again.access_key == "ASIAPROCESS000002"


async def test_the_sessions_clock_decides_when_the_keys_expire(
    process: CredentialProcess, frozen_clock: FrozenClock
) -> None:
    async with session_of(frozen_clock) as session:
        await session.refreshable_credentials()
        frozen_clock.advance(minutes=59, seconds=30)  # inside the mandatory window
        later = await session.refreshable_credentials()
    assert later.access_key == "ASIAPROCESS000002"
    assert process.runs == 2


async def test_an_expired_token_answer_runs_the_process_again_and_retries(
    process: CredentialProcess, frozen_clock: FrozenClock, sts_standin: STSStandIn
) -> None:
    async with session_of(frozen_clock) as session:
        async with session.client("sts", endpoint_url=sts_standin.endpoint_url) as sts:
            sts_standin.script("expired_token", action="GetCallerIdentity")
            await sts.get_caller_identity()
    calls = [r.access_key for r in sts_standin.requests if r.action == "GetCallerIdentity"]
    assert calls == ["ASIAPROCESS000001", "ASIAPROCESS000002"]
    assert process.runs == 2


async def test_a_process_profile_is_the_source_of_a_role_profile(
    process: CredentialProcess, frozen_clock: FrozenClock, sts_standin: STSStandIn
) -> None:
    role = "arn:aws:iam::123456789012:role/over-the-process"
    process.config.write_text(
        process.profile() + f"[profile role]\nrole_arn = {role}\nsource_profile = proc\n"
    )
    async with RefreshableSession(
        profile_name="role",
        clock=frozen_clock,
        sts_client_kwargs={"endpoint_url": sts_standin.endpoint_url},
        default_client_kwargs={"endpoint_url": sts_standin.endpoint_url},
    ) as session:
        await session.refreshable_credentials()
    signed = [r.access_key for r in sts_standin.requests if r.action == "AssumeRole"]
    assert signed == ["ASIAPROCESS000001"]
