"""The ``aiorefresh`` command, run as a user runs it: ``python -m aiorefresh`` in a subprocess.

Sessions talk to moto's server (the role is created in moto's IAM first); ``exec`` children
are real processes that read their environment, or botocore's container provider that reads
the credentials endpoint. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

import pytest

from aiorefresh.__about__ import __version__
from aiorefresh.testing import AWS_TEST_ENV, MotoServer

ROLE = "cli-reader"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
MFA_SERIAL = f"arn:aws:iam::{ACCOUNT}:mfa/alice"
MFA_COMMAND = f"{sys.executable} -c \"print('code: 654321')\""

CHILD_PRINTS_ITS_ENVIRONMENT = """
import json, os
print(json.dumps({k: v for k, v in os.environ.items() if k.startswith("AWS_")}))
"""
CHILD_SIGNS_WITH_BOTOCORE = """
import json, os, sys
import botocore.session

session = botocore.session.get_session()
credentials = session.get_credentials()
sts = session.create_client("sts", endpoint_url=sys.argv[1])
print(json.dumps({
    "method": credentials.method,
    "arn": sts.get_caller_identity()["Arn"],
    "keys_in_env": [k for k in os.environ if k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                    "AWS_SESSION_TOKEN", "AWS_PROFILE")],
}))
"""
CHILD_ASKS_THE_ENDPOINT = """
import json, os, urllib.error, urllib.request

def status(headers):
    request = urllib.request.Request(os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code

token = os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
print(json.dumps({
    "without": status({}),
    "wrong": status({"Authorization": "not-the-token-at-all"}),
    "with": status({"Authorization": token}),
    "uri": os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
}))
"""


def environment(
    extra: Mapping[str, str] | None = None, unset: tuple[str, ...] = ()
) -> dict[str, str]:
    """This process's environment without any AWS_* variable, plus fake keys (as aws_env)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_TEST_ENV)
    env.update(extra or {})
    for name in unset:
        env.pop(name, None)
    return env


def aiorefresh(
    *args: str,
    env: Mapping[str, str] | None = None,
    unset: tuple[str, ...] = (),
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiorefresh", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment(env, unset),
        check=False,
    )


def at(moto: MotoServer, *args: str) -> list[str]:
    return ["--endpoint-url", moto.endpoint_url, *args]


@pytest.fixture
def a_profile(tmp_path: os.PathLike[str]) -> dict[str, str]:
    """``AWS_PROFILE`` naming a profile of a config file (with the fake keys)."""
    config = os.path.join(tmp_path, "config")
    with open(config, "w") as file:
        file.write(
            f"[profile ambient]\naws_access_key_id = {AWS_TEST_ENV['AWS_ACCESS_KEY_ID']}\n"
            f"aws_secret_access_key = {AWS_TEST_ENV['AWS_SECRET_ACCESS_KEY']}\n"
        )
    return {"AWS_CONFIG_FILE": config, "AWS_PROFILE": "ambient"}


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def moto(moto_server: MotoServer) -> Iterator[MotoServer]:
    """moto's server with the role ``cli-reader`` in its IAM."""
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=moto_server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
    )
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            }
        ],
    }
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust))
    try:
        yield moto_server
    finally:
        iam.delete_role(RoleName=ROLE)


# -- whoami -------------------------------------------------------------------------------------


def test_whoami_prints_the_account_arn_and_user_id(moto: MotoServer) -> None:
    result = aiorefresh("whoami", *at(moto))
    assert result.returncode == 0, result.stderr
    fields = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert fields == {
        "UserId": AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
        "Account": ACCOUNT,
        "Arn": f"arn:aws:sts::{ACCOUNT}:user/moto",
    }


def test_whoami_with_a_role_prints_the_assumed_role(moto: MotoServer) -> None:
    result = aiorefresh("whoami", *at(moto, "--role-arn", ROLE_ARN, "--role-session-name", "me"))
    assert result.returncode == 0, result.stderr
    assert f"Arn      arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/me\n" in result.stdout


def test_whoami_masked_hides_the_middle_of_the_account_id_everywhere(moto: MotoServer) -> None:
    result = aiorefresh("whoami", "--masked", *at(moto, "--role-arn", ROLE_ARN))
    assert result.returncode == 0, result.stderr
    assert ACCOUNT not in result.stdout
    assert "Account  12*******012" in result.stdout
    assert f"arn:aws:sts::12*******012:assumed-role/{ROLE}/" in result.stdout


