"""A stage as the DAG runs it, one `spark-submit jobs/<stage>.py` process, for fault tests that kill it.

    with StageProcess("score", run_id, settings, jobs_zip, log_path) as stage:
        wait_until(lambda: output_started(), stage, "score began writing")
        stage.kill()          # SIGKILL to the whole session: spark-submit, the JVM, the driver's Python

The command line is the DAG's (dags/movie_recommender.py: SparkSubmitOperator with `launch_conf()`,
the movierec zip as --py-files, the stage arguments) and the settings travel as `MOVIEREC_*`
variables, as they do from an Airflow worker's environment.  The process starts a session of its
own, so a kill reaches every process under it (PySpark's worker daemon moves to a process group of
its own, not to another session).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from movierec import config
from movierec.config import Settings
from movierec.stages.submit import stage_submit

PROJECT = Path(__file__).resolve().parents[1]
SPARK_SUBMIT = Path(sys.executable).with_name("spark-submit")


# The small models of the tests' pipeline processes (the DAG's runs, `movierec pipeline`): one
# set, given as MOVIEREC_* (tests/dags/dag_helpers.small_settings_env) or as flags (`as_flags`).
SMALL_PIPELINE = {
    "shuffle_partitions": 2,
    "driver_memory": "2g",  # 1g ran out of heap in evaluate
    "als_rank": 8,
    "als_iterations": 5,
    "rf_trees": 8,
    "rf_depth": 4,
    "als_candidates": 30,
    "content_candidates": 20,
    "top_k": 10,
}


def as_flags(values: dict[str, object]) -> list[str]:
    """Settings as the CLI's flags: --als-rank 8 ..."""
    return [arg for name, value in values.items() for arg in (f"--{name.replace('_', '-')}", str(value))]


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child process that runs movierec: no MOVIEREC_* (nor a
    PySpark gateway of this process) leaking in, Spark on loopback, this interpreter for Spark's
    Python workers; then `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOVIEREC_", "PYSPARK_GATEWAY", "PYSPARK_SUBMIT"))}
    env.update(SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable)
    env.update(extra)
    return env


def stage_env(settings: Settings) -> dict[str, str]:
    """`child_env` with every batch setting as its `MOVIEREC_*` variable."""
    return child_env(PYSPARK_DRIVER_PYTHON=sys.executable, **config.to_env(settings, config.BATCH_SETTINGS))


def stage_command(stage: str, run_id: str, settings: Settings, jobs_zip: Path) -> list[str]:
    """spark-submit's arguments as SparkSubmitOperator builds them for the DAG's task `stage`."""
    submit = stage_submit(stage, settings, PROJECT / "jobs", jobs_zip, ["--run-id", run_id])
    return submit.command(SPARK_SUBMIT, settings.spark_master)


def session_pids(session: int) -> list[int]:
    """The live processes of a session (zombies excluded), from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # fields after the command's closing parenthesis: state ppid pgrp session ...
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


class StageProcess:
    """One stage run by spark-submit in a session of its own; its output goes to `log_path`."""

    def __init__(self, stage: str, run_id: str, settings: Settings, jobs_zip: Path, log_path: Path):
        self.stage, self.log_path = stage, log_path
        self.command = stage_command(stage, run_id, settings, jobs_zip)
        self.env = stage_env(settings)
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> StageProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=PROJECT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        """Wait for the stage to end by itself; its exit code."""
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def kill(self, grace: float = 15.0) -> list[int]:
        """SIGKILL the stage's process group (spark-submit, the JVM, the driver's Python), reap it, and
        wait for the rest of its session to go; returns the pids still alive after `grace` seconds
        (killed then too, so nothing outlives the test).  PySpark's worker daemon sits in a process
        group of its own and is expected to exit by itself once its JVM is gone."""
        assert self.process is not None
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        deadline = time.monotonic() + grace
        while session_pids(self.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = session_pids(self.pid)
        for pid in survivors:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return survivors


def wait_until(condition: Callable[[], object], stage: StageProcess, what: str, timeout: float = 300.0) -> object:
    """Poll `condition` every few milliseconds until it is truthy; fail if the stage ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if not stage.running():
            raise AssertionError(f"{stage.stage} ended (exit {stage.process.returncode}) before {what}:\n{stage.log()}")
        time.sleep(0.005)
    raise AssertionError(f"{stage.stage}: no sign in {timeout:.0f} s that {what}:\n{stage.log()[-5000:]}")
