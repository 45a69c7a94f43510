"""STSStandIn's lifecycle and records: starting and closing (a request still waiting is answered
503), serving from its own thread, listening only on loopback, and the requests it records
without showing their secrets."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import aiohttp
import anyio
import pytest
from aiobotocore.config import AioConfig
from botocore.exceptions import ClientError

from _sts_standin_helpers import ROLE_ARN, USER_KEY, assume_role, client_for, post
from aiorefresh.errors import ConfigurationError
from aiorefresh.testing import OUTCOMES, FrozenClock, Respond, STSStandIn
from aiorefresh.testing._sts import Delay, Malformed, Succeed

pytestmark = pytest.mark.usefixtures("aws_env")


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
