"""A role profile's STS clients: ``sts_client_kwargs`` reaches every link, one MFA provider.

``sts_client_kwargs`` (a VPC endpoint, a local stand-in) configures the STS client of every
AssumeRole of a role profile's chain, also when the profile is the source of an ``sts``
method; and one MFA provider serves every link, so no link sends a code another already used.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from aiorefresh import RefreshableSession
from aiorefresh.errors import ConfigurationError
from aiorefresh.testing import FrozenClock, STSStandIn

ACCOUNT = "123456789012"
FIRST = f"arn:aws:iam::{ACCOUNT}:role/first"
SECOND = f"arn:aws:iam::{ACCOUNT}:role/second"
OUTER = f"arn:aws:iam::{ACCOUNT}:role/outer"
DEVICE = f"arn:aws:iam::{ACCOUNT}:mfa/alice"
KEYS = "aws_access_key_id = AKIABASE000000000001\naws_secret_access_key = base-secret\n"

CHAIN = (
    f"[profile base]\n{KEYS}region = us-east-1\n"
    f"[profile first]\nrole_arn = {FIRST}\nsource_profile = base\n"
    f"[profile second]\nrole_arn = {SECOND}\nsource_profile = first\nregion = us-east-1\n"
)


class Config:
    """The shared config file AWS_CONFIG_FILE names."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, text: str) -> None:
        self.path.write_text(text)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws_env: Any) -> Config:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    return Config(tmp_path / "config")


def at(url: str) -> dict[str, Any]:
    """STS and the pooled clients at ``url`` (both, so no warning about the two differing)."""
    return {
        "sts_client_kwargs": {"endpoint_url": url},
        "default_client_kwargs": {"endpoint_url": url},
    }


def assumed(standin: STSStandIn) -> list[str]:
    return [r.params["RoleArn"] for r in standin.requests if r.action == "AssumeRole"]


async def test_sts_client_kwargs_send_every_link_of_a_role_profile_to_the_endpoint(
    config: Config, sts_standin: STSStandIn
) -> None:
    config.write(CHAIN)
    async with RefreshableSession(profile_name="second", **at(sts_standin.endpoint_url)) as session:
        await session.refreshable_credentials()
    assert assumed(sts_standin) == [FIRST, SECOND]


async def test_an_sts_methods_endpoint_also_serves_its_role_profile_source(
    config: Config, sts_standin: STSStandIn
) -> None:
    config.write(CHAIN)
    async with RefreshableSession(
        profile_name="second",
        assume_role_kwargs={"RoleArn": OUTER},
        **at(sts_standin.endpoint_url),
    ) as session:
        await session.refreshable_credentials()
    assert assumed(sts_standin) == [FIRST, SECOND, OUTER]


def test_sts_client_kwargs_for_a_profile_without_a_role_are_refused(config: Config) -> None:
    config.write(f"[profile base]\n{KEYS}")
    with pytest.raises(ConfigurationError, match="sts_client_kwargs.*no role_arn"):
        RefreshableSession(profile_name="base", **at("http://127.0.0.1:1"))


def test_signing_keys_in_a_role_profiles_sts_client_kwargs_are_refused(config: Config) -> None:
    config.write(CHAIN)
    with pytest.raises(ConfigurationError, match="aws_access_key_id") as caught:
        RefreshableSession(
            profile_name="second",
            sts_client_kwargs={"aws_access_key_id": "AKIAX", "aws_secret_access_key": "s3cr3t"},
        )
    assert "s3cr3t" not in str(caught.value)


async def test_links_sharing_an_mfa_device_never_send_the_same_code_twice(
    config: Config,
) -> None:
    config.write(
        f"[profile base]\n{KEYS}"
        f"[profile first]\nrole_arn = {FIRST}\nsource_profile = base\nmfa_serial = {DEVICE}\n"
        f"[profile second]\nrole_arn = {SECOND}\nsource_profile = first\n"
        f"mfa_serial = {DEVICE}\nregion = us-east-1\n"
    )
    # A TOTP device shows one code per 30-second step; the clock stands 0.05 s before a step
    # ends, so the provider's wait for the next code is short.
    step_end = (int(datetime.now(timezone.utc).timestamp()) // 30 + 1) * 30
    clock = FrozenClock(datetime.fromtimestamp(step_end - 0.05, timezone.utc))
    shown = ["111111", "111111", "222222"]

    async def device() -> str:
        return shown.pop(0)

    async with STSStandIn(clock=clock) as standin:
        async with RefreshableSession(
            profile_name="second",
            mfa_token_provider=device,
            **at(standin.endpoint_url),
            clock=clock,
        ) as session:
            await session.refreshable_credentials()
        codes = [r.params["TokenCode"] for r in standin.requests if r.action == "AssumeRole"]
    assert sorted(codes) == ["111111", "222222"]  # the outer link asks first
