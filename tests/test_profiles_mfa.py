"""A role profile that asks for MFA never blocks the event loop on a prompt."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from aiorefresh import MFAError, NonRecoverableCredentialError, RefreshableSession


@pytest.fixture
def mfa_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws_env: Any) -> str:
    config = tmp_path / "config"
    config.write_text(
        "[profile base]\n"
        "region = us-east-1\n"
        "[profile mfa-role]\n"
        "role_arn = arn:aws:iam::123456789012:role/guarded\n"
        "source_profile = base\n"
        "mfa_serial = arn:aws:iam::123456789012:mfa/alice\n"
    )
    credentials = tmp_path / "credentials"
    credentials.write_text("[base]\naws_access_key_id = AKBASE\naws_secret_access_key = SK\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    return "mfa-role"


async def test_profile_needing_mfa_raises_instead_of_prompting(mfa_profile: str) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(10):
            ticks += 1
            await asyncio.sleep(0)

    async with RefreshableSession(profile_name=mfa_profile) as session:
        error, _ = await asyncio.gather(
            session.refreshable_credentials(), ticker(), return_exceptions=True
        )
    assert isinstance(error, MFAError)
    assert isinstance(error, NonRecoverableCredentialError)
    assert "mfa-role" in str(error)
    assert "mfa_token_provider" in str(error)
    assert ticks == 10
