"""Credential reads and refreshes: aiorefresh's engine against aiobotocore and botocore.

Run: ``python benchmarks/bench_credentials.py [--json PATH] [--quick]``. Prints a table and
writes JSON (default ``benchmarks/results/credentials.json``). Nothing touches the network.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiobotocore
import botocore
from aiobotocore.credentials import AioDeferredRefreshableCredentials
from botocore.credentials import DeferredRefreshableCredentials

from aiorefresh._aiobotocore import EngineCredentials
from aiorefresh._engine import RefreshEngine
from aiorefresh._util import utc_now
from aiorefresh.testing import CountingFetcher

RESULTS = Path(__file__).parent / "results"


def _metadata(lifetime: timedelta, clock: Any = None) -> tuple[Any, list[int]]:
    calls = [0]

    def refresh() -> dict[str, str]:
        calls[0] += 1
        expiry = (clock or utc_now)() + lifetime
        return {
            "access_key": f"AK{calls[0]}",
            "secret_key": "SK",
            "token": "TK",
            "expiry_time": expiry.isoformat(),
        }

    return refresh, calls


async def _per_op(op: Any, n: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            await op()
        samples.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(samples)


def _per_op_sync(op: Any, n: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            op()
        samples.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(samples)


async def fast_path(n: int, rounds: int) -> dict[str, float]:
    """µs per read of fresh one-hour credentials."""
    engine = RefreshEngine(CountingFetcher(utc_now, lifetime=timedelta(hours=1)))  # type: ignore[arg-type]
    ours = EngineCredentials(engine, "bench")
    await ours.get_frozen_credentials()

    refresh, _ = _metadata(timedelta(hours=1))
    aio = AioDeferredRefreshableCredentials(refresh_using=refresh, method="bench")
    await aio.get_frozen_credentials()

    sync = DeferredRefreshableCredentials(refresh_using=refresh, method="bench")
    sync.get_frozen_credentials()
    return {
        "aiorefresh get_frozen_credentials": await _per_op(ours.get_frozen_credentials, n, rounds),
        "aiobotocore get_frozen_credentials": await _per_op(aio.get_frozen_credentials, n, rounds),
        "botocore (sync) get_frozen_credentials": _per_op_sync(
            sync.get_frozen_credentials, n, rounds
        ),
    }


async def short_lived(calls: int) -> dict[str, int]:
    """Fetches caused by ``calls`` sequential reads of 15-minute credentials (one minute apart
    would be the same: aiobotocore's fixed 15-minute advisory window covers their lifetime)."""
    fetcher = CountingFetcher(utc_now, lifetime=timedelta(minutes=15))  # type: ignore[arg-type]
    engine = RefreshEngine(fetcher)
    for _ in range(calls):
        await engine.get_frozen()
    refresh, counter = _metadata(timedelta(minutes=15))
    aio = AioDeferredRefreshableCredentials(refresh_using=refresh, method="bench")
    for _ in range(calls):
        await aio.get_frozen_credentials()
    return {"aiorefresh fetches": fetcher.calls, "aiobotocore fetches": counter[0]}


async def single_flight(callers: int) -> dict[str, float]:
    """``callers`` tasks asking at once on a cold start: fetches and wall time to serve all."""
    fetcher = CountingFetcher(utc_now, lifetime=timedelta(hours=1))  # type: ignore[arg-type]
    engine = RefreshEngine(fetcher)
    start = time.perf_counter()
    await asyncio.gather(*(engine.get() for _ in range(callers)))
    ours_ms = (time.perf_counter() - start) * 1e3

    refresh, counter = _metadata(timedelta(hours=1))

    async def slow_refresh() -> dict[str, str]:
        await asyncio.sleep(0)
        return refresh()

    aio = AioDeferredRefreshableCredentials(refresh_using=slow_refresh, method="bench")
    start = time.perf_counter()
    await asyncio.gather(*(aio.get_frozen_credentials() for _ in range(callers)))
    aio_ms = (time.perf_counter() - start) * 1e3
    return {
        "aiorefresh fetches": fetcher.calls,
        "aiorefresh ms": ours_ms,
        "aiobotocore fetches": counter[0],
        "aiobotocore ms": aio_ms,
    }


async def per_method(n: int, rounds: int) -> dict[str, float]:
    """µs per fresh read through ``session.get_credentials()`` for every method, each against
    a local server (STS stand-in, IoT mTLS server); expiries in any zone are kept as UTC."""
    from dateutil.tz import tzlocal

    from aiorefresh import RefreshableSession, TemporaryCredentials
    from aiorefresh.testing import IoTCredentialsServer, STSStandIn

    role = {"RoleArn": "arn:aws:iam::123456789012:role/bench"}

    async def tz_local() -> TemporaryCredentials:
        expiry = datetime.now(tzlocal()) + timedelta(hours=1)
        return TemporaryCredentials("ASIABENCH", "secret", "token", expiry_time=expiry)

    results: dict[str, float] = {}
    async with STSStandIn() as sts, IoTCredentialsServer(role_alias="bench") as iot:
        sts_kwargs = {"endpoint_url": sts.endpoint_url, "region_name": "us-east-1"}
        ends = {"endpoint_url": sts.endpoint_url}
        sessions = {
            "custom": RefreshableSession(custom_credentials_method=tz_local),
            "default (static keys)": RefreshableSession("AKIABENCH", "secret"),
            # The STS methods sign with explicit keys: no AWS_* variables or files needed.
            "sts": RefreshableSession(
                "AKIABENCH",
                "secret",
                assume_role_kwargs=role,
                sts_client_kwargs=sts_kwargs,
                default_client_kwargs=ends,
            ),
            "session_token": RefreshableSession(
                "AKIABENCH",
                "secret",
                method="session_token",
                sts_client_kwargs=sts_kwargs,
                default_client_kwargs=ends,
            ),
            "web_identity": RefreshableSession(
                web_identity_kwargs=role,
                web_identity_token=lambda: "eyJ.bench.token",
                sts_client_kwargs=sts_kwargs,
                default_client_kwargs=ends,
            ),
            "iot": RefreshableSession(
                endpoint=iot.endpoint,
                role_alias="bench",
                certificate=iot.client_cert_pem,
                private_key=iot.client_key_pem,
                ca=iot.ca_pem,
            ),
        }
        for name, session in sessions.items():
            async with session:
                creds = await session.get_credentials()
                await creds.get_frozen_credentials()
                results[name] = await _per_op(creds.get_frozen_credentials, n, rounds)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, default=RESULTS / "credentials.json")
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args(argv)
    n, rounds = (2_000, 3) if args.quick else (50_000, 7)

    async def run() -> dict[str, Any]:
        return {
            "fast_path_us": await fast_path(n, rounds),
            "per_method_us": await per_method(n, rounds),
            "fifteen_minute_credentials_1000_reads": await short_lived(1000),
            "single_flight_10000_callers": await single_flight(10_000),
        }

    results = asyncio.run(run())
    results["environment"] = {
        "python": sys.version.split()[0],
        "aiobotocore": aiobotocore.__version__,
        "botocore": botocore.__version__,
        "machine": platform.machine(),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    print(f"credentials benchmark (aiobotocore {aiobotocore.__version__})")
    print(f"{'fast path, fresh credentials':<44}{'µs/read':>12}")
    for name, value in results["fast_path_us"].items():
        print(f"  {name:<42}{value:>12.2f}")
    print(f"{'fresh read per method (session)':<44}{'µs/read':>12}")
    for name, value in results["per_method_us"].items():
        print(f"  {name:<42}{value:>12.2f}")
    print(f"{'15-minute credentials, 1000 reads':<44}{'fetches':>12}")
    for name, value in results["fifteen_minute_credentials_1000_reads"].items():
        print(f"  {name:<42}{value:>12}")
    print(f"{'10,000 callers on a cold start':<44}{'value':>12}")
    for name, value in results["single_flight_10000_callers"].items():
        print(f"  {name:<42}{value:>12.1f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
