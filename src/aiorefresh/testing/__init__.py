"""Test helpers and a pytest plugin for code that uses aiorefresh.

Opt in with ``pytest_plugins = ["aiorefresh.testing"]`` in a ``conftest.py``. Fixtures:
``moto_server`` (moto's server on a free loopback port), ``aws_env`` (fake keys and region in
the environment, every other ``AWS_*`` variable removed), ``frozen_clock`` (a clock you advance
by hand), ``counting_fetcher`` (a custom fetcher that counts its calls), ``sts_standin`` and
``iot_server`` (the stand-ins, running), ``refreshable_session`` (a factory of sessions pointed
at ``moto_server``, each closed when the test ends). Real servers for faults moto cannot play are
``STSStandIn`` and ``IoTCredentialsServer``, scripted with one vocabulary: ``Succeed``,
``Fail``, ``Hang``, ``Malformed``, ``Delay``, ``Disconnect`` and ``Respond``.
"""

from __future__ import annotations

from ._fixtures import (
    AWS_TEST_ENV,
    CountingFetcher,
    FrozenClock,
    MotoServer,
    RefreshableSessionFactory,
    aws_env,
    counting_fetcher,
    frozen_clock,
    iot_server,
    moto_server,
    refreshable_session,
    sts_standin,
)
from ._iot import IoTCredentialsServer, IoTOutcome, IoTRequest
from ._outcomes import Delay, Disconnect, Fail, Hang, Malformed, Outcome, Respond, Succeed
from ._sts import OUTCOMES, RecordedRequest, STSStandIn

__all__ = [
    "AWS_TEST_ENV",
    "OUTCOMES",
    "CountingFetcher",
    "FrozenClock",
    "IoTCredentialsServer",
    "IoTOutcome",
    "IoTRequest",
    "MotoServer",
    "RecordedRequest",
    "RefreshableSessionFactory",
    "STSStandIn",
    "aws_env",
    "counting_fetcher",
    "frozen_clock",
    "iot_server",
    "moto_server",
    "refreshable_session",
    "sts_standin",
    "Outcome",
    "Succeed",
    "Fail",
    "Hang",
    "Malformed",
    "Delay",
    "Disconnect",
    "Respond",
]
