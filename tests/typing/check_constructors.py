"""Checked by ``mypy --strict`` in ``make typecheck`` (not run by pytest).

Each ``type: ignore`` marks a call the per-method overloads must reject; mypy reports an unused
ignore if one is accepted, so a loosened overload fails the check.
"""

from __future__ import annotations

from aiorefresh import RefreshableSession, TemporaryCredentials

ROLE = {"RoleArn": "arn:aws:iam::123456789012:role/reader"}


async def fetch() -> TemporaryCredentials:
    return TemporaryCredentials("AKIA", "secret")


# accepted: each method with its own options
RefreshableSession()
RefreshableSession("AKIA", "secret", None, "eu-west-1")
RefreshableSession(assume_role_kwargs=ROLE, mfa_token_provider=["ykman", "oath", "code"])
RefreshableSession(method="sts", assume_role_kwargs=ROLE, region_name="eu-west-1")
RefreshableSession(method="session_token", session_token_kwargs={"DurationSeconds": 900})
RefreshableSession(custom_credentials_method=fetch, max_clients=4, eviction_policy="LFU")
RefreshableSession(web_identity_kwargs=ROLE, web_identity_token="/var/run/token")
RefreshableSession(
    method="iot", role_alias="edge", certificate="cert.pem", private_key="key.pem", thing_name="t"
)
RefreshableSession(fetcher=fetch)  # a coroutine function is a fetcher too
RefreshableSession(profile_name="crossaccount", mfa_token_provider=["ykman", "oath", "code"])

# rejected: options of another method, wrong shapes
RefreshableSession(method="iot", assume_role_kwargs=ROLE)  # type: ignore[call-overload]
RefreshableSession(method="custom", role_alias="edge")  # type: ignore[call-overload]
RefreshableSession(method="kerberos")  # type: ignore[call-overload]
RefreshableSession(assume_role_kwargs=ROLE, eviction_policy="MRU")  # type: ignore[call-overload]
RefreshableSession(assume_role_kwargs=ROLE, mfa_token_provider=42)  # type: ignore[call-overload]
RefreshableSession(  # type: ignore[call-overload]
    method="iot", role_alias="edge", certificate=42, private_key="key.pem"
)
RefreshableSession(fetcher=fetch, assume_role_kwargs=ROLE)  # type: ignore[call-overload]


# fan-out and fleets keep their types
async def fan_out_types(session: RefreshableSession) -> None:
    from typing import Any

    from aiorefresh import SessionFleet

    async def buckets(client: Any, region: str) -> int:
        return len((await client.list_buckets())["Buckets"])

    counts: dict[str, int | Exception] = await session.fan_out("s3", ["eu-west-1"], buckets)
    await session.fan_out("s3", ["eu-west-1"], buckets, concurrency="8")  # type: ignore[arg-type]
    fleet = SessionFleet(session, role_arn="arn:aws:iam::{account_id}:role/Audit", max_sessions=8)
    async with fleet.session("123456789012") as child:
        assert isinstance(child, RefreshableSession)
    del counts
