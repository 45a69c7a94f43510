"""The ``aiorefresh`` command: ``demo``, ``whoami`` and ``exec`` (keys, or ``--serve`` an endpoint).

Every failure is one line on stderr: exit status 2 for usage (bad options or option values,
found before any network call), 1 when something fails while running; ``--debug`` adds the
traceback and the library's debug log. Secrets are never printed: ``whoami`` shows identity
only and ``exec`` hands the credentials to the child alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from .__about__ import __version__
from .errors import AiorefreshError, ConfigurationError, ValidationError

if TYPE_CHECKING:
    from ._session import RefreshableSession

__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "main"]

EXIT_FAILURE = 1
EXIT_USAGE = 2
_PROG = "aiorefresh"


class UsageError(Exception):
    """A bad command line, in the command's own terms (exit status 2)."""


class CommandFailed(Exception):
    """The child command could not be started (exit status ``code``: 126 or 127, as env(1))."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse that raises `UsageError` (one line) instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


# -- the command line ---------------------------------------------------------------------------


def _version() -> str:
    import aiobotocore
    import botocore

    python = ".".join(str(part) for part in sys.version_info[:3])
    return (
        f"{_PROG} {__version__} (aiobotocore {aiobotocore.__version__}, "
        f"botocore {botocore.__version__}, Python {python})"
    )


def _session_options() -> _Parser:
    options = _Parser(add_help=False)
    group = options.add_argument_group("session options")
    group.add_argument(
        "--profile", metavar="NAME", help="profile of the shared config (a role profile too)"
    )
    group.add_argument("--role-arn", metavar="ARN", help="assume this IAM role (STS AssumeRole)")
    group.add_argument("--role-session-name", metavar="NAME", help="session name for --role-arn")
    group.add_argument(
        "--duration", type=_seconds, metavar="SECONDS", help="credential lifetime (900-43200)"
    )
    group.add_argument("--external-id", metavar="ID", help="external id for --role-arn")
    group.add_argument(
        "--mfa-serial",
        metavar="ARN",
        help="MFA device: with --role-arn, AssumeRole with MFA; alone, GetSessionToken",
    )
    group.add_argument(
        "--mfa-command",
        metavar="COMMAND",
        help="command printing the current MFA code, e.g. 'ykman oath code -s aws'",
    )
    group.add_argument(
        "--region",
        metavar="NAME",
        help="AWS region (default: AWS_REGION, else AWS_DEFAULT_REGION or the profile's)",
    )
    group.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="STS endpoint (a VPC endpoint, or a local moto server)",
    )
    _debug_option(options, default=argparse.SUPPRESS)
    return options


def _debug_option(parser: argparse.ArgumentParser, *, default: Any) -> None:
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="show the library's debug log and a traceback on failure",
    )


def _seconds(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole seconds, got {text!r}") from None


def _calls(text: str) -> int:
    from ._demo import CALLS_PER_FAN_OUT

    try:
        calls = int(text)
    except ValueError:
        calls = 0
    if calls < CALLS_PER_FAN_OUT or calls % CALLS_PER_FAN_OUT:
        raise argparse.ArgumentTypeError(
            f"expected a multiple of {CALLS_PER_FAN_OUT} (16 regions x 16 calls), got {text!r}"
        )
    return calls


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=_PROG,
        description="Auto-refreshing AWS sessions for asyncio: the demo, whoami, and exec.",
    )
    parser.add_argument("--version", action="version", version=_version())
    _debug_option(parser, default=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="fan out thousands of calls on an embedded moto server (no AWS account)",
        description="Runs on 127.0.0.1 only: moto's server is started and stopped by the demo.",
    )
    demo.add_argument(
        "--calls",
        type=_calls,
        default=2048,
        help="calls in the workload, a multiple of 256 (default 2048: 16 regions x 16 x 8)",
    )
    _debug_option(demo, default=argparse.SUPPRESS)
    session = _session_options()
    whoami = commands.add_parser(
        "whoami",
        parents=[session],
        help="print who the credentials are (never a secret)",
        description="STS GetCallerIdentity for the session's credentials.",
    )
    whoami.add_argument("--masked", action="store_true", help="hide the middle of account ids")
    whoami.add_argument("--json", action="store_true", help="print JSON (as the AWS CLI does)")
    run = commands.add_parser(
        "exec",
        parents=[session],
        help="run a command with fresh credentials",
        usage=f"{_PROG} exec [options] [--serve] -- CMD [ARGS ...]",
        description=(
            "Runs CMD with the session's credentials in its environment; with --serve, with a "
            "loopback credentials endpoint instead, so the command's AWS SDK keeps getting "
            "refreshed credentials for as long as it runs. The exit status is the command's."
        ),
    )
    run.add_argument(
        "--serve",
        action="store_true",
        help="serve credentials on 127.0.0.1 (container-credentials format) instead of keys",
    )
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line as a namespace (``argv`` for ``exec`` is what follows ``--``)."""
    argv = list(argv)
    command_argv: list[str] | None = None
    if "--" in argv:
        split = argv.index("--")
        argv, command_argv = argv[:split], argv[split + 1 :]
    args = _parser().parse_args(argv)
    if args.command == "exec":
        if not command_argv:
            raise UsageError(
                f"exec needs the command after '--': {_PROG} exec [options] -- CMD [ARGS ...]"
            )
    elif command_argv is not None:
        raise UsageError(f"{args.command} takes no command after '--'")
    args.argv = command_argv
    return args


