"""Runs aioboto3's own test suite with ``aiorefresh.RefreshableSession`` wherever it builds an
``aioboto3.Session`` (see ../run_aioboto3_suite.sh). Sessions stay unclosed, as aioboto3 code
leaves them."""

from __future__ import annotations

import os
from typing import Any

import aioboto3
import aioboto3.session

from aiorefresh import RefreshableSession

BASELINE = os.environ.get("AIOREFRESH_SUITE_BASELINE") == "1"
built: list[str] = []


class CountedSession(RefreshableSession):
    """RefreshableSession, counting how many aioboto3 sessions it stood in for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        built.append(self.method)


if not BASELINE:
    aioboto3.Session = CountedSession  # type: ignore[misc]
    aioboto3.session.Session = CountedSession  # type: ignore[misc]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if BASELINE:
        terminalreporter.write_line("aioboto3 suite: plain aioboto3.Session (baseline)")
    else:
        terminalreporter.write_line(
            f"aioboto3 suite: {len(built)} RefreshableSession(s) stood in for aioboto3.Session"
        )
