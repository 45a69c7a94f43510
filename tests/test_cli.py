"""The command line: ``aiorefresh whoami`` against moto, and the demo end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from aiorefresh.testing import AWS_TEST_ENV, MotoServer


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **AWS_TEST_ENV, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "aiorefresh", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )


def test_whoami_prints_the_identity_as_json(moto_server: MotoServer) -> None:
    result = run("whoami", "--endpoint-url", moto_server.endpoint_url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Account"] == "123456789012"


def test_whoami_with_a_role_prints_the_assumed_role(moto_server: MotoServer) -> None:
    result = run(
        "whoami",
        "--endpoint-url",
        moto_server.endpoint_url,
        "--role-arn",
        "arn:aws:iam::123456789012:role/cli-reader",
    )
    assert result.returncode == 0, result.stderr
    assert ":assumed-role/cli-reader/" in json.loads(result.stdout)["Arn"]


def test_whoami_reports_bad_options_without_a_traceback() -> None:
    result = run("whoami", "--role-arn", "not-an-arn")
    assert result.returncode == 1
    assert "ConfigurationError" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_runs_against_local_servers_only(aws_env: Any) -> None:
    result = run("demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1,000 tasks asked at once -> 1 fetch" in result.stdout
    assert "assumed-role/demo-reader/demo" in result.stdout
    assert "500 tasks -> 1 mTLS request(s)" in result.stdout
    assert "secret" not in result.stdout.lower().replace("secret_key='****'", "")
