"""The ``iot`` fetcher: requests over real mutual TLS on loopback against IoTCredentialsServer,
every form of PEM source, and the HTTP sessions it keeps across calls, closes and event loops."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from _iot_fetcher_helpers import ALIAS, CREDENTIALS_HOST, MakeFetcher, options_for
from aiorefresh._fetchers.iot import IoTCredentialFetcher, validate_iot_options
from aiorefresh.errors import ConfigurationError, ValidationError
from aiorefresh.testing import FrozenClock, IoTCredentialsServer

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
