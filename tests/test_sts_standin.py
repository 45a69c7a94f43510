"""STSStandIn answers real aiobotocore clients like STS does, and fails the way it is told."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import aiohttp
import anyio
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.parsers import ResponseParserError

from aiorefresh.errors import ConfigurationError, ValidationError
from aiorefresh.testing import (
    AWS_TEST_ENV,
    OUTCOMES,
    Disconnect,
    FrozenClock,
    Respond,
    STSStandIn,
)
from aiorefresh.testing._sts import Delay, Fail, Hang, Malformed, Succeed

pytestmark = pytest.mark.usefixtures("aws_env")

ROLE_ARN = "arn:aws:iam::210987654321:role/team/Deployer"
USER_KEY = AWS_TEST_ENV["AWS_ACCESS_KEY_ID"]
USER_SECRET = AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"]
NO_RETRIES = AioConfig(retries={"max_attempts": 0})


@pytest.fixture
async def sts(frozen_clock: FrozenClock) -> AsyncIterator[STSStandIn]:
    async with STSStandIn(clock=frozen_clock) as standin:
        yield standin


@asynccontextmanager
async def client_for(
    standin: STSStandIn,
    *,
    access_key: str = USER_KEY,
    secret_key: str = USER_SECRET,
    token: str | None = None,
    config: AioConfig = NO_RETRIES,
) -> AsyncIterator[Any]:
    """A real aiobotocore STS client pointed at the stand-in."""
    session = AioSession()
    async with session.create_client(
        "sts",
        region_name="us-east-1",
        endpoint_url=standin.endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=token,
        config=config,
    ) as client:
        yield client


async def post(standin: STSStandIn, action: str = "GetCallerIdentity") -> tuple[int, str]:
    """An unsigned raw POST: the status and body, whatever the stand-in answers."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(standin.endpoint_url, data={"Action": action}) as response,
    ):
        return response.status, await response.text()


async def assume_role(standin: STSStandIn, **params: Any) -> dict[str, Any]:
    async with client_for(standin) as client:
        answer: dict[str, Any] = await client.assume_role(
            RoleArn=ROLE_ARN, RoleSessionName="ci", **params
        )
        return answer


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


# ----------------------------------------------------------------------- recording


async def test_recorded_requests_keep_raw_params_but_mask_them_in_repr(sts: STSStandIn) -> None:
    await assume_role(sts, SerialNumber="arn:aws:iam::123456789012:mfa/me", TokenCode="555111")

    record = sts.requests[-1]
    assert record.action == "AssumeRole"
    assert record.params["TokenCode"] == "555111"
    assert record.params["RoleArn"] == ROLE_ARN
    assert record.access_key == USER_KEY
    assert "555111" not in repr(record)
    assert ROLE_ARN in repr(record)


async def test_recorded_request_repr_masks_the_session_token(sts: STSStandIn) -> None:
    issued = (await assume_role(sts))["Credentials"]
    async with client_for(
        sts,
        access_key=issued["AccessKeyId"],
        secret_key=issued["SecretAccessKey"],
        token=issued["SessionToken"],
    ) as client:
        await client.get_caller_identity()

    record = sts.requests[-1]
    assert record.session_token == issued["SessionToken"]
    assert issued["SessionToken"] not in repr(record)


async def test_wait_for_returns_once_the_requests_arrived(sts: STSStandIn) -> None:
    sts.script("hang")
    config = AioConfig(read_timeout=5, retries={"max_attempts": 0})

    async with client_for(sts, config=config) as client, anyio.create_task_group() as tg:
        tg.start_soon(client.get_caller_identity)
        with anyio.fail_after(5):
            await sts.wait_for(1, action="GetCallerIdentity")
        tg.cancel_scope.cancel()


# ----------------------------------------------------------------------- lifecycle


async def test_aclose_answers_a_hanging_request_with_a_503_and_leaves_no_tasks(
    frozen_clock: FrozenClock,
) -> None:
    sts = STSStandIn(clock=frozen_clock)
    await sts.start()
    sts.script("hang")
    config = AioConfig(read_timeout=30, retries={"max_attempts": 0})
    outcome: list[BaseException] = []

    async def call(client: Any) -> None:
        try:
            await client.get_caller_identity()
        except Exception as exc:
            outcome.append(exc)

    async with client_for(sts, config=config) as client, anyio.create_task_group() as tg:
        tg.start_soon(call, client)
        with anyio.fail_after(5):
            await sts.wait_for(1)
        await sts.aclose()

    (error,) = outcome
    assert isinstance(error, ClientError)
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_endpoint_url_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = STSStandIn().endpoint_url


async def test_a_closed_stand_in_cannot_restart() -> None:
    sts = STSStandIn()
    async with sts:
        assert sts.endpoint_url.startswith("http://127.0.0.1:")

    with pytest.raises(RuntimeError, match="closed"):
        await sts.start()


def test_lifetime_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="lifetime"):
        STSStandIn(lifetime=timedelta(0))


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


# ------------------------------------------------------------- the frame: lifecycle


def test_stand_in_refuses_to_listen_beyond_loopback() -> None:
    with pytest.raises(ConfigurationError, match="loopback"):
        STSStandIn(host="0.0.0.0")


