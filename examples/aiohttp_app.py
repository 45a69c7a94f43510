"""An aiohttp service on one auto-refreshing, assumed-role session.

The session lives in ``cleanup_ctx``: created at start-up, closed at shutdown. Handlers lease
the pooled S3 client per request; ``/whoami`` uses an STS client pinned at start-up.

Run it against a local moto server (``pip install 'moto[server]'``)::

    moto_server -p 5000 &
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test python examples/aiohttp_app.py
    curl -X PUT --data-binary 'hello' localhost:8080/objects/greeting
    curl localhost:8080/objects/greeting
    curl localhost:8080/whoami

Settings come from the same ``APP_*`` environment variables as ``fastapi_app.py``; the
defaults suit moto on 127.0.0.1:5000.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from botocore.exceptions import ClientError

from aiorefresh import RefreshableSession


@dataclasses.dataclass(frozen=True)
class Settings:
    """Where the app's credentials and data come from."""

    role_arn: str = "arn:aws:iam::123456789012:role/example-app"
    session_name: str = "aiohttp-app"
    region: str = "us-east-1"
    bucket: str = "example-bucket"
    endpoint_url: str | None = "http://127.0.0.1:5000"
    """Every AWS service's endpoint; ``None`` for AWS itself."""
    sts_endpoint_url: str | None = None
    """STS's endpoint, when it differs from ``endpoint_url``."""
    create_bucket: bool = True
    """Create ``bucket`` at start-up if it is missing (for the local demo)."""

    @classmethod
    def from_env(cls) -> Settings:
        """``APP_ROLE_ARN``, ``APP_REGION``, ``APP_BUCKET``, ``APP_ENDPOINT_URL``,
        ``APP_STS_ENDPOINT_URL``, ``APP_CREATE_BUCKET`` (``0`` or ``1``)."""
        env, default = os.environ, cls()
        return cls(
            role_arn=env.get("APP_ROLE_ARN", default.role_arn),
            region=env.get("APP_REGION", default.region),
            bucket=env.get("APP_BUCKET", default.bucket),
            endpoint_url=env.get("APP_ENDPOINT_URL", default.endpoint_url) or None,
            sts_endpoint_url=env.get("APP_STS_ENDPOINT_URL") or None,
            create_bucket=env.get("APP_CREATE_BUCKET", "1") == "1",
        )

    @property
    def sts_endpoint(self) -> str | None:
        """The endpoint STS calls go to."""
        return self.sts_endpoint_url or self.endpoint_url


SETTINGS = web.AppKey("settings", Settings)
SESSION = web.AppKey("session", RefreshableSession)
STS: web.AppKey[Any] = web.AppKey("sts")
"""The STS client pinned at start-up."""


def new_session(settings: Settings, **options: Any) -> RefreshableSession:
    """The app's session: ``role_arn`` assumed and renewed for as long as the app runs.

    ``options`` go to `RefreshableSession` as they are (tests pass ``clock=``).
    """
    sts = settings.sts_endpoint
    return RefreshableSession(
        method="sts",
        assume_role_kwargs={"RoleArn": settings.role_arn, "RoleSessionName": settings.session_name},
        sts_client_kwargs={"endpoint_url": sts} if sts else None,
        default_client_kwargs=(
            {"endpoint_url": settings.endpoint_url} if settings.endpoint_url else None
        ),
        region_name=settings.region,
        defer_refresh=False,  # a role that cannot be assumed fails the start-up, not a request
        **options,
    )


async def ensure_bucket(session: RefreshableSession, bucket: str) -> None:
    """Create ``bucket`` unless it exists."""
    async with session.client("s3") as s3:
        try:
            await s3.head_bucket(Bucket=bucket)
        except ClientError:
            await s3.create_bucket(Bucket=bucket)


async def put_object(request: web.Request) -> web.Response:
    async with request.app[SESSION].client("s3") as s3:  # leased for this request
        await s3.put_object(
            Bucket=request.app[SETTINGS].bucket,
            Key=request.match_info["key"],
            Body=await request.read(),
        )
    return web.Response(status=204)


async def get_object(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    async with request.app[SESSION].client("s3") as s3:
        try:
            answer = await s3.get_object(Bucket=request.app[SETTINGS].bucket, Key=key)
        except s3.exceptions.NoSuchKey:
            raise web.HTTPNotFound(text=f"no object {key!r}") from None
        body = await answer["Body"].read()
    return web.Response(body=body, content_type="application/octet-stream")


async def whoami(request: web.Request) -> web.Response:
    identity = await request.app[STS].get_caller_identity()  # the pinned client
    return web.json_response({"account": identity["Account"], "arn": identity["Arn"]})


def create_app(settings: Settings | None = None, **session_options: Any) -> web.Application:
    """The app; ``session_options`` go to `new_session`."""
    settings = settings or Settings.from_env()

    async def aws(app: web.Application) -> AsyncIterator[None]:
        async with new_session(settings, **session_options) as session:
            if settings.create_bucket:
                await ensure_bucket(session, settings.bucket)
            app[SESSION] = session
            # Pinned: created once, shared by every request, closed with the session.
            app[STS] = await session.get_client("sts", endpoint_url=settings.sts_endpoint)
            yield

    app = web.Application()
    app[SETTINGS] = settings
    app.cleanup_ctx.append(aws)
    app.router.add_put("/objects/{key}", put_object)
    app.router.add_get("/objects/{key}", get_object)
    app.router.add_get("/whoami", whoami)
    return app


if __name__ == "__main__":
    web.run_app(create_app(), host="127.0.0.1", port=int(os.environ.get("APP_PORT", "8080")))
