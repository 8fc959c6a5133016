"""Time `python -m longwriter.train --cfg job` (target: under 2 s) against bare `python -c pass`.

Run: .venv/bin/python benchmarks/cli_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _median_seconds(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    baseline = _median_seconds([sys.executable, "-c", "pass"], args.repeats)
    cfg_job = _median_seconds([sys.executable, "-m", "longwriter.train", "--cfg", "job"], args.repeats)
    print(f"python -c pass:                      {baseline:.3f} s (median of {args.repeats})")
    print(f"python -m longwriter.train --cfg job: {cfg_job:.3f} s (median of {args.repeats})")
    print(f"ratio vs bare interpreter: {cfg_job / baseline:.1f}x; target < 2 s: {'OK' if cfg_job < 2 else 'MISSED'}")


if __name__ == "__main__":
    main()
