"""The ``iot`` method: AWS IoT Core X.509 credentials over real mutual TLS on loopback."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import ssl
import stat
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from aiorefresh.errors import (
    ConfigurationError,
    CredentialRefreshError,
    IoTCredentialError,
    NonRecoverableCredentialError,
    ValidationError,
)
from aiorefresh.fetchers import iot
from aiorefresh.fetchers.iot import (
    IoTConfig,
    IoTCredentialFetcher,
    discover_credentials_endpoint,
    validate_iot_options,
)
from aiorefresh.testing import FrozenClock, IoTCredentialsServer, MotoServer

ALIAS = "aiorefresh-test"
CREDENTIALS_HOST = "c2abcdefghijkl.credentials.iot.us-east-1.amazonaws.com"

MakeFetcher = Callable[..., IoTCredentialFetcher]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def pki() -> IoTCredentialsServer:
    """Certificates only (the server is not started): for tests that never connect."""
    return IoTCredentialsServer(role_alias=ALIAS)


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


def options_for(pki: IoTCredentialsServer, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "endpoint": pki.endpoint or CREDENTIALS_HOST,
        "role_alias": ALIAS,
        "certificate": pki.client_cert_pem,
        "private_key": pki.client_key_pem,
        "ca": pki.ca_pem,
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


async def wait_closed(session: aiohttp.ClientSession) -> bool:
    """Let this loop run the close another loop scheduled on it (bounded)."""
    for _ in range(200):
        if session.closed:
            break
        await asyncio.sleep(0.01)
    return session.closed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    caplog.set_level(logging.DEBUG, logger="aiorefresh")

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
    assert [c.expiry_time for c in seen] == sorted(c.expiry_time for c in seen)
    assert seen[2].expiry_time - seen[0].expiry_time == timedelta(seconds=6000)


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


async def test_concurrent_calls_each_make_one_request_on_one_session(
    server: IoTCredentialsServer,
    make_fetcher: MakeFetcher,
    sessions: list[aiohttp.ClientSession],
) -> None:
    fetcher = make_fetcher()
    results = await asyncio.gather(*(fetcher() for _ in range(5)))

    assert server.count() == 5
    assert len({c.access_key for c in results}) == 5
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
    await fetcher.aclose()


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


async def test_verify_peer_false_disables_hostname_and_certificate_checks(
    server: IoTCredentialsServer,
) -> None:
    fetcher = IoTCredentialFetcher(validate_iot_options(**options_for(server, verify_peer=False)))

    context = fetcher._ssl_context
    assert context.check_hostname is False
    assert context.verify_mode == ssl.CERT_NONE


async def test_connection_refused_is_an_iot_error(make_fetcher: MakeFetcher) -> None:
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
    loop = asyncio.get_running_loop()
    started = loop.time()

    error = await fetch_error(make_fetcher(timeout=0.5))

    assert "timed out after 0.5 s" in str(error)
    assert loop.time() - started < 5
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
async def test_other_error_statuses_are_recoverable(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher, status: int
) -> None:
    server.script(server.error(status, "Something went wrong"))

    error = await fetch_error(make_fetcher())

    assert not isinstance(error, NonRecoverableCredentialError)
    assert error.status_code == status
    assert "Something went wrong" in str(error)


async def test_html_error_body_becomes_a_short_text_excerpt(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    server.script(server.respond(502, page))

    error = await fetch_error(make_fetcher())

    assert error.status_code == 502
    assert "502 Bad Gateway" in str(error)
    assert "nginx" in str(error)
    assert "<" not in str(error)


async def test_long_error_body_is_cut_to_about_200_characters(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    server.script(server.respond(500, "x" * 5000))

    error = await fetch_error(make_fetcher())

    assert "x" * 150 in str(error)
    assert "x" * 201 not in str(error)
    assert len(str(error)) < 400


async def test_redirect_is_not_followed(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    server.script(server.respond(302, "", headers={"Location": "https://example.com/"}))

    error = await fetch_error(make_fetcher())

    assert error.status_code == 302
    assert server.count() == 1


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


async def test_answer_without_credentials_object_is_non_recoverable(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    server.script(server.respond(200, {"credential": {}}))

    error = await fetch_error(make_fetcher())

    assert isinstance(error, NonRecoverableCredentialError)
    assert "'credentials'" in str(error)


@pytest.mark.parametrize(
    "missing", ["accessKeyId", "secretAccessKey", "sessionToken", "expiration"]
)
async def test_missing_field_is_named_and_no_secret_is_echoed(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher, missing: str
) -> None:
    fields = {
        "accessKeyId": "ASIAEXAMPLEEXAMPLE01",
        "secretAccessKey": "SECRET-should-never-be-shown",
        "sessionToken": "TOKEN-should-never-be-shown",
        "expiration": "2030-01-01T01:00:00Z",
    }
    del fields[missing]
    server.script(server.respond(200, {"credentials": fields}))

    error = await fetch_error(make_fetcher())

    assert isinstance(error, NonRecoverableCredentialError)
    assert f"credentials.{missing}" in str(error)
    assert "should-never-be-shown" not in str(error)


async def test_unparseable_expiration_is_non_recoverable(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    fields = {
        "accessKeyId": "ASIAEXAMPLEEXAMPLE01",
        "secretAccessKey": "SECRET-should-never-be-shown",
        "sessionToken": "TOKEN-should-never-be-shown",
        "expiration": "next tuesday",
    }
    server.script(server.respond(200, {"credentials": fields}))

    error = await fetch_error(make_fetcher())

    assert isinstance(error, NonRecoverableCredentialError)
    assert "credentials.expiration" in str(error)
    assert "should-never-be-shown" not in str(error)


# --------------------------------------------------------------------------- PEM sources


async def test_pem_given_as_str_content_works(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher
) -> None:
    fetcher = make_fetcher(
        certificate=server.client_cert_pem.decode(),
        private_key=server.client_key_pem.decode(),
        ca=server.ca_pem.decode(),
    )

    assert (await fetcher()).access_key


async def test_pem_given_as_str_paths_works(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher, tmp_path: Path
) -> None:
    files = server.write_files(tmp_path)
    fetcher = make_fetcher(
        certificate=str(files.certificate), private_key=str(files.private_key), ca=str(files.ca)
    )

    assert (await fetcher()).access_key
    assert fetcher.config.certificate_path == files.certificate


async def test_pem_given_as_pathlib_paths_works(
    server: IoTCredentialsServer, make_fetcher: MakeFetcher, tmp_path: Path
) -> None:
    files = server.write_files(tmp_path)
    fetcher = make_fetcher(
        certificate=files.certificate, private_key=files.private_key, ca=files.ca
    )

    assert (await fetcher()).access_key


async def test_home_directory_is_expanded_in_paths(
    server: IoTCredentialsServer,
    make_fetcher: MakeFetcher,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))
    server.write_files(tmp_path / "certs")
    fetcher = make_fetcher(
        certificate="~/certs/device.pem.crt",
        private_key=Path("~/certs/private.pem.key"),
        ca="~/certs/AmazonRootCA1.pem",
    )

    assert (await fetcher()).access_key
    assert fetcher.config.private_key_path == tmp_path / "certs" / "private.pem.key"


@pytest.mark.parametrize("password", ["correct horse", b"correct horse"])
async def test_encrypted_key_with_its_password_works(
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


def test_encrypted_key_without_password_is_a_configuration_error(
    pki: IoTCredentialsServer,
) -> None:
    device = pki.issue_client_certificate(password="pw")

    with pytest.raises(ConfigurationError, match="private_key_password"):
        validate_iot_options(
            **options_for(
                pki, certificate=device.certificate_pem, private_key=device.private_key_pem
            )
        )


def test_wrong_password_is_a_configuration_error(pki: IoTCredentialsServer) -> None:
    device = pki.issue_client_certificate(password="the-right-one")

    with pytest.raises(ConfigurationError, match="private_key_password") as caught:
        validate_iot_options(
            **options_for(
                pki,
                certificate=device.certificate_pem,
                private_key=device.private_key_pem,
                private_key_password="Tr0ub4dor&3",
            )
        )
    assert "Tr0ub4dor" not in str(caught.value)


def test_key_that_does_not_match_the_certificate_is_a_configuration_error(
    pki: IoTCredentialsServer,
) -> None:
    other = pki.issue_client_certificate(common_name="other-thing")

    with pytest.raises(ConfigurationError, match="does not match certificate"):
        validate_iot_options(**options_for(pki, private_key=other.private_key_pem))


def test_missing_file_names_the_parameter_and_the_path(
    pki: IoTCredentialsServer, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.pem.key"

    with pytest.raises(ConfigurationError, match="private_key file") as caught:
        validate_iot_options(**options_for(pki, private_key=missing))
    assert str(missing) in str(caught.value)


def test_unreadable_file_is_a_configuration_error(
    pki: IoTCredentialsServer, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError, match=r"certificate file .* cannot be read"):
        validate_iot_options(**options_for(pki, certificate=tmp_path))


def test_non_pem_certificate_is_a_configuration_error(
    pki: IoTCredentialsServer, tmp_path: Path
) -> None:
    der = ssl.PEM_cert_to_DER_cert(pki.client_cert_pem.decode())

    with pytest.raises(ConfigurationError, match=r"^certificate"):
        validate_iot_options(**options_for(pki, certificate=der))


def test_corrupt_certificate_is_a_configuration_error(pki: IoTCredentialsServer) -> None:
    corrupt = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"

    with pytest.raises(ConfigurationError, match=r"^certificate is not a valid PEM certificate"):
        validate_iot_options(**options_for(pki, certificate=corrupt))


def test_swapped_certificate_and_key_are_reported_as_the_certificate(
    pki: IoTCredentialsServer,
) -> None:
    with pytest.raises(ConfigurationError, match=r"^certificate") as caught:
        validate_iot_options(
            **options_for(pki, certificate=pki.client_key_pem, private_key=pki.client_cert_pem)
        )
    key_body = pki.client_key_pem.decode().splitlines()[1]
    assert key_body not in str(caught.value)


def test_corrupt_ca_is_a_configuration_error(pki: IoTCredentialsServer) -> None:
    corrupt = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"

    with pytest.raises(ConfigurationError, match=r"^ca"):
        validate_iot_options(**options_for(pki, ca=corrupt))


def test_key_material_that_is_not_pem_is_never_echoed(pki: IoTCredentialsServer) -> None:
    body = "".join(pki.client_key_pem.decode().splitlines()[1:-1])  # base64 without armour

    with pytest.raises(ConfigurationError) as caught:
        validate_iot_options(**options_for(pki, private_key=body + "\n"))
    assert body[:20] not in str(caught.value)


def test_in_memory_key_leaves_no_temporary_files(
    pki: IoTCredentialsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    config = validate_iot_options(**options_for(pki))
    IoTCredentialFetcher(config)
    with pytest.raises(ConfigurationError):
        validate_iot_options(
            **options_for(pki, private_key=pki.issue_client_certificate().private_key_pem)
        )

    assert list(scratch.iterdir()) == []


def test_in_memory_key_is_loaded_from_a_private_file(
    pki: IoTCredentialsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, int]] = []
    original = ssl.SSLContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        seen.append(
            (
                stat.S_IMODE(os.stat(keyfile).st_mode),
                stat.S_IMODE(os.stat(os.path.dirname(keyfile)).st_mode),
            )
        )
        original(self, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    validate_iot_options(**options_for(pki))

    assert seen == [(0o600, 0o700)]


def test_paths_are_loaded_in_place_without_temporary_copies(
    pki: IoTCredentialsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = pki.write_files(tmp_path / "certs")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    made: list[str] = []
    original = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda **kw: made.append("x") or original(**kw))

    validate_iot_options(
        **options_for(pki, certificate=files.certificate, private_key=files.private_key)
    )

    assert made == []


def test_config_and_fetcher_repr_hide_key_material_and_password(
    pki: IoTCredentialsServer,
) -> None:
    device = pki.issue_client_certificate(password="hunter2-password")
    config = validate_iot_options(
        **options_for(
            pki,
            certificate=device.certificate_pem,
            private_key=device.private_key_pem,
            private_key_password="hunter2-password",
        )
    )
    text = repr(config) + repr(IoTCredentialFetcher(config))

    assert "BEGIN" not in text
    assert "hunter2" not in text
    assert ALIAS in text


# --------------------------------------------------------------------------- options


def test_a_bare_host_becomes_an_https_url(pki: IoTCredentialsServer) -> None:
    config = validate_iot_options(**options_for(pki, endpoint=CREDENTIALS_HOST))

    assert config.endpoint == f"https://{CREDENTIALS_HOST}"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://127.0.0.1:8443/", "https://127.0.0.1:8443"),
        ("HTTPS://Proxy.Example:8443/iot/", "https://proxy.example:8443/iot"),
        ("  localhost:9443 ", "https://localhost:9443"),
        ("https://[::1]:8443", "https://[::1]:8443"),
    ],
)
def test_endpoint_urls_are_normalised(pki: IoTCredentialsServer, given: str, expected: str) -> None:
    assert validate_iot_options(**options_for(pki, endpoint=given)).endpoint == expected


@pytest.mark.parametrize(
    "host",
    [
        "c2abcdefghijkl.credentials.iot.eu-west-1.amazonaws.com",
        "c2abcdefghijkl.credentials.iot-fips.us-east-1.amazonaws.com",
        "vpce-0abc.credentials.iot.us-east-1.vpce.amazonaws.com",
        "c2abcdefghijkl.credentials.iot.cn-north-1.amazonaws.com.cn",
    ],
)
def test_credentials_provider_hosts_are_accepted(pki: IoTCredentialsServer, host: str) -> None:
    assert validate_iot_options(**options_for(pki, endpoint=host)).endpoint == f"https://{host}"


@pytest.mark.parametrize(
    "endpoint",
    [
        "a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com",
        "https://a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com",
        "a1b2c3d4e5f6g7.iot.us-east-1.amazonaws.com",
        "a1b2c3d4e5f6g7.jobs.iot.us-east-1.amazonaws.com",
        "iot.us-east-1.amazonaws.com",
    ],
)
def test_data_and_other_iot_endpoints_are_refused_with_a_hint(
    pki: IoTCredentialsServer, endpoint: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        validate_iot_options(**options_for(pki, endpoint=endpoint))

    message = str(caught.value)
    assert "not the credentials provider endpoint" in message
    assert "aws iot describe-endpoint --endpoint-type iot:CredentialProvider" in message


def test_http_endpoint_is_refused_because_mtls_needs_https(pki: IoTCredentialsServer) -> None:
    with pytest.raises(ConfigurationError, match="https"):
        validate_iot_options(**options_for(pki, endpoint="http://127.0.0.1:8080"))


@pytest.mark.parametrize(
    "endpoint",
    ["", "ftp://host", "https://user:pw@host", "https://host/?a=1", "https://ho st", "https://h:x"],
)
def test_malformed_endpoints_are_refused(pki: IoTCredentialsServer, endpoint: str) -> None:
    with pytest.raises(ConfigurationError, match="endpoint"):
        validate_iot_options(**options_for(pki, endpoint=endpoint))


def test_endpoint_credentials_are_never_echoed(pki: IoTCredentialsServer) -> None:
    with pytest.raises(ConfigurationError, match="must not carry credentials") as info:
        validate_iot_options(**options_for(pki, endpoint="https://admin:Sup3rS3cret@proxy.test"))
    assert "Sup3rS3cret" not in str(info.value)


def test_endpoint_of_the_wrong_type_is_a_validation_error(pki: IoTCredentialsServer) -> None:
    with pytest.raises(ValidationError, match="endpoint"):
        validate_iot_options(**options_for(pki, endpoint=b"host"))


def test_no_endpoint_and_no_discovery_is_a_configuration_error(
    pki: IoTCredentialsServer,
) -> None:
    with pytest.raises(ConfigurationError, match="describe-endpoint"):
        validate_iot_options(**options_for(pki, endpoint=None))


def test_endpoint_and_discovery_together_are_refused(pki: IoTCredentialsServer) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        validate_iot_options(**options_for(pki, discover_endpoint=True))


@pytest.mark.parametrize("alias", ["", "has space", "slash/alias", "x" * 129, "ünïcode"])
def test_invalid_role_alias_is_a_configuration_error(pki: IoTCredentialsServer, alias: str) -> None:
    with pytest.raises(ConfigurationError, match="role_alias"):
        validate_iot_options(**options_for(pki, role_alias=alias))


@pytest.mark.parametrize("alias", ["a", "My_Role=Alias,x@y-z", "x" * 128])
def test_valid_role_aliases_are_accepted(pki: IoTCredentialsServer, alias: str) -> None:
    assert validate_iot_options(**options_for(pki, role_alias=alias)).role_alias == alias


@pytest.mark.parametrize("alias", [None, 42])
def test_missing_or_non_str_role_alias_is_a_validation_error(
    pki: IoTCredentialsServer, alias: object
) -> None:
    with pytest.raises(ValidationError, match="role_alias"):
        validate_iot_options(**options_for(pki, role_alias=alias))


@pytest.mark.parametrize(
    ("thing", "error"),
    [
        ("", ConfigurationError),
        ("a b", ConfigurationError),
        ("x" * 129, ConfigurationError),
        (7, ValidationError),
    ],
)
def test_invalid_thing_name_is_refused(
    pki: IoTCredentialsServer, thing: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="thing_name"):
        validate_iot_options(**options_for(pki, thing_name=thing))


@pytest.mark.parametrize(
    ("duration", "error"),
    [
        (899, ConfigurationError),
        (43201, ConfigurationError),
        (True, ValidationError),
        (900.0, ValidationError),
        ("900", ValidationError),
    ],
)
def test_invalid_duration_seconds_is_refused(
    pki: IoTCredentialsServer, duration: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="duration_seconds"):
        validate_iot_options(**options_for(pki, duration_seconds=duration))


@pytest.mark.parametrize("duration", [900, 3600, 43200])
def test_duration_seconds_in_range_is_accepted(pki: IoTCredentialsServer, duration: int) -> None:
    assert (
        validate_iot_options(**options_for(pki, duration_seconds=duration)).duration_seconds
        == duration
    )


@pytest.mark.parametrize(
    ("timeout", "error"),
    [
        (0, ConfigurationError),
        (-1.0, ConfigurationError),
        (float("inf"), ConfigurationError),
        (float("nan"), ConfigurationError),
        (True, ValidationError),
        ("10", ValidationError),
    ],
)
def test_invalid_timeout_is_refused(
    pki: IoTCredentialsServer, timeout: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="timeout"):
        validate_iot_options(**options_for(pki, timeout=timeout))


@pytest.mark.parametrize("name", ["verify_peer", "discover_endpoint"])
def test_flags_must_be_bools(pki: IoTCredentialsServer, name: str) -> None:
    with pytest.raises(ValidationError, match=name):
        validate_iot_options(**options_for(pki, **{name: "yes"}))


@pytest.mark.parametrize("name", ["certificate", "private_key"])
def test_missing_certificate_or_key_is_a_validation_error(
    pki: IoTCredentialsServer, name: str
) -> None:
    with pytest.raises(ValidationError, match=name):
        validate_iot_options(**options_for(pki, **{name: None}))


@pytest.mark.parametrize("value", [123, ["a"], object()])
def test_certificate_of_the_wrong_type_is_a_validation_error(
    pki: IoTCredentialsServer, value: object
) -> None:
    with pytest.raises(ValidationError, match="certificate must be a path"):
        validate_iot_options(**options_for(pki, certificate=value))


def test_password_of_the_wrong_type_is_a_validation_error(pki: IoTCredentialsServer) -> None:
    with pytest.raises(ValidationError, match="private_key_password"):
        validate_iot_options(**options_for(pki, private_key_password=1234))


def test_fetcher_needs_a_validated_config() -> None:
    with pytest.raises(ValidationError, match="IoTConfig"):
        IoTCredentialFetcher({"endpoint": CREDENTIALS_HOST})  # type: ignore[arg-type]


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


async def test_discovery_access_denied_is_non_recoverable(
    aws_env: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

    async def forbidden(request: web.Request) -> web.Response:
        return web.json_response(
            {"message": "User is not authorized to perform: iot:DescribeEndpoint"},
            status=403,
            headers={"x-amzn-ErrorType": "AccessDeniedException:"},
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forbidden)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", free_port())
    await site.start()
    try:
        with pytest.raises(NonRecoverableCredentialError) as caught:
            await discover_credentials_endpoint(endpoint_url=site.name)
    finally:
        await runner.cleanup()

    error = caught.value
    assert isinstance(error, IoTCredentialError)
    assert error.status_code == 403
    assert error.code == "AccessDeniedException"


def test_discovery_can_be_configured_without_an_endpoint(pki: IoTCredentialsServer) -> None:
    config = validate_iot_options(**options_for(pki, endpoint=None, discover_endpoint=True))
    fetcher = IoTCredentialFetcher(config)

    assert config.endpoint is None
    assert fetcher.endpoint is None


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


def test_module_exports() -> None:
    assert set(iot.__all__) >= {
        "IoTConfig",
        "IoTCredentialFetcher",
        "discover_credentials_endpoint",
        "validate_iot_options",
    }
    assert IoTConfig.__dataclass_params__.frozen  # type: ignore[attr-defined]
