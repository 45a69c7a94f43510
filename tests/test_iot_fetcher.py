"""The ``iot`` fetcher: requests over real mutual TLS on loopback against IoTCredentialsServer,
the errors it maps (never echoing answer bodies), endpoint discovery, and event loops."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import socket
import ssl
import threading
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from aiorefresh import RefreshableSession
from aiorefresh._fetchers import iot
from aiorefresh._fetchers.iot import (
    IoTCredentialFetcher,
    discover_credentials_endpoint,
    validate_iot_options,
)
from aiorefresh.errors import (
    ConfigurationError,
    CredentialRefreshError,
    IoTCredentialError,
    NonRecoverableCredentialError,
    NonRecoverableIoTError,
    ValidationError,
)
from aiorefresh.testing import FrozenClock, IoTCredentialsServer, MotoServer

ALIAS = "aiorefresh-test"
CREDENTIALS_HOST = "c2abcdefghijkl.credentials.iot.us-east-1.amazonaws.com"
SECRET = "wJalrXUtnFEMI-K7MDENG-SECRETSECRETSECRET"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE-TOKENTOKENTOKEN"

MakeFetcher = Callable[..., IoTCredentialFetcher]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def server(frozen_clock: FrozenClock) -> AsyncIterator[IoTCredentialsServer]:
    async with IoTCredentialsServer(role_alias=ALIAS, clock=frozen_clock) as running:
        yield running


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[aiohttp.ClientSession]]:
    """Every HTTP session a fetcher opens; each must be closed when the test ends."""
    created: list[aiohttp.ClientSession] = []
    original = IoTCredentialFetcher._new_session

    def spy(self: IoTCredentialFetcher) -> aiohttp.ClientSession:
        session = original(self)
        created.append(session)
        return session

    monkeypatch.setattr(IoTCredentialFetcher, "_new_session", spy)
    yield created
    assert all(session.closed for session in created), "an aiohttp session was left open"


def options_for(server: IoTCredentialsServer, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "endpoint": server.endpoint or CREDENTIALS_HOST,
        "role_alias": ALIAS,
        "certificate": server.client_cert_pem,
        "private_key": server.client_key_pem,
        "ca": server.ca_pem,
    }
    options.update(overrides)
    return options


@pytest.fixture
async def make_fetcher(
    server: IoTCredentialsServer, sessions: list[aiohttp.ClientSession]
) -> AsyncIterator[MakeFetcher]:
    """Build fetchers against ``server`` (options overridable); all closed at teardown."""
    made: list[IoTCredentialFetcher] = []

    def make(
        *, discover: Callable[[], Awaitable[str]] | None = None, **overrides: Any
    ) -> IoTCredentialFetcher:
        fetcher = IoTCredentialFetcher(
            validate_iot_options(**options_for(server, **overrides)), discover=discover
        )
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        await fetcher.aclose()


async def fetch_error(fetcher: IoTCredentialFetcher) -> IoTCredentialError:
    with pytest.raises(IoTCredentialError) as caught:
        await fetcher()
    return caught.value


def shown(error: BaseException, caplog: pytest.LogCaptureFixture) -> str:
    """Everything a user could see of ``error``: str, repr, the printed chain, and the logs."""
    printed = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return "\n".join([str(error), repr(error), printed, caplog.text])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def plain_http() -> AsyncIterator[Callable[[web.Response], Awaitable[str]]]:
    """Start a plain HTTP server on loopback that gives every request one canned answer."""
    runners: list[web.AppRunner] = []

    async def start(answer: web.Response) -> str:
        async def handler(request: web.Request) -> web.Response:
            return answer

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", free_port())
        await site.start()
        return site.name

    yield start
    for runner in runners:
        await runner.cleanup()


# --------------------------------------------------------------------------- success


async def test_fetch_returns_the_credentials_the_server_issued(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    credentials = await make_fetcher()()

    issued = server.issued[0]
    assert credentials.access_key == issued.access_key
    assert credentials.secret_key == issued.secret_key
    assert credentials.token == issued.token
    assert credentials.account_id is None


async def test_debug_log_never_contains_the_secret_key_or_token(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    credentials = await make_fetcher()()

    assert caplog.records
    assert credentials.secret_key not in caplog.text
    assert str(credentials.token) not in caplog.text


async def test_expiry_is_the_servers_lifetime_after_its_clock(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher, frozen_clock: FrozenClock
) -> None:
    credentials = await make_fetcher()()

    assert credentials.expiry_time == frozen_clock() + timedelta(hours=1)
    assert credentials.expiry_time.utcoffset() == timedelta(0)


async def test_request_is_a_get_on_the_role_alias_credentials_path(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    await make_fetcher()()

    (request,) = server.requests
    assert request.method == "GET"
    assert request.path == f"/role-aliases/{ALIAS}/credentials"
    assert request.client_common_name == "aiorefresh-test-thing"


async def test_no_thing_name_or_duration_header_by_default(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    await make_fetcher()()

    headers = {name.lower() for name in server.requests[0].headers}
    assert "x-amzn-iot-thingname" not in headers
    assert "x-amzn-iot-credential-duration-seconds" not in headers


async def test_thing_name_header_is_sent_when_given(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    server.thing_name = "sensor-7:eu_1"
    await make_fetcher(thing_name="sensor-7:eu_1")()

    assert server.requests[0].thing_name == "sensor-7:eu_1"


async def test_duration_header_is_sent_and_sets_the_lifetime(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher, frozen_clock: FrozenClock
) -> None:
    credentials = await make_fetcher(duration_seconds=900)()

    assert server.requests[0].duration_seconds == "900"
    assert credentials.expiry_time == frozen_clock() + timedelta(seconds=900)


async def test_each_call_fetches_fresh_credentials_as_the_clock_advances(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher, frozen_clock: FrozenClock
) -> None:
    fetcher = make_fetcher()
    seen = []
    for _ in range(3):
        seen.append(await fetcher())
        frozen_clock.advance(3000)

    assert len({c.access_key for c in seen}) == 3
    assert seen[2].expiry_time - seen[0].expiry_time == timedelta(seconds=6000)


# --------------------------------------------------------------------------- PEM sources


def _pem_sources(server: IoTCredentialsServer, tmp_path: Path, form: str) -> dict[str, Any]:
    files = server.write_files(tmp_path / "certs")
    if form == "bytes":
        return {}
    if form == "str content":
        return {
            "certificate": server.client_cert_pem.decode(),
            "private_key": server.client_key_pem.decode(),
            "ca": server.ca_pem.decode(),
        }
    if form == "str paths":
        return {
            "certificate": str(files.certificate),
            "private_key": str(files.private_key),
            "ca": str(files.ca),
        }
    if form == "pathlib paths":
        return {"certificate": files.certificate, "private_key": files.private_key, "ca": files.ca}
    assert form == "home paths"
    return {
        "certificate": "~/certs/device.pem.crt",
        "private_key": Path("~/certs/private.pem.key"),
        "ca": "~/certs/AmazonRootCA1.pem",
    }


@pytest.mark.parametrize(
    "form", ["bytes", "str content", "str paths", "pathlib paths", "home paths"]
)
async def test_every_pem_source_form_authenticates_the_device(
    server: IoTCredentialsServer,
    make_fetcher: MakeFetcher,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    form: str,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))

    credentials = await make_fetcher(**_pem_sources(server, tmp_path, form))()

    assert credentials.access_key == server.issued[0].access_key
    assert server.requests[0].client_common_name == "aiorefresh-test-thing"


@pytest.mark.parametrize("password", ["correct horse", b"correct horse"])
async def test_encrypted_key_with_its_password_authenticates_the_device(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher, password: str | bytes
) -> None:
    device = server.issue_client_certificate(password="correct horse")
    assert b"ENCRYPTED" in device.private_key_pem

    fetcher = make_fetcher(
        certificate=device.certificate_pem,
        private_key=device.private_key_pem,
        private_key_password=password,
    )

    assert (await fetcher()).access_key


def test_fetcher_needs_a_validated_config() -> None:
    with pytest.raises(ValidationError, match="IoTConfig"):
        IoTCredentialFetcher({"endpoint": CREDENTIALS_HOST})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- sessions and loops


async def test_sequential_calls_reuse_one_session_and_one_tls_connection(
    server: IoTCredentialsServer,
    make_fetcher: MakeFetcher,
    sessions: list[aiohttp.ClientSession],
) -> None:
    fetcher = make_fetcher()
    for _ in range(3):
        await fetcher()

    assert server.count() == 3
    assert server.connections == 1
    assert len(sessions) == 1


async def test_many_concurrent_calls_share_one_session_each_making_its_own_request(
    server: IoTCredentialsServer,
    make_fetcher: MakeFetcher,
    sessions: list[aiohttp.ClientSession],
) -> None:
    fetcher = make_fetcher()

    results = await asyncio.gather(*(fetcher() for _ in range(50)))

    assert server.count() == 50
    assert len({c.access_key for c in results}) == 50
    assert len(sessions) == 1


async def test_aclose_closes_the_session_and_a_later_call_opens_a_new_one(
    make_fetcher: MakeFetcher, sessions: list[aiohttp.ClientSession]
) -> None:
    fetcher = make_fetcher()
    await fetcher()
    await fetcher.aclose()
    assert sessions[0].closed

    await fetcher()
    assert len(sessions) == 2
    assert not sessions[1].closed


async def test_aclose_twice_is_harmless(
    make_fetcher: MakeFetcher, sessions: list[aiohttp.ClientSession]
) -> None:
    fetcher = make_fetcher()
    await fetcher()

    await fetcher.aclose()
    await fetcher.aclose()

    assert len(sessions) == 1
    assert sessions[0].closed


async def test_a_session_closed_from_outside_is_replaced_on_the_next_call(
    make_fetcher: MakeFetcher, sessions: list[aiohttp.ClientSession]
) -> None:
    fetcher = make_fetcher()
    await fetcher()
    await sessions[0].close()

    assert (await fetcher()).access_key
    assert len(sessions) == 2


async def test_each_event_loop_gets_its_own_session(
    make_fetcher: MakeFetcher, sessions: list[aiohttp.ClientSession]
) -> None:
    fetcher = make_fetcher()
    await fetcher()

    async def in_other_loop() -> None:
        await fetcher()
        await fetcher.aclose()

    await asyncio.to_thread(asyncio.run, in_other_loop())

    assert len(sessions) == 2
    assert sessions[1].closed
    assert not sessions[0].closed
    await fetcher.aclose()
    assert sessions[0].closed


async def test_loops_in_many_threads_each_get_one_session_of_their_own(
    server: IoTCredentialsServer,
    make_fetcher: MakeFetcher,
    sessions: list[aiohttp.ClientSession],
) -> None:
    fetcher = make_fetcher()
    loops = 4
    barrier = threading.Barrier(loops)

    async def in_a_loop() -> None:
        await asyncio.to_thread(barrier.wait)  # every loop asks at once
        await asyncio.gather(*(fetcher() for _ in range(5)))
        await fetcher.aclose()

    await asyncio.gather(*(asyncio.to_thread(asyncio.run, in_a_loop()) for _ in range(loops)))

    assert server.count() == loops * 5
    assert len(sessions) == loops


async def test_aclose_on_another_loop_leaves_this_loops_refresh_alone(
    make_fetcher: MakeFetcher, sessions: list[aiohttp.ClientSession]
) -> None:
    fetcher = make_fetcher()
    await fetcher()

    async def close_elsewhere() -> None:
        await fetcher.aclose()

    await asyncio.to_thread(asyncio.run, close_elsewhere())

    assert not sessions[0].closed
    await fetcher()  # still works on this loop
    assert len(sessions) == 1


def test_a_fetcher_never_closed_closes_its_session_when_asyncio_run_ends(
    sessions: list[aiohttp.ClientSession], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def main() -> None:
        async with IoTCredentialsServer(role_alias=ALIAS) as running:
            fetcher = IoTCredentialFetcher(validate_iot_options(**options_for(running)))
            await fetcher()  # and never aclose()

    asyncio.run(main())
    gc.collect()

    assert len(sessions) == 1
    assert sessions[0].closed
    assert "Unclosed" not in caplog.text


def test_calling_the_fetcher_outside_asyncio_is_a_configuration_error() -> None:
    config = validate_iot_options(
        **options_for(IoTCredentialsServer(role_alias=ALIAS), endpoint=CREDENTIALS_HOST)
    )
    call = IoTCredentialFetcher(config)()  # driven by hand, as a non-asyncio runner would

    with pytest.raises(ConfigurationError, match="asyncio"):
        call.send(None)


def test_aclose_outside_asyncio_has_nothing_to_close() -> None:
    config = validate_iot_options(
        **options_for(IoTCredentialsServer(role_alias=ALIAS), endpoint=CREDENTIALS_HOST)
    )
    closing = IoTCredentialFetcher(config).aclose()

    with pytest.raises(StopIteration):
        closing.send(None)


async def test_fetcher_works_as_an_async_context_manager(
    server: IoTCredentialsServer, sessions: list[aiohttp.ClientSession]
) -> None:
    async with IoTCredentialFetcher(validate_iot_options(**options_for(server))) as fetcher:
        await fetcher()

    assert sessions[0].closed


# --------------------------------------------------------------------------- TLS failures


async def test_client_certificate_from_another_ca_is_an_iot_error(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    stranger = server.issue_client_certificate(trusted=False)
    fetcher = make_fetcher(
        certificate=stranger.certificate_pem, private_key=stranger.private_key_pem
    )

    error = await fetch_error(fetcher)

    assert "refused the client certificate" in str(error)
    assert server.count() == 0


async def test_client_certificate_refused_in_a_tls12_handshake_is_an_iot_error(
    sessions: list[aiohttp.ClientSession],
) -> None:
    async with IoTCredentialsServer(maximum_tls_version=ssl.TLSVersion.TLSv1_2) as tls12:
        stranger = tls12.issue_client_certificate(trusted=False)
        options = options_for(
            tls12, certificate=stranger.certificate_pem, private_key=stranger.private_key_pem
        )
        async with IoTCredentialFetcher(validate_iot_options(**options)) as fetcher:
            error = await fetch_error(fetcher)

    assert "refused the client certificate" in str(error)
    assert tls12.count() == 0


def test_a_tls_alert_from_the_server_is_named_in_the_error() -> None:
    alert = ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca")
    alert.reason = "TLSV1_ALERT_UNKNOWN_CA"
    wrapped = aiohttp.ClientOSError(1, "handshake failed")
    wrapped.__cause__ = alert

    error = iot._transport_error(wrapped, f"https://{CREDENTIALS_HOST}", ALIAS)

    assert "TLSV1_ALERT_UNKNOWN_CA" in str(error)
    assert "refused the client certificate" in str(error)


async def test_server_certificate_from_an_unknown_ca_is_an_iot_error(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    error = await fetch_error(make_fetcher(ca=server.untrusted_ca_pem))

    assert "server certificate could not be verified" in str(error)
    assert "ca=" in str(error)


async def test_without_ca_the_system_trust_store_rejects_the_test_server(
    make_fetcher: MakeFetcher,
) -> None:
    error = await fetch_error(make_fetcher(ca=None))

    assert "CERTIFICATE_VERIFY_FAILED" in str(error)


async def test_verify_peer_false_accepts_the_server_and_still_presents_the_client_cert(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    await make_fetcher(ca=server.untrusted_ca_pem, verify_peer=False)()

    assert server.requests[0].client_common_name == "aiorefresh-test-thing"


async def test_connection_refused_is_a_recoverable_iot_error(make_fetcher: MakeFetcher) -> None:
    error = await fetch_error(make_fetcher(endpoint=f"https://127.0.0.1:{free_port()}"))

    assert "connection refused" in str(error)
    assert error.status_code is None
    assert not isinstance(error, NonRecoverableCredentialError)


async def test_server_closing_the_connection_is_an_iot_error(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    server.script(server.disconnect(), server.disconnect())  # aiohttp retries a GET once

    error = await fetch_error(make_fetcher())

    assert "closed before an answer" in str(error)


async def test_hanging_server_times_out_after_timeout_seconds(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    server.script(server.hang())

    error = await fetch_error(make_fetcher(timeout=0.5))

    assert "timed out after 0.5 s" in str(error)
    assert not isinstance(error, NonRecoverableCredentialError)


# --------------------------------------------------------------------------- HTTP errors


@pytest.mark.parametrize("status", [401, 403])
async def test_401_and_403_are_non_recoverable_with_the_service_message(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher, status: int
) -> None:
    server.script(server.error(status, "Access Denied", error_type="ForbiddenException"))

    error = await fetch_error(make_fetcher())

    assert isinstance(error, NonRecoverableCredentialError)
    assert isinstance(error, CredentialRefreshError)
    assert error.status_code == status
    assert error.code == "ForbiddenException"
    assert error.request_id
    assert "Access Denied" in str(error)


@pytest.mark.parametrize("status", [404, 429, 500, 503])
async def test_other_error_statuses_are_recoverable_with_the_service_message(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher, status: int
) -> None:
    server.script(server.error(status, "Something went wrong"))

    error = await fetch_error(make_fetcher())

    assert not isinstance(error, NonRecoverableCredentialError)
    assert error.status_code == status
    assert "Something went wrong" in str(error)


async def test_an_error_names_the_http_status_and_its_standard_phrase(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    server.script(server.error(503, "try later", error_type="ServiceUnavailableException"))

    error = await fetch_error(make_fetcher())

    assert "HTTP 503 Service Unavailable (ServiceUnavailableException): try later" in str(error)


@pytest.mark.parametrize(
    "body",
    [
        {"credentials": {"accessKeyId": "ASIAEXAMPLE", "secretAccessKey": SECRET}, "t": TOKEN},
        {"message": "internal error", "secretAccessKey": SECRET, "sessionToken": TOKEN},
        {"message": "x", "detail": {"token": TOKEN, "key": SECRET}},
        f"secretAccessKey={SECRET}&sessionToken={TOKEN}",
    ],
    ids=["credentials document", "message beside secrets", "nested secrets", "plain text"],
)
async def test_a_500_whose_body_holds_a_secret_never_shows_it(
    server: IoTCredentialsServer,
    make_fetcher: MakeFetcher,
    caplog: pytest.LogCaptureFixture,
    body: dict[str, Any] | str,
) -> None:
    caplog.set_level(logging.DEBUG)
    server.script(server.respond(500, body, headers={"x-amzn-ErrorType": "InternalFailure:"}))

    error = await fetch_error(make_fetcher())

    assert error.status_code == 500
    assert error.code == "InternalFailure"
    visible = shown(error, caplog)
    assert SECRET not in visible
    assert TOKEN not in visible


async def test_an_html_503_shows_only_the_status(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    page = f"<html><title>503</title><body>upstream said token={TOKEN}</body></html>"
    server.script(server.respond(503, page))

    error = await fetch_error(make_fetcher())

    assert error.status_code == 503
    assert "HTTP 503 Service Unavailable" in str(error)
    assert "upstream" not in shown(error, caplog)
    assert TOKEN not in shown(error, caplog)


async def test_a_long_error_body_is_not_excerpted(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    server.script(server.respond(500, "x" * 5000))

    error = await fetch_error(make_fetcher())

    assert "xxxx" not in str(error)
    assert len(str(error)) < 200


async def test_a_long_service_message_is_cut_to_200_characters(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    server.script(server.error(500, "m" * 5000))

    error = await fetch_error(make_fetcher())

    assert "m" * 150 in str(error)
    assert "m" * 201 not in str(error)


async def test_an_error_type_header_that_is_not_an_identifier_is_ignored(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    server.script(server.respond(500, b"", headers={"x-amzn-ErrorType": f"x {SECRET}:"}))

    error = await fetch_error(make_fetcher())

    assert error.code is None
    assert SECRET not in str(error)


async def test_redirect_is_not_followed_nor_its_location_shown(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    location = f"https://example.com/?token={TOKEN}"
    server.script(server.respond(302, "", headers={"Location": location}))

    error = await fetch_error(make_fetcher())

    assert error.status_code == 302
    assert server.count() == 1
    assert TOKEN not in str(error)


async def test_unknown_role_alias_is_access_denied(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    error = await fetch_error(make_fetcher(role_alias="someone-else"))

    assert isinstance(error, NonRecoverableCredentialError)
    assert error.status_code == 403
    assert "'someone-else'" in str(error)


async def test_wrong_thing_name_is_access_denied(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    server.thing_name = "the-right-thing"

    error = await fetch_error(make_fetcher(thing_name="another-thing"))

    assert error.status_code == 403


async def test_the_session_warning_log_of_a_failed_refresh_shows_no_body(
    server: IoTCredentialsServer, frozen_clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.script(server.respond(500, {"credentials": {"secretAccessKey": SECRET}}))

    async with RefreshableSession(**options_for(server), clock=frozen_clock) as session:
        with pytest.raises(IoTCredentialError):
            await session.refreshable_credentials()

    assert any(record.levelno == logging.WARNING for record in caplog.records)
    assert SECRET not in caplog.text


# --------------------------------------------------------------------------- malformed answers


async def test_non_json_answer_is_non_recoverable(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    server.script(server.malformed())

    error = await fetch_error(make_fetcher())

    assert isinstance(error, NonRecoverableCredentialError)
    assert error.status_code == 200
    assert "not JSON" in str(error)
    assert error.__cause__ is None
    assert error.__context__ is None


async def test_answer_without_credentials_object_is_non_recoverable(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    server.script(server.respond(200, {"credential": {}}))

    error = await fetch_error(make_fetcher())

    assert isinstance(error, NonRecoverableCredentialError)
    assert "'credentials'" in str(error)


@pytest.mark.parametrize(
    "body",
    [
        {"Credentials": {"AccessKeyId": "ASIAX", "SecretAccessKey": SECRET, "SessionToken": TOKEN}},
        {"credentials": [SECRET, TOKEN]},
        [{"secretAccessKey": SECRET, "sessionToken": TOKEN}],
        f'{{"credentials": {{"secretAccessKey": "{SECRET}", "sessionToken": "{TOKEN}"',
    ],
    ids=["STS-shaped", "credentials list", "top-level list", "cut-off JSON"],
)
async def test_a_200_with_an_unexpected_document_never_shows_its_secrets(
    server: IoTCredentialsServer,
    make_fetcher: MakeFetcher,
    caplog: pytest.LogCaptureFixture,
    body: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    raw = body if isinstance(body, str) else json.dumps(body)
    server.script(server.respond(200, raw.encode(), content_type="application/json"))

    error = await fetch_error(make_fetcher())

    assert isinstance(error, NonRecoverableIoTError)
    visible = shown(error, caplog)
    assert SECRET not in visible
    assert TOKEN not in visible


@pytest.mark.parametrize(
    "missing", ["accessKeyId", "secretAccessKey", "sessionToken", "expiration"]
)
async def test_missing_field_is_named_and_no_secret_is_echoed(
    server: IoTCredentialsServer,
    make_fetcher: MakeFetcher,
    caplog: pytest.LogCaptureFixture,
    missing: str,
) -> None:
    fields = {
        "accessKeyId": "ASIAEXAMPLEEXAMPLE01",
        "secretAccessKey": SECRET,
        "sessionToken": TOKEN,
        "expiration": "2030-01-01T01:00:00Z",
    }
    del fields[missing]
    server.script(server.respond(200, {"credentials": fields}))

    error = await fetch_error(make_fetcher())

    assert isinstance(error, NonRecoverableCredentialError)
    assert f"credentials.{missing}" in str(error)
    assert SECRET not in shown(error, caplog)
    assert TOKEN not in shown(error, caplog)


async def test_unparseable_expiration_is_non_recoverable_and_echoes_no_secret(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    fields = {
        "accessKeyId": "ASIAEXAMPLEEXAMPLE01",
        "secretAccessKey": SECRET,
        "sessionToken": TOKEN,
        "expiration": f"next tuesday {TOKEN}",
    }
    server.script(server.respond(200, {"credentials": fields}))

    error = await fetch_error(make_fetcher())

    assert isinstance(error, NonRecoverableCredentialError)
    assert "credentials.expiration" in str(error)
    assert SECRET not in shown(error, caplog)
    assert TOKEN not in shown(error, caplog)


# --------------------------------------------------------------------------- discovery


async def test_discover_credentials_endpoint_asks_describe_endpoint(
    aws_env: object, moto_server: MotoServer
) -> None:
    host = await discover_credentials_endpoint(
        region_name="eu-west-1", endpoint_url=moto_server.endpoint_url
    )

    assert re.fullmatch(r"[a-z0-9]+\.credentials\.iot\.eu-west-1\.amazonaws\.com", host)


async def test_discover_credentials_endpoint_honours_aws_endpoint_url_iot(
    aws_env: object, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_IOT", moto_server.endpoint_url)

    host = await discover_credentials_endpoint()

    assert host.endswith(".credentials.iot.us-east-1.amazonaws.com")


@pytest.fixture
def device_profile(aws_env: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A profile ``device`` (region ap-southeast-2, its own keys) in temporary AWS config
    files; the environment has no keys and no region, so only the profile can supply them."""
    config = tmp_path / "config"
    config.write_text("[profile device]\nregion = ap-southeast-2\n")
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[device]\naws_access_key_id = AKIADEVICEPROFILE001\n"
        "aws_secret_access_key = device-profile-secret\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    return "device"