def test_whoami_json_prints_the_fields_of_the_aws_clis_get_caller_identity(
    moto: MotoServer,
) -> None:
    result = aiorefresh("whoami", "--json", *at(moto, "--role-arn", ROLE_ARN))
    assert result.returncode == 0, result.stderr
    identity = json.loads(result.stdout)
    assert set(identity) == {"UserId", "Account", "Arn"}
    assert identity["Account"] == ACCOUNT
    assert identity["Arn"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/")


def test_whoami_json_masked_masks_the_json_too(moto: MotoServer) -> None:
    result = aiorefresh("whoami", "--json", "--masked", *at(moto))
    assert json.loads(result.stdout)["Account"] == "12*******012"


def test_whoami_with_an_mfa_command_assumes_the_role_with_a_code(moto: MotoServer) -> None:
    result = aiorefresh(
        "whoami",
        *at(moto, "--role-arn", ROLE_ARN, "--mfa-serial", MFA_SERIAL, "--mfa-command", MFA_COMMAND),
    )
    assert result.returncode == 0, result.stderr
    assert f":assumed-role/{ROLE}/" in result.stdout
    assert "654321" not in result.stdout + result.stderr


def test_mfa_flags_without_a_role_use_get_session_token(moto: MotoServer) -> None:
    result = aiorefresh(
        "whoami", "--json", *at(moto, "--mfa-serial", MFA_SERIAL, "--mfa-command", MFA_COMMAND)
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Account"] == ACCOUNT


def test_whoami_prints_no_secret(moto: MotoServer) -> None:
    result = aiorefresh(
        "exec",
        *at(moto, "--role-arn", ROLE_ARN),
        "--",
        sys.executable,
        "-c",
        ("import os; print(os.environ['AWS_SECRET_ACCESS_KEY'])"),
    )
    assert result.returncode == 0, result.stderr
    role_secret = result.stdout.strip()
    shown = aiorefresh("whoami", "--json", "--debug", *at(moto, "--role-arn", ROLE_ARN))
    everything = shown.stdout + shown.stderr
    assert AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"] not in everything
    assert role_secret not in everything
    assert "SessionToken" not in everything


# -- exec ---------------------------------------------------------------------------------------


def test_exec_passes_the_roles_keys_and_region_to_the_command(
    moto: MotoServer, a_profile: dict[str, str]
) -> None:
    result = aiorefresh(
        "exec",
        *at(moto, "--role-arn", ROLE_ARN, "--region", "eu-west-1"),
        "--",
        sys.executable,
        "-c",
        CHILD_PRINTS_ITS_ENVIRONMENT,
        env=a_profile,
    )
    assert result.returncode == 0, result.stderr
    env = json.loads(result.stdout)
    assert env["AWS_ACCESS_KEY_ID"].startswith("ASIA")
    assert env["AWS_ACCESS_KEY_ID"] != AWS_TEST_ENV["AWS_ACCESS_KEY_ID"]
    assert env["AWS_SESSION_TOKEN"]
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert "AWS_CREDENTIAL_EXPIRATION" in env
    assert "AWS_PROFILE" not in env


def test_the_region_defaults_to_aws_region_as_the_aws_cli_reads_it(moto: MotoServer) -> None:
    result = aiorefresh(
        "exec",
        *at(moto, "--role-arn", ROLE_ARN),
        "--",
        sys.executable,
        "-c",
        CHILD_PRINTS_ITS_ENVIRONMENT,
        env={"AWS_REGION": "eu-west-2"},
        unset=("AWS_DEFAULT_REGION",),
    )
    assert result.returncode == 0, result.stderr
    env = json.loads(result.stdout)
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-2"


def test_no_region_anywhere_says_to_pass_region_or_set_aws_region(moto: MotoServer) -> None:
    result = aiorefresh(
        "whoami", *at(moto, "--role-arn", ROLE_ARN), unset=("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    assert result.returncode == 1
    assert one_line(result.stderr).endswith("(pass --region or set AWS_REGION)")


def test_endpoint_url_serves_a_role_profiles_assume_role(
    moto: MotoServer, tmp_path: os.PathLike[str]
) -> None:
    config = os.path.join(tmp_path, "config")
    with open(config, "w") as file:
        file.write(
            f"[profile base]\naws_access_key_id = {AWS_TEST_ENV['AWS_ACCESS_KEY_ID']}\n"
            f"aws_secret_access_key = {AWS_TEST_ENV['AWS_SECRET_ACCESS_KEY']}\n"
            f"[profile reader]\nrole_arn = {ROLE_ARN}\nsource_profile = base\n"
            "role_session_name = from-profile\n"
        )
    # Were the flag ignored, STS would be asked at a closed loopback port, never at AWS.
    guard = {"AWS_CONFIG_FILE": config, "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:1"}
    result = aiorefresh("whoami", *at(moto, "--profile", "reader"), env=guard)
    assert result.returncode == 0, result.stderr
    assert f"assumed-role/{ROLE}/from-profile\n" in result.stdout


def test_the_command_signs_as_the_assumed_role(moto: MotoServer) -> None:
    result = aiorefresh(
        "exec",
        *at(moto, "--role-arn", ROLE_ARN),
        "--",
        sys.executable,
        "-c",
        CHILD_SIGNS_WITH_BOTOCORE,
        moto.endpoint_url,
    )
    assert result.returncode == 0, result.stderr
    child = json.loads(result.stdout)
    assert child["method"] == "env"
    assert f":assumed-role/{ROLE}/" in child["arn"]


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_exec_exits_with_the_commands_exit_status(moto: MotoServer, code: int) -> None:
    result = aiorefresh(
        "exec", *at(moto), "--", sys.executable, "-c", f"import sys; sys.exit({code})"
    )
    assert result.returncode == code
    assert result.stderr == ""


def test_exec_exits_with_128_plus_the_signal_that_killed_the_command(moto: MotoServer) -> None:
    result = aiorefresh(
        "exec", *at(moto), "--", sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"
    )
    assert result.returncode == 128 + 9


def test_exec_passes_sigterm_on_to_the_command(moto: MotoServer) -> None:
    # The child signals its parent (aiorefresh), which hands SIGTERM on to the child.
    child = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(42))\n"
        "os.kill(os.getppid(), signal.SIGTERM)\n"
        "time.sleep(60)\n"
        "sys.exit(1)\n"
    )
    result = aiorefresh("exec", *at(moto), "--", sys.executable, "-c", child, timeout=60)
    assert result.returncode == 42, result.stderr


def test_exec_of_a_missing_command_exits_127_with_one_line(moto: MotoServer) -> None:
    result = aiorefresh("exec", *at(moto), "--", "aiorefresh-no-such-command")
    assert result.returncode == 127
    assert one_line(result.stderr) == "aiorefresh: aiorefresh-no-such-command: command not found"


def test_exec_serve_feeds_botocores_container_provider_and_no_keys(
    moto: MotoServer, a_profile: dict[str, str]
) -> None:
    result = aiorefresh(
        "exec",
        "--serve",
        *at(moto, "--role-arn", ROLE_ARN),
        "--",
        sys.executable,
        "-c",
        CHILD_SIGNS_WITH_BOTOCORE,
        moto.endpoint_url,
        env=a_profile,
    )
    assert result.returncode == 0, result.stderr
    child = json.loads(result.stdout)
    assert child["method"] == "container-role"
    assert f":assumed-role/{ROLE}/" in child["arn"]
    assert child["keys_in_env"] == []


def test_exec_serve_refuses_requests_without_the_token_and_stops_with_the_child(
    moto: MotoServer,
) -> None:
    result = aiorefresh(
        "exec",
        "--serve",
        *at(moto, "--role-arn", ROLE_ARN),
        "--",
        sys.executable,
        "-c",
        CHILD_ASKS_THE_ENDPOINT,
    )
    assert result.returncode == 0, result.stderr
    child = json.loads(result.stdout)
    assert (child["without"], child["wrong"], child["with"]) == (401, 401, 200)
    uri = urlsplit(child["uri"])
    assert uri.hostname == "127.0.0.1"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", uri.port), timeout=5).close()


def test_exec_serve_fails_in_one_line_before_starting_the_command() -> None:
    result = aiorefresh(
        "exec",
        "--serve",
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--role-arn",
        ROLE_ARN,
        "--",
        sys.executable,
        "-c",
        "print('the command ran')",
        env={"AWS_MAX_ATTEMPTS": "1"},
    )
    assert result.returncode == 1
    assert "the command ran" not in result.stdout
    assert "Could not connect to the endpoint URL" in one_line(result.stderr)


# -- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["whoami", "--no-such-option"], "unrecognized arguments: --no-such-option"),
        (["whoami", "--duration", "soon"], "argument --duration: expected whole seconds"),
        (["exec", "--role-arn", ROLE_ARN], "exec needs the command after '--'"),
        (["whoami", "--", "ls"], "whoami takes no command after '--'"),
        (["whoami", "--mfa-serial", MFA_SERIAL], "--mfa-serial needs --mfa-command"),
        (["whoami", "--mfa-command", "true"], "--mfa-command needs --mfa-serial"),
        (["whoami", "--external-id", "x"], "--external-id needs --role-arn"),
        (["whoami", "--role-session-name", "x"], "--role-session-name needs --role-arn"),
        (["whoami", "--duration", "900"], "--duration needs --role-arn or --mfa-serial"),
        (["whoami", "--role-arn", "not-an-arn"], "--role-arn must look like arn:"),
        (["whoami", "--role-arn", ROLE_ARN, "--duration", "60"], "--duration must be between"),
        (["whoami", "--profile", "nobody"], "--profile 'nobody' is not in the shared config"),
    ],
)
def test_bad_options_give_one_line_and_exit_status_2(args: list[str], says: str) -> None:
    result = aiorefresh(*args)
    assert result.returncode == 2, result.stderr
    line = one_line(result.stderr)
    assert line.startswith("aiorefresh: ")
    assert says in line
    assert "TokenCode" not in line
    assert "mfa_token_provider" not in line
    assert result.stdout == ""


