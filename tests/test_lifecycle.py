"""Session lifecycle across event loops, cancellation and failures: nothing leaks, nothing hangs."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import threading
import weakref
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import AioSession

from aiorefresh import (
    ConfigurationError,
    CredentialRefreshError,
    NonRecoverableCredentialError,
    RefreshableSession,
    RefreshEvent,
    SessionClosedError,
    TemporaryCredentials,
    ValidationError,
)
from aiorefresh._aiobotocore import session_credentials
from aiorefresh.testing import CountingFetcher, FrozenClock, MotoServer, STSStandIn

# These tests point only the private STS client at a local server on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:sts_client_kwargs sets endpoint_url:UserWarning")

ROLE = "arn:aws:iam::123456789012:role/reader"


def custom(fetcher: CountingFetcher, **kwargs: Any) -> RefreshableSession:
    return RefreshableSession(custom_credentials_method=fetcher, clock=fetcher.clock, **kwargs)


def test_session_works_again_under_a_second_asyncio_run_after_aclose(
    aws_env: Any, moto_server: MotoServer, counting_fetcher: CountingFetcher
) -> None:
    session = custom(
        counting_fetcher, default_client_kwargs={"endpoint_url": moto_server.endpoint_url}
    )

    async def use() -> str:
        async with session, session.client("sts") as sts:
            return str((await sts.get_caller_identity())["Account"])

    assert asyncio.run(use()) == asyncio.run(use()) == "123456789012"
    assert session.pool.stats().creations == session.pool.stats().closes == 2


async def test_closed_loop_refuses_work_but_reports_closed(
    counting_fetcher: CountingFetcher,
) -> None:

    session = custom(counting_fetcher)
    await session.aclose()
    assert session.closed
    with pytest.raises(SessionClosedError):
        session.client("s3")


async def test_cancelled_aclose_keeps_closing_and_a_second_aclose_waits(
    aws_env: Any, moto_server: MotoServer, counting_fetcher: CountingFetcher
) -> None:
    session = custom(
        counting_fetcher,
        default_client_kwargs={"endpoint_url": moto_server.endpoint_url},
        close_timeout=30,
    )
    release = asyncio.Event()

    async def hold() -> None:
        async with session.client("sts"):
            await release.wait()

    holder = asyncio.create_task(hold())
    for _ in range(500):
        if session.pool.stats().leased:
            break
        await asyncio.sleep(0.01)
    closing = asyncio.create_task(session.aclose())
    await asyncio.sleep(0.05)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    release.set()
    await holder
    await session.aclose()
    stats = session.pool.stats()
    assert stats.creations == stats.closes == 1


async def test_failed_eager_start_closes_the_session(
    aws_env: Any, sts_standin: STSStandIn, frozen_clock: FrozenClock
) -> None:
    sts_standin.script("access_denied")
    session = RefreshableSession(
        assume_role_kwargs={"RoleArn": ROLE},
        sts_client_kwargs={"endpoint_url": sts_standin.endpoint_url},
        clock=frozen_clock,
        defer_refresh=False,
    )
    with pytest.raises(NonRecoverableCredentialError):
        async with session:
            pass
    assert session.closed
    assert session.fetcher._client._clients.values() == []  # type: ignore[attr-defined]


async def test_refresh_timeout_cuts_a_stuck_sync_callable(frozen_clock: FrozenClock) -> None:
    stuck = threading.Event()

    def never_returns() -> TemporaryCredentials:
        stuck.wait(timeout=30)
        raise RuntimeError("released")

    session = RefreshableSession(
        custom_credentials_method=never_returns, clock=frozen_clock, refresh_timeout=0.2
    )
    try:
        with pytest.raises(CredentialRefreshError, match="timed out after 0.2 s"):
            await session.refreshable_credentials()
    finally:
        stuck.set()
        await session.aclose()


async def test_naive_expiry_from_a_fetcher_is_a_refresh_error(frozen_clock: FrozenClock) -> None:
    from datetime import datetime

    async def naive() -> TemporaryCredentials:
        return TemporaryCredentials("AK", "SK", "TK", datetime(2030, 1, 1, 1))

    events: list[RefreshEvent] = []
    async with RefreshableSession(
        custom_credentials_method=naive, clock=frozen_clock, on_refresh=events.append
    ) as session:
        with pytest.raises(CredentialRefreshError, match="naive"):
            await session.refreshable_credentials()
        assert session.refresh_stats().failures == 1
    assert [e.ok for e in events] == [False]


def test_naive_clock_is_refused_in_the_constructor(counting_fetcher: CountingFetcher) -> None:
    from datetime import datetime

    with pytest.raises(ValidationError, match="naive"):
        RefreshableSession(custom_credentials_method=counting_fetcher, clock=datetime.now)


async def test_async_on_refresh_callback_is_awaited(counting_fetcher: CountingFetcher) -> None:
    seen: list[bool] = []

    async def record(event: RefreshEvent) -> None:
        await asyncio.sleep(0)
        seen.append(event.ok)

    async with custom(counting_fetcher, on_refresh=record) as session:
        await session.refreshable_credentials()
        for _ in range(5):
            await asyncio.sleep(0)
    assert seen == [True]


def test_finished_event_loops_are_not_kept_alive(
    aws_env: Any, counting_fetcher: CountingFetcher
) -> None:
    session = custom(counting_fetcher)
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def use() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        async with session:
            counting_fetcher.clock.advance(hours=2)
            await session.refreshable_credentials()

    for _ in range(5):
        asyncio.run(use())
    gc.collect()
    # the pool remembers the last loop it served until another one arrives; no more
    assert [ref() is None for ref in loops[:-1]] == [True] * 4


async def test_snapshot_repr_hides_secrets(counting_fetcher: CountingFetcher) -> None:
    async with custom(counting_fetcher) as session:
        await session.refreshable_credentials()
        text = repr(session._engine._snap)
    assert "secret-1" not in text
    assert "token-1" not in text


async def test_expired_token_answers_for_many_requests_cause_one_fetch(
    aws_env: Any, frozen_clock: FrozenClock
) -> None:
    # The server's clock runs ahead of ours: it calls our still-fresh keys expired.
    server_clock = FrozenClock(frozen_clock())
    async with STSStandIn(clock=server_clock) as sts_server:
        session = RefreshableSession(
            assume_role_kwargs={"RoleArn": ROLE},
            sts_client_kwargs={"endpoint_url": sts_server.endpoint_url},
            default_client_kwargs={"endpoint_url": sts_server.endpoint_url},
            clock=frozen_clock,
        )
        async with session, session.client("sts") as sts:
            await sts.get_caller_identity()
            server_clock.advance(hours=2)
            answers = await asyncio.gather(*(sts.get_caller_identity() for _ in range(10)))
        assert all(":assumed-role/reader/" in a["Arn"] for a in answers)
        assert sts_server.count("AssumeRole") == 2


async def test_botocore_session_credentials_are_the_default_methods_source(aws_env: Any) -> None:
    given = AioSession()
    given.set_credentials("AKUSERSESSION", "SK")
    async with RefreshableSession(botocore_session=given) as session:
        assert (await session.refreshable_credentials()).access_key == "AKUSERSESSION"


def test_bad_options_leave_the_botocore_session_untouched(aws_env: Any) -> None:
    given = AioSession()
    given.set_credentials("AKUSERSESSION", "SK")
    before = session_credentials(given)
    with pytest.raises(ConfigurationError):
        RefreshableSession(botocore_session=given, eviction_policy="MRU", region_name="eu-west-1")
    assert session_credentials(given) is before
    assert given.get_config_variable("region") != "eu-west-1"


def test_source_chain_is_per_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws_env: Any
) -> None:
    # A credential_process profile gives aiobotocore refreshable credentials whose lock
    # belongs to one loop; three loops refreshing at once must each get their own.
    script = tmp_path / "creds.py"
    script.write_text(
        "import json, datetime, time\n"
        "time.sleep(0.2)\n"
        "exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)\n"
        "print(json.dumps({'Version': 1, 'AccessKeyId': 'AKPROC', 'SecretAccessKey': 'SK',"
        " 'SessionToken': 'TK', 'Expiration': exp.isoformat()}))\n"
    )
    config = tmp_path / "config"
    config.write_text(f"[profile proc]\ncredential_process = {sys.executable} {script}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    session = RefreshableSession(profile_name="proc")
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []
    keys: list[str] = []

    async def use() -> None:
        barrier.wait()
        try:
            for _ in range(2):
                session.invalidate()
                keys.append((await session.refreshable_credentials()).access_key)
        except BaseException as exc:
            errors.append(exc)
        await session.aclose()

    threads = [threading.Thread(target=asyncio.run, args=(use(),)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert keys == ["AKPROC"] * 6
    assert json.dumps(keys)


# -- many event loops: one model (each loop's part closes with aclose() there, or when the
# loop shuts down) ---------------------------------------------------------------------------


def _sts_session_on(sts: STSStandIn, moto: MotoServer) -> RefreshableSession:
    return RefreshableSession(
        assume_role_kwargs={"RoleArn": "arn:aws:iam::123456789012:role/loops"},
        sts_client_kwargs={"endpoint_url": sts.endpoint_url, "region_name": "us-east-1"},
        default_client_kwargs={"endpoint_url": moto.endpoint_url},
        region_name="us-east-1",
    )


def _run_on_fresh_loops(session: RefreshableSession, loops: int, *, close_last: bool) -> None:
    async def use(last: bool) -> None:
        await session.refresh()  # the private STS client of this loop
        async with session.client("s3") as s3:  # a pooled client of this loop
            await s3.list_buckets()
        if last and close_last:
            await session.aclose()

    for number in range(loops):
        asyncio.run(use(number == loops - 1))


def test_a_hundred_loops_closed_only_on_the_last_leave_no_warning(
    aws_env: Any, sts_standin: STSStandIn, moto_server: MotoServer, recwarn: pytest.WarningsRecorder
) -> None:
    session = _sts_session_on(sts_standin, moto_server)
    _run_on_fresh_loops(session, 100, close_last=True)
    gc.collect()
    assert [str(w.message) for w in recwarn if issubclass(w.category, ResourceWarning)] == []
    stats = session.pool.stats()
    assert stats.creations == stats.closes == 100
    assert sts_standin.count("AssumeRole") == 100


def test_a_session_never_closed_leaves_no_unclosed_client_over_many_loops(
    aws_env: Any,
    sts_standin: STSStandIn,
    moto_server: MotoServer,
    recwarn: pytest.WarningsRecorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    session = _sts_session_on(sts_standin, moto_server)
    _run_on_fresh_loops(session, 20, close_last=False)
    del session
    gc.collect()
    assert [str(w.message) for w in recwarn if issubclass(w.category, ResourceWarning)] == []
    assert "Unclosed" not in caplog.text
