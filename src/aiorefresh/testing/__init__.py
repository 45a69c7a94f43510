"""Test helpers and a pytest plugin for code that uses aiorefresh.

Opt in with ``pytest_plugins = ["aiorefresh.testing"]`` in a ``conftest.py``. Fixtures:
``moto_server`` (moto's server on a free loopback port), ``aws_env`` (fake keys and region in
the environment), ``frozen_clock`` (a clock you advance by hand) and ``counting_fetcher``
(a custom fetcher that counts its calls). Real servers for faults moto cannot play are
``STSStandIn`` and ``IoTCredentialsServer``.
"""

from __future__ import annotations

from ._fixtures import (
    AWS_TEST_ENV,
    CountingFetcher,
    FrozenClock,
    MotoServer,
    aws_env,
    counting_fetcher,
    frozen_clock,
    moto_server,
    sts_standin,
)
from ._iot import IoTCredentialsServer
from ._sts import Delay, Fail, Hang, Malformed, STSStandIn, Succeed

__all__ = [
    "AWS_TEST_ENV",
    "CountingFetcher",
    "FrozenClock",
    "IoTCredentialsServer",
    "MotoServer",
    "STSStandIn",
    "aws_env",
    "counting_fetcher",
    "frozen_clock",
    "moto_server",
    "sts_standin",
    "Succeed",
    "Fail",
    "Hang",
    "Malformed",
    "Delay",
]
