"""The ``aiorefresh`` command: ``demo`` and ``whoami``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from .errors import AiorefreshError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiorefresh", description="Auto-refreshing AWS sessions for asyncio."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the demo against local servers (no AWS account)")
    whoami = commands.add_parser("whoami", help="print the identity of a session as JSON")
    whoami.add_argument("--role-arn", help="assume this role first (STS AssumeRole)")
    whoami.add_argument("--profile", help="profile for the source credentials")
    whoami.add_argument("--region", help="region for STS")
    whoami.add_argument("--endpoint-url", help="STS endpoint (e.g. a local moto server)")
    whoami.add_argument("--mfa-serial", help="MFA device ARN (with --mfa-command)")
    whoami.add_argument(
        "--mfa-command", help="command printing the MFA code, e.g. 'ykman oath code -s aws'"
    )
    return parser


async def _whoami(args: argparse.Namespace) -> dict[str, str]:
    from ._session import RefreshableSession

    client_kwargs = {"endpoint_url": args.endpoint_url} if args.endpoint_url else None
    if args.role_arn:
        assume: dict[str, str] = {"RoleArn": args.role_arn}
        if args.mfa_serial:
            assume["SerialNumber"] = args.mfa_serial
        session = RefreshableSession(
            method="sts",
            assume_role_kwargs=assume,
            sts_client_kwargs=client_kwargs,
            mfa_token_provider=args.mfa_command,
            profile_name=args.profile,
            region_name=args.region,
            default_client_kwargs=client_kwargs,
        )
    else:
        session = RefreshableSession(
            profile_name=args.profile, region_name=args.region, default_client_kwargs=client_kwargs
        )
    async with session:
        identity = await session.whoami()
    return {"Account": identity.account_id, "Arn": identity.arn, "UserId": identity.user_id}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aiorefresh`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        return run_demo()
    try:
        print(json.dumps(asyncio.run(_whoami(args)), indent=2))
    except AiorefreshError as exc:
        print(f"aiorefresh: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