async def test_discovery_uses_the_profiles_credentials_and_region(
    device_profile: str, moto_server: MotoServer
) -> None:
    host = await discover_credentials_endpoint(
        profile_name=device_profile, endpoint_url=moto_server.endpoint_url
    )

    assert host.endswith(".credentials.iot.ap-southeast-2.amazonaws.com")


async def test_an_explicit_region_overrides_the_profiles(
    device_profile: str, moto_server: MotoServer
) -> None:
    host = await discover_credentials_endpoint(
        profile_name=device_profile, region_name="eu-north-1", endpoint_url=moto_server.endpoint_url
    )

    assert host.endswith(".credentials.iot.eu-north-1.amazonaws.com")


async def test_discovery_with_an_unknown_profile_is_non_recoverable(
    device_profile: str, moto_server: MotoServer
) -> None:
    with pytest.raises(NonRecoverableIoTError, match="'no-such-profile'"):
        await discover_credentials_endpoint(
            profile_name="no-such-profile", endpoint_url=moto_server.endpoint_url
        )


async def test_discovery_without_a_region_is_non_recoverable(
    aws_env: object, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")

    with pytest.raises(NonRecoverableCredentialError, match="region"):
        await discover_credentials_endpoint(endpoint_url=moto_server.endpoint_url)


async def test_discovery_connection_failure_is_a_recoverable_iot_error(
    aws_env: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

    with pytest.raises(IoTCredentialError, match="discovering") as caught:
        await discover_credentials_endpoint(endpoint_url=f"http://127.0.0.1:{free_port()}")
    assert not isinstance(caught.value, NonRecoverableCredentialError)


async def test_discovery_access_denied_is_non_recoverable_with_status_and_code(
    aws_env: object,
    monkeypatch: pytest.MonkeyPatch,
    plain_http: Callable[[web.Response], Awaitable[str]],
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    url = await plain_http(
        web.json_response(
            {"message": "User is not authorized to perform: iot:DescribeEndpoint"},
            status=403,
            headers={"x-amzn-ErrorType": "AccessDeniedException:"},
        )
    )

    with pytest.raises(NonRecoverableIoTError) as caught:
        await discover_credentials_endpoint(endpoint_url=url)

    assert caught.value.status_code == 403
    assert caught.value.code == "AccessDeniedException"
    assert "iot:DescribeEndpoint" in str(caught.value)


async def test_a_refused_discovery_never_shows_the_answer_body(
    aws_env: object,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    plain_http: Callable[[web.Response], Awaitable[str]],
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiorefresh")  # botocore's DEBUG log shows bodies
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    url = await plain_http(
        web.Response(status=400, text=f"secretAccessKey={SECRET}", content_type="text/plain")
    )

    with pytest.raises(IoTCredentialError) as caught:
        await discover_credentials_endpoint(endpoint_url=url)

    assert caught.value.status_code == 400
    assert SECRET not in shown(caught.value, caplog)


async def test_fetcher_discovers_the_endpoint_once_and_caches_it(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    calls = 0

    async def discover() -> str:
        nonlocal calls
        calls += 1
        return server.endpoint

    fetcher = make_fetcher(endpoint=None, discover_endpoint=True, discover=discover)
    await fetcher()
    await fetcher()

    assert calls == 1
    assert fetcher.endpoint == server.endpoint
    assert server.count() == 2


async def test_discovered_data_endpoint_is_non_recoverable(make_fetcher: MakeFetcher) -> None:
    async def discover() -> str:
        return "a1b2c3-ats.iot.us-east-1.amazonaws.com"

    fetcher = make_fetcher(endpoint=None, discover_endpoint=True, discover=discover)
    error = await fetch_error(fetcher)

    assert isinstance(error, NonRecoverableCredentialError)
    assert fetcher.endpoint is None


async def test_failed_discovery_is_an_iot_error_and_is_retried_next_call(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    answers: list[BaseException | str] = [OSError("network is down"), server.endpoint]

    async def discover() -> str:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    fetcher = make_fetcher(endpoint=None, discover_endpoint=True, discover=discover)
    error = await fetch_error(fetcher)

    assert "network is down" in str(error)
    assert not isinstance(error, NonRecoverableCredentialError)
    assert (await fetcher()).access_key
