"""STS methods against real servers: moto for the happy paths, STSStandIn for faults and MFA."""

from __future__ import annotations

import asyncio
import sys
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from aiorefresh import (
    ConfigurationError,
    CredentialRefreshError,
    MFAError,
    NonRecoverableCredentialError,
    RefreshableSession,
    ValidationError,
    utc_now,
)
from aiorefresh.testing import FrozenClock, MotoServer, STSStandIn, Succeed

# These tests point only the private STS client at a local server on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:sts_client_kwargs sets endpoint_url:UserWarning")

ROLE = "arn:aws:iam::123456789012:role/reader"
ROLE_B = "arn:aws:iam::123456789012:role/writer"
ROLE_C = "arn:aws:iam::123456789012:role/admin"
MFA_DEVICE = "arn:aws:iam::123456789012:mfa/alice"


def sts_session(endpoint: str, clock: FrozenClock, **kwargs: Any) -> RefreshableSession:
    kwargs.setdefault("assume_role_kwargs", {"RoleArn": ROLE})
    return RefreshableSession(
        sts_client_kwargs={"endpoint_url": endpoint},
        clock=clock,
        region_name="us-east-1",
        default_client_kwargs={"endpoint_url": endpoint},
        **kwargs,
    )


# -- moto: the happy paths -------------------------------------------------------------------


@pytest.fixture
def moto_clock() -> FrozenClock:
    """moto issues credentials relative to the real time: start the frozen clock there."""
    return FrozenClock(utc_now())


async def test_sts_method_is_inferred_from_assume_role_kwargs(
    aws_env: Any, moto_server: MotoServer, moto_clock: FrozenClock
) -> None:

    async with sts_session(moto_server.endpoint_url, moto_clock) as session:
        assert session.method == "sts"
        creds = await session.refreshable_credentials()
    assert creds.access_key.startswith("ASIA")
    assert creds.account_id == "123456789012"


async def test_assume_role_with_every_parameter(
    aws_env: Any, moto_server: MotoServer, moto_clock: FrozenClock
) -> None:
    params = {
        "RoleArn": ROLE,
        "RoleSessionName": "every-parameter",
        "PolicyArns": [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}],
        "Policy": '{"Version":"2012-10-17","Statement":[]}',
        "DurationSeconds": 900,
        "Tags": [{"Key": "team", "Value": "data"}],
        "TransitiveTagKeys": ["team"],
        "ExternalId": "ext-1",
        "SerialNumber": MFA_DEVICE,
        "SourceIdentity": "alice",
    }
    async with sts_session(
        moto_server.endpoint_url,
        moto_clock,
        assume_role_kwargs=params,
        mfa_token_provider=lambda: "123456",
    ) as session:
        identity = await session.whoami()
    assert identity.arn.endswith(":assumed-role/reader/every-parameter")


async def test_role_session_name_defaults_to_a_random_aiorefresh_name(
    aws_env: Any, moto_clock: FrozenClock
) -> None:
    session = RefreshableSession(assume_role_kwargs={"RoleArn": ROLE}, clock=moto_clock)
    assert session.method == "sts"
    name = session.assume_role_kwargs["RoleSessionName"]
    assert name.startswith("aiorefresh-")
    assert len(name) == len("aiorefresh-") + 8


async def test_whoami_is_the_assumed_role_not_the_source(
    aws_env: Any, moto_server: MotoServer, moto_clock: FrozenClock
) -> None:
    async with sts_session(
        moto_server.endpoint_url,
        moto_clock,
        assume_role_kwargs={"RoleArn": ROLE, "RoleSessionName": "whoami"},
    ) as session:
        identity = await session.whoami()
    assert identity.arn == "arn:aws:sts::123456789012:assumed-role/reader/whoami"
    assert identity.account_id == "123456789012"