# -- sessions -----------------------------------------------------------------------------------


def _check_combinations(args: argparse.Namespace) -> None:
    for flag in ("role_session_name", "external_id"):
        if getattr(args, flag) is not None and args.role_arn is None:
            raise UsageError(f"--{flag.replace('_', '-')} needs --role-arn")
    if args.duration is not None and args.role_arn is None and args.mfa_serial is None:
        raise UsageError(
            "--duration needs --role-arn or --mfa-serial (a role profile's lifetime is its "
            "duration_seconds setting)"
        )
    if args.mfa_serial is not None and args.mfa_command is None:
        raise UsageError(
            "--mfa-serial needs --mfa-command, a command that prints the current 6-digit code "
            "(for example --mfa-command 'ykman oath code -s aws')"
        )


def _check_profile(args: argparse.Namespace) -> bool:
    """The profile exists; a role profile that asks for an MFA code gets --mfa-command, and
    --mfa-command has a device to answer for. Returns whether the profile has a role."""
    from . import _aiobotocore, _profiles

    probe = _aiobotocore.new_session(profile_name=args.profile)
    named = args.profile if args.profile is not None else probe.profile
    if named not in (None, "default") and named not in probe.available_profiles:
        where = "--profile" if args.profile is not None else "AWS_PROFILE"
        raise UsageError(
            f"{where} {named!r} is not in the shared config or credentials files "
            "(AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE)"
        )
    name = named or "default"
    role = _profiles.load_role_profile(probe, name, explicit=args.profile is not None)
    serials = [link.mfa_serial for link in role.roles if link.mfa_serial] if role else []
    outer = args.role_arn or args.mfa_serial
    if serials and (outer or args.mfa_command is None):
        how = (
            "--role-arn and --mfa-serial cannot answer a profile's own MFA; put the role in "
            "the profile (role_arn, source_profile) and pass --mfa-command"
            if outer
            else "pass --mfa-command, a command that prints the current 6-digit code"
        )
        raise UsageError(f"profile {name!r} asks for an MFA code ({serials[0]}): {how}")
    if not serials and args.mfa_command is not None and args.mfa_serial is None:
        if named in (None, "default") and args.profile is None:
            raise UsageError(
                "--mfa-command needs --mfa-serial (the MFA device ARN), or a --profile whose "
                "role has mfa_serial"
            )
        raise UsageError(
            f"--mfa-command is not used: profile {name!r} has no role with mfa_serial (for MFA "
            "with other credentials, pass --mfa-serial too)"
        )
    return role is not None


