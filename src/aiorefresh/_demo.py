"""The demo behind ``aiorefresh demo`` and ``make demo``: a fan-out on an embedded moto server.

Nothing leaves 127.0.0.1: the demo starts moto's server itself, with fake keys in the
environment, creates a role in moto's IAM and assumes it for 15-minute credentials. A demo
clock (a `FrozenClock`) moves forward with every completed call, so two hours pass during each
run and the credentials expire many times over. The same workload runs twice: through one
`RefreshableSession` (pooled clients, refreshes in the background, three forced refreshes
mid-flight), then the naive way (a client per task, new keys only when forced). Every number
printed is measured in that run.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import importlib.util
import logging
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ._engine import RefreshEvent
from ._types import TemporaryCredentials
from ._util import utc_now

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from .testing import FrozenClock

__all__ = ["REGIONS", "run_demo"]

REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "sa-east-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-1",
    "ap-southeast-2",
)
ROLE_NAME = "aiorefresh-demo"
ACCOUNT = "123456789012"
LIFETIME = 900  # DurationSeconds asked of STS: the shortest AWS grants
CALLS_PER_TASK = 16  # calls one region task makes on its client, one after another
CALLS_PER_FAN_OUT = len(REGIONS) * CALLS_PER_TASK
FAN_OUTS_AT_ONCE = 2  # so 2 x 16 region tasks are in flight
DEMO_SPAN = timedelta(hours=2)  # demo time that passes during one run
FORCED_AT = (0.3, 0.55, 0.8)  # fractions of the calls after which a refresh is forced


def _say(console: Console, text: str = "") -> None:
    console.print(text, highlight=False)


# -- what is measured ---------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """What one run of the workload measured."""

    name: str
    calls: int = 0
    errors: int = 0
    latencies: list[float] = dataclasses.field(default_factory=list)
    wall: float = 0.0
    clients_created: int = 0
    pool_hits: int = 0
    fetches: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    assume_role_calls: int = 0
    sent_expired: int = 0
    forced_in_flight: list[int] = dataclasses.field(default_factory=list)

    def percentile(self, q: float) -> float:
        """The ``q`` quantile (0-1) of the call latencies, in milliseconds."""
        if len(self.latencies) < 2:
            return (self.latencies[0] if self.latencies else 0.0) * 1000
        cuts = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return cuts[round(q * 100) - 1] * 1000


class Keys:
    """Every access key handed out in a run, with its expiry on the demo clock."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.expiry: dict[str, datetime] = {}

    def rebase(self, creds: TemporaryCredentials) -> TemporaryCredentials:
        """``creds`` with the lifetime STS granted (on real time) measured on the demo clock."""
        granted = creds.expiry_time - utc_now()
        rebased = dataclasses.replace(creds, expiry_time=self.clock() + granted)
        self.expiry[creds.access_key] = rebased.expiry_time
        return rebased


class WireWatch:
    """A ``before-send`` handler: counts the requests signed with keys that had expired on
    the demo clock (moto does not check; AWS answers them ExpiredToken)."""

    def __init__(self, keys: Keys, run: Run) -> None:
        self.keys = keys
        self.run = run

    def __call__(self, request: Any = None, **kwargs: Any) -> None:
        authorization = request.headers.get("Authorization", b"") if request is not None else b""
        if isinstance(authorization, bytes):
            authorization = authorization.decode("ascii", "replace")
        _, _, rest = authorization.partition("Credential=")
        expiry = self.keys.expiry.get(rest.split("/", 1)[0])
        if expiry is not None and self.keys.clock() >= expiry:
            self.run.sent_expired += 1
        # None: botocore sends the request (a value here would be taken as the response).