def test_a_profile_whose_role_asks_for_mfa_needs_an_mfa_command(tmp_path: os.PathLike[str]) -> None:
    config = os.path.join(tmp_path, "config")
    with open(config, "w") as file:
        file.write(
            "[profile base]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = s\n"
            f"[profile admin]\nrole_arn = {ROLE_ARN}\nsource_profile = base\n"
            f"mfa_serial = {MFA_SERIAL}\n"
        )
    result = aiorefresh("whoami", "--profile", "admin", env={"AWS_CONFIG_FILE": config})
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert f"profile 'admin' asks for an MFA code ({MFA_SERIAL}): pass --mfa-command" in line


def test_an_unreachable_endpoint_is_one_line_without_a_traceback_and_exit_status_1() -> None:
    result = aiorefresh(
        "whoami",
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--role-arn",
        ROLE_ARN,
        env={"AWS_MAX_ATTEMPTS": "1"},
    )
    assert result.returncode == 1
    line = one_line(result.stderr)  # printed once: not also as a log record
    assert line == (
        "aiorefresh: STS AssumeRole failed: EndpointConnectionError: Could not connect to the "
        'endpoint URL: "http://127.0.0.1:9/"'
    )


def test_debug_adds_the_traceback_and_the_librarys_log() -> None:
    result = aiorefresh(
        "whoami",
        "--debug",
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--role-arn",
        ROLE_ARN,
        env={"AWS_MAX_ATTEMPTS": "1"},
    )
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "refresh failed (initial)" in result.stderr
    assert result.stderr.endswith('Could not connect to the endpoint URL: "http://127.0.0.1:9/"\n')


