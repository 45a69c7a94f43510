"""Role profiles of the shared config go through aiorefresh's engine: temporary config files,
moto's server and STSStandIn; MFA codes come from an async provider, never from a prompt."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from aiorefresh import (
    ChainFetcher,
    ConfigurationError,
    JSONFileCache,
    MFAError,
    NonRecoverableCredentialError,
    RefreshableSession,
    utc_now,
)
from aiorefresh.testing import FrozenClock, MotoServer, STSStandIn

ACCOUNT = "123456789012"
FIRST = f"arn:aws:iam::{ACCOUNT}:role/first"
SECOND = f"arn:aws:iam::{ACCOUNT}:role/second"
MFA_DEVICE = f"arn:aws:iam::{ACCOUNT}:mfa/alice"
BASE_KEY = "AKIABASE000000000001"
BASE_SECRET = "base-secret-do-not-log"
BASE_CREDENTIALS = (
    f"[base]\naws_access_key_id = {BASE_KEY}\naws_secret_access_key = {BASE_SECRET}\n"
)


@dataclasses.dataclass
class SharedConfig:
    """The config and credentials files named by AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE."""

    config: Path
    credentials: Path

    def write(self, config: str, credentials: str = BASE_CREDENTIALS) -> None:
        self.config.write_text(config)
        self.credentials.write_text(credentials)


@pytest.fixture
def shared_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws_env: Any) -> SharedConfig:
    files = SharedConfig(tmp_path / "config", tmp_path / "credentials")
    files.write("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(files.config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(files.credentials))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    return files


def section(name: str, settings: dict[str, str | None]) -> str:
    lines = "".join(f"{key} = {value}\n" for key, value in settings.items() if value is not None)
    return f"[profile {name}]\n{lines}"


def chain_of_two(endpoint: str, **second: str | None) -> str:
    """base (keys) <- first <- second; ``second`` changes settings of the outer role."""
    return (
        section("base", {"region": "us-east-1"})
        + section("first", {"role_arn": FIRST, "source_profile": "base"})
        + section(
            "second",
            {
                "role_arn": SECOND,
                "source_profile": "first",
                "role_session_name": "chained",
                "region": "us-east-1",
                "endpoint_url": endpoint,
                **second,
            },
        )
    )


def one_role(endpoint: str, **settings: str | None) -> str:
    """crossaccount: one role over the base keys; ``settings`` change it (None removes)."""
    return section("base", {"region": "us-east-1"}) + section(
        "crossaccount",
        {
            "role_arn": SECOND,
            "source_profile": "base",
            "role_session_name": "cross",
            "region": "us-east-1",
            "endpoint_url": endpoint,
            **settings,
        },
    )


class Codes:
    """An async MFA provider handing out a new code on every call."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        return f"{100000 + self.calls}"


@pytest.fixture
def moto_clock() -> FrozenClock:
    """moto issues credentials relative to the real time: start the frozen clock there."""
    return FrozenClock(utc_now())


# -- role profiles against moto -------------------------------------------------------------------


async def test_a_source_profile_chain_of_two_ends_in_the_second_role(
    shared_config: SharedConfig, moto_server: MotoServer, moto_clock: FrozenClock
) -> None:
    shared_config.write(chain_of_two(moto_server.endpoint_url))
    async with RefreshableSession(profile_name="second", clock=moto_clock) as session:
        identity = await session.whoami()
    assert identity.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/second/chained"


