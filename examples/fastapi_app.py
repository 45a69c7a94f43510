"""A FastAPI service on one auto-refreshing, assumed-role session.

The lifespan creates the session (and closes it at shutdown); a ``yield`` dependency leases
the pooled S3 client for each request; ``/whoami`` uses an STS client pinned on ``app.state``.
Credentials refresh in the background, and requests never see expired ones.

Run it against a local moto server (``pip install 'moto[server]' uvicorn``)::

    moto_server -p 5000 &
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test python examples/fastapi_app.py
    curl -X PUT --data-binary 'hello' localhost:8000/objects/greeting
    curl localhost:8000/objects/greeting
    curl localhost:8000/whoami

Settings come from ``APP_*`` environment variables (see `Settings.from_env`); the defaults
suit moto on 127.0.0.1:5000. Set ``APP_ENDPOINT_URL=`` (empty) to talk to AWS itself.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from botocore.exceptions import ClientError
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response

from aiorefresh import RefreshableSession


@dataclasses.dataclass(frozen=True)
class Settings:
    """Where the app's credentials and data come from."""

    role_arn: str = "arn:aws:iam::123456789012:role/example-app"
    session_name: str = "fastapi-app"
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


async def s3_client(request: Request) -> AsyncIterator[Any]:
    """The pooled S3 client, leased for one request (concurrent requests share it)."""
    async with request.app.state.session.client("s3") as s3:
        yield s3


S3 = Annotated[Any, Depends(s3_client)]
router = APIRouter()


@router.put("/objects/{key}", status_code=204)
async def put_object(key: str, request: Request, s3: S3) -> Response:
    bucket = request.app.state.settings.bucket
    await s3.put_object(Bucket=bucket, Key=key, Body=await request.body())
    return Response(status_code=204)


@router.get("/objects/{key}")
async def get_object(key: str, request: Request, s3: S3) -> Response:
    try:
        answer = await s3.get_object(Bucket=request.app.state.settings.bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        raise HTTPException(status_code=404, detail=f"no object {key!r}") from None
    return Response(await answer["Body"].read(), media_type="application/octet-stream")


@router.get("/whoami")
async def whoami(request: Request) -> dict[str, str]:
    identity = await request.app.state.sts.get_caller_identity()  # the pinned client
    return {"account": identity["Account"], "arn": identity["Arn"]}


def create_app(settings: Settings | None = None, **session_options: Any) -> FastAPI:
    """The app; ``session_options`` go to `new_session`."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with new_session(settings, **session_options) as session:
            if settings.create_bucket:
                await ensure_bucket(session, settings.bucket)
            app.state.session = session
            # Pinned: created once, shared by every request, closed with the session.
            app.state.sts = await session.get_client("sts", endpoint_url=settings.sts_endpoint)
            yield

    app = FastAPI(lifespan=lifespan)
    app.state.settings = settings
    app.include_router(router)
    return app


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(), host="127.0.0.1", port=int(os.environ.get("APP_PORT", "8000")))