def build_session(args: argparse.Namespace) -> RefreshableSession:
    """The session the options describe; bad options raise `UsageError` before any I/O."""
    from ._session import RefreshableSession

    _check_combinations(args)
    role_profile = _check_profile(args)
    endpoint = {"endpoint_url": args.endpoint_url} if args.endpoint_url else None
    common: dict[str, Any] = {
        "profile_name": args.profile,
        # AWS_REGION as the AWS CLI v2 reads it; botocore itself reads only AWS_DEFAULT_REGION.
        "region_name": args.region or os.environ.get("AWS_REGION") or None,
        "default_client_kwargs": endpoint,
    }
    try:
        if args.role_arn is not None:
            assume: dict[str, Any] = {"RoleArn": args.role_arn}
            for key, value in (
                ("RoleSessionName", args.role_session_name),
                ("DurationSeconds", args.duration),
                ("ExternalId", args.external_id),
                ("SerialNumber", args.mfa_serial),
            ):
                if value is not None:
                    assume[key] = value
            return RefreshableSession(
                method="sts",
                assume_role_kwargs=assume,
                sts_client_kwargs=endpoint,
                mfa_token_provider=args.mfa_command,
                **common,
            )
        if args.mfa_serial is not None:
            token: dict[str, Any] = {"SerialNumber": args.mfa_serial}
            if args.duration is not None:
                token["DurationSeconds"] = args.duration
            return RefreshableSession(
                method="session_token",
                session_token_kwargs=token,
                sts_client_kwargs=endpoint,
                mfa_token_provider=args.mfa_command,
                **common,
            )
        return RefreshableSession(
            mfa_token_provider=args.mfa_command,
            sts_client_kwargs=endpoint if role_profile else None,
            **common,
        )
    except (ValidationError, ConfigurationError) as exc:
        raise UsageError(in_cli_terms(str(exc))) from exc


_OPTION_NAMES = {
    "RoleArn": "--role-arn",
    "RoleSessionName": "--role-session-name",
    "DurationSeconds": "--duration",
    "ExternalId": "--external-id",
    "SerialNumber": "--mfa-serial",
    "endpoint_url": "--endpoint-url",
}
_OPTION_KEY = re.compile(r"\b\w+_kwargs\['(\w+)'\]")
_WORDS = (
    ("mfa_token_provider=", "--mfa-command"),
    ("mfa_token_provider", "--mfa-command"),
    ("profile_name", "--profile"),
    ("region_name", "--region"),
)


def in_cli_terms(message: str) -> str:
    """A library message with its parameter names replaced by this command's options."""
    message = _OPTION_KEY.sub(lambda m: _OPTION_NAMES.get(m.group(1), m.group(0)), message)
    for word, option in _WORDS:
        message = message.replace(word, option)
    return message


# -- commands -----------------------------------------------------------------------------------


async def whoami(args: argparse.Namespace) -> int:
    """``aiorefresh whoami``: account, ARN and user id (masked with ``--masked``)."""
    session = build_session(args)
    async with session:
        identity = await session.whoami()
    masked = args.masked
    fields = {
        "UserId": identity.masked_user_id if masked else identity.user_id,
        "Account": identity.masked_account_id if masked else identity.account_id,
        "Arn": identity.masked_arn if masked else identity.arn,
    }
    if args.json:
        _out(json.dumps(fields, indent=2))
    else:
        _out("\n".join(f"{name:<8} {value}" for name, value in fields.items()))
    return 0


async def run_exec(args: argparse.Namespace, quiet: _Quiet) -> int:
    """``aiorefresh exec``: the command's exit status, run with keys or with ``--serve``."""
    from ._serve import CredentialsEndpoint

    session = build_session(args)
    if not args.serve:
        async with session:
            env = await session.environ(base=os.environ)
        return await run_child(args.argv, env)
    async with session, CredentialsEndpoint(session) as endpoint:
        await session.refreshable_credentials()  # fail here, in one line, not in the child
        quiet.active = False  # background refresh failures are news while the child runs
        return await run_child(args.argv, endpoint.child_environ(os.environ))


# Settings of a profile that an SDK's chain reads before the container endpoint.
_CREDENTIAL_SETTINGS = (
    "aws_access_key_id",
    "role_arn",
    "credential_process",
    "sso_session",
    "sso_start_url",
    "web_identity_token_file",
)


def _warn_if_the_default_profile_wins() -> None:
    """The child's SDK reads the default profile before the endpoint: say so if it has
    credentials (the endpoint would then never be asked)."""
    from . import _aiobotocore

    try:
        profiles = _aiobotocore.new_session().full_config.get("profiles", {})
    except Exception:  # an unreadable config is reported when the session reads it
        return
    default = profiles.get("default") or {}
    found = [name for name in _CREDENTIAL_SETTINGS if name in default]
    if found:
        _fail(
            f"warning: the default profile sets {found[0]}; AWS SDKs in the command read it "
            "before the credentials endpoint (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE)"
        )


