"""Run every benchmark in this folder with this interpreter; each prints a table and writes
JSON under ``benchmarks/results/``. ``--quick`` is passed through."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
SCRIPTS = (
    "bench_credentials.py",
    "bench_pool.py",
    "bench_iot.py",
    "bench_fanout.py",
    "bench_faults.py",
)


def main() -> int:
    status = 0
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        status |= subprocess.call([sys.executable, str(HERE / script), *sys.argv[1:]])
    return status


if __name__ == "__main__":
    raise SystemExit(main())