class DemoClockSTS:
    """The session's fetcher: moto's AssumeRole, its answers' lifetime read on the demo clock."""

    method = "sts"

    def __init__(self, inner: Any, keys: Keys, run: Run) -> None:
        self.inner = inner
        self.keys = keys
        self.run = run

    async def __call__(self) -> TemporaryCredentials:
        self.run.assume_role_calls += 1
        creds: TemporaryCredentials = await self.inner()
        return self.keys.rebase(creds)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Pace:
    """Moves the demo clock after each call, reports progress, and forces refreshes at
    `FORCED_AT` while the other tasks go on."""

    def __init__(
        self,
        total: int,
        clock: FrozenClock,
        run: Run,
        advance: Callable[[Run], None],
        force: Callable[[], Awaitable[Any]],
    ) -> None:
        self.total = total
        self.clock = clock
        self.run = run
        self.step = DEMO_SPAN.total_seconds() / total
        self.advance = advance
        self.force = force
        self.marks = [round(f * total) for f in FORCED_AT]
        self.in_flight = 0
        self.forced: list[asyncio.Task[Any]] = []

    def done(self, started: float) -> None:
        now = time.perf_counter()
        self.run.latencies.append(now - started)
        self.run.calls += 1
        self.clock.advance(self.step)
        self.advance(self.run)
        if self.marks and self.run.calls >= self.marks[0]:
            self.marks.pop(0)
            self.run.forced_in_flight.append(self.in_flight)
            self.forced.append(asyncio.ensure_future(self.force()))

    async def calls(self, client: Any, started: float) -> None:
        """`CALLS_PER_TASK` calls on ``client``; the first one's latency counts from
        ``started`` (before the client was leased or created)."""
        for _ in range(CALLS_PER_TASK):
            self.in_flight += 1
            try:
                await client.list_tables()
            except Exception:
                self.run.errors += 1
            finally:
                self.in_flight -= 1
            self.done(started)
            started = time.perf_counter()

    def lost(self, started: float) -> None:
        """A region task that got no client: its calls count as failed."""
        for _ in range(CALLS_PER_TASK):
            self.run.errors += 1
            self.done(started)

    async def finish(self) -> None:
        await asyncio.gather(*self.forced, return_exceptions=True)


async def _rounds(rounds: int, one: Callable[[], Awaitable[None]]) -> None:
    """Run ``rounds`` fan-outs, `FAN_OUTS_AT_ONCE` at a time."""
    gate = asyncio.Semaphore(FAN_OUTS_AT_ONCE)

    async def bounded() -> None:
        async with gate:
            await one()

    await asyncio.gather(*(bounded() for _ in range(rounds)))


# -- the two runs -------------------------------------------------------------------------------


async def with_aiorefresh(
    endpoint: str, role_arn: str, rounds: int, clock: FrozenClock, tick: Callable[[Run], None]
) -> Run:
    """The workload through one `RefreshableSession`: ``session.fan_out`` per round."""
    from ._fetchers.sts import AssumeRoleFetcher
    from ._session import RefreshableSession

    run = Run("aiorefresh")
    keys = Keys(clock)
    inner = AssumeRoleFetcher(
        {"RoleArn": role_arn, "RoleSessionName": "demo", "DurationSeconds": LIFETIME},
        client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"},
        clock=clock,
    )

    def heard(event: RefreshEvent) -> None:
        if event.ok:
            run.fetches[event.phase] += 1

    session = RefreshableSession(
        fetcher=DemoClockSTS(inner, keys, run),
        clock=clock,
        on_refresh=heard,
        region_name="us-east-1",
        default_client_kwargs={"endpoint_url": endpoint},
    )
    async with session:
        session.events.register("before-send", WireWatch(keys, run))
        pace = Pace(rounds * CALLS_PER_FAN_OUT, clock, run, tick, session.refresh)

        async def one_fan_out() -> None:
            started = time.perf_counter()

            async def region_task(client: Any, region: str) -> None:
                await pace.calls(client, started)

            results: Mapping[str, Any] = await session.fan_out(
                "dynamodb", REGIONS, region_task, concurrency=len(REGIONS)
            )
            for result in results.values():
                if isinstance(result, Exception):  # no client: region_task never ran
                    pace.lost(started)

        began = time.perf_counter()
        await _rounds(rounds, one_fan_out)
        await pace.finish()
        run.wall = time.perf_counter() - began
        stats = session.pool.stats()
        run.clients_created, run.pool_hits = stats.creations, stats.hits
    return run


