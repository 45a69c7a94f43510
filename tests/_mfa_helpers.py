"""Shared by the MFA token provider tests (test_mfa*.py, test_fleet.py): the code their
providers hand out, a command that runs a script with this Python, and a sleep that moves a
frozen clock instead of waiting."""

from __future__ import annotations

import sys

from aiorefresh.testing import FrozenClock

PY = sys.executable
CODE = "123456"


def command(script: str) -> list[str]:
    """A command that runs ``script`` with this Python."""
    return [PY, "-c", script]


class FakeSleep:
    """Records the waits and moves the frozen clock instead of sleeping."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.clock.advance(seconds)
