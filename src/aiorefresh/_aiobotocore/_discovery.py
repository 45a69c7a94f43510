"""``iot:DescribeEndpoint`` for the ``iot`` method's endpoint discovery, and its failures in
neutral terms (no botocore type or response shape leaves this module)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

from botocore.exceptions import BotoCoreError, ClientError, NoRegionError, ProfileNotFound

from ._clients import close_client, open_client
from ._sessions import new_session

__all__ = ["DiscoveryFailure", "DiscoveryKind", "describe_credentials_endpoint"]

DiscoveryKind: TypeAlias = Literal[
    "no-region", "no-profile", "denied", "refused", "other", "no-address"
]
"""Why a discovery failed: no region configured; ``profile_name`` not in the config files; the
service answered 401/403; it answered another error; botocore failed below an answer
(connection, parsing, signing); it answered without an ``endpointAddress``."""


@dataclass(frozen=True)
class DiscoveryFailure:
    """A failed ``DescribeEndpoint``. ``status_code``, ``code`` and ``request_id`` come from an
    error answer (``denied``/``refused``) and are unchecked strings: the caller vets them; an
    error answer's message is never kept (botocore copies a body that is not JSON into it).
    ``detail`` and ``cause`` (``other`` only) are a ``BotoCoreError``'s message and the error
    itself; the message may hold an endpoint URL with its ``user:password@``."""

    kind: DiscoveryKind
    status_code: int | None = None
    code: str | None = None
    request_id: str | None = None
    detail: str | None = None
    cause: BaseException | None = None


async def describe_credentials_endpoint(
    *, region_name: str | None, endpoint_url: str | None, profile_name: str | None
) -> str | DiscoveryFailure:
    """The credentials provider address from ``DescribeEndpoint(endpointType=
    "iot:CredentialProvider")`` with a new session of ``profile_name`` (its keys and region,
    ``region_name`` first; default: the default chain), or why that failed.

    The client is built off the event loop (`open_client`), used once and closed.
    """
    try:
        session = new_session(profile_name=profile_name, region_name=region_name)
        client = await open_client(session, {"service_name": "iot", "endpoint_url": endpoint_url})
        try:
            answer = await client.describe_endpoint(endpointType="iot:CredentialProvider")
        finally:
            await close_client(client)
    except NoRegionError:
        return DiscoveryFailure("no-region")
    except ProfileNotFound:
        return DiscoveryFailure("no-profile")
    except ClientError as exc:
        return _refused(exc.response)
    except BotoCoreError as exc:
        return DiscoveryFailure("other", detail=str(exc), cause=exc)
    address = answer.get("endpointAddress") if isinstance(answer, Mapping) else None
    if not isinstance(address, str) or not address:
        return DiscoveryFailure("no-address")
    return address


def _refused(response: object) -> DiscoveryFailure:
    """An error answer: its status, error code and request id, nothing of its message."""
    answer = response if isinstance(response, Mapping) else {}
    error = answer.get("Error")
    error = error if isinstance(error, Mapping) else {}
    metadata = answer.get("ResponseMetadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    number = metadata.get("HTTPStatusCode")
    status = number if isinstance(number, int) else None
    code, request_id = error.get("Code"), metadata.get("RequestId")
    return DiscoveryFailure(
        "denied" if status in (401, 403) else "refused",
        status_code=status,
        code=code if isinstance(code, str) else None,
        request_id=request_id if isinstance(request_id, str) else None,
    )