async def the_naive_way(
    endpoint: str, role_arn: str, rounds: int, clock: FrozenClock, tick: Callable[[Run], None]
) -> Run:
    """The same workload with plain aiobotocore: every region task creates its own client
    with the newest keys; new keys come only from the forced refreshes."""
    from aiobotocore.session import get_session

    run = Run("naive")
    keys = Keys(clock)
    plain = get_session()
    plain.register("before-send", WireWatch(keys, run))
    current: list[TemporaryCredentials] = []

    async def assume_role() -> None:
        async with plain.create_client(
            "sts", region_name="us-east-1", endpoint_url=endpoint
        ) as sts:
            answer = await sts.assume_role(
                RoleArn=role_arn, RoleSessionName="naive", DurationSeconds=LIFETIME
            )
        run.assume_role_calls += 1
        run.fetches["forced" if current else "initial"] += 1
        current.append(keys.rebase(TemporaryCredentials.from_mapping(answer["Credentials"])))

    await assume_role()
    pace = Pace(rounds * CALLS_PER_FAN_OUT, clock, run, tick, assume_role)

    async def region_task(region: str, started: float) -> None:
        creds = current[-1]
        run.clients_created += 1
        made = plain.create_client(
            "dynamodb",
            region_name=region,
            endpoint_url=endpoint,
            aws_access_key_id=creds.access_key,
            aws_secret_access_key=creds.secret_key,
            aws_session_token=creds.token,
        )
        try:
            client = await made.__aenter__()
        except Exception:
            pace.lost(started)
            return
        try:
            await pace.calls(client, started)
        finally:
            await made.__aexit__(None, None, None)

    async def one_fan_out() -> None:
        started = time.perf_counter()
        await asyncio.gather(*(region_task(region, started) for region in REGIONS))

    began = time.perf_counter()
    await _rounds(rounds, one_fan_out)
    await pace.finish()
    run.wall = time.perf_counter() - began
    return run


# -- showing it ---------------------------------------------------------------------------------


def _fetches(run: Run) -> str:
    total = sum(run.fetches.values())
    parts = ", ".join(f"{count} {phase}" for phase, count in sorted(run.fetches.items()))
    return f"{total} ({parts})"


def _table(runs: tuple[Run, Run]) -> Any:
    from rich.table import Table

    table = Table(title="The same workload, measured in this run", title_justify="left")
    table.add_column("")
    for run in runs:
        table.add_column(run.name if run.name != "naive" else "naive: a client per task")
    rows: list[tuple[str, Callable[[Run], str]]] = [
        ("calls answered", lambda r: f"{r.calls - r.errors:,} of {r.calls:,}"),
        ("errors", lambda r: f"{r.errors:,}"),
        ("wall time", lambda r: f"{r.wall:.1f} s"),
        ("calls per second", lambda r: f"{r.calls / r.wall:,.0f}" if r.wall else "-"),
        ("latency p50", lambda r: f"{r.percentile(0.5):.1f} ms"),
        ("latency p99", lambda r: f"{r.percentile(0.99):.1f} ms"),
        ("clients created", lambda r: f"{r.clients_created:,}"),
        ("pool hits", lambda r: f"{r.pool_hits:,}"),
        ("credential fetches", _fetches),
        ("STS AssumeRole calls", lambda r: f"{r.assume_role_calls:,}"),
        ("sent with expired keys", lambda r: f"{r.sent_expired:,}"),
    ]
    for label, show in rows:
        table.add_row(label, *(show(run) for run in runs))
    return table


def _progress(console: Console) -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[fetches]} fetches, {task.fields[expired]} sent expired"),
        console=console,
        disable=not console.is_terminal,
    )


_MOTO = """
import signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the demo's to handle; it stops us
from aiorefresh.testing import MotoServer
server = MotoServer().start()
sys.stdout.write(server.endpoint_url + "\\n")
sys.stdout.flush()
sys.stdin.read()
server.stop()
"""


@contextlib.asynccontextmanager
async def moto_server() -> AsyncIterator[str]:
    """`MotoServer` in a child process: its endpoint URL while the block runs.

    In a process of its own, moto's server gets the second core and no share of this
    process's GIL (in-process, every call also waits for moto's threads). The child stops
    when its standard input closes, which happens when the block is left or this process dies.
    """
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _MOTO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        line = await asyncio.wait_for(child.stdout.readline(), timeout=60)
        endpoint = line.decode().strip()
        if not endpoint.startswith("http://127.0.0.1:"):
            raise RuntimeError("moto's server did not start (see the error above)")
        yield endpoint
    finally:
        child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), timeout=10)
        except asyncio.TimeoutError:
            child.kill()
            await child.wait()


async def _create_role(endpoint: str) -> str:
    from aiobotocore.session import get_session

    trust = (
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": '
        f'"sts:AssumeRole", "Principal": {{"AWS": "arn:aws:iam::{ACCOUNT}:root"}}}}]}}'
    )
    async with get_session().create_client(
        "iam", region_name="us-east-1", endpoint_url=endpoint
    ) as iam:
        answer = await iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=trust)
    return str(answer["Role"]["Arn"])


async def _warm_up(endpoint: str) -> None:
    """One unmeasured call per region, so neither run pays for moto creating its regional
    backends or for this process loading DynamoDB's model for the first time."""
    from aiobotocore.session import get_session

    plain = get_session()
    for region in REGIONS:
        async with plain.create_client(
            "dynamodb", region_name=region, endpoint_url=endpoint
        ) as client:
            await client.list_tables()


