"""STSStandIn fails the way it is told: each scripted outcome as botocore sees it, how a script is
queued and taken, and the outcome vocabulary it shares with the other stand-ins."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiobotocore.config import AioConfig
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.parsers import ResponseParserError

from _sts_standin_helpers import ROLE_ARN, assume_role, client_for, post
from aiorefresh.errors import ConfigurationError, ValidationError
from aiorefresh.testing import OUTCOMES, Disconnect, FrozenClock, Respond, STSStandIn
from aiorefresh.testing._sts import Delay, Fail, Hang, Malformed

pytestmark = pytest.mark.usefixtures("aws_env")


# ------------------------------------------------------------------- scripted faults


@pytest.mark.parametrize(
    ("outcome", "status", "code"),
    [
        ("access_denied", 403, "AccessDenied"),
        ("bad_mfa", 403, "AccessDenied"),
        ("invalid_token", 403, "InvalidClientTokenId"),
        ("expired_token", 400, "ExpiredToken"),
        ("throttle", 400, "Throttling"),
        ("server_error", 500, "InternalFailure"),
    ],
)
async def test_scripted_failure_reaches_botocore_as_its_error_code(
    sts: STSStandIn, outcome: str, status: int, code: str
) -> None:
    sts.script(outcome)

    with pytest.raises(ClientError) as caught:
        await assume_role(sts)

    error = caught.value.response
    assert error["Error"]["Code"] == code
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status
    assert error["ResponseMetadata"]["RequestId"]


async def test_bad_mfa_carries_the_sts_message(sts: STSStandIn) -> None:
    sts.script("bad_mfa")

    with pytest.raises(ClientError, match="invalid MFA one time pass code"):
        await assume_role(sts)


async def test_custom_failure_is_answered_as_given(sts: STSStandIn) -> None:
    sts.script(Fail("RegionDisabledException", "STS is not activated in this region", 403))

    with pytest.raises(ClientError) as caught:
        await assume_role(sts)

    assert caught.value.response["Error"]["Code"] == "RegionDisabledException"


async def test_malformed_answer_is_a_botocore_parse_error(sts: STSStandIn) -> None:
    sts.script("malformed")

    with pytest.raises(ResponseParserError):
        await assume_role(sts)


async def test_expired_outcome_issues_credentials_already_expired(
    sts: STSStandIn, frozen_clock: FrozenClock
) -> None:
    sts.script("expired")

    answer = await assume_role(sts)

    assert answer["Credentials"]["Expiration"] < frozen_clock()


async def test_hang_makes_the_client_time_out(sts: STSStandIn) -> None:
    sts.script("hang")
    config = AioConfig(read_timeout=0.5, retries={"max_attempts": 0})

    async with client_for(sts, config=config) as client:
        with pytest.raises(ReadTimeoutError):
            await client.get_caller_identity()

    assert sts.count("GetCallerIdentity") == 1


async def test_delay_answers_with_its_then_outcome(sts: STSStandIn) -> None:
    sts.script(Delay(0.05, then="throttle"))

    with pytest.raises(ClientError, match="Throttling"):
        await assume_role(sts)


async def test_delay_holds_the_answer_past_a_shorter_client_timeout(sts: STSStandIn) -> None:
    sts.script(Delay(60, then="ok"))
    config = AioConfig(read_timeout=0.3, retries={"max_attempts": 0})

    async with client_for(sts, config=config) as client:
        with pytest.raises(ReadTimeoutError):
            await client.get_caller_identity()


async def test_botocore_retries_a_throttle_and_both_calls_are_counted(sts: STSStandIn) -> None:
    sts.script("throttle")
    config = AioConfig(retries={"max_attempts": 2, "mode": "standard"})

    async with client_for(sts, config=config) as client:
        answer = await client.get_caller_identity()

    assert answer["Account"] == "123456789012"
    assert sts.count("GetCallerIdentity") == 2
    assert [type(r.outcome).__name__ for r in sts.requests] == ["Fail", "Succeed"]


# ------------------------------------------------------------------------- scripting


async def test_an_empty_script_succeeds(sts: STSStandIn) -> None:
    assert (await assume_role(sts))["Credentials"]
    assert sts.count() == 1


async def test_script_for_one_action_leaves_other_actions_alone(sts: STSStandIn) -> None:
    sts.script("access_denied", action="AssumeRole")

    async with client_for(sts) as client:
        await client.get_caller_identity()
        with pytest.raises(ClientError, match="AccessDenied"):
            await client.assume_role(RoleArn=ROLE_ARN, RoleSessionName="ci")
        await client.assume_role(RoleArn=ROLE_ARN, RoleSessionName="ci")

    assert sts.count("AssumeRole") == 2
    assert sts.count("GetCallerIdentity") == 1
    assert sts.count() == 3


async def test_the_action_queue_comes_before_the_any_action_queue(sts: STSStandIn) -> None:
    sts.script("throttle")
    sts.script("access_denied", action="AssumeRole")

    with pytest.raises(ClientError, match="AccessDenied"):
        await assume_role(sts)
    with pytest.raises(ClientError, match="Throttling"):
        await assume_role(sts)
    assert (await assume_role(sts))["Credentials"]


async def test_outcomes_are_taken_in_order(sts: STSStandIn) -> None:
    sts.script("server_error", "throttle", "ok")

    with pytest.raises(ClientError, match="InternalFailure"):
        await assume_role(sts)
    with pytest.raises(ClientError, match="Throttling"):
        await assume_role(sts)
    assert (await assume_role(sts))["Credentials"]


async def test_reset_forgets_the_script_and_the_requests(sts: STSStandIn) -> None:
    sts.script("access_denied", "access_denied")
    with pytest.raises(ClientError):
        await assume_role(sts)
    sts.reset()

    assert (await assume_role(sts))["Credentials"]
    assert sts.count() == 1


def test_script_refuses_an_unknown_outcome() -> None:
    with pytest.raises(ConfigurationError, match="'throttled'"):
        STSStandIn().script("throttled")


def test_script_refuses_an_outcome_of_the_wrong_type() -> None:
    with pytest.raises(ValidationError, match="int"):
        STSStandIn().script(403)  # type: ignore[arg-type]


def test_script_refuses_an_unknown_action() -> None:
    with pytest.raises(ConfigurationError, match="GetFederationToken"):
        STSStandIn().script("ok", action="GetFederationToken")


# ------------------------------------------------------------ the shared vocabulary


async def test_disconnect_drops_the_connection_without_an_answer(sts: STSStandIn) -> None:
    sts.script(Disconnect())

    with pytest.raises(aiohttp.ClientError):
        await post(sts)
    assert sts.count() == 1


def test_the_disconnect_shortcut_is_the_disconnect_outcome() -> None:
    assert OUTCOMES["disconnect"] == Disconnect()


async def test_respond_answers_exactly_the_given_status_body_and_headers(sts: STSStandIn) -> None:
    sts.script(Respond(502, "<html>Bad Gateway</html>", headers={"Retry-After": "3"}))

    async with (
        aiohttp.ClientSession() as http,
        http.post(sts.endpoint_url, data={"Action": "AssumeRole"}) as response,
    ):
        body = await response.text()

    assert (response.status, body) == (502, "<html>Bad Gateway</html>")
    assert response.headers["Content-Type"] == "text/html"
    assert response.headers["Retry-After"] == "3"


async def test_malformed_with_a_body_answers_that_body(sts: STSStandIn) -> None:
    sts.script(Malformed("<nope/>", status=500))

    assert await post(sts) == (500, "<nope/>")


async def test_a_delayed_shortcut_is_recorded_as_the_outcome_it_names(sts: STSStandIn) -> None:
    sts.script(Delay(0, then="throttle"))

    await post(sts)

    assert sts.requests[0].outcome == Delay(0, OUTCOMES["throttle"])


async def test_a_delay_can_end_in_a_disconnect(sts: STSStandIn) -> None:
    sts.script(Delay(0, then=Disconnect()))

    with pytest.raises(aiohttp.ClientError):
        await post(sts)


def test_delay_refuses_an_unknown_shortcut() -> None:
    with pytest.raises(ConfigurationError, match="'nope'"):
        Delay(1, then="nope")


def test_delay_refuses_to_end_in_a_hang() -> None:
    with pytest.raises(ConfigurationError, match="Delay"):
        Delay(1, then=Hang())  # type: ignore[arg-type]


def test_delay_refuses_a_negative_wait() -> None:
    with pytest.raises(ConfigurationError, match="seconds"):
        Delay(-1)


def test_fail_refuses_a_status_that_is_not_http() -> None:
    with pytest.raises(ConfigurationError, match="status"):
        Fail("Throttling", "Rate exceeded", 42)


async def test_outcomes_are_each_taken_once_by_many_concurrent_requests(
    frozen_clock: FrozenClock,
) -> None:
    codes = [f"Scripted{n:03d}" for n in range(100)]
    with STSStandIn(clock=frozen_clock).serve_in_thread() as sts:
        sts.script(*(Fail(code, "scripted") for code in codes))

        answers = await asyncio.gather(*(post(sts) for _ in codes))

    seen = sorted(body.split("<Code>")[1].split("</Code>")[0] for _, body in answers)
    assert seen == codes
