"""Guards for the aiobotocore/botocore internals `_aiobotocore` relies on, on each line.

If upstream changes the shape of anything listed in PRIVATE_SURFACE, these fail loudly.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from typing import Any

import pytest
from aiobotocore.credentials import AioDeferredRefreshableCredentials
from aiobotocore.session import AioSession

from aiorefresh import _aiobotocore
from aiorefresh._engine import RefreshEngine
from aiorefresh.testing import CountingFetcher, FrozenClock


def _resolve(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(
    ("owner", "attribute"),
    [(owner, attr) for owner, attrs in _aiobotocore.PRIVATE_SURFACE.items() for attr in attrs],
)
def test_private_attribute_still_exists(owner: str, attribute: str) -> None:
    cls = _resolve(owner)
    if attribute.startswith("_refresh"):
        assert inspect.iscoroutinefunction(getattr(cls, attribute))
        return
    if cls is AioSession:
        instance: Any = AioSession()
    elif cls is AioDeferredRefreshableCredentials:
        instance = AioDeferredRefreshableCredentials(refresh_using=lambda: None, method="probe")
    elif cls.__name__ == "Config":
        instance = cls(max_pool_connections=3)
    elif cls.__module__ == "botocore.hooks" or cls.__name__ == "Loader":
        session = AioSession()
        instance = session.get_component(
            "data_loader" if cls.__name__ == "Loader" else "event_emitter"
        )
        if cls.__name__ == "HierarchicalEmitter":
            instance = instance._emitter
        assert isinstance(instance, cls)
    else:
        resolver = AioSession().get_component("credential_provider")
        instance = resolver.get_provider("assume-role")
        assert isinstance(instance, cls)
    assert attribute in vars(instance), f"{owner}.{attribute} is gone"


def test_refusing_prompts_replaces_the_assume_role_prompter() -> None:
    session = AioSession()

    def refuse(prompt: str) -> str:
        raise RuntimeError(prompt)

    _aiobotocore.refuse_mfa_prompts(session, refuse)
    provider = session.get_component("credential_provider").get_provider("assume-role")
    assert provider._prompter is refuse


async def test_aiosession_returns_installed_credentials_without_the_chain() -> None:
    session = AioSession()
    marker = object()
    _aiobotocore.install_credentials(session, marker)
    assert await session.get_credentials() is marker


async def test_aiobotocore_accessors_read_through_the_engine(frozen_clock: FrozenClock) -> None:
    engine = RefreshEngine(CountingFetcher(frozen_clock), clock=frozen_clock)
    creds = _aiobotocore.EngineCredentials(engine, "aiorefresh-test")
    assert await creds.get_access_key() == "ASIATEST000001"
    assert await creds.get_secret_key() == "secret-1"
    assert await creds.get_token() == "token-1"
    frozen = await creds.get_frozen_credentials()
    assert (frozen.access_key, frozen.token) == ("ASIATEST000001", "token-1")


def test_read_only_credentials_take_an_account_id() -> None:
    from botocore.credentials import ReadOnlyCredentials

    assert "account_id" in ReadOnlyCredentials._fields


def test_request_signer_reads_frozen_credentials_asynchronously() -> None:
    from aiobotocore.signers import AioRequestSigner

    source = inspect.getsource(AioRequestSigner)
    assert "await credentials.get_frozen_credentials()" in source.replace(
        "self._credentials", "credentials"
    )


def test_credential_expiry_is_read_from_botocore_credentials(frozen_clock: FrozenClock) -> None:
    creds = AioDeferredRefreshableCredentials(refresh_using=lambda: None, method="probe")
    creds._expiry_time = frozen_clock()
    assert _aiobotocore.credentials_expiry(creds) == frozen_clock()


# -- event names and handler arguments the ExpiredToken retry relies on -----------------------


async def test_request_created_and_needs_retry_carry_what_the_retry_reads(
    aws_env: Any, sts_standin: Any
) -> None:
    seen: dict[str, Any] = {}

    def on_request(request: Any = None, **kwargs: Any) -> None:
        seen["request"] = request

    def on_retry(**kwargs: Any) -> None:
        seen.setdefault("retry", kwargs)

    session = AioSession()
    emitter = session.get_component("event_emitter")
    emitter.register_last(_aiobotocore.REQUEST_CREATED, on_request)
    emitter.register_first(_aiobotocore.NEEDS_RETRY, on_retry)
    sts_standin.script("expired_token", action="GetCallerIdentity")
    async with session.create_client("sts", endpoint_url=sts_standin.endpoint_url) as sts:
        with pytest.raises(Exception, match="ExpiredToken"):
            await sts.get_caller_identity()
    request, retry = seen["request"], seen["retry"]
    assert "Credential=AKIA" in str(request.headers["Authorization"])
    assert isinstance(request.context, dict)
    assert retry["attempts"] == 1
    assert isinstance(retry["request_dict"]["context"], dict)
    assert _aiobotocore.error_code(retry["response"]) == "ExpiredToken"


def test_expired_token_retry_unregisters_cleanly(frozen_clock: FrozenClock) -> None:
    session = AioSession()
    engine = RefreshEngine(CountingFetcher(frozen_clock), clock=frozen_clock)
    retry = _aiobotocore.ExpiredTokenRetry(engine, "test")
    uninstall = retry.install(session)
    emitter = session.get_component("event_emitter")
    assert retry.handle in list(emitter._emitter._handlers.prefix_search("needs-retry"))
    uninstall()
    assert retry.handle not in list(emitter._emitter._handlers.prefix_search("needs-retry"))


# -- a caller's botocore_session ----------------------------------------------------------------


async def test_a_callers_botocore_session_is_handed_back_as_it_was(
    aws_env: Any, counting_fetcher: CountingFetcher
) -> None:
    from aiorefresh import RefreshableSession

    theirs = AioSession()
    theirs.set_config_variable("region", "eu-north-1")
    before = _aiobotocore.session_credentials(theirs)
    customised = _customisations(theirs)
    async with RefreshableSession(
        custom_credentials_method=counting_fetcher,
        botocore_session=theirs,
        region_name="ap-south-1",
    ) as session:
        assert session.botocore_session is theirs
        assert isinstance(_aiobotocore.session_credentials(theirs), _aiobotocore.EngineCredentials)
        assert theirs.get_config_variable("region") == "ap-south-1"
        # A client (and on line A a resource) first: aioboto3 customises the session then.
        async with session.client("s3") as s3:
            assert s3.meta.region_name == "ap-south-1"
            if HAS_AIOBOTO3:
                assert hasattr(s3, "upload_fileobj")  # aioboto3's transfer methods
                assert _customisations(theirs) != customised  # (the check can see them)
        if HAS_AIOBOTO3:
            async with session.resource("s3") as s3_resource:
                assert hasattr(await s3_resource.Bucket("b"), "upload_fileobj")
            async with session.resource("dynamodb"):
                pass
    assert _customisations(theirs) == customised
    assert _aiobotocore.session_credentials(theirs) is before
    assert theirs.get_config_variable("region") == "eu-north-1"
    handlers = list(
        theirs.get_component("event_emitter")._emitter._handlers.prefix_search("needs-retry")
    )
    assert not [
        h
        for h in handlers
        if getattr(h, "__self__", None).__class__.__name__ == "ExpiredTokenRetry"
    ]


HAS_AIOBOTO3 = importlib.util.find_spec("aioboto3") is not None
CUSTOMISED_EVENTS = (
    "creating-client-class.s3",
    "creating-resource-class.s3.Bucket",
    "creating-resource-class.s3.Object",
    "creating-resource-class.s3.ObjectSummary",
    "creating-resource-class.dynamodb",
    "creating-resource-class.dynamodb.Table",
    "creating-resource-class.ec2.ServiceResource",
    "creating-resource-class.ec2.Instance",
)


def _customisations(session: AioSession) -> dict[str, Any]:
    """What aioboto3.Session(botocore_session=session) changes: the handlers of its events
    (by identity), unique ids, loader folders and what they answered, the user agent."""
    emitter = session.get_component("event_emitter")._emitter
    loader = session.get_component("data_loader")
    return {
        "handlers": {
            event: [id(h) for h in emitter._handlers.prefix_search(event)]
            for event in CUSTOMISED_EVENTS
        },
        "unique_ids": dict(emitter._unique_id_handlers),
        "search_paths": list(loader.search_paths),
        "resource_models": [key for key in loader._cache if "resources-1" in key],
        "user_agent": (
            session.user_agent_name,
            session.user_agent_version,
            session.user_agent_extra,
        ),
    }


@pytest.mark.skipif(not HAS_AIOBOTO3, reason="aioboto3 is installed on line A")
async def test_a_callers_own_aioboto3_customisations_survive_the_hand_back(
    aws_env: Any, counting_fetcher: CountingFetcher
) -> None:
    """The caller built an aioboto3.Session over their session first: its handlers (unique
    ids included) and boto3's models folder are theirs, and stay; only ours go."""
    import aioboto3

    from aiorefresh import RefreshableSession

    theirs = AioSession()
    mine = aioboto3.Session(botocore_session=theirs)
    async with mine.resource("dynamodb", region_name="eu-west-1"):
        pass
    customised = _customisations(theirs)
    assert customised["search_paths"][-1].endswith("data")
    async with RefreshableSession(
        custom_credentials_method=counting_fetcher, botocore_session=theirs
    ) as session:
        async with session.client("s3", region_name="eu-west-1"):
            pass
        async with session.resource("dynamodb", region_name="eu-west-1"):
            pass
    assert _customisations(theirs) == customised
    async with mine.resource("dynamodb", region_name="eu-west-1") as dynamodb:
        assert hasattr(await dynamodb.Table("t"), "batch_writer")  # their customisation


async def test_an_owned_botocore_session_keeps_aiorefresh_credentials(
    aws_env: Any, counting_fetcher: CountingFetcher
) -> None:
    from aiorefresh import RefreshableSession

    ours = AioSession()
    async with RefreshableSession(
        custom_credentials_method=counting_fetcher,
        botocore_session=ours,
        botocore_session_owner=True,
    ):
        pass
    assert isinstance(_aiobotocore.session_credentials(ours), _aiobotocore.EngineCredentials)


# -- pooled clients' connections ----------------------------------------------------------------


def test_pooled_clients_get_more_connections_unless_the_config_says() -> None:
    from aiobotocore.config import AioConfig

    assert (
        _aiobotocore.pooled_config(None).max_pool_connections == _aiobotocore.POOLED_MAX_CONNECTIONS
    )
    merged = _aiobotocore.pooled_config(AioConfig(read_timeout=3))
    assert (merged.max_pool_connections, merged.read_timeout) == (
        _aiobotocore.POOLED_MAX_CONNECTIONS,
        3,
    )
    assert _aiobotocore.pooled_config(AioConfig(max_pool_connections=4)).max_pool_connections == 4