def test_version_prints_the_package_version() -> None:
    result = aiorefresh("--version")
    assert result.returncode == 0
    assert re.match(rf"aiorefresh {re.escape(__version__)} \(aiobotocore \S+, ", result.stdout)


# -- the demo -----------------------------------------------------------------------------------


@pytest.mark.timeout(600)
def test_the_demo_completes_and_prints_its_table() -> None:
    result = aiorefresh(
        "demo", "--calls", "512", env={"NO_COLOR": "1", "COLUMNS": "100"}, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "\x1b[" not in out  # no colour, no cursor movement: not a terminal
    assert "The same workload, measured in this run" in out
    rows = {
        cells[0]: cells[1:]
        for cells in (
            [cell.strip() for cell in line.strip("│┃ ").split("│")]
            for line in out.splitlines()
            if line.startswith("│")
        )
    }
    assert rows["calls answered"] == ["512 of 512", "512 of 512"]
    assert rows["clients created"] == ["16", "32"]
    assert rows["sent with expired keys"][0] == "0"
    assert int(rows["sent with expired keys"][1].replace(",", "")) > 0
    assert int(rows["STS AssumeRole calls"][0]) >= 4
    for label in ("latency p50", "latency p99", "pool hits", "credential fetches", "wall time"):
        assert label in rows
    assert "Traceback" not in result.stderr


def test_exec_serve_warns_when_the_default_profile_would_win_over_the_endpoint(
    moto: MotoServer, tmp_path: os.PathLike[str]
) -> None:
    credentials = os.path.join(tmp_path, "credentials")
    with open(credentials, "w") as file:
        file.write("[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s\n")
    result = aiorefresh(
        "exec",
        "--serve",
        *at(moto),
        "--",
        sys.executable,
        "-c",
        "pass",
        env={"AWS_SHARED_CREDENTIALS_FILE": credentials},
    )
    assert result.returncode == 0
    assert one_line(result.stderr) == (
        "aiorefresh: warning: the default profile sets aws_access_key_id; AWS SDKs in the "
        "command read it before the credentials endpoint (AWS_SHARED_CREDENTIALS_FILE, "
        "AWS_CONFIG_FILE)"
    )


def test_an_aws_profile_that_does_not_exist_is_a_usage_error() -> None:
    result = aiorefresh("whoami", env={"AWS_PROFILE": "nobody"})
    assert result.returncode == 2
    assert "AWS_PROFILE 'nobody' is not in the shared config" in one_line(result.stderr)