async def test_session_sts_client_signs_as_the_role(
    aws_env: Any, moto_server: MotoServer, moto_clock: FrozenClock
) -> None:
    async with (
        sts_session(
            moto_server.endpoint_url,
            moto_clock,
            assume_role_kwargs={"RoleArn": ROLE, "RoleSessionName": "signer"},
        ) as session,
        session.client("sts") as sts,
    ):
        answer = await sts.get_caller_identity()
    assert ":assumed-role/reader/signer" in answer["Arn"]


async def test_three_role_chain_assumes_each_role_in_turn(
    aws_env: Any, moto_server: MotoServer, moto_clock: FrozenClock
) -> None:
    async with sts_session(moto_server.endpoint_url, moto_clock) as a:
        b = await a.assume_role(ROLE_B, RoleSessionName="bee")
        c = await b.assume_role(ROLE_C, RoleSessionName="sea")
        assert (await c.whoami()).arn.endswith(":assumed-role/admin/sea")
    assert b.closed
    assert c.closed


async def test_chained_duration_is_capped_at_one_hour(
    aws_env: Any, moto_server: MotoServer, moto_clock: FrozenClock
) -> None:
    async with sts_session(moto_server.endpoint_url, moto_clock) as a:
        with pytest.warns(UserWarning, match="capped at 3600"):
            b = await a.assume_role(ROLE_B, DurationSeconds=7200)
        assert b.assume_role_kwargs["DurationSeconds"] == 3600


async def test_session_token_method(
    aws_env: Any, moto_server: MotoServer, moto_clock: FrozenClock
) -> None:
    async with RefreshableSession(
        session_token_kwargs={"DurationSeconds": 900},
        sts_client_kwargs={"endpoint_url": moto_server.endpoint_url},
        clock=moto_clock,
    ) as session:
        assert session.method == "session_token"
        creds = await session.refreshable_credentials()
    assert creds.token


async def test_web_identity_rereads_its_token_file(
    aws_env: Any, moto_server: MotoServer, moto_clock: FrozenClock, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("eyJ.first.token")
    async with RefreshableSession(
        web_identity_kwargs={"RoleArn": ROLE, "RoleSessionName": "irsa"},
        web_identity_token=str(token_file),
        sts_client_kwargs={"endpoint_url": moto_server.endpoint_url},
        clock=moto_clock,
    ) as session:
        assert session.method == "web_identity"
        first = await session.refreshable_credentials()
        token_file.write_text("eyJ.second.token")
        second = await session.refresh()
    assert first.access_key != second.access_key


# -- validation before any network call ------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"RoleArn": "reader"}, ConfigurationError, "RoleArn.*must look like"),
        ({"RoleArn": "arn:aws:iam::12345:role/x"}, ConfigurationError, "12-digit"),
        ({}, ValidationError, "RoleArn'. is required"),
        ({"RoleArn": ROLE, "DurationSeconds": 60}, ConfigurationError, "between 900 and 43200"),
        ({"RoleArn": ROLE, "DurationSeconds": "3600"}, ValidationError, "must be int"),
        ({"RoleArn": ROLE, "DurationSeconds": True}, ValidationError, "must be int"),
        ({"RoleArn": ROLE, "Colour": "blue"}, ValidationError, "unknown key.*Colour"),
        ({"RoleArn": ROLE, "TokenCode": "12345"}, ConfigurationError, "TokenCode"),
        ({"RoleArn": ROLE, "RoleSessionName": "a b"}, ConfigurationError, "RoleSessionName"),
        ({"RoleArn": ROLE, "Tags": [{"Key": "x"}]}, ValidationError, "Tags"),
    ],
)
def test_bad_assume_role_kwargs_fail_in_the_constructor(
    kwargs: dict[str, Any], error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        RefreshableSession(method="sts", assume_role_kwargs=kwargs)


def test_assume_role_kwargs_must_be_a_dict() -> None:
    with pytest.raises(ValidationError, match="assume_role_kwargs must be a dict"):
        RefreshableSession(method="sts", assume_role_kwargs=[ROLE])  # type: ignore[arg-type]


def test_unknown_sts_client_kwargs_are_named() -> None:
    with pytest.raises(ValidationError, match="sts_client_kwargs has unknown key.*colour"):
        RefreshableSession(assume_role_kwargs={"RoleArn": ROLE}, sts_client_kwargs={"colour": 1})


def test_mfa_provider_without_serial_number_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="SerialNumber"):
        RefreshableSession(assume_role_kwargs={"RoleArn": ROLE}, mfa_token_provider=lambda: "1")


