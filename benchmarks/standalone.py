"""The pipeline's stage scripts on a Spark standalone cluster on 127.0.0.1, one spark-submit each.

    python benchmarks/standalone.py --data-dir DIR [--workers 2] [--worker-memory 8g] [--run-id ID]

Starts a master and `--workers` workers of one core each from the pip-installed pyspark
(`spark-class org.apache.spark.deploy.master.Master` / `...worker.Worker`: the pip package
ships bin/spark-class, not sbin/start-*.sh), runs ingest ... publish as the DAG does (each
`spark-submit --master spark://... --py-files <jobs zip> jobs/<stage>.py --run-id ID`), prints
each stage's wall seconds and the run's metrics table, and stops the cluster again.  Settings
come from MOVIEREC_* as everywhere; the jobs zip is built first.  tests/dags/test_dag_run.py
starts its cluster with `standalone_cluster` from here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from tests.ports import free_port  # noqa: E402  (the same helper as the tests' servers)


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)


def stop(proc: subprocess.Popen) -> None:
    """Stop a daemon started here (and the executors it forked), by its own process group."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@contextlib.contextmanager
def standalone_cluster(root: Path, workers: int = 2, memory: str = "1536m") -> Iterator[tuple[str, str]]:
    """A master and `workers` workers (1 core and `memory` each) on 127.0.0.1, logging under
    `root`; yields (master URL, master UI URL) once every worker has registered, and stops
    them all on the way out, also after an error.  Raises RuntimeError if they do not come up."""
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_DAEMON_MEMORY": "256m", "SPARK_LOG_DIR": str(root)}
    port, ui = free_port(), free_port()
    master = f"spark://127.0.0.1:{port}"
    daemons = {"master": ["org.apache.spark.deploy.master.Master", "--port", str(port), "--webui-port", str(ui)]}
    for i in range(workers):
        daemons[f"worker{i}"] = [
            "org.apache.spark.deploy.worker.Worker", master, "--cores", "1", "--memory", memory,
            "--webui-port", str(free_port()), "--work-dir", str(root / f"work{i}"),
        ]  # fmt: skip
    procs: list[subprocess.Popen] = []
    try:
        for name, args in daemons.items():
            with open(root / f"{name}.log", "w") as log:
                procs.append(
                    subprocess.Popen(
                        [str(BIN / "spark-class"), *args, "--host", "127.0.0.1"],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(OSError):
                if get_json(f"http://127.0.0.1:{ui}/json/").get("aliveworkers", 0) >= workers:
                    break
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                logs = "".join((root / f"{name}.log").read_text()[-2000:] for name in daemons)
                raise RuntimeError(f"Spark master/workers did not come up:\n{logs}")
            time.sleep(1)
        yield master, f"http://127.0.0.1:{ui}"
    finally:
        for proc in reversed(procs):
            stop(proc)


MEMORY_UNITS = {"m": 1, "g": 1024}


def memory_mib(text: str) -> int:
    """`512m`, `1.5g`, `8G`... as MiB; ValueError for anything else."""
    unit = MEMORY_UNITS.get(text[-1:].lower())
    if unit is None:
        raise ValueError(f"{text!r}: give a size in m or g, e.g. 1536m or 8g")
    mib = int(float(text[:-1]) * unit)
    if mib < 512:
        raise ValueError(f"{text!r}: a worker needs at least 512m")
    return mib


def check_memory(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        memory_mib(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    return value


def executor_memory(worker_memory: str) -> str:
    """The executor's heap: the worker's memory less a tenth for the JVM's overhead."""
    return f"{memory_mib(worker_memory) * 9 // 10}m"


def submit_command(stage: str, master: str, zip_path: Path, settings, worker_memory: str, run_id: str) -> list[str]:
    """The DAG's spark-submit of one stage (movierec.stages.submit) on `master`, with the executor's memory."""
    from movierec.stages.submit import project_path, stage_submit

    submit = stage_submit(stage, settings, project_path(ROOT, settings.jobs_dir), zip_path, ["--run-id", run_id])
    return submit.command(BIN / "spark-submit", master, executor_memory(worker_memory))


@click.command(help=__doc__.splitlines()[0])
@click.option("--data-dir", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--worker-memory",
    default="8g",
    show_default=True,
    callback=check_memory,
    help="each worker's memory (m or g), also its executor's",
)
@click.option("--run-id", default="standalone-1", show_default=True)
def main(data_dir: str, workers: int, worker_memory: str, run_id: str) -> int:
    from movierec import config
    from movierec.spark.package import build_zip
    from movierec.stages.pipeline import STAGES

    settings = config.from_env()
    zip_path = build_zip(Path(tempfile.mkdtemp(prefix="movierec-zip-")) / "movierec.zip")
    env = {
        **os.environ,
        "MOVIEREC_DATA_DIR": str(Path(data_dir).resolve()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,  # the executors' Python: this one, with the project's packages
    }
    print(f"machine: {os.cpu_count()} cores; load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="movierec-standalone-") as tmp:
        with standalone_cluster(Path(tmp), workers, worker_memory) as (master, _):
            print(f"cluster {master}: {workers} workers of 1 core and {worker_memory}", flush=True)
            for stage in STAGES:
                started = time.perf_counter()
                command = submit_command(stage, master, zip_path, settings, worker_memory, run_id)
                subprocess.run(command, check=True, cwd=ROOT, env=env)
                seconds[stage] = time.perf_counter() - started
                print(f"stage {stage}: {seconds[stage]:.0f} s", flush=True)
    print("| " + " | ".join(["total s", *STAGES]) + " |")
    print("|---" * (1 + len(STAGES)) + "|")
    print("| " + " | ".join(f"{s:.0f}" for s in [sum(seconds.values()), *seconds.values()]) + " |")
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    main()
