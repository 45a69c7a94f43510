"""IoTCredentialsServer: the local stand-in for the AWS IoT credentials provider behaves like it."""

from __future__ import annotations

import asyncio
import json
import ssl
import stat
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from aiorefresh.errors import ConfigurationError
from aiorefresh.testing import (
    Delay,
    Disconnect,
    Fail,
    FrozenClock,
    Hang,
    IoTCredentialsServer,
    IoTOutcome,
    Malformed,
    Respond,
    Succeed,
)
from aiorefresh.testing._iot import ClientCertificate

PATH = "/role-aliases/aiorefresh-test/credentials"


@pytest.fixture
async def server(frozen_clock: FrozenClock) -> AsyncIterator[IoTCredentialsServer]:
    async with IoTCredentialsServer(clock=frozen_clock) as running:
        yield running


def client_context(
    server: IoTCredentialsServer, tmp_path: Path, client: ClientCertificate | None = None
) -> ssl.SSLContext:
    files = server.write_files(tmp_path, client)
    context = ssl.create_default_context(cafile=str(files.ca))
    context.load_cert_chain(files.certificate, files.private_key)
    return context


async def get(
    server: IoTCredentialsServer,
    context: ssl.SSLContext,
    path: str = PATH,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.endpoint + path, ssl=context, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


async def status_of(
    server: IoTCredentialsServer, context: ssl.SSLContext, path: str = PATH, **headers: str
) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.endpoint + path, ssl=context, headers=headers) as response,
    ):
        await response.read()
        return response.status


