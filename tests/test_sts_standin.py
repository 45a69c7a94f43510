"""STSStandIn answers real aiobotocore clients like STS does: the credentials and identities it
issues, and the requests real STS would refuse."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import pytest
from botocore.exceptions import ClientError

from _sts_standin_helpers import ROLE_ARN, USER_KEY, assume_role, client_for
from aiorefresh.testing import FrozenClock, STSStandIn
from aiorefresh.testing._sts import Succeed

pytestmark = pytest.mark.usefixtures("aws_env")


# ------------------------------------------------------------------------ happy path


async def test_assume_role_issues_credentials_for_the_requested_duration(
    sts: STSStandIn, frozen_clock: FrozenClock
) -> None:
    answer = await assume_role(sts, DurationSeconds=900)

    credentials = answer["Credentials"]
    assert credentials["AccessKeyId"].startswith("ASIA")
    assert len(credentials["AccessKeyId"]) == 20
    assert credentials["SecretAccessKey"]
    assert credentials["SessionToken"]
    assert credentials["Expiration"] == frozen_clock() + timedelta(seconds=900)
    assert answer["AssumedRoleUser"]["Arn"] == (
        "arn:aws:sts::210987654321:assumed-role/Deployer/ci"
    )
    assert answer["AssumedRoleUser"]["AssumedRoleId"].startswith("AROA")
    assert answer["AssumedRoleUser"]["AssumedRoleId"].endswith(":ci")


async def test_assume_role_defaults_to_one_hour_like_sts(
    sts: STSStandIn, frozen_clock: FrozenClock
) -> None:
    answer = await assume_role(sts)

    assert answer["Credentials"]["Expiration"] == frozen_clock() + timedelta(hours=1)


async def test_lifetime_option_overrides_the_requested_duration(frozen_clock: FrozenClock) -> None:
    async with STSStandIn(clock=frozen_clock, lifetime=timedelta(minutes=15)) as sts:
        answer = await assume_role(sts, DurationSeconds=3600)

    assert answer["Credentials"]["Expiration"] == frozen_clock() + timedelta(minutes=15)


async def test_succeed_outcome_sets_the_lifetime_of_one_answer(
    sts: STSStandIn, frozen_clock: FrozenClock
) -> None:
    sts.script(Succeed(lifetime=timedelta(minutes=20)))

    first = await assume_role(sts)
    second = await assume_role(sts)

    assert first["Credentials"]["Expiration"] == frozen_clock() + timedelta(minutes=20)
    assert second["Credentials"]["Expiration"] == frozen_clock() + timedelta(hours=1)


async def test_every_call_issues_new_credentials(sts: STSStandIn) -> None:
    first = await assume_role(sts)
    second = await assume_role(sts)

    assert first["Credentials"]["AccessKeyId"] != second["Credentials"]["AccessKeyId"]
    assert first["Credentials"]["SecretAccessKey"] != second["Credentials"]["SecretAccessKey"]
    assert [c.access_key for c in sts.issued] == [
        first["Credentials"]["AccessKeyId"],
        second["Credentials"]["AccessKeyId"],
    ]


async def test_get_session_token_issues_twelve_hour_credentials_by_default(
    sts: STSStandIn, frozen_clock: FrozenClock
) -> None:
    async with client_for(sts) as client:
        answer = await client.get_session_token(
            SerialNumber="arn:aws:iam::123456789012:mfa/me", TokenCode="123456"
        )

    assert answer["Credentials"]["Expiration"] == frozen_clock() + timedelta(hours=12)
    assert sts.requests[-1].params["TokenCode"] == "123456"


async def test_assume_role_with_web_identity_is_answered_unsigned(sts: STSStandIn) -> None:
    async with client_for(sts) as client:
        answer = await client.assume_role_with_web_identity(
            RoleArn=ROLE_ARN, RoleSessionName="pod", WebIdentityToken="eyJhbGciOi.jwt.sig"
        )

    assert answer["AssumedRoleUser"]["Arn"].endswith(":assumed-role/Deployer/pod")
    assert answer["Credentials"]["AccessKeyId"].startswith("ASIA")
    assert sts.requests[-1].access_key is None


async def test_caller_identity_of_unknown_keys_is_the_fixed_user(sts: STSStandIn) -> None:
    async with client_for(sts) as client:
        answer = await client.get_caller_identity()

    assert answer["Arn"] == "arn:aws:iam::123456789012:user/sts-standin"
    assert answer["Account"] == "123456789012"
    assert sts.requests[-1].access_key == USER_KEY


async def test_caller_identity_of_assumed_keys_is_the_assumed_role(sts: STSStandIn) -> None:
    issued = (await assume_role(sts))["Credentials"]

    async with client_for(
        sts,
        access_key=issued["AccessKeyId"],
        secret_key=issued["SecretAccessKey"],
        token=issued["SessionToken"],
    ) as client:
        answer = await client.get_caller_identity()

    assert answer["Arn"] == "arn:aws:sts::210987654321:assumed-role/Deployer/ci"
    assert answer["Account"] == "210987654321"
    assert answer["UserId"].endswith(":ci")


async def test_caller_identity_of_session_token_keys_is_the_user(sts: STSStandIn) -> None:
    async with client_for(sts) as client:
        issued = (await client.get_session_token())["Credentials"]
    async with client_for(
        sts,
        access_key=issued["AccessKeyId"],
        secret_key=issued["SecretAccessKey"],
        token=issued["SessionToken"],
    ) as client:
        answer = await client.get_caller_identity()

    assert answer["Arn"] == sts.user.arn


# ---------------------------------------------------------------- realistic refusals


async def test_issued_keys_without_their_session_token_are_invalid(sts: STSStandIn) -> None:
    issued = (await assume_role(sts))["Credentials"]

    async with client_for(
        sts, access_key=issued["AccessKeyId"], secret_key=issued["SecretAccessKey"]
    ) as client:
        with pytest.raises(ClientError) as caught:
            await client.get_caller_identity()

    assert caught.value.response["Error"]["Code"] == "InvalidClientTokenId"


async def test_issued_keys_are_refused_once_the_clock_passes_their_expiry(
    sts: STSStandIn, frozen_clock: FrozenClock
) -> None:
    issued = (await assume_role(sts, DurationSeconds=900))["Credentials"]
    frozen_clock.advance(900)

    async with client_for(
        sts,
        access_key=issued["AccessKeyId"],
        secret_key=issued["SecretAccessKey"],
        token=issued["SessionToken"],
    ) as client:
        with pytest.raises(ClientError) as caught:
            await client.get_caller_identity()

    assert caught.value.response["Error"]["Code"] == "ExpiredToken"


async def test_get_session_token_with_session_credentials_is_denied(sts: STSStandIn) -> None:
    issued = (await assume_role(sts))["Credentials"]

    async with client_for(
        sts,
        access_key=issued["AccessKeyId"],
        secret_key=issued["SecretAccessKey"],
        token=issued["SessionToken"],
    ) as client:
        with pytest.raises(ClientError) as caught:
            await client.get_session_token()

    assert caught.value.response["Error"]["Code"] == "AccessDenied"


async def test_duration_above_the_sts_maximum_is_a_validation_error(sts: STSStandIn) -> None:
    with pytest.raises(ClientError) as caught:
        await assume_role(sts, DurationSeconds=43201)

    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "durationSeconds" in caught.value.response["Error"]["Message"]


async def test_an_mfa_code_used_again_within_the_window_is_rejected(
    sts: STSStandIn, frozen_clock: FrozenClock
) -> None:
    mfa = {"SerialNumber": "arn:aws:iam::123456789012:mfa/me", "TokenCode": "123456"}
    await assume_role(sts, **mfa)
    frozen_clock.advance(30)

    with pytest.raises(ClientError) as caught:
        await assume_role(sts, **mfa)

    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    assert "MultiFactorAuthentication failed" in caught.value.response["Error"]["Message"]


async def test_an_mfa_code_may_come_back_long_after(
    sts: STSStandIn, frozen_clock: FrozenClock
) -> None:
    mfa = {"SerialNumber": "arn:aws:iam::123456789012:mfa/me", "TokenCode": "123456"}
    await assume_role(sts, **mfa)
    frozen_clock.advance(3600)

    assert (await assume_role(sts, **mfa))["Credentials"]


async def test_unsigned_call_to_a_signed_action_is_refused(sts: STSStandIn) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            sts.endpoint_url, data={"Action": "GetCallerIdentity", "Version": "2011-06-15"}
        ) as response,
    ):
        body = await response.text()

    assert response.status == 403
    assert "<Code>MissingAuthenticationToken</Code>" in body


async def test_unknown_action_is_an_invalid_action(sts: STSStandIn) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(sts.endpoint_url, data={"Action": "GetFederationToken"}) as response,
    ):
        body = await response.text()

    assert response.status == 400
    assert "<Code>InvalidAction</Code>" in body
    assert sts.count("GetFederationToken") == 1