async def test_credential_source_environment_assumes_the_role(
    shared_config: SharedConfig,
    moto_server: MotoServer,
    moto_clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared_config.write(
        one_role(moto_server.endpoint_url, source_profile=None, credential_source="Environment")
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMTHEENVIRONMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    async with RefreshableSession(profile_name="crossaccount", clock=moto_clock) as session:
        identity = await session.whoami()
    assert identity.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/second/cross"


async def test_mfa_serial_asks_the_async_provider_on_every_refresh(
    shared_config: SharedConfig, moto_server: MotoServer, moto_clock: FrozenClock
) -> None:
    shared_config.write(one_role(moto_server.endpoint_url, mfa_serial=MFA_DEVICE))
    codes = Codes()
    async with RefreshableSession(
        profile_name="crossaccount", mfa_token_provider=codes, clock=moto_clock
    ) as session:
        first = await session.refreshable_credentials()
        refreshed = [await session.refresh() for _ in range(3)]
    assert codes.calls == 4
    assert len({c.access_key for c in [first, *refreshed]}) == 4


async def test_mfa_serial_without_a_provider_uses_a_valid_cached_entry(
    shared_config: SharedConfig, moto_server: MotoServer, moto_clock: FrozenClock, tmp_path: Path
) -> None:
    shared_config.write(one_role(moto_server.endpoint_url, mfa_serial=MFA_DEVICE))
    codes = Codes()
    async with RefreshableSession(
        profile_name="crossaccount",
        mfa_token_provider=codes,
        credential_cache=JSONFileCache(tmp_path / "cache"),
        clock=moto_clock,
    ) as first_process:
        prompted = await first_process.refreshable_credentials()
    async with RefreshableSession(
        profile_name="crossaccount",
        credential_cache=JSONFileCache(tmp_path / "cache"),
        clock=moto_clock,
    ) as second_process:
        reused = await second_process.refreshable_credentials()
    assert reused == prompted
    assert codes.calls == 1


async def test_a_second_process_is_not_asked_for_a_code_while_the_cached_entry_is_valid(
    shared_config: SharedConfig, moto_server: MotoServer, moto_clock: FrozenClock, tmp_path: Path
) -> None:
    shared_config.write(one_role(moto_server.endpoint_url, mfa_serial=MFA_DEVICE))
    first_codes, second_codes = Codes(), Codes()
    sessions = [
        RefreshableSession(
            profile_name="crossaccount",
            mfa_token_provider=codes,
            credential_cache=JSONFileCache(tmp_path / "cache"),
            clock=moto_clock,
        )
        for codes in (first_codes, second_codes)
    ]
    async with sessions[0] as first_process, sessions[1] as second_process:
        prompted = await first_process.refreshable_credentials()
        reused = await second_process.refreshable_credentials()
    assert reused == prompted
    assert (first_codes.calls, second_codes.calls) == (1, 0)


async def test_mfa_serial_without_a_provider_or_cached_entry_raises_mfa_error_never_prompting(
    shared_config: SharedConfig, moto_server: MotoServer, moto_clock: FrozenClock, tmp_path: Path
) -> None:
    shared_config.write(one_role(moto_server.endpoint_url, mfa_serial=MFA_DEVICE))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(10):
            ticks += 1
            await asyncio.sleep(0)

    async with RefreshableSession(
        profile_name="crossaccount",
        credential_cache=JSONFileCache(tmp_path / "empty"),
        clock=moto_clock,
    ) as session:
        error, _ = await asyncio.gather(
            session.refreshable_credentials(), ticker(), return_exceptions=True
        )
    assert isinstance(error, MFAError)
    assert isinstance(error, NonRecoverableCredentialError)
    assert "'crossaccount'" in str(error)
    assert "mfa_token_provider" in str(error)
    assert ticks == 10


# -- the engine drives a role profile -------------------------------------------------------------


async def test_refresh_and_invalidate_each_make_a_new_assume_role(
    shared_config: SharedConfig, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    shared_config.write(one_role(sts_standin.endpoint_url))
    async with RefreshableSession(profile_name="crossaccount", clock=frozen_clock) as session:
        first = await session.refreshable_credentials()
        second = await session.refresh()
        third = await session.refresh()
        session.invalidate()
        fourth = await session.refreshable_credentials()
    assert len({c.access_key for c in (first, second, third, fourth)}) == 4
    assert sts_standin.count("AssumeRole") == 4
    assert session.refresh_stats().refreshes == 4


async def test_many_callers_of_a_chain_of_two_make_one_assume_role_per_role(
    shared_config: SharedConfig, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    shared_config.write(chain_of_two(sts_standin.endpoint_url))
    async with RefreshableSession(profile_name="second", clock=frozen_clock) as session:
        results = await asyncio.gather(*(session.refreshable_credentials() for _ in range(500)))
    assert {creds.access_key for creds in results} == {sts_standin.issued[1].access_key}
    assert [r.params["RoleArn"] for r in sts_standin.requests] == [FIRST, SECOND]


async def test_each_role_of_a_chain_is_assumed_with_the_previous_links_keys(
    shared_config: SharedConfig, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    shared_config.write(chain_of_two(sts_standin.endpoint_url))
    async with RefreshableSession(profile_name="second", clock=frozen_clock) as session:
        creds = await session.refreshable_credentials()
    first, second = sts_standin.requests
    assert (first.params["RoleArn"], first.access_key) == (FIRST, BASE_KEY)
    assert (second.params["RoleArn"], second.access_key) == (
        SECOND,
        sts_standin.issued[0].access_key,
    )
    assert creds == sts_standin.issued[1]


async def test_credential_source_environment_signs_with_the_environment_keys(
    shared_config: SharedConfig,
    sts_standin: STSStandIn,
    frozen_clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared_config.write(
        one_role(sts_standin.endpoint_url, source_profile=None, credential_source="Environment")
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMTHEENVIRONMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    async with RefreshableSession(profile_name="crossaccount", clock=frozen_clock) as session:
        await session.refreshable_credentials()
    assert sts_standin.requests[0].access_key == "AKIAFROMTHEENVIRONMENT"


class ContainerEndpoint:
    """The container credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI) on loopback."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.calls = 0
        self.url = ""

    async def answer(self, request: web.Request) -> web.Response:
        self.calls += 1
        expiry = self.clock() + timedelta(hours=1)
        return web.json_response(
            {
                "AccessKeyId": f"ASIACONTAINER{self.calls:07d}",
                "SecretAccessKey": "container-secret",
                "Token": "container-token",
                "Expiration": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )


@pytest.fixture
async def container(
    frozen_clock: FrozenClock, monkeypatch: pytest.MonkeyPatch, shared_config: SharedConfig
) -> AsyncIterator[ContainerEndpoint]:
    endpoint = ContainerEndpoint(frozen_clock)
    app = web.Application()
    app.router.add_get("/credentials", endpoint.answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    endpoint.url = f"http://{host}:{port}/credentials"
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint.url)
    try:
        yield endpoint
    finally:
        await runner.cleanup()


async def test_credential_source_ecs_container_signs_with_the_containers_keys(
    shared_config: SharedConfig,
    sts_standin: STSStandIn,
    frozen_clock: FrozenClock,
    container: ContainerEndpoint,
) -> None:
    shared_config.write(
        one_role(sts_standin.endpoint_url, source_profile=None, credential_source="EcsContainer")
    )
    async with RefreshableSession(profile_name="crossaccount", clock=frozen_clock) as session:
        await session.refreshable_credentials()
    assert sts_standin.requests[0].access_key == "ASIACONTAINER0000001"


async def test_the_container_is_asked_again_once_its_keys_near_expiry(
    shared_config: SharedConfig,
    sts_standin: STSStandIn,
    frozen_clock: FrozenClock,
    container: ContainerEndpoint,
) -> None:
    shared_config.write(
        one_role(
            sts_standin.endpoint_url,
            source_profile=None,
            credential_source="EcsContainer",
            duration_seconds="900",
        )
    )
    async with RefreshableSession(profile_name="crossaccount", clock=frozen_clock) as session:
        await session.refreshable_credentials()
        await session.refresh()
        assert container.calls == 1
        frozen_clock.advance(minutes=59, seconds=30)
        await session.refresh()
    assert container.calls == 2
    assert sts_standin.requests[-1].access_key == "ASIACONTAINER0000002"


async def test_the_session_clock_drives_a_role_profiles_refresh(
    shared_config: SharedConfig, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    shared_config.write(one_role(sts_standin.endpoint_url, duration_seconds="900"))
    async with RefreshableSession(profile_name="crossaccount", clock=frozen_clock) as session:
        first = await session.refreshable_credentials()
        frozen_clock.set(first.expiry_time - timedelta(seconds=30))
        renewed = await session.refreshable_credentials()
    assert renewed.access_key != first.access_key
    assert renewed.expiry_time == frozen_clock() + timedelta(seconds=900)
    assert sts_standin.count("AssumeRole") == 2


async def test_an_expired_token_answer_makes_a_new_assume_role_and_the_call_succeeds(
    shared_config: SharedConfig, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    shared_config.write(one_role(sts_standin.endpoint_url))
    async with RefreshableSession(profile_name="crossaccount", clock=frozen_clock) as session:
        await session.refreshable_credentials()
        sts_standin.script("expired_token", action="GetCallerIdentity")
        identity = await session.whoami()
    assert identity.arn.endswith(":assumed-role/second/cross")
    assert sts_standin.count("AssumeRole") == 2


async def test_no_traceback_is_logged_on_the_way_to_an_mfa_error(
    shared_config: SharedConfig,
    sts_standin: STSStandIn,
    frozen_clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    shared_config.write(one_role(sts_standin.endpoint_url, mfa_serial=MFA_DEVICE))
    async with RefreshableSession(profile_name="crossaccount", clock=frozen_clock) as session:
        with pytest.raises(MFAError):
            await session.refreshable_credentials()
    assert not [record for record in caplog.records if record.exc_info]
    assert "Traceback" not in caplog.text
    assert sts_standin.count() == 0


async def test_secrets_of_a_role_profile_never_reach_logs_or_reprs(
    shared_config: SharedConfig,
    sts_standin: STSStandIn,
    frozen_clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiorefresh")
    shared_config.write(chain_of_two(sts_standin.endpoint_url, mfa_serial=MFA_DEVICE))
    cache = JSONFileCache(tmp_path / "cache")
    async with RefreshableSession(
        profile_name="second",
        mfa_token_provider=Codes(),
        credential_cache=cache,
        clock=frozen_clock,
    ) as session:
        await session.refreshable_credentials()
        await session.refresh()
        shown = repr(session) + repr(session.fetcher) + repr(session.refresh_stats())
    for creds in sts_standin.issued:
        for secret in (creds.secret_key, creds.token):
            assert secret is not None
            assert secret not in caplog.text
            assert secret not in shown
    assert BASE_SECRET not in caplog.text + shown
    assert "100001" not in caplog.text


# -- which profile, and which profiles are roles --------------------------------------------------


async def test_aws_profile_selects_the_role_profile(
    shared_config: SharedConfig,
    sts_standin: STSStandIn,
    frozen_clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared_config.write(one_role(sts_standin.endpoint_url))
    monkeypatch.setenv("AWS_PROFILE", "crossaccount")
    async with RefreshableSession(clock=frozen_clock) as session:
        creds = await session.refreshable_credentials()
    assert session.profile_name == "crossaccount"
    assert creds == sts_standin.issued[0]


async def test_environment_keys_win_over_a_profile_named_only_by_aws_profile(
    shared_config: SharedConfig,
    sts_standin: STSStandIn,
    frozen_clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared_config.write(one_role(sts_standin.endpoint_url))
    monkeypatch.setenv("AWS_PROFILE", "crossaccount")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMTHEENVIRONMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    async with RefreshableSession(clock=frozen_clock) as session:
        creds = await session.refreshable_credentials()
    assert isinstance(session.fetcher, ChainFetcher)
    assert creds.access_key == "AKIAFROMTHEENVIRONMENT"
    assert sts_standin.count() == 0


async def test_a_profile_without_a_role_falls_through_to_aiobotocores_chain(
    shared_config: SharedConfig, frozen_clock: FrozenClock
) -> None:
    shared_config.write("[profile base]\nregion = eu-west-1\n")
    async with RefreshableSession(profile_name="base", clock=frozen_clock) as session:
        creds = await session.refreshable_credentials()
    assert isinstance(session.fetcher, ChainFetcher)
    assert creds.access_key == BASE_KEY


def test_available_profiles_profile_name_and_region_name_come_from_the_config_files(
    shared_config: SharedConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared_config.write(one_role("http://127.0.0.1:1", region="eu-central-1"))
    monkeypatch.setenv("AWS_PROFILE", "crossaccount")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")
    session = RefreshableSession()
    assert sorted(session.available_profiles) == ["base", "crossaccount"]
    assert session.profile_name == "crossaccount"
    assert session.region_name == "eu-central-1"


BROKEN = {
    "both-sources": (
        f"[profile broken]\nrole_arn = {FIRST}\nsource_profile = base\n"
        "credential_source = Environment\n",
        "sets both source_profile and credential_source",
    ),
    "no-source": (
        f"[profile broken]\nrole_arn = {FIRST}\n",
        "neither source_profile nor credential_source",
    ),
    "missing-source": (
        f"[profile broken]\nrole_arn = {FIRST}\nsource_profile = nowhere\n",
        "source_profile 'nowhere', which is not in",
    ),
    "loop": (
        f"[profile broken]\nrole_arn = {FIRST}\nsource_profile = other\n"
        f"[profile other]\nrole_arn = {SECOND}\nsource_profile = broken\n",
        "'broken' -> 'other' -> 'broken' form a loop",
    ),
    "unknown-credential-source": (
        f"[profile broken]\nrole_arn = {FIRST}\ncredential_source = Moon\n",
        "credential_source 'Moon'; expected one of Environment, Ec2InstanceMetadata",
    ),
    "duration-not-a-number": (
        f"[profile broken]\nrole_arn = {FIRST}\nsource_profile = base\nduration_seconds = long\n",
        "duration_seconds must be a whole number",
    ),
    "duration-too-short": (
        f"[profile broken]\nrole_arn = {FIRST}\nsource_profile = base\nduration_seconds = 60\n",
        "duration_seconds must be between 900 and 43200",
    ),
    "bad-role-arn": (
        "[profile broken]\nrole_arn = admin\nsource_profile = base\n",
        "role_arn must look like arn:",
    ),
    "source-without-credentials": (
        f"[profile broken]\nrole_arn = {FIRST}\nsource_profile = empty\n"
        "[profile empty]\nregion = us-east-1\n",
        "source_profile 'empty', which has no credentials",
    ),
    "partial-keys": (
        f"[profile broken]\nrole_arn = {FIRST}\nsource_profile = half\n"
        "[profile half]\naws_access_key_id = AKIAHALF\n",
        "profile 'half' has aws_access_key_id without its partner",
    ),
}


@pytest.mark.parametrize(("config", "message"), BROKEN.values(), ids=BROKEN.keys())
def test_an_inconsistent_role_profile_is_refused_at_construction_naming_it(
    shared_config: SharedConfig, config: str, message: str
) -> None:
    shared_config.write(config)
    with pytest.raises(ConfigurationError, match=message):
        RefreshableSession(profile_name="broken")


def test_an_mfa_provider_for_a_profile_without_mfa_serial_is_refused(
    shared_config: SharedConfig,
) -> None:
    shared_config.write(one_role("http://127.0.0.1:1"))
    with pytest.raises(
        ConfigurationError, match="profile 'crossaccount' has no role with mfa_serial"
    ):
        RefreshableSession(profile_name="crossaccount", mfa_token_provider=Codes())
