"""Fan out across regions and accounts, against an embedded moto server (no AWS account needed).

    python examples/fanout.py

1. ``session.fan_out``: create a queue in five regions, at most three at once, with progress.
2. ``session.iter_fan_out``: list the queues as each region answers, stop at the first empty one.
3. ``SessionFleet``: assume a role in three accounts (role chaining from the session) and list
   each account's queues in two regions; one AssumeRole call per account.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from aiorefresh import RefreshableSession, SessionFleet
from aiorefresh.testing import AWS_TEST_ENV, MotoServer

REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"]
ACCOUNTS = ["111111111111", "222222222222", "333333333333"]


async def create_queue(sqs: Any, region: str) -> str:
    answer = await sqs.create_queue(QueueName=f"orders-{region}")
    return str(answer["QueueUrl"])


async def queue_count(sqs: Any, region: str) -> int:
    answer = await sqs.list_queues()
    return len(answer.get("QueueUrls", []))


async def account_queues(sqs: Any, account_id: str, region: str) -> int:
    return await queue_count(sqs, region)


def progress(done: int, total: int) -> None:
    print(f"  progress {done}/{total}")


async def main(endpoint_url: str) -> None:
    # Every client of the session (and of its children) goes to moto; over plain HTTP on
    # loopback there is no certificate to verify.
    local = {"endpoint_url": endpoint_url, "verify": False}
    async with RefreshableSession(region_name="us-east-1", default_client_kwargs=local) as session:
        print("1. fan_out: create a queue per region, 3 at a time")
        urls = await session.fan_out(
            "sqs", REGIONS, create_queue, concurrency=3, on_progress=progress
        )
        for region, url in urls.items():
            print(f"  {region}: {url}")

        print("2. iter_fan_out: queues per region, as they answer")
        async with session.iter_fan_out("sqs", [*REGIONS, "sa-east-1"], queue_count) as results:
            async for region, count in results:
                print(f"  {region}: {count} queue(s)")
                if count == 0:
                    print("  an empty region: stop here (whatever still runs is cancelled)")
                    break

        print("3. SessionFleet: three accounts x two regions")
        fleet = SessionFleet(
            session,
            "arn:aws:iam::{account_id}:role/Audit",
            max_sessions=16,
            sts_client_kwargs=local,
        )
        async with fleet:
            counts = await fleet.fan_out("sqs", ACCOUNTS, REGIONS[:2], account_queues)
            for (account_id, region), count in counts.items():
                print(f"  {account_id} {region}: {count} queue(s)")
            stats = fleet.stats()
            print(f"  child sessions: {stats.sessions}, AssumeRole calls: {stats.sts_calls}")


if __name__ == "__main__":
    os.environ.update(AWS_TEST_ENV)  # fake keys, no config files: nothing can reach AWS
    moto = MotoServer().start()
    try:
        asyncio.run(main(moto.endpoint_url))
    finally:
        moto.stop()