_FORWARDED = ("SIGTERM", "SIGHUP")
# The terminal sends these to the whole foreground process group, the child included.
_LEFT_TO_THE_CHILD = ("SIGINT", "SIGQUIT")


async def run_child(argv: Sequence[str], env: dict[str, str]) -> int:
    """Run ``argv`` with ``env``; its exit status (128 + N when killed by signal N).

    SIGTERM and SIGHUP are passed on to the child; Ctrl-C and Ctrl-\\ reach it from the
    terminal, so this process ignores them and waits for the child to decide.
    """
    try:
        process = await asyncio.create_subprocess_exec(*argv, env=env)
    except FileNotFoundError:
        raise CommandFailed(f"{argv[0]}: command not found", 127) from None
    except PermissionError:
        raise CommandFailed(f"{argv[0]}: permission denied", 126) from None
    except OSError as exc:
        raise CommandFailed(f"{argv[0]}: cannot run it ({exc.strerror})", 126) from None
    loop = asyncio.get_running_loop()
    installed: list[int] = []
    for name in (*_FORWARDED, *_LEFT_TO_THE_CHILD):
        number = getattr(signal, name, None)
        if number is None:
            continue
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            if name in _FORWARDED:
                loop.add_signal_handler(number, _forward, process, number)
            else:
                loop.add_signal_handler(number, _ignore)
            installed.append(number)
    try:
        code = await process.wait()
    finally:
        for number in installed:
            loop.remove_signal_handler(number)
    return code if code >= 0 else 128 - code


def _forward(process: asyncio.subprocess.Process, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(number)


def _ignore() -> None:
    pass


# -- output and errors --------------------------------------------------------------------------


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _fail(message: str) -> None:
    sys.stderr.write(f"{_PROG}: {message}\n")
    sys.stderr.flush()


class _Quiet(logging.Filter):
    """Drops the library's warnings while a failure would be reported as the command's error
    anyway (so it is not printed twice); errors always pass."""

    def __init__(self) -> None:
        super().__init__()
        self.active = True

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.active or record.levelno >= logging.ERROR


def _configure_logging(debug: bool) -> _Quiet:
    """The library's log on stderr, one line a record; warnings as one line too."""
    quiet = _Quiet()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{_PROG}: %(message)s"))
    if debug:
        quiet.active = False
        handler.setFormatter(logging.Formatter(f"{_PROG}: %(levelname)s %(name)s: %(message)s"))
    else:
        warnings.showwarning = _show_warning
    handler.addFilter(quiet)
    logger = logging.getLogger("aiorefresh")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.propagate = False
    return quiet


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    _fail(f"warning: {' '.join(str(message).split())}")


def describe(exc: BaseException) -> str:
    """One line for a failure: the library's message, or botocore's, never a secret."""
    from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        operation = getattr(exc, "operation_name", "the call")
        text = f"{operation} failed: {error.get('Code', 'Unknown')}: {error.get('Message', '')}"
    elif isinstance(exc, AiorefreshError):
        text = in_cli_terms(str(exc))
    elif isinstance(exc, BotoCoreError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, NoRegionError):
            text += " (pass --region or set AWS_REGION)"
            break
        cause = cause.__cause__
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aiorefresh`` command; returns the exit status."""
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        _fail(str(exc))
        return EXIT_USAGE
    debug = bool(args.debug)
    quiet = _configure_logging(debug)
    try:
        if args.command == "demo":
            from ._demo import run_demo

            return run_demo(calls=args.calls)
        if args.command == "whoami":
            return asyncio.run(whoami(args))
        if args.serve:
            _warn_if_the_default_profile_wins()
        return asyncio.run(run_exec(args, quiet))
    except UsageError as exc:
        _report(exc, debug)
        return EXIT_USAGE
    except CommandFailed as exc:
        _report(exc, debug)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        _report(exc, debug)
        return EXIT_FAILURE


def _report(exc: BaseException, debug: bool) -> None:
    if debug:
        traceback.print_exception(exc)
    _fail(describe(exc) if not isinstance(exc, (UsageError, CommandFailed)) else str(exc))