def expiration(clock: FrozenClock, **delta: float) -> str:
    return (clock() + timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_endpoint_is_https_on_a_loopback_port(server: IoTCredentialsServer) -> None:
    assert server.endpoint.startswith("https://127.0.0.1:")


async def test_issues_credentials_expiring_lifetime_after_the_clock(
    server: IoTCredentialsServer, tmp_path: Path, frozen_clock: FrozenClock
) -> None:
    status, body = await get(server, client_context(server, tmp_path))

    assert status == 200
    assert set(body["credentials"]) == {
        "accessKeyId",
        "secretAccessKey",
        "sessionToken",
        "expiration",
    }
    expected = frozen_clock() + timedelta(hours=1)
    assert body["credentials"]["expiration"] == expected.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert server.issued[0].access_key == body["credentials"]["accessKeyId"]


async def test_client_without_a_certificate_is_refused_at_tls(
    server: IoTCredentialsServer,
) -> None:
    context = ssl.create_default_context(cadata=server.ca_pem.decode())

    with pytest.raises(aiohttp.ClientError):
        await get(server, context)
    assert server.count() == 0


async def test_client_certificate_of_another_ca_is_refused_at_tls(
    server: IoTCredentialsServer, tmp_path: Path
) -> None:
    stranger = server.issue_client_certificate(trusted=False)

    with pytest.raises(aiohttp.ClientError):
        await get(server, client_context(server, tmp_path, stranger))
    assert server.count() == 0


async def test_records_the_client_certificate_common_name(
    server: IoTCredentialsServer, tmp_path: Path
) -> None:
    device = server.issue_client_certificate(common_name="sensor-42")

    await get(server, client_context(server, tmp_path, device))

    assert server.requests[0].client_common_name == "sensor-42"


async def test_unknown_role_alias_is_403_access_denied(
    server: IoTCredentialsServer, tmp_path: Path
) -> None:
    status, body = await get(
        server, client_context(server, tmp_path), "/role-aliases/other/credentials"
    )

    assert (status, body) == (403, {"message": "Access Denied"})


async def test_missing_configured_thing_name_is_403(tmp_path: Path) -> None:
    async with IoTCredentialsServer(thing_name="thing-1") as server:
        context = client_context(server, tmp_path)
        assert (await get(server, context))[0] == 403
        assert (await get(server, context, headers={"x-amzn-iot-thingname": "thing-1"}))[0] == 200


@pytest.mark.parametrize("duration", ["abc", "899", "43201"])
async def test_malformed_duration_header_is_400(
    server: IoTCredentialsServer, tmp_path: Path, duration: str
) -> None:
    headers = {"x-amzn-iot-credential-duration-seconds": duration}

    status, _ = await get(server, client_context(server, tmp_path), headers=headers)

    assert status == 400


async def test_unknown_path_is_404(server: IoTCredentialsServer, tmp_path: Path) -> None:
    status, body = await get(server, client_context(server, tmp_path), "/nope")

    assert (status, body) == (404, {"message": "Not Found"})


async def test_scripted_outcomes_answer_the_next_requests_in_order(
    server: IoTCredentialsServer, tmp_path: Path, frozen_clock: FrozenClock
) -> None:
    server.script(server.error(500, "boom"), server.ok(lifetime=timedelta(minutes=15)))
    context = client_context(server, tmp_path)

    first = await get(server, context)
    second = await get(server, context)
    third = await get(server, context)

    assert first == (500, {"message": "boom"})
    short = frozen_clock() + timedelta(minutes=15)
    assert second[1]["credentials"]["expiration"] == short.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert third[0] == 200
    assert [r.status for r in server.requests] == [500, 200, 200]


async def test_aclose_answers_a_hanging_request_with_a_503(tmp_path: Path) -> None:
    server = await IoTCredentialsServer().start()
    server.script(server.hang())
    context = client_context(server, tmp_path)

    async with anyio.create_task_group() as tg:
        statuses: list[int] = []

        async def call() -> None:
            statuses.append(await status_of(server, context))

        tg.start_soon(call)
        with anyio.fail_after(5):
            await server.wait_for(1)
        await server.aclose()

    assert statuses == [503]


def test_write_files_makes_the_key_readable_by_the_owner_only(tmp_path: Path) -> None:
    files = IoTCredentialsServer().write_files(tmp_path / "certs")

    assert stat.S_IMODE(files.private_key.stat().st_mode) == 0o600
    assert files.certificate.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert files.ca.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


def test_encrypted_client_key_variant() -> None:
    device = IoTCredentialsServer().issue_client_certificate(password="pw")

    assert device.private_key_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert "PRIVATE" not in repr(device)


def test_script_refuses_values_that_are_not_outcomes() -> None:
    with pytest.raises(TypeError, match="IoTOutcome"):
        IoTCredentialsServer().script(500)  # type: ignore[arg-type]


# ------------------------------------------------------------ the shared vocabulary


@pytest.mark.parametrize(
    ("shortcut", "status", "error_type"),
    [
        ("access_denied", 403, "ForbiddenException:"),
        ("unauthorized", 401, "UnauthorizedException:"),
        ("throttle", 429, "ThrottlingException:"),
        ("server_error", 500, "InternalFailureException:"),
        ("service_unavailable", 503, "ServiceUnavailableException:"),
    ],
)
async def test_failure_shortcuts_answer_like_the_service(
    server: IoTCredentialsServer, tmp_path: Path, shortcut: str, status: int, error_type: str
) -> None:
    server.script(shortcut)

    async with (
        aiohttp.ClientSession() as session,
        session.get(server.endpoint + PATH, ssl=client_context(server, tmp_path)) as response,
    ):
        body = await response.json()

    assert response.status == status
    assert response.headers["x-amzn-ErrorType"] == error_type
    assert set(body) == {"message"}


async def test_fail_answers_its_message_and_code(
    server: IoTCredentialsServer, tmp_path: Path
) -> None:
    server.script(Fail("ForbiddenException", "certificate revoked", 403))

    status, body = await get(server, client_context(server, tmp_path))

    assert (status, body) == (403, {"message": "certificate revoked"})


async def test_fail_without_a_code_sends_no_error_type(
    server: IoTCredentialsServer, tmp_path: Path
) -> None:
    server.script(server.error(500, "boom"))

    async with (
        aiohttp.ClientSession() as session,
        session.get(server.endpoint + PATH, ssl=client_context(server, tmp_path)) as response,
    ):
        await response.read()

    assert "x-amzn-ErrorType" not in response.headers


async def test_succeed_sets_the_lifetime_of_one_answer(
    server: IoTCredentialsServer, tmp_path: Path, frozen_clock: FrozenClock
) -> None:
    server.script(Succeed(lifetime=timedelta(minutes=20)))
    context = client_context(server, tmp_path)

    first = await get(server, context)
    second = await get(server, context)

    assert first[1]["credentials"]["expiration"] == expiration(frozen_clock, minutes=20)
    assert second[1]["credentials"]["expiration"] == expiration(frozen_clock, hours=1)


async def test_expired_shortcut_issues_credentials_already_expired(
    server: IoTCredentialsServer, tmp_path: Path, frozen_clock: FrozenClock
) -> None:
    server.script("expired")

    _, body = await get(server, client_context(server, tmp_path))

    assert body["credentials"]["expiration"] == expiration(frozen_clock, minutes=-5)


async def test_malformed_answers_200_with_a_body_that_is_not_json(
    server: IoTCredentialsServer, tmp_path: Path
) -> None:
    server.script("malformed")

    async with (
        aiohttp.ClientSession() as session,
        session.get(server.endpoint + PATH, ssl=client_context(server, tmp_path)) as response,
    ):
        body = await response.read()

    assert response.status == 200
    assert response.content_type == "application/json"
    with pytest.raises(ValueError, match="Expecting"):
        json.loads(body)


async def test_malformed_with_a_body_answers_that_body(
    server: IoTCredentialsServer, tmp_path: Path
) -> None:
    server.script(Malformed('{"credentials": []}', status=200))

    assert await get(server, client_context(server, tmp_path)) == (200, {"credentials": []})


async def test_respond_answers_exactly_the_given_status_body_and_headers(
    server: IoTCredentialsServer, tmp_path: Path
) -> None:
    server.script(Respond(302, "", headers={"Location": "https://example.com/"}))

    async with (
        aiohttp.ClientSession() as session,
        session.get(
            server.endpoint + PATH, ssl=client_context(server, tmp_path), allow_redirects=False
        ) as response,
    ):
        await response.read()

    assert response.status == 302
    assert response.headers["Location"] == "https://example.com/"


async def test_disconnect_closes_the_connection_without_an_answer(
    server: IoTCredentialsServer, tmp_path: Path
) -> None:
    server.script(Disconnect(), "disconnect")  # aiohttp retries a GET once

    with pytest.raises(aiohttp.ClientError):
        await get(server, client_context(server, tmp_path))
    assert [r.status for r in server.requests] == [0, 0]


async def test_hang_holds_the_answer_past_a_shorter_client_timeout(
    server: IoTCredentialsServer, tmp_path: Path
) -> None:
    server.script(Hang())
    timeout = aiohttp.ClientTimeout(sock_read=0.3)

    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(asyncio.TimeoutError):
            async with session.get(
                server.endpoint + PATH, ssl=client_context(server, tmp_path)
            ) as response:
                await response.read()


async def test_delay_answers_with_its_then_outcome(
    server: IoTCredentialsServer, tmp_path: Path
) -> None:
    server.script(Delay(0.05, then="throttle"))

    assert await status_of(server, client_context(server, tmp_path)) == 429
    assert server.requests[0].status == 429


async def test_a_delayed_request_is_answered_503_when_the_server_closes(tmp_path: Path) -> None:
    server = await IoTCredentialsServer().start()
    server.script(Delay(3600))
    context = client_context(server, tmp_path)

    async with anyio.create_task_group() as tg:
        statuses: list[int] = []

        async def call() -> None:
            statuses.append(await status_of(server, context))

        tg.start_soon(call)
        with anyio.fail_after(5):
            await server.wait_for(1)
        await server.aclose()

    assert statuses == [503]


def test_the_builders_are_the_shared_outcomes() -> None:
    builders = IoTCredentialsServer

    assert builders.ok(timedelta(minutes=3)) == Succeed(timedelta(minutes=3))
    assert builders.error(403, "no", error_type="ForbiddenException") == Fail(
        "ForbiddenException", "no", 403
    )
    assert builders.respond(500, "x") == Respond(500, "x")
    assert (builders.malformed(), builders.hang(), builders.disconnect()) == (
        Malformed(),
        Hang(),
        Disconnect(),
    )


async def test_iot_outcome_values_are_still_accepted(
    server: IoTCredentialsServer, tmp_path: Path
) -> None:
    server.script(IoTOutcome("respond", 418, b"teapot", "text/plain"))

    assert await status_of(server, client_context(server, tmp_path)) == 418


def test_script_refuses_an_unknown_shortcut() -> None:
    with pytest.raises(ConfigurationError, match="'bad_mfa'"):
        IoTCredentialsServer().script("bad_mfa")


def test_script_refuses_an_unknown_action() -> None:
    with pytest.raises(ConfigurationError, match="AssumeRoleWithCertificate"):
        IoTCredentialsServer().script("ok", action="AssumeRole")


# ------------------------------------------------------------------- the frame


async def test_the_servers_own_checks_answer_before_the_script(
    server: IoTCredentialsServer, tmp_path: Path
) -> None:
    server.script("throttle")
    context = client_context(server, tmp_path)

    denied = await status_of(server, context, "/role-aliases/other/credentials")
    scripted = await status_of(server, context)

    assert (denied, scripted) == (403, 429)


async def test_requests_record_the_outcome_each_one_took(
    server: IoTCredentialsServer, tmp_path: Path
) -> None:
    server.script("throttle")
    context = client_context(server, tmp_path)

    await status_of(server, context)
    await status_of(server, context)
    await status_of(server, context, "/nope")

    assert [r.outcome for r in server.requests] == [
        IoTCredentialsServer.OUTCOMES["throttle"],
        Succeed(),
        None,
    ]


async def test_count_of_the_credentials_action_leaves_out_other_paths(
    server: IoTCredentialsServer, tmp_path: Path
) -> None:
    context = client_context(server, tmp_path)

    await status_of(server, context)
    await status_of(server, context, "/nope")

    assert (server.count("AssumeRoleWithCertificate"), server.count()) == (1, 2)


async def test_reset_forgets_the_script_and_the_requests(
    server: IoTCredentialsServer, tmp_path: Path
) -> None:
    server.script("throttle")
    context = client_context(server, tmp_path)
    await status_of(server, context, "/nope")

    server.reset()

    assert server.count() == 0
    assert await status_of(server, context) == 200


async def test_request_repr_masks_credential_headers(
    server: IoTCredentialsServer, tmp_path: Path
) -> None:
    headers = {"Authorization": "Bearer s3cr3t-value", "X-Amz-Security-Token": "t0ken-value"}

    await status_of(server, client_context(server, tmp_path), **headers)

    record = server.requests[0]
    assert record.headers["Authorization"] == "Bearer s3cr3t-value"
    assert "s3cr3t-value" not in repr(record)
    assert "t0ken-value" not in repr(record)


async def test_recorded_request_repr_hides_issued_secrets(
    server: IoTCredentialsServer, tmp_path: Path
) -> None:
    _, body = await get(server, client_context(server, tmp_path))

    text = repr(server.requests) + repr(server)

    assert body["credentials"]["secretAccessKey"] not in text
    assert body["credentials"]["sessionToken"] not in text


def test_server_repr_shows_no_private_key() -> None:
    server = IoTCredentialsServer()

    assert "PRIVATE" not in repr(server)
    assert "not started" in repr(server)


def test_server_refuses_to_listen_beyond_loopback() -> None:
    with pytest.raises(ConfigurationError, match="loopback"):
        IoTCredentialsServer(host="0.0.0.0")


async def test_wait_for_returns_once_the_requests_arrived(
    server: IoTCredentialsServer, tmp_path: Path
) -> None:
    server.script("hang")

    async with anyio.create_task_group() as tg:
        tg.start_soon(status_of, server, client_context(server, tmp_path))
        with anyio.fail_after(5):
            await server.wait_for(1, action="AssumeRoleWithCertificate")
        tg.cancel_scope.cancel()


async def test_a_closed_server_cannot_restart() -> None:
    server = IoTCredentialsServer()
    async with server:
        pass

    with pytest.raises(RuntimeError, match="closed"):
        await server.start()


async def test_serve_in_thread_answers_over_mutual_tls_off_the_callers_thread(
    tmp_path: Path, frozen_clock: FrozenClock
) -> None:
    handled_on: list[int] = []

    def clock() -> Any:  # read while the server issues credentials
        handled_on.append(threading.get_ident())
        return frozen_clock()

    with IoTCredentialsServer(clock=clock).serve_in_thread() as server:
        status, _ = await get(server, client_context(server, tmp_path))

    assert status == 200
    assert handled_on
    assert threading.get_ident() not in handled_on


async def test_outcomes_are_each_taken_once_by_many_concurrent_requests(tmp_path: Path) -> None:
    statuses = [400 + n % 100 for n in range(100)]
    with IoTCredentialsServer().serve_in_thread() as server:
        server.script(*(Fail("", f"scripted {status}", status) for status in statuses))
        context = client_context(server, tmp_path)

        answers = await asyncio.gather(*(get(server, context) for _ in statuses))

    assert sorted(body["message"] for _, body in answers) == sorted(
        f"scripted {status}" for status in statuses
    )