def test_static_token_code_next_to_a_provider_warns_and_the_provider_wins() -> None:
    with pytest.warns(UserWarning, match="TokenCode.*ignored"):
        RefreshableSession(
            assume_role_kwargs={"RoleArn": ROLE, "SerialNumber": MFA_DEVICE, "TokenCode": "111111"},
            mfa_token_provider=lambda: "222222",
        )


def test_refused_mfa_command_options() -> None:
    with pytest.raises(ConfigurationError, match="shell"):
        RefreshableSession(
            assume_role_kwargs={"RoleArn": ROLE, "SerialNumber": MFA_DEVICE},
            mfa_token_provider=["ykman", "oath", "code"],
            mfa_token_provider_kwargs={"shell": True},
        )


def test_web_identity_needs_a_token_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    with pytest.raises(ConfigurationError, match="web_identity_token is required"):
        RefreshableSession(web_identity_kwargs={"RoleArn": ROLE})


def test_session_token_duration_range() -> None:
    with pytest.raises(ConfigurationError, match="between 900 and 129600"):
        RefreshableSession(session_token_kwargs={"DurationSeconds": 200000})


# -- the stand-in: faults, MFA ---------------------------------------------------------------


def standin_session(sts: STSStandIn, clock: FrozenClock, **kwargs: Any) -> RefreshableSession:
    kwargs.setdefault("assume_role_kwargs", {"RoleArn": ROLE})
    return RefreshableSession(
        sts_client_kwargs={
            "endpoint_url": sts.endpoint_url,
            "region_name": "us-east-1",
            "config": _no_retries(),
        },
        clock=clock,
        region_name="us-east-1",
        default_client_kwargs={"endpoint_url": sts.endpoint_url},
        **kwargs,
    )


