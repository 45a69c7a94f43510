"""IoT X.509 refreshes over real mutual TLS: aiorefresh's fetcher against a fetch that builds
its TLS context and HTTP session each time (what a per-refresh client, such as one new
awscrt event-loop group per refresh, pays), and what constructing the fetcher costs (the TLS
context is built once, at validation).

Run: ``python benchmarks/bench_iot.py [--json PATH] [--quick]``. Starts the IoT credentials
stand-in on 127.0.0.1; prints a table and writes JSON (default ``results/iot.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp

from aiorefresh import RefreshableSession
from aiorefresh._fetchers.iot import IoTCredentialFetcher, validate_iot_options
from aiorefresh.testing import IoTCredentialsServer

RESULTS = Path(__file__).parent / "results"


async def _time(op: Callable[[], Awaitable[Any]], n: int, rounds: int) -> float:
    await op()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            await op()
        samples.append((time.perf_counter() - start) / n * 1e3)
    return statistics.median(samples)


async def run(n: int, rounds: int) -> dict[str, Any]:
    async with IoTCredentialsServer(role_alias="bench") as server:
        options: dict[str, Any] = {
            "endpoint": server.endpoint,
            "role_alias": "bench",
            "certificate": server.client_cert_pem,
            "private_key": server.client_key_pem,
            "ca": server.ca_pem,
        }
        config = validate_iot_options(**options)
        fetcher = IoTCredentialFetcher(config)

        async def construct() -> None:
            IoTCredentialFetcher(validate_iot_options(**options))

        url = f"{server.endpoint}/role-aliases/bench/credentials"
        folder = tempfile.mkdtemp()
        files = server.write_files(folder)

        async def per_refresh_client() -> None:
            context = ssl.create_default_context(cadata=server.ca_pem.decode())
            context.load_cert_chain(files.certificate, files.private_key)
            async with (
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http,
                http.get(url) as answer,
            ):
                await answer.json()

        session = RefreshableSession(
            endpoint=server.endpoint,
            role_alias="bench",
            certificate=server.client_cert_pem,
            private_key=server.client_key_pem,
            ca=server.ca_pem,
        )

        async def cold_start_1000_callers() -> None:
            session.invalidate()
            await asyncio.gather(*(session.refreshable_credentials() for _ in range(1000)))

        try:
            results = {
                "aiorefresh fetch (reused TLS context + HTTP session), ms": await _time(
                    fetcher, n, rounds
                ),
                "new TLS context + HTTP session per fetch, ms": await _time(
                    per_refresh_client, n, rounds
                ),
                "validate options + build fetcher (one TLS context), ms": await _time(
                    construct, max(1, n // 10), rounds
                ),
                "1000 callers on invalidated credentials, ms": await _time(
                    cold_start_1000_callers, max(1, n // 10), rounds
                ),
            }
            before = server.count()
            await cold_start_1000_callers()
            results["requests for 1000 callers"] = server.count() - before
        finally:
            await fetcher.aclose()
            await session.aclose()
        return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, default=RESULTS / "iot.json")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    n, rounds = (20, 3) if args.quick else (200, 5)
    results = asyncio.run(run(n, rounds))
    print("IoT X.509 credentials over mTLS (127.0.0.1)")
    for name, value in results.items():
        print(f"  {name:<58}{value:>10.2f}")
    payload = {
        "results": results,
        "environment": {
            "python": sys.version.split()[0],
            "aiohttp": aiohttp.__version__,
            "openssl": ssl.OPENSSL_VERSION,
            "machine": platform.machine(),
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
