"""`movierec pipeline`: every stage in order, in one process and one SparkSession.

The Airflow DAG runs the same stage functions, one spark-submit each; this is the local way.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from datetime import UTC, datetime

from movierec.config import Settings
from movierec.stages.runner import run_stage

log = logging.getLogger(__name__)

STAGES = ("ingest", "featurize", "train_als", "train_rf", "score", "evaluate", "publish")

# The stages each stage reads the outputs of: the Airflow DAG's edges, and what lets
# `movierec pipeline` run evaluate (which refits everything from ingest's output alone)
# beside featurize → train_als → train_rf → score.  publish needs evaluate's metrics for its
# quality gate.
UPSTREAM = {
    "ingest": (),
    "featurize": ("ingest",),
    "train_als": ("featurize",),
    "train_rf": ("featurize",),
    "score": ("train_als", "train_rf"),
    "evaluate": ("ingest",),
    "publish": ("score", "evaluate"),
}
BESIDE = "evaluate"  # the stage `run_pipeline` runs in a second thread


def new_run_id(prefix: str = "local") -> str:
    return f"{prefix}-{datetime.now(UTC):%Y%m%dT%H%M%S}"


def stage_function(stage: str):
    return getattr(importlib.import_module(f"movierec.stages.{stage}"), stage)


class _Progress:
    """The numbered progress lines of one pipeline run (printed from either thread)."""

    def __init__(self, stages):
        self.stages = list(stages)

    def run(self, stage: str, spark, settings: Settings, run_id: str) -> dict:
        number = f"[{self.stages.index(stage) + 1}/{len(self.stages)}]"
        print(f"{number} {stage} ...", flush=True)
        spark.sparkContext.setJobGroup(stage, f"movierec {stage} {run_id}")
        report = run_stage(stage, stage_function(stage), spark, settings, run_id)
        print(f"{number} {stage} done in {report['seconds']:.1f} s", flush=True)
        return report


def run_pipeline(
    spark, settings: Settings, run_id: str, stages: tuple[str, ...] | list[str] = STAGES, beside: bool = True
) -> dict:
    """Run the given stages for one run id on an existing session; returns each stage's report.

    Stages run in the given order, except that with `beside` (and ingest's output already
    there or ingest among the stages) evaluate runs in a second thread from the moment
    ingest is done, and publish waits for it: on 2 cores one stage alone left about a
    sixth of the CPU idle (Spark plans each query on one thread).  Spark jobs of each stage
    run in a job group named after it.  If evaluate fails, the run stops after the stage in
    progress; if another stage fails, evaluate's running jobs are cancelled and its thread
    awaited.  Either way the error is raised and publish does not run.
    """
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGES)}")
    progress = _Progress(stages)
    # every stage's module imported here, in this one thread, before evaluate's thread starts: two
    # threads importing pyspark.ml at once can find it half-initialised ("cannot import name
    # 'JavaParams' from partially initialized module"), as evaluate beside featurize once did
    for stage in stages:
        stage_function(stage)
    reports: dict = {}
    started = time.perf_counter()
    chain = [s for s in stages if s not in (BESIDE, "ingest", "publish")]  # what evaluate can run beside
    side = _Beside(spark, settings, run_id, progress) if beside and BESIDE in stages and chain else None
    side_ready = lambda: all(up not in stages or up in reports for up in UPSTREAM[BESIDE])
    try:
        for stage in stages:
            if side and not side.started and side_ready():
                side.start()
            if side and stage == BESIDE:
                continue
            if side and stage == "publish":
                reports.update(side.result())
            if side:
                side.raise_failure()
            reports[stage] = progress.run(stage, spark, settings, run_id)
        if side:
            reports.update(side.result())
    except BaseException:
        if side:
            side.cancel()
        raise
    print(f"run {run_id}: {len(stages)} stages in {time.perf_counter() - started:.1f} s", flush=True)
    return {stage: reports[stage] for stage in stages}


class _Beside:
    """evaluate in a thread of its own, on the same session."""

    def __init__(self, spark, settings: Settings, run_id: str, progress: _Progress):
        self.spark, self.settings, self.run_id, self.progress = spark, settings, run_id, progress
        self.started = False
        self.report: dict | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"movierec-{BESIDE}", daemon=True)

    def _run(self) -> None:
        try:
            self.report = self.progress.run(BESIDE, self.spark, self.settings, self.run_id)
        except BaseException as err:  # handed to the main thread
            self.error = err

    def start(self) -> None:
        self.started = True
        self.thread.start()

    def raise_failure(self) -> None:
        if self.error is not None:
            raise self.error

    def result(self) -> dict:
        if not self.started:
            self.start()
        self.thread.join()
        self.raise_failure()
        return {BESIDE: self.report}

    def cancel(self) -> None:
        """Cancel its running Spark jobs and wait for the thread (it fails, or ends its last job)."""
        if self.started and self.thread.is_alive():
            self.spark.sparkContext.cancelJobGroup(BESIDE)
            self.thread.join()


def run_stages(settings: Settings, run_id: str, stages=STAGES) -> dict:
    from movierec.spark.session import build_session

    spark = build_session("pipeline", settings)
    try:
        return run_pipeline(spark, settings, run_id, stages)
    finally:
        spark.stop()