def test_stand_in_refuses_a_host_name() -> None:
    with pytest.raises(ConfigurationError, match="loopback"):
        STSStandIn(host="example.com")


async def test_stand_in_listens_on_the_loopback_address(sts: STSStandIn) -> None:
    assert sts.endpoint_url.startswith("http://127.0.0.1:")
    assert sts.host == "127.0.0.1"


async def test_stop_is_aclose(frozen_clock: FrozenClock) -> None:
    sts = await STSStandIn(clock=frozen_clock).start()

    await sts.stop()

    with pytest.raises(aiohttp.ClientError):
        await post(sts)


async def test_a_hanging_request_is_answered_503_when_the_stand_in_closes(
    frozen_clock: FrozenClock,
) -> None:
    sts = await STSStandIn(clock=frozen_clock).start()
    sts.script("hang")

    async with anyio.create_task_group() as tg:
        answers: list[tuple[int, str]] = []

        async def call() -> None:
            answers.append(await post(sts))

        tg.start_soon(call)
        with anyio.fail_after(5):
            await sts.wait_for(1)
        await sts.aclose()

    assert answers[0][0] == 503
    assert "<Code>ServiceUnavailable</Code>" in answers[0][1]


async def test_a_delayed_request_is_answered_503_when_the_stand_in_closes(
    frozen_clock: FrozenClock,
) -> None:
    sts = await STSStandIn(clock=frozen_clock).start()
    sts.script(Delay(3600))

    async with anyio.create_task_group() as tg:
        answers: list[tuple[int, str]] = []

        async def call() -> None:
            answers.append(await post(sts))

        tg.start_soon(call)
        with anyio.fail_after(5):
            await sts.wait_for(1)
        await sts.aclose()

    assert answers[0][0] == 503


async def test_serve_in_thread_answers_clients_on_the_callers_loop(
    frozen_clock: FrozenClock,
) -> None:
    with STSStandIn(clock=frozen_clock).serve_in_thread() as sts:
        answer = await assume_role(sts)

    assert answer["Credentials"]["Expiration"] == frozen_clock() + timedelta(hours=1)


async def test_serve_in_thread_closes_the_stand_in_on_exit(frozen_clock: FrozenClock) -> None:
    with STSStandIn(clock=frozen_clock).serve_in_thread() as sts:
        pass

    with pytest.raises(aiohttp.ClientError):
        await post(sts)


async def test_serve_in_thread_handles_requests_off_the_callers_thread(
    frozen_clock: FrozenClock,
) -> None:
    handled_on: list[int] = []

    def clock() -> Any:  # the stand-in reads its clock while it handles a request
        handled_on.append(threading.get_ident())
        return frozen_clock()

    with STSStandIn(clock=clock).serve_in_thread() as sts:
        await post(sts)

    assert handled_on
    assert threading.get_ident() not in handled_on


async def test_wait_for_wakes_when_the_stand_in_serves_from_its_thread(
    frozen_clock: FrozenClock,
) -> None:
    with STSStandIn(clock=frozen_clock).serve_in_thread() as sts:
        sts.script("hang")
        async with anyio.create_task_group() as tg:
            tg.start_soon(post, sts)
            with anyio.fail_after(5):
                await sts.wait_for(1)
            assert sts.count() == 1
            tg.cancel_scope.cancel()


async def test_wait_for_raises_once_the_stand_in_closed(frozen_clock: FrozenClock) -> None:
    sts = await STSStandIn(clock=frozen_clock).start()
    await sts.aclose()

    with pytest.raises(RuntimeError, match="closed after 0 of 1"):
        await sts.wait_for(1)


async def test_aclose_from_another_loop_closes_a_threaded_stand_in(
    frozen_clock: FrozenClock,
) -> None:
    with STSStandIn(clock=frozen_clock).serve_in_thread() as sts:
        await sts.aclose()

        with pytest.raises(aiohttp.ClientError):
            await post(sts)


# --------------------------------------------------------------- the frame: records


async def test_count_of_an_action_counts_only_that_action(sts: STSStandIn) -> None:
    await post(sts, "GetCallerIdentity")
    await post(sts, "AssumeRole")
    await post(sts, "AssumeRole")

    assert (sts.count("AssumeRole"), sts.count("GetCallerIdentity"), sts.count()) == (2, 1, 3)


async def test_requests_record_the_outcome_each_one_took(sts: STSStandIn) -> None:
    sts.script("throttle", Malformed())

    for _ in range(3):
        await post(sts)

    assert [r.outcome for r in sts.requests] == [OUTCOMES["throttle"], Malformed(), Succeed()]


async def test_recorded_respond_outcome_hides_its_body_in_repr(sts: STSStandIn) -> None:
    sts.script(Respond(200, {"SecretAccessKey": "wJalrXUtnFEMI-scripted-secret"}))

    await post(sts)

    assert "wJalrXUtnFEMI-scripted-secret" not in repr(sts.requests[0])
    assert "bytes" in repr(sts.requests[0])


async def test_stand_in_repr_names_the_endpoint_but_no_issued_secret(sts: STSStandIn) -> None:
    issued = (await assume_role(sts))["Credentials"]

    text = repr(sts)

    assert sts.endpoint_url in text
    assert "issued=1" in text
    assert issued["SecretAccessKey"] not in text
    assert issued["SessionToken"] not in text
