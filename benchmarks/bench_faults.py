"""The core under load: the figures of the defects fixed by "the core under load".

Run: ``python benchmarks/bench_faults.py [--json PATH] [--quick]``. Prints a table and writes
JSON (default ``benchmarks/results/faults.json``). Everything runs on 127.0.0.1 (moto's server).

- open clients at peak under churn: ``max_clients=2``, 3 configurations, short leases with
  random arrival and random cancellation, real aiobotocore clients on moto;
- fetches per second under a failing source: 200 callers over one second of real time
  against a source that fails at once;
- expired hand-outs: 1,000 waiters of a fetch whose answer lives 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiobotocore

from aiorefresh import CredentialRefreshError, RefreshableSession, TemporaryCredentials
from aiorefresh.testing import AWS_TEST_ENV, MotoServer

RESULTS = Path(__file__).parent / "results"


async def churn(endpoint: str, leases: int, seed: int = 20261202) -> dict[str, float]:
    """Peak open clients and creations of a bounded pool under random short leases."""
    rng = random.Random(seed)
    regions = ["us-east-1", "eu-west-1", "ap-south-1"]
    peak = 0
    async with RefreshableSession(
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="secret",
        max_clients=2,
        default_client_kwargs={"endpoint_url": endpoint},
    ) as session:

        async def one(delay: float, region: str) -> None:
            nonlocal peak
            await asyncio.sleep(delay)
            async with session.client("s3", region_name=region) as s3:
                stats = session.pool.stats()
                peak = max(peak, stats.creations - stats.closes)
                await s3.list_buckets()

        tasks = [
            asyncio.create_task(one(rng.uniform(0, 1.0), rng.choice(regions)))
            for _ in range(leases)
        ]
        await asyncio.sleep(0.3)
        for task in rng.sample(tasks, leases // 5):  # cancel a fifth mid-way
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stats = session.pool.stats()
    return {
        "leases": leases,
        "configurations": len(regions),
        "max_clients": 2,
        "peak open clients": peak,
        "creations": stats.creations,
    }


async def failing_source(callers: int = 200, seconds: float = 1.0) -> dict[str, float]:
    """Fetches a source that fails at once gets from ``callers`` spread over ``seconds``."""
    calls = 0

    async def fails() -> TemporaryCredentials:
        nonlocal calls
        calls += 1
        raise ConnectionResetError("reset by peer")

    errors = 0
    async with RefreshableSession(custom_credentials_method=fails) as session:
        for _ in range(callers):
            try:
                await session.refreshable_credentials()
            except CredentialRefreshError:
                errors += 1
            await asyncio.sleep(seconds / callers)
    return {"callers": callers, "seconds": seconds, "fetches": calls, "errors": errors}


async def expired_hand_outs(waiters: int = 1000) -> dict[str, float]:
    """How many of ``waiters`` get credentials from a fetch whose answer lives 5 ms."""

    async def short_lived() -> TemporaryCredentials:
        await asyncio.sleep(0.01)
        expiry = datetime.now(timezone.utc) + timedelta(milliseconds=5)
        return TemporaryCredentials("ASIASHORT", "secret", "token", expiry_time=expiry)

    async with RefreshableSession(custom_credentials_method=short_lived) as session:
        results = await asyncio.gather(
            *(session.refreshable_credentials() for _ in range(waiters)), return_exceptions=True
        )
    now = datetime.now(timezone.utc)
    handed = [r for r in results if isinstance(r, TemporaryCredentials)]
    expired = [r for r in handed if r.expiry_time <= now]
    return {"waiters": waiters, "handed out": len(handed), "expired when used": len(expired)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, default=RESULTS / "faults.json")
    parser.add_argument("--quick", action="store_true", help="fewer leases")
    args = parser.parse_args(argv)
    logging.getLogger("aiorefresh").setLevel(logging.ERROR)  # the failures are the point here
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ.update(AWS_TEST_ENV)
    moto = MotoServer().start()
    try:

        async def run() -> dict[str, Any]:
            return {
                "churn": await churn(moto.endpoint_url, 100 if args.quick else 300),
                "failing_source": await failing_source(),
                "expired_hand_outs": await expired_hand_outs(),
            }

        started = time.perf_counter()
        results = asyncio.run(run())
        results["seconds"] = round(time.perf_counter() - started, 1)
    finally:
        with contextlib.suppress(Exception):
            moto.stop()
    results["environment"] = {
        "python": sys.version.split()[0],
        "aiobotocore": aiobotocore.__version__,
        "machine": platform.machine(),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    print(f"the core under load (aiobotocore {aiobotocore.__version__})")
    for section in ("churn", "failing_source", "expired_hand_outs"):
        print(f"{section.replace('_', ' ')}")
        for name, value in results[section].items():
            print(f"  {name:<40}{value:>10}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
