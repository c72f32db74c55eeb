"""Wall time of each pipeline stage and of the whole pipeline, in one process (as `movierec pipeline`).

    python benchmarks/pipeline_stages.py --data-dir ../shared/data/ml-latest-small

Uses a fresh warehouse and SQLite store in a temporary folder; prints a table. The session
start (JVM) is timed separately. Settings come from MOVIEREC_* and flags as everywhere.
Beside the seconds it counts the Spark jobs and tasks each stage ran and the CPU seconds the
driver JVM and this Python process used: on a shared machine wall time grows with the other
jobs' load, these hardly do.  By default evaluate runs beside the other stages, as in
`movierec pipeline`, so stage seconds overlap and only the total CPU is known; --sequential
runs one stage at a time and gives each stage's CPU seconds.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402

from movierec import config  # noqa: E402
from movierec.stages.pipeline import BESIDE, STAGES, run_pipeline  # noqa: E402
from movierec.text import format_table  # noqa: E402


def jvm_pid(spark) -> int:
    return spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (field 3, the state, is [0])."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _descendants(pid: int) -> list[int]:
    """The live processes under `pid` (the JVM's Python workers: pyspark's daemon and its forks)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(int(_stat(int(entry.name))[1]), []).append(int(entry.name))
            except (OSError, IndexError, ValueError):  # gone meanwhile
                continue
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by process `pid` and everything under it: its own and
    its reaped children's, plus every live descendant's own and its reaped children's (utime,
    stime, cutime, cstime: fields 14-17 of /proc/<pid>/stat).  For the JVM that is its Python
    workers too (pyspark's daemon and the workers it forks), where the candidates are drawn."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = sum(int(x) for x in _stat(pid)[11:15])
    for child in _descendants(pid):
        try:
            total += sum(int(x) for x in _stat(child)[11:15])
        except OSError:  # exited meanwhile: its time is in its parent's cutime once reaped
            continue
    return total / ticks


def cpu_seconds(spark) -> float:
    """CPU time used so far by the Spark JVM with its Python workers, and by this Python process."""
    times = os.times()
    return tree_cpu_seconds(jvm_pid(spark)) + times.user + times.system


def jvm_peak_rss(spark) -> int:
    """The driver JVM's peak resident memory so far, in bytes (VmHWM of /proc/<pid>/status)."""
    status = Path(f"/proc/{jvm_pid(spark)}/status")
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # kB
    raise RuntimeError(f"{status} has no VmHWM")


def spark_work(spark, group: str) -> tuple[int, int]:
    """(jobs, tasks) Spark ran under a job group."""
    tracker = spark.sparkContext.statusTracker()
    jobs = tracker.getJobIdsForGroup(group)
    stages = [
        tracker.getStageInfo(s) for j in jobs for s in (tracker.getJobInfo(j).stageIds if tracker.getJobInfo(j) else [])
    ]
    return len(jobs), sum(s.numTasks for s in stages if s is not None)


@click.command(help=__doc__.splitlines()[0])
@click.option(
    "--sequential",
    is_flag=True,
    help="one stage at a time, evaluate included (as spark-submit per stage would), with "
    "each stage's CPU seconds; default: as `movierec pipeline`, evaluate beside the others",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="also write the figures to this JSON file")
@config.setting_options(*config.BATCH_SETTINGS)
def main(sequential: bool, json_path: str | None, settings: config.Settings) -> int:
    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="movierec-bench-"))
    settings = settings.replace(warehouse=str(tmp / "warehouse"), db_url=f"sqlite:///{tmp / 'store.db'}")

    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    started = time.perf_counter()
    from movierec.spark.session import build_session

    spark = build_session("benchmark", settings)
    session_seconds = time.perf_counter() - started
    cpu_before = cpu_seconds(spark)
    cpu = {}
    if sequential:
        reports = {}
        for stage in STAGES:
            stage_cpu = cpu_seconds(spark)
            reports.update(run_pipeline(spark, settings, "bench", [stage]))
            cpu[stage] = cpu_seconds(spark) - stage_cpu
    else:
        reports = run_pipeline(spark, settings, "bench", STAGES)
    total_cpu = cpu_seconds(spark) - cpu_before
    total = time.perf_counter() - started
    work = {stage: spark_work(spark, stage) for stage in STAGES}  # run_pipeline's job group per stage
    peak_rss = jvm_peak_rss(spark)
    spark.stop()

    mode = "one stage at a time" if sequential else f"{BESIDE} beside the other stages"
    print(
        f"\ndata: {settings.data_dir}   machine: {os.cpu_count()} cores, {platform.machine()}, "
        f"python {platform.python_version()}, spark {spark.version}, master {settings.spark_master}; {mode}"
    )
    print(f"load average before: {load_before}, after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = [("session", f"{session_seconds:.1f}", None, None, None)]
    rows += [
        (
            stage,
            f"{reports[stage]['seconds']:.1f}",
            f"{cpu[stage]:.1f}" if stage in cpu else None,
            work[stage][0],
            work[stage][1],
        )
        for stage in STAGES
    ]
    rows.append(
        (
            "total",
            f"{total:.1f}",
            f"{total_cpu:.1f}",
            sum(w[0] for w in work.values()),
            sum(w[1] for w in work.values()),
        )
    )
    print(format_table(("stage", "seconds", "cpu s", "jobs", "tasks"), rows, right=(1, 2, 3, 4)))
    print(f"driver JVM peak resident memory: {peak_rss / 2**30:.2f} GiB")
    if json_path:
        figures = {
            "data_dir": settings.data_dir,
            "mode": mode,
            "load_average_before": load_before,
            "session_seconds": session_seconds,
            "stages": {
                stage: {
                    "seconds": reports[stage]["seconds"],
                    "cpu_seconds": cpu.get(stage),
                    "jobs": work[stage][0],
                    "tasks": work[stage][1],
                }
                for stage in STAGES
            },
            "total_seconds": total,
            "total_cpu_seconds": total_cpu,
            "jvm_peak_rss_bytes": peak_rss,
        }
        Path(json_path).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main.main(standalone_mode=False))
