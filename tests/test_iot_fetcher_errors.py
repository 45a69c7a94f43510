"""The errors of the ``iot`` fetcher: TLS failures, HTTP error statuses and malformed answers from
IoTCredentialsServer, which of them are recoverable, and that none echoes an answer body."""

from __future__ import annotations

import json
import logging
import ssl
from typing import Any

import aiohttp
import pytest

from _iot_fetcher_helpers import (
    ALIAS,
    CREDENTIALS_HOST,
    SECRET,
    TOKEN,
    MakeFetcher,
    fetch_error,
    free_port,
    options_for,
    shown,
)
from aiorefresh import RefreshableSession
from aiorefresh._fetchers import iot
from aiorefresh._fetchers.iot import IoTCredentialFetcher, validate_iot_options
from aiorefresh.errors import (
    CredentialRefreshError,
    IoTCredentialError,
    NonRecoverableCredentialError,
    NonRecoverableIoTError,
)
from aiorefresh.testing import FrozenClock, IoTCredentialsServer

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
