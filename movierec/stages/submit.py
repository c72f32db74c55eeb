"""One stage's spark-submit as the DAG runs it (dags/movie_recommender.py, SparkSubmitOperator):
the one definition the DAG, benchmarks/standalone.py and the tests' stage processes
(tests/processes.py) build their command from, so the three cannot drift apart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from movierec.config import Settings
from movierec.spark.session import launch_conf


def project_path(project: Path, text: str) -> Path:
    """A path setting (jobs_dir, jobs_zip): a relative one is inside the project."""
    return Path(text) if Path(text).is_absolute() else project / text


@dataclass(frozen=True)
class StageSubmit:
    """What spark-submit gets for one stage: its script, the movierec zip for the executors
    (None: ship nothing), the driver's memory, the launch-time JVM options and the script's
    arguments (the DAG's are Jinja templates, rendered by Airflow)."""

    stage: str
    application: str
    py_files: str | None
    driver_memory: str
    conf: Mapping[str, str]
    application_args: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"movierec-{self.stage}"

    def operator_kwargs(self) -> dict[str, Any]:
        """SparkSubmitOperator's arguments for it (the DAG adds the task id, connection, time-out)."""
        return {
            "application": self.application,
            "py_files": self.py_files,
            "name": self.name,
            "driver_memory": self.driver_memory,
            "conf": dict(self.conf),
            "application_args": list(self.application_args),
        }

    def command(self, spark_submit: str | Path, master: str, executor_memory: str | None = None) -> list[str]:
        """The spark-submit command line SparkSubmitOperator's hook builds from `operator_kwargs` on
        `master`, in its order (tests/dags/test_dag_structure.py compares the two)."""
        command = [str(spark_submit), "--master", master]
        for key, value in self.conf.items():
            command += ["--conf", f"{key}={value}"]
        if self.py_files:
            command += ["--py-files", self.py_files]
        if executor_memory:
            command += ["--executor-memory", executor_memory]
        command += ["--driver-memory", self.driver_memory, "--name", self.name]
        return [*command, self.application, *self.application_args]


def stage_submit(
    stage: str, settings: Settings, jobs_dir: Path, jobs_zip: str | Path | None, args: Sequence[str]
) -> StageSubmit:
    """The spark-submit of jobs_dir/<stage>.py with `args`, as the DAG runs it."""
    return StageSubmit(
        stage=stage,
        application=str(jobs_dir / f"{stage}.py"),
        py_files=None if jobs_zip is None else str(jobs_zip),
        driver_memory=settings.driver_memory,
        conf=launch_conf(),
        application_args=tuple(args),
    )