async def _main(console: Console, calls: int) -> None:
    from .testing import FrozenClock

    rounds = max(1, calls // CALLS_PER_FAN_OUT)
    total = rounds * CALLS_PER_FAN_OUT
    async with moto_server() as endpoint:
        role_arn = await _create_role(endpoint)
        await _warm_up(endpoint)
        step = DEMO_SPAN.total_seconds() / total
        _say(console, f"[bold]aiorefresh demo[/] on moto's server at {endpoint} (no AWS account)")
        console.print(
            _intro(
                ("moto", "started by the demo, in a child process of its own"),
                ("role", f"{role_arn}, created in moto's IAM"),
                (
                    "keys",
                    f"AssumeRole for {LIFETIME // 60}-minute credentials; the demo clock moves "
                    f"{step:.2f} s per call, so {DEMO_SPAN.total_seconds() / 3600:g} h pass "
                    "in each run",
                ),
                (
                    "workload",
                    f"{total:,} DynamoDB ListTables calls: {rounds} fan-outs over "
                    f"{len(REGIONS)} regions, {CALLS_PER_TASK} calls per region task, "
                    f"{FAN_OUTS_AT_ONCE} fan-outs at a time; refreshes forced after "
                    + ", ".join(f"{f:.0%}" for f in FORCED_AT)
                    + " of the calls",
                ),
            )
        )
        _say(console)
        runs: list[Run] = []
        with _progress(console) as progress:
            for label, workload in (
                ("aiorefresh (pooled)", with_aiorefresh),
                ("naive (client per task)", the_naive_way),
            ):
                bar = progress.add_task(label, total=total, fetches=0, expired=0)
                clock = FrozenClock(start=utc_now())
                run = await workload(endpoint, role_arn, rounds, clock, _ticker(progress, bar))
                runs.append(run)
                if not console.is_terminal:
                    _say(console, f"{label}: {run.calls:,} calls in {run.wall:.1f} s")
        _say(console)
        ours, naive = runs
        console.print(_table((ours, naive)))
        _say(console)
        _summary(console, ours, naive)


def _intro(*rows: tuple[str, str]) -> Any:
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for name, text in rows:
        grid.add_row(f"  {name}", text)
    return grid


def _ticker(progress: Progress, bar: TaskID) -> Callable[[Run], None]:
    def tick(run: Run) -> None:
        progress.update(bar, advance=1, fetches=sum(run.fetches.values()), expired=run.sent_expired)

    return tick


def _summary(console: Console, ours: Run, naive: Run) -> None:
    in_flight = ", ".join(str(n) for n in ours.forced_in_flight)
    shared = len(ours.forced_in_flight) - ours.fetches["forced"]
    waited = ours.fetches["mandatory"] + ours.fetches["expired"]
    _say(
        console,
        f"- aiorefresh: {ours.clients_created} pooled clients served {ours.calls:,} calls. "
        f"Refreshes were forced with {in_flight} calls in flight"
        + (f" ({shared} found a fetch running and shared it)" if shared > 0 else "")
        + "; the other refreshes ran "
        + (
            "in the background before the keys expired, so no call waited for STS"
            if not waited
            else f"in the background but {waited} in the last minute, where callers wait for "
            "the one fetch"
        )
        + f". Requests sent with expired keys: {ours.sent_expired:,}.",
    )
    _say(
        console,
        f"- naive: {naive.clients_created:,} clients for the same calls in {naive.wall:.1f} s "
        f"(aiorefresh: {ours.wall:.1f} s); its keys expired between the forced refreshes and "
        f"{naive.sent_expired:,} requests went out with them.",
    )
    _say(
        console,
        "- moto accepts expired keys; AWS answers them ExpiredToken. Every number above was "
        "measured in this run, on 127.0.0.1 only.",
    )


def run_demo(calls: int = 2048) -> int:
    """Run the demo on stdout; returns the process exit status."""
    try:
        from rich.console import Console

        from .testing import AWS_TEST_ENV

        if importlib.util.find_spec("moto") is None:
            raise ImportError("No module named 'moto'")
    except ImportError as exc:
        sys.stderr.write(
            f"aiorefresh: the demo needs the testing extra: pip install 'aiorefresh[testing]' "
            f"({exc})\n"
        )
        return 1
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(AWS_TEST_ENV)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    console = Console()
    asyncio.run(_main(console, calls))
    return 0