async def test_access_denied_is_non_recoverable_with_code_and_request_id(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    sts_standin.script("access_denied")
    async with standin_session(sts_standin, frozen_clock) as session:
        with pytest.raises(NonRecoverableCredentialError) as info:
            await session.refreshable_credentials()
    assert info.value.code == "AccessDenied"
    assert info.value.request_id


async def test_invalid_client_token_is_non_recoverable(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    sts_standin.script("invalid_token")
    async with standin_session(sts_standin, frozen_clock) as session:
        with pytest.raises(NonRecoverableCredentialError, match="InvalidClientTokenId"):
            await session.refreshable_credentials()


async def test_rejected_mfa_code_is_a_non_recoverable_mfa_error(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    sts_standin.script("bad_mfa")
    async with standin_session(
        sts_standin,
        frozen_clock,
        assume_role_kwargs={"RoleArn": ROLE, "SerialNumber": MFA_DEVICE},
        mfa_token_provider=lambda: "654321",
    ) as session:
        with pytest.raises(MFAError) as info:
            await session.refreshable_credentials()
    assert isinstance(info.value, NonRecoverableCredentialError)
    assert "654321" not in str(info.value)


async def test_throttling_in_the_mandatory_window_serves_still_valid_credentials(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    async with standin_session(sts_standin, frozen_clock) as session:
        first = await session.refreshable_credentials()
        frozen_clock.set(first.expiry_time - timedelta(seconds=30))
        sts_standin.script("throttle")
        again = await session.refreshable_credentials()
    assert again == first


async def test_server_error_on_expired_credentials_raises(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    sts_standin.script("server_error")
    session = RefreshableSession(
        assume_role_kwargs={"RoleArn": ROLE},
        sts_client_kwargs={
            "endpoint_url": sts_standin.endpoint_url,
            "config": _no_retries(),
        },
        clock=frozen_clock,
    )
    async with session:
        with pytest.raises(CredentialRefreshError, match="InternalFailure"):
            await session.refreshable_credentials()


def _no_retries() -> Any:
    from aiobotocore.config import AioConfig

    return AioConfig(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=2)


async def test_malformed_answer_is_non_recoverable(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    sts_standin.script("malformed")
    async with standin_session(sts_standin, frozen_clock) as session:
        with pytest.raises(NonRecoverableCredentialError, match="not a service document"):
            await session.refreshable_credentials()


async def test_an_html_page_answered_200_is_as_non_recoverable_as_broken_xml(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    from aiorefresh.testing import Malformed

    sts_standin.script(Malformed(body="<html><body>captive portal</body></html>", status=200))
    async with standin_session(sts_standin, frozen_clock) as session:
        with pytest.raises(NonRecoverableCredentialError):
            await session.refreshable_credentials()


async def test_parameters_botocore_refuses_are_non_recoverable_and_not_echoed(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    session = standin_session(
        sts_standin, frozen_clock, assume_role_kwargs={"RoleArn": ROLE, "ExternalId": "x"}
    )
    async with session:
        with pytest.raises(NonRecoverableCredentialError, match="botocore refused") as info:
            await session.refreshable_credentials()
    assert "ParamValidationError" in str(info.value)
    assert sts_standin.count() == 0


async def test_a_hanging_mfa_prompt_is_bounded_by_refresh_timeout(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    async def never_answers() -> str:
        await asyncio.Event().wait()
        return "123456"

    session = standin_session(
        sts_standin,
        frozen_clock,
        assume_role_kwargs={"RoleArn": ROLE, "SerialNumber": MFA_DEVICE},
        mfa_token_provider=never_answers,
        refresh_timeout=0.2,
    )
    async with session:
        with pytest.raises(CredentialRefreshError, match="timed out after 0.2 s"):
            await session.refreshable_credentials()


async def test_expired_web_identity_token_is_recoverable(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    from aiorefresh.testing import Fail

    async with RefreshableSession(
        web_identity_kwargs={"RoleArn": ROLE},
        web_identity_token=lambda: "eyJ.rotating.token",
        sts_client_kwargs={"endpoint_url": sts_standin.endpoint_url, "config": _no_retries()},
        clock=frozen_clock,
    ) as session:
        first = await session.refreshable_credentials()
        frozen_clock.set(first.expiry_time - timedelta(seconds=30))
        sts_standin.script(Fail("ExpiredTokenException", "Token expired", 400))
        assert await session.refreshable_credentials() == first  # static stability


async def test_children_inherit_engine_options(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    events: list[Any] = []
    async with standin_session(
        sts_standin, frozen_clock, on_refresh=events.append, max_clients=3
    ) as parent:
        child = await parent.assume_role(ROLE_B)
        await child.refreshable_credentials()
        assert "max_clients=3" in repr(child.pool)
    assert len(events) == 2  # the parent's fetch and the child's


async def test_parent_keeps_and_closes_children_nobody_else_holds(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    import gc

    async with standin_session(sts_standin, frozen_clock) as parent:
        child = await parent.assume_role(ROLE_B)
        async with child.client("sts") as sts:
            await sts.get_caller_identity()
        del child, sts
        gc.collect()
        assert len(parent._children) == 1
    assert not parent._children


async def test_already_expired_answer_is_a_refresh_error(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    sts_standin.script("expired")
    async with standin_session(sts_standin, frozen_clock) as session:
        with pytest.raises(CredentialRefreshError, match="already expired"):
            await session.refreshable_credentials()


async def test_hanging_sts_is_cut_by_refresh_timeout(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    sts_standin.script("hang")
    async with standin_session(sts_standin, frozen_clock, refresh_timeout=0.5) as session:
        with pytest.raises(CredentialRefreshError, match="timed out"):
            await session.refreshable_credentials()


async def test_many_callers_one_assume_role(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    async with standin_session(sts_standin, frozen_clock) as session:
        results = await asyncio.gather(*(session.refreshable_credentials() for _ in range(2000)))
    assert len({r.access_key for r in results}) == 1
    assert sts_standin.count("AssumeRole") == 1


async def test_mfa_provider_is_asked_on_every_refresh(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    codes = iter(["111111", "222222", "333333"])
    async with standin_session(
        sts_standin,
        frozen_clock,
        assume_role_kwargs={"RoleArn": ROLE, "SerialNumber": MFA_DEVICE},
        mfa_token_provider=lambda: next(codes),
    ) as session:
        for _ in range(3):
            creds = await session.refreshable_credentials()
            frozen_clock.set(creds.expiry_time)
    sent = [r.params.get("TokenCode") for r in sts_standin.requests]
    assert sent == ["111111", "222222", "333333"]


async def test_mfa_command_runs_as_a_real_subprocess(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    async with standin_session(
        sts_standin,
        frozen_clock,
        assume_role_kwargs={"RoleArn": ROLE, "SerialNumber": MFA_DEVICE},
        mfa_token_provider=[sys.executable, "-c", "print('your code: 123456')"],
    ) as session:
        await session.refreshable_credentials()
    assert sts_standin.requests[0].params["TokenCode"] == "123456"


async def test_static_token_code_serves_the_first_call_only(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    async with standin_session(
        sts_standin,
        frozen_clock,
        assume_role_kwargs={"RoleArn": ROLE, "SerialNumber": MFA_DEVICE, "TokenCode": "123456"},
    ) as session:
        creds = await session.refreshable_credentials()
        frozen_clock.set(creds.expiry_time)
        with pytest.raises(MFAError, match="mfa_token_provider"):
            await session.refreshable_credentials()
    assert sts_standin.count("AssumeRole") == 1


async def test_session_token_with_mfa_against_the_stand_in(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    async def code() -> str:
        return "987654"

    async with RefreshableSession(
        session_token_kwargs={"SerialNumber": MFA_DEVICE, "DurationSeconds": 900},
        mfa_token_provider=code,
        sts_client_kwargs={"endpoint_url": sts_standin.endpoint_url},
        clock=frozen_clock,
    ) as session:
        await session.refreshable_credentials()
    assert sts_standin.requests[0].params["TokenCode"] == "987654"


async def test_web_identity_is_called_unsigned_with_a_callable_token(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    async with RefreshableSession(
        web_identity_kwargs={"RoleArn": ROLE},
        web_identity_token=lambda: "eyJ.callable.token",
        sts_client_kwargs={"endpoint_url": sts_standin.endpoint_url},
        clock=frozen_clock,
    ) as session:
        await session.refreshable_credentials()
    request = sts_standin.requests[0]
    assert request.action == "AssumeRoleWithWebIdentity"
    assert request.access_key is None


async def test_custom_lifetime_from_the_stand_in_sets_the_windows(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    sts_standin.script(Succeed(lifetime=timedelta(minutes=15)))
    async with standin_session(sts_standin, frozen_clock) as session:
        await session.refreshable_credentials()
        stats = session.refresh_stats()
    assert stats.next_due == frozen_clock() + timedelta(minutes=10)


async def test_private_sts_client_is_reused_and_closed(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    session = standin_session(sts_standin, frozen_clock)
    async with session:
        await session.refreshable_credentials()
        private = session.fetcher._client  # type: ignore[attr-defined]
        client = await private.get()
        await session.refresh()
        assert await private.get() is client
        async with session.client("sts") as public:
            assert public is not client
    assert private._clients.values() == []


async def test_no_warnings_from_a_full_cycle(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with standin_session(sts_standin, frozen_clock) as session:
            await session.whoami()


async def test_refresh_cycles_on_the_injected_clock(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    async with standin_session(sts_standin, frozen_clock) as session:
        seen = set()
        for _ in range(5):
            creds = await session.refreshable_credentials()
            seen.add(creds.access_key)
            frozen_clock.set(creds.expiry_time + timedelta(seconds=1))
        assert len(seen) == 5
        assert session.refresh_stats().refreshes == 5
    assert sts_standin.count("AssumeRole") == 5


async def test_three_role_chain_keeps_refreshing(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    async with standin_session(sts_standin, frozen_clock) as a:
        b = await a.assume_role(ROLE_B, RoleSessionName="bee")
        c = await b.assume_role(ROLE_C, RoleSessionName="sea")
        for _cycle in range(3):
            creds = await c.refreshable_credentials()
            assert (await c.whoami()).arn.endswith(":assumed-role/admin/sea")
            frozen_clock.set(creds.expiry_time + timedelta(seconds=1))  # every link expires
        assert a.refresh_stats().refreshes == 3
        assert b.refresh_stats().refreshes == 3
        assert c.refresh_stats().refreshes == 3
        # the stand-in refuses expired signing keys, so each link signed with fresh ones
        assert sts_standin.count("AssumeRole") == 9


async def test_a_link_whose_keys_expired_early_is_refreshed_and_the_call_retried(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    async with standin_session(sts_standin, frozen_clock) as a:
        b = await a.assume_role(ROLE_B, RoleSessionName="bee")
        first = await b.refreshable_credentials()
        a_keys = {r.access_key for r in sts_standin.requests[1:]}
        sts_standin.script("expired_token", action="AssumeRole")  # a's keys, refused early
        second = await b.refresh(force=True)
        assert second.access_key != first.access_key
        assert a.refresh_stats().refreshes == 2
        calls = [r for r in sts_standin.requests if r.action == "AssumeRole"]
        # a, b, b refused (signed with a's first keys), a anew, b again (signed with a's new keys)
        assert len(calls) == 5
        assert calls[2].access_key in a_keys
        assert calls[4].access_key not in a_keys


async def test_concurrent_whoami_sends_one_get_caller_identity(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    async with standin_session(sts_standin, frozen_clock) as session:
        identities = await asyncio.gather(*(session.whoami() for _ in range(200)))
    assert len({i.arn for i in identities}) == 1
    assert sts_standin.count("GetCallerIdentity") == 1


async def test_explicit_source_keys_sign_the_assume_role_call(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    async with standin_session(
        sts_standin,
        frozen_clock,
        aws_access_key_id="AKIDSOURCEKEY",
        aws_secret_access_key="source-secret",
    ) as session:
        await session.refreshable_credentials()
    assert sts_standin.requests[0].access_key == "AKIDSOURCEKEY"


async def test_source_keys_in_sts_client_kwargs_sign_the_assume_role_call(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    async with RefreshableSession(
        assume_role_kwargs={"RoleArn": ROLE},
        sts_client_kwargs={
            "endpoint_url": sts_standin.endpoint_url,
            "aws_access_key_id": "AKIDCLIENTKEY",
            "aws_secret_access_key": "client-secret",
        },
        clock=frozen_clock,
    ) as session:
        await session.refreshable_credentials()
    assert sts_standin.requests[0].access_key == "AKIDCLIENTKEY"


async def test_secrets_never_reach_logs_or_errors(
    aws_env: Any,
    sts_standin: STSStandIn,
    frozen_clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    caplog.set_level(logging.DEBUG, logger="aiorefresh")
    codes = iter(["314159", "271828", "161803"])
    async with standin_session(
        sts_standin,
        frozen_clock,
        assume_role_kwargs={"RoleArn": ROLE, "SerialNumber": MFA_DEVICE},
        mfa_token_provider=lambda: next(codes),
    ) as session:
        creds = await session.refreshable_credentials()
        frozen_clock.set(creds.expiry_time - timedelta(seconds=30))
        sts_standin.script("throttle")
        await session.refreshable_credentials()
        frozen_clock.set(creds.expiry_time + timedelta(seconds=1))
        sts_standin.script("bad_mfa")
        with pytest.raises(MFAError) as info:
            await session.refreshable_credentials()
    assert creds.token is not None
    for secret in (creds.secret_key, creds.token, "314159", "271828", "161803"):
        assert secret not in caplog.text
        assert secret not in str(info.value)
        assert secret not in repr(session) + repr(creds) + repr(session.refresh_stats())
