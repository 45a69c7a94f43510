"""IoTCredentialsServer: the local stand-in for the AWS IoT credentials provider behaves like it."""

from __future__ import annotations

import asyncio
import ssl
import stat
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aiorefresh.testing import FrozenClock, IoTCredentialsServer
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


async def test_aclose_releases_a_hanging_request_promptly(tmp_path: Path) -> None:
    server = await IoTCredentialsServer().start()
    server.script(server.hang())
    request = asyncio.ensure_future(get(server, client_context(server, tmp_path)))
    for _ in range(500):
        if server.count():
            break
        await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    started = loop.time()

    await server.aclose()
    (outcome,) = await asyncio.gather(request, return_exceptions=True)

    assert loop.time() - started < 5
    assert not (isinstance(outcome, tuple) and outcome[0] == 200)


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
