"""Benchmark: a pooled lease against a per-use aiobotocore client, on a local moto server.

Measures, in one run and one process:

(a) the pool's hit path, ``async with pool.lease("s3") as c: pass``;
(b) raw aiobotocore, ``async with session.create_client("s3", ...) as c: pass``;
(c) each of them plus one real request (``list_buckets``) against moto.

Usage: ``python benchmarks/bench_pool.py [--json out.json] [--quick]``. Prints a table and
writes JSON (default ``benchmarks/results/pool.json``). moto's server closes each HTTP
connection, so (c) compares client set-up, not connection reuse.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from aiorefresh import ClientPool, RefreshableSession
from aiorefresh.testing import AWS_TEST_ENV, MotoServer

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "pool.json"
REGION = "us-east-1"


class SessionFactory:
    """The factory the session uses: ``create_client`` entered, closed with ``__aexit__``."""

    def __init__(self, session: AioSession) -> None:
        self._session = session

    async def create(self, kind: str, kwargs: dict[str, Any]) -> Any:
        return await self._session.create_client(**kwargs).__aenter__()

    async def close(self, kind: str, client: Any) -> None:
        await client.__aexit__(None, None, None)


async def measure(
    name: str, op: Callable[[], Awaitable[None]], *, ops: int, repeats: int
) -> dict[str, Any]:
    """Run ``op`` ``ops`` times per repeat; report µs per operation (median and best)."""
    await op()  # warm caches (service models, endpoint rules) outside the timing
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(ops):
            await op()
        samples.append((time.perf_counter_ns() - start) / ops / 1000)
    return {
        "name": name,
        "ops": ops,
        "repeats": repeats,
        "us_per_op_median": round(statistics.median(samples), 3),
        "us_per_op_best": round(min(samples), 3),
    }


async def run(endpoint_url: str, *, quick: bool) -> list[dict[str, Any]]:
    session = AioSession()
    pool = ClientPool(
        SessionFactory(session),
        default_region=REGION,
        default_client_kwargs={"endpoint_url": endpoint_url},
    )
    config = AioConfig(retries={"max_attempts": 2})
    hit_ops, create_ops, request_ops = (2_000, 20, 20) if quick else (50_000, 200, 100)
    repeats = 3 if quick else 5

    async def pool_hit() -> None:
        async with pool.lease("s3"):
            pass

    async def pool_hit_with_config() -> None:
        async with pool.lease("s3", config=config):
            pass

    facade = RefreshableSession(
        region_name=REGION, default_client_kwargs={"endpoint_url": endpoint_url}
    )

    async def session_client_hit() -> None:
        async with facade.client("s3"):
            pass

    try:
        import aioboto3
    except ImportError:
        aioboto3 = None
    boto3_session = aioboto3.Session(region_name=REGION) if aioboto3 is not None else None

    async def aioboto3_create() -> None:
        assert boto3_session is not None
        async with boto3_session.client("s3", endpoint_url=endpoint_url):
            pass

    async def raw_create() -> None:
        async with session.create_client("s3", region_name=REGION, endpoint_url=endpoint_url):
            pass

    async def pool_request() -> None:
        async with pool.lease("s3") as client:
            await client.list_buckets()

    async def raw_request() -> None:
        async with session.create_client(
            "s3", region_name=REGION, endpoint_url=endpoint_url
        ) as client:
            await client.list_buckets()

    try:
        extra = []
        if boto3_session is not None:
            extra.append(
                await measure(
                    "(b) aioboto3 Session.client per use",
                    aioboto3_create,
                    ops=create_ops,
                    repeats=repeats,
                )
            )
        return [
            await measure("(a) pool.lease hit", pool_hit, ops=hit_ops, repeats=repeats),
            await measure(
                "(a) RefreshableSession.client hit",
                session_client_hit,
                ops=hit_ops,
                repeats=repeats,
            ),
            await measure(
                "(a) pool.lease hit, with AioConfig",
                pool_hit_with_config,
                ops=hit_ops,
                repeats=repeats,
            ),
            await measure("(b) create_client per use", raw_create, ops=create_ops, repeats=repeats),
            *extra,
            await measure(
                "(c) pool.lease + list_buckets", pool_request, ops=request_ops, repeats=repeats
            ),
            await measure(
                "(c) create_client + list_buckets", raw_request, ops=request_ops, repeats=repeats
            ),
        ]
    finally:
        await pool.aclose()
        await facade.aclose()


def print_table(results: list[dict[str, Any]]) -> None:
    width = max(len(r["name"]) for r in results)
    print(f"{'benchmark':<{width}}  {'µs/op (median)':>15}  {'µs/op (best)':>13}  {'ops':>7}")
    for r in results:
        print(
            f"{r['name']:<{width}}  {r['us_per_op_median']:>15,.2f}  "
            f"{r['us_per_op_best']:>13,.2f}  {r['ops'] * r['repeats']:>7,}"
        )
    by_name = {r["name"]: r["us_per_op_median"] for r in results}
    hit, create = by_name["(a) pool.lease hit"], by_name["(b) create_client per use"]
    pooled, raw = (
        by_name["(c) pool.lease + list_buckets"],
        by_name["(c) create_client + list_buckets"],
    )
    print(f"\nlease hit is {create / hit:,.0f}x cheaper than a per-use client")
    print(f"with one request: {raw / pooled:,.1f}x ({raw - pooled:,.0f} µs saved per use)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_OUTPUT, help="where to write JSON")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    args = parser.parse_args(argv)

    os.environ.update(AWS_TEST_ENV)
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)
    server = MotoServer().start()
    try:
        results = asyncio.run(run(server.endpoint_url, quick=args.quick))
    finally:
        server.stop()

    print_table(results)
    report = {
        "benchmark": "pool",
        "environment": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "aiobotocore": version("aiobotocore"),
            "botocore": version("botocore"),
            "aiohttp": version("aiohttp"),
        },
        "results": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
