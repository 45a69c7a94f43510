#!/usr/bin/env bash
# aioboto3's own test suite (from its sdist) against aiorefresh.RefreshableSession, on line A.
# Usage: tools/run_aioboto3_suite.sh [pytest args]   (AIOREFRESH_SUITE_BASELINE=1: plain aioboto3)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-$here/../.venv-a/bin/python}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
version="$("$python" -c 'import aioboto3; print(aioboto3.__version__)')"
"$python" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
    "aioboto3==$version" -d "$work" 2>&1 | grep -v "^WARNING: Location" || true
tar xzf "$work"/aioboto3-*.tar.gz -C "$work"
# what aioboto3's tests import beyond our dev extra, beside the venv rather than in it
"$python" -m pip install --disable-pip-version-check -q --target "$work/extra" dill "chalice<2" \
    2>&1 | grep -v "^WARNING: Location" || true
# chalice pulls its own botocore: keep the venv's (aiobotocore pins it)
rm -rf "$work"/extra/{botocore,boto3,s3transfer,jmespath,urllib3,dateutil,six.py,typing_extensions.py}*
export PYTHONPATH="$here/aioboto3_suite:$work/extra${PYTHONPATH:+:$PYTHONPATH}"
cd "$work"
# fake keys, no config files, no instance metadata: nothing reaches AWS
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=eu-central-1 \
    AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_SESSION_TOKEN
# the plugin swaps aioboto3.Session for RefreshableSession before aioboto3's conftest imports it
"$python" -m pytest -q -p no:cacheprovider -p aiorefresh_suite -o asyncio_mode=auto \
    -W "default::ResourceWarning" "aioboto3-$version/tests" "$@"
