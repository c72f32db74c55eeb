"""Wall time of each pipeline stage and of the whole pipeline, in one process (as `movierec pipeline`).

    python benchmarks/pipeline_stages.py --data-dir ../shared/data/ml-latest-small

Uses a fresh warehouse and SQLite store in a temporary folder; prints a table. The session
start (JVM) is timed separately. Settings come from MOVIEREC_* and flags as everywhere.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs import config  # noqa: E402
from jobs.pipeline import STAGES, run_pipeline  # noqa: E402


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    config.add_flags(parser)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="movierec-bench-"))
    settings = config.from_args(args).replace(warehouse=str(tmp / "warehouse"), db_url=f"sqlite:///{tmp / 'store.db'}")

    started = time.perf_counter()
    from jobs.session import build_session

    spark = build_session("benchmark", settings)
    session_seconds = time.perf_counter() - started
    reports = run_pipeline(spark, settings, "bench", STAGES)
    total = time.perf_counter() - started
    spark.stop()

    print(f"\ndata: {settings.data_dir}   machine: {os.cpu_count()} cores, {platform.machine()}, "
          f"python {platform.python_version()}, spark {spark.version}, master {settings.spark_master}")
    print(f"{'stage':<12} {'seconds':>8}")
    print(f"{'session':<12} {session_seconds:8.1f}")
    for stage in STAGES:
        print(f"{stage:<12} {reports[stage]['seconds']:8.1f}")
    print(f"{'total':<12} {total:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
