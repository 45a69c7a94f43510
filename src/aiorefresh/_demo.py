"""The demo behind ``aiorefresh demo``: every claim shown against real local servers.

Nothing leaves 127.0.0.1: the demo starts moto's server, the STS stand-in and the IoT
credentials server itself, with fake keys in the environment.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from datetime import timedelta

from ._engine import RefreshEvent
from ._session import RefreshableSession
from ._types import TemporaryCredentials
from ._util import utc_now

__all__ = ["run_demo"]


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _fake_environment() -> None:
    from .testing import AWS_TEST_ENV

    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(AWS_TEST_ENV)


async def _single_flight_and_windows() -> None:
    from .testing import CountingFetcher, FrozenClock

    _say("1. Refresh engine: a custom fetcher issuing 2-minute credentials, time jumped by hand")
    clock = FrozenClock()
    fetcher = CountingFetcher(clock, lifetime=timedelta(minutes=2))
    events: list[RefreshEvent] = []
    async with RefreshableSession(
        custom_credentials_method=fetcher, clock=clock, on_refresh=events.append
    ) as session:
        fetcher.gate = asyncio.Event()
        waiting = [asyncio.create_task(session.refreshable_credentials()) for _ in range(1000)]
        await asyncio.sleep(0.01)
        fetcher.gate.set()
        results = await asyncio.gather(*waiting)
        keys = {r.access_key for r in results}
        _say(f"   1,000 tasks asked at once -> {fetcher.calls} fetch, keys handed out: {keys}")
        stats = session.refresh_stats()
        assert stats.next_due is not None
        assert stats.expiry_time is not None
        _say(
            f"   windows for 120 s credentials: advisory refresh from "
            f"{(stats.expiry_time - stats.next_due).total_seconds():.0f} s before expiry, "
            "mandatory from 30 s (capped at half and a quarter of the lifetime)"
        )
        fetcher.gate = None
        steps = (
            ("fresh (30 s left of 120)    ", 90, "served at once, no fetch"),
            ("advisory (50 s left)        ", 50, "served at once, fetch in the background"),
            ("a moment later              ", None, "the new set, fetched in the background"),
            ("mandatory (20 s left)       ", 20, "callers wait for the one fetch"),
            ("expired (5 s past)          ", -5, "never served: callers wait for a fetch"),
        )
        for label, left, meaning in steps:
            current = session.refresh_stats().expiry_time
            assert current is not None
            if left is not None:
                clock.set(current - timedelta(seconds=left))
            before = fetcher.calls
            creds = await session.refreshable_credentials()
            await asyncio.sleep(0)
            _say(f"   {label} -> {creds.access_key}, fetches {before}->{fetcher.calls}: {meaning}")
        phases = [e.phase for e in events]
        _say(f"   refresh phases seen by on_refresh: {phases}")
        fetcher.fail_with = OSError("STS unreachable")
        clock.advance(100)  # into the mandatory window of the current set
        creds = await session.refreshable_credentials()
        _say(
            f"   mandatory window, source down -> still-valid {creds.access_key} served "
            "(static stability)"
        )


async def _sts_on_moto(endpoint: str) -> None:
    from .testing import FrozenClock

    _say()
    _say(f"2. STS AssumeRole with an MFA command, against moto at {endpoint}")
    clock = FrozenClock(start=utc_now())  # moto issues credentials by the real time
    async with RefreshableSession(
        assume_role_kwargs={
            "RoleArn": "arn:aws:iam::123456789012:role/demo-reader",
            "RoleSessionName": "demo",
            "SerialNumber": "arn:aws:iam::123456789012:mfa/demo-user",
            "DurationSeconds": 900,
        },
        mfa_token_provider=[sys.executable, "-c", "print('your code: 123456')"],
        sts_client_kwargs={"endpoint_url": endpoint},
        default_client_kwargs={"endpoint_url": endpoint},
        region_name="us-east-1",
        clock=clock,
        max_clients=4,
    ) as session:
        identity = await session.whoami()
        _say(f"   whoami -> {identity.arn}")
        creds = await session.refreshable_credentials()
        _say(f"   credentials -> {creds!r}")
        child = await session.assume_role(
            "arn:aws:iam::123456789012:role/demo-writer", RoleSessionName="chained"
        )
        _say(f"   chained role -> {(await child.whoami()).arn}")

        async def put(n: int) -> None:
            async with session.client("s3") as s3:
                await s3.put_object(Bucket="aiorefresh-demo", Key=f"k{n}", Body=b"x")

        async with session.client("s3") as s3:
            await s3.create_bucket(Bucket="aiorefresh-demo")
        started = time.perf_counter()
        await asyncio.gather(*(put(n) for n in range(200)))
        elapsed = time.perf_counter() - started
        async with session.client("s3") as s3:
            listing = await s3.list_objects_v2(Bucket="aiorefresh-demo")
        stats = session.pool.stats()
        _say(
            f"   200 concurrent put_object through the pool in {elapsed * 1000:.0f} ms -> "
            f"{listing['KeyCount']} objects; pool: {stats}"
        )


async def _sts_faults() -> None:
    from .testing import FrozenClock, STSStandIn

    _say()
    _say("3. STS faults from the stand-in: throttled in the mandatory window, then access denied")
    clock = FrozenClock()
    async with STSStandIn(clock=clock) as sts:
        from aiobotocore.config import AioConfig

        async with RefreshableSession(
            assume_role_kwargs={"RoleArn": "arn:aws:iam::123456789012:role/demo"},
            sts_client_kwargs={
                "endpoint_url": sts.endpoint_url,
                "config": AioConfig(retries={"total_max_attempts": 1}),
            },
            clock=clock,
        ) as session:
            first = await session.refreshable_credentials()
            clock.set(first.expiry_time - timedelta(seconds=30))
            sts.script("throttle")
            again = await session.refreshable_credentials()
            _say(f"   throttled -> kept {again.access_key} (same as before: {again == first})")
            clock.advance(60)
            sts.script("access_denied")
            try:
                await session.refreshable_credentials()
            except Exception as exc:
                _say(f"   expired + AccessDenied -> {type(exc).__name__}: {exc}")
            _say(f"   STS requests seen by the stand-in: {sts.count()}")


async def _iot() -> None:
    from .testing import FrozenClock, IoTCredentialsServer

    _say()
    _say("4. IoT Core X.509: mutual TLS to a local credentials provider")
    clock = FrozenClock()
    async with (
        IoTCredentialsServer(
            role_alias="demo-alias", clock=clock, lifetime=timedelta(hours=1)
        ) as server,
        RefreshableSession(
            endpoint=server.endpoint,
            role_alias="demo-alias",
            certificate=server.client_cert_pem,
            private_key=server.client_key_pem,
            ca=server.ca_pem,
            thing_name="demo-thing",
            clock=clock,
        ) as session,
    ):
        results = await asyncio.gather(*(session.refreshable_credentials() for _ in range(500)))
        creds: TemporaryCredentials = results[0]
        _say(
            f"   500 tasks -> {server.count()} mTLS request(s); credentials {creds.access_key} "
            f"valid until {creds.expiry_time:%H:%M}"
        )


async def _main() -> None:
    _fake_environment()
    await _single_flight_and_windows()
    from .testing import MotoServer

    moto = MotoServer().start()
    try:
        await _sts_on_moto(moto.endpoint_url)
    finally:
        moto.stop()
    await _sts_faults()
    await _iot()
    _say()
    _say("Done: every server above ran on 127.0.0.1 and was stopped.")


def run_demo(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit status."""
    logging.basicConfig(level=logging.WARNING, format="   log: %(message)s", stream=sys.stdout)
    try:
        asyncio.run(_main())
    except ImportError as exc:
        _say(f"the demo needs the testing extra: pip install 'aiorefresh[testing]' ({exc})")
        return 2
    return 0
