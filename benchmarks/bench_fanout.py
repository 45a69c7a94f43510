"""Benchmark: cheap children and clients created off the event loop, on local servers.

Measures, each against plain aiobotocore doing the same:

(a) a child session's first client (``assume_role`` + ``client("s3")``) against a new client of
    an existing session; and the same with the first request (the child's AssumeRole
    included, answered by a local ``STSStandIn``);
(b) memory per child session (tracemalloc): children holding fetched credentials and one
    client each, and what 100 children leave behind once closed;
(c) the loop stall while a fresh process creates its first clients of s3, ec2 and dynamodb:
    the longest gap between ticks of a ticker task (one subprocess per tool, so nothing is
    loaded yet); also without the time spent in garbage collections (a full collection, which
    loading a big model in a small process triggers, stops every thread), and the longest one.

Usage: ``python benchmarks/bench_fanout.py [--json out.json] [--quick]``. Prints a table and
writes JSON (default ``benchmarks/results/fanout.json``). Requests go to moto's server over
plain HTTP (``verify=False``: no CA bundle to load).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "fanout.json"
REGION = "us-east-1"
STALL_SERVICES = ("s3", "ec2", "dynamodb")


def _environment() -> None:
    from aiorefresh.testing import AWS_TEST_ENV

    os.environ.update(AWS_TEST_ENV)
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)


async def _median_ms(op: Callable[[int], Awaitable[None]], runs: int) -> float:
    samples = []
    for i in range(runs):
        start = time.perf_counter()
        await op(i)
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 2)


# -- (a) and (b): children ----------------------------------------------------------------------


async def children(endpoint_url: str, sts_url: str, *, quick: bool) -> dict[str, Any]:
    from aiobotocore.session import AioSession

    from aiorefresh import RefreshableSession

    local = {"endpoint_url": endpoint_url, "verify": False}
    sts_kwargs = {"endpoint_url": sts_url, "verify": False}
    runs = 10 if quick else 30
    parent = RefreshableSession(region_name=REGION, default_client_kwargs=local)
    plain = AioSession()
    counter = iter(range(10**6))

    def arn() -> str:
        return f"arn:aws:iam::{100000000000 + next(counter):012d}:role/Audit"

    async def new_client(i: int) -> None:  # a new pool key each time: a creation
        async with parent.client("s3", region_name=f"us-fake-{next(counter)}"):
            pass

    async def child_first_client(i: int) -> None:
        child = await parent.assume_role(arn(), sts_client_kwargs=sts_kwargs)
        async with child.client("s3"):
            pass

    async def new_client_request(i: int) -> None:
        async with parent.client("s3", region_name=f"us-fake-{next(counter)}") as s3:
            await s3.list_buckets()

    async def child_first_request(i: int) -> None:
        child = await parent.assume_role(arn(), sts_client_kwargs=sts_kwargs)
        async with child.client("s3") as s3:
            await s3.list_buckets()

    async def plain_new_client(i: int) -> None:
        async with plain.create_client("s3", region_name=REGION, **local):
            pass

    async def plain_new_session_client(i: int) -> None:
        async with AioSession().create_client("s3", region_name=REGION, **local):
            pass

    await child_first_request(0)  # what is made once per process is made (models, classes)
    await plain_new_session_client(0)
    timings = {
        "new client, existing session": await _median_ms(new_client, runs),
        "child's first client": await _median_ms(child_first_client, runs),
        "new client + first request": await _median_ms(new_client_request, runs),
        "child's first client + first request": await _median_ms(child_first_request, runs),
        "aiobotocore: new client, existing session": await _median_ms(plain_new_client, runs),
        "aiobotocore: new session's first client": await _median_ms(
            plain_new_session_client, max(3, runs // 3)
        ),
    }

    count = 20 if quick else 50
    kept: list[Any] = []

    async def open_child() -> None:
        child = await parent.assume_role(arn(), sts_client_kwargs=sts_kwargs)
        await child.refreshable_credentials()
        kept.append(await child.get_client("s3"))
        kept.append(child)

    async def plain_child() -> None:
        session = AioSession()
        kept.append(await session.create_client("s3", region_name=REGION, **local).__aenter__())
        kept.append(session)

    async def closed_child() -> None:
        child = await parent.assume_role(arn(), sts_client_kwargs=sts_kwargs)
        await child.refreshable_credentials()
        async with child.client("s3"):
            pass
        await child.aclose()

    memory = {
        "per open child (credentials + one client)": await _bytes_each(open_child, count),
        "aiobotocore: per new session + one client": await _bytes_each(plain_child, count),
        "left per child once closed": await _bytes_each(closed_child, 100),
    }
    for item in kept:
        close = getattr(item, "close", None) or getattr(item, "aclose", None)
        if close is not None:
            await close()
    await parent.aclose()
    return {"timings_ms": timings, "memory_bytes": memory}


async def _bytes_each(make: Callable[[], Awaitable[None]], count: int) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(count):
            await make()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return round((after - before) / count)


# -- (c): the loop stall, in a fresh process per tool --------------------------------------------


async def stall(tool: str) -> dict[str, Any]:
    """Run in a fresh subprocess: the stall of each service's first client, then of all three
    created at once (other regions, so new clients)."""
    import anyio.to_thread

    collections: list[tuple[float, float]] = []  # (start, end) of every garbage collection
    started: list[float] = []

    def watch(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            collections.append((started.pop(), time.perf_counter()))

    gc.callbacks.append(watch)
    local = {"endpoint_url": "http://127.0.0.1:9", "verify": False}
    if tool == "aiorefresh":
        from aiorefresh import RefreshableSession

        session: Any = RefreshableSession(region_name=REGION, default_client_kwargs=local)

        def client(service: str, region: str) -> Any:
            return session.client(service, region_name=region)
    else:
        from aiobotocore.session import AioSession

        plain = AioSession()

        def client(service: str, region: str) -> Any:
            return plain.create_client(service, region_name=region, **local)

    await anyio.to_thread.run_sync(lambda: None)  # the thread pool exists before measuring

    async def one(service: str, region: str) -> None:
        async with client(service, region):
            pass

    async def measured(work: Callable[[], Awaitable[None]]) -> dict[str, float]:
        ticks: list[float] = []
        running = True

        async def ticker() -> None:
            ticks.append(time.perf_counter())
            while running:
                await asyncio.sleep(0)
                ticks.append(time.perf_counter())

        collections.clear()
        task = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        await work()
        running = False
        await task
        gaps = list(itertools.pairwise(ticks))

        def collecting(start: float, end: float) -> float:
            return sum(max(0.0, min(end, b) - max(start, a)) for a, b in collections)

        return {
            "stall_ms": round(max(b - a for a, b in gaps) * 1000, 1),
            "stall_without_gc_ms": round(max(b - a - collecting(a, b) for a, b in gaps) * 1000, 1),
            "longest_gc_ms": round(max((b - a for a, b in collections), default=0) * 1000, 1),
        }

    report = {}
    for service in STALL_SERVICES:
        report[f"first {service} client"] = await measured(lambda s=service: one(s, REGION))
    report["s3 + ec2 + dynamodb at once"] = await measured(
        lambda: _gather(*(one(s, "eu-west-1") for s in STALL_SERVICES))
    )
    if tool == "aiorefresh":
        await session.aclose()
    return report


async def _gather(*aws: Awaitable[None]) -> None:
    await asyncio.gather(*aws)


def stall_in_subprocess(tool: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--stall", tool],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- report ---------------------------------------------------------------------------------------


def print_table(report: dict[str, Any]) -> None:
    timings = report["children"]["timings_ms"]
    width = max(len(name) for name in timings)
    print(f"{'(a) time':<{width}}  {'ms (median)':>11}")
    for name, ms in timings.items():
        print(f"{name:<{width}}  {ms:>11,.2f}")
    ratio = timings["child's first client"] / timings["new client, existing session"]
    plain = (
        timings["aiobotocore: new session's first client"]
        / timings["aiobotocore: new client, existing session"]
    )
    print(f"child's first client / new client: {ratio:.1f}x (aiobotocore sessions: {plain:.1f}x)")

    memory = report["children"]["memory_bytes"]
    width = max(len(name) for name in memory)
    print(f"\n{'(b) memory':<{width}}  {'kB':>9}")
    for name, size in memory.items():
        print(f"{name:<{width}}  {size / 1024:>9,.1f}")

    print(
        f"\n{'(c) loop stall':<28}  {'tool':<11}  {'stall ms':>8}  {'without gc':>10}  "
        f"{'longest gc ms':>13}"
    )
    for tool, rows in report["stall"].items():
        for name, row in rows.items():
            print(
                f"{name:<28}  {tool:<11}  {row['stall_ms']:>8,.1f}  "
                f"{row['stall_without_gc_ms']:>10,.1f}  {row['longest_gc_ms']:>13,.1f}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_OUTPUT, help="where to write JSON")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument("--stall", choices=("aiorefresh", "aiobotocore"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    _environment()
    if args.stall:
        print(json.dumps(asyncio.run(stall(args.stall))))
        return 0

    from aiorefresh.testing import MotoServer, STSStandIn

    server = MotoServer().start()
    try:
        with STSStandIn().serve_in_thread() as sts:
            child_report = asyncio.run(
                children(server.endpoint_url, sts.endpoint_url, quick=args.quick)
            )
    finally:
        server.stop()
    report = {
        "benchmark": "fanout",
        "environment": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "aiobotocore": version("aiobotocore"),
            "botocore": version("botocore"),
            "aiohttp": version("aiohttp"),
            "cpus": os.cpu_count(),
        },
        "children": child_report,
        "stall": {tool: stall_in_subprocess(tool) for tool in ("aiorefresh", "aiobotocore")},
    }
    print_table(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
