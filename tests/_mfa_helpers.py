"""Shared by the MFA token provider tests (test_mfa*.py): the code their providers hand out, and
a command that runs a script with this Python."""

from __future__ import annotations

import sys

PY = sys.executable
CODE = "123456"


def command(script: str) -> list[str]:
    """A command that runs ``script`` with this Python."""
    return [PY, "-c", script]
