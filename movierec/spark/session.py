"""The one SparkSession builder: every stage, the pipeline, the tests and the live fallback use it."""

from __future__ import annotations

import logging
import os
import sys
import tempfile

from movierec.config import Settings

log = logging.getLogger(__name__)

# JVM options of the driver and executors:
# - a deep ALS lineage overflows the default thread stack without checkpoints;
# - the parallel collector, not G1, because these are batch jobs: on ml-latest-small G1's
#   concurrent work cost about 10% of the pipeline's CPU (178 -> 161 CPU s on 2 cores);
# - later JIT compilation.  Spark generates and loads new classes for every query, and a
#   pipeline run is a few hundred short queries: the JIT compiler threads used a third of
#   the run's CPU (C2 41 s, C1 9 s of 138), mostly on code that ran too briefly to repay it.
#   Raising the tiered thresholds about eightfold compiles only code that stays hot:
#   138 -> 127 CPU s, and 79 -> 72 s for the whole pipeline.  Sixteenfold was slower again
#   (the tasks ran interpreted too long).  Code that runs for long still gets compiled: on
#   ten times the data (1M generated ratings) the run was still a little faster, 259 -> 254 s.
#   (benchmarks/pipeline_stages.py, local[2]; README "Measured".)
JIT_THRESHOLDS = (
    "-XX:Tier3InvocationThreshold=1000 -XX:Tier3MinInvocationThreshold=500 -XX:Tier3CompileThreshold=6000 "
    "-XX:Tier4InvocationThreshold=40000 -XX:Tier4MinInvocationThreshold=6000 -XX:Tier4CompileThreshold=80000 "
    "-XX:Tier4BackEdgeThreshold=300000"
)
JVM_OPTIONS = f"-Xss16m -XX:+UseParallelGC {JIT_THRESHOLDS}"

# Loggers turned down to ERROR.  The popular list ranks every movie in one window without a
# partition on purpose (a global rank of a table the size of the catalogue), and Spark warns
# about that on every query: 55 of the 123 lines of a pipeline's log were that warning.
QUIET_LOGGERS = ("org.apache.spark.sql.execution.window",)


def launch_conf() -> dict[str, str]:
    """Settings that must be given when the JVMs start (spark-submit --conf), not later."""
    return {"spark.driver.extraJavaOptions": JVM_OPTIONS, "spark.executor.extraJavaOptions": JVM_OPTIONS}


def build_session(app_name: str, settings: Settings):
    """Get or create the process's SparkSession, tuned for this project.

    Under spark-submit the master comes from the command line; `settings.spark_master`
    is used only when nothing set it before (pipeline, tests, live fallback).
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if settings.spark_master.startswith("local"):
        # bind the driver to loopback: no network is needed to run locally
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    if _local_master(settings):
        # the Python workers (the candidates are drawn in them: movierec.ranking.candidates) run
        # on this machine: this interpreter, with the project's packages, unless told otherwise
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.appName(f"movierec-{app_name}")
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        .config("spark.default.parallelism", str(max(2, settings.shuffle_partitions)))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.adaptive.enabled", "true")
    )
    for key, value in launch_conf().items():
        builder = builder.config(key, value)
    if not launched_by_spark_submit():
        builder = builder.master(settings.spark_master).config("spark.driver.memory", settings.driver_memory)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    quiet_loggers(spark)
    if not spark.sparkContext.getCheckpointDir():
        spark.sparkContext.setCheckpointDir(_checkpoint_dir(settings))
    log.info("spark %s session %s on %s", spark.version, app_name, spark.sparkContext.master)
    return spark


def quiet_loggers(spark, names: tuple[str, ...] = QUIET_LOGGERS) -> None:
    """Set the JVM loggers `names` to ERROR (log4j 2, which Spark 4 uses)."""
    jvm = spark.sparkContext._jvm
    for name in names:
        jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(name, jvm.org.apache.logging.log4j.Level.ERROR)


def _local_master(settings: Settings) -> bool:
    """Whether this session's executors run in this process: a local master, from spark-submit's
    --master when it launched us (its JVM holds the conf already), else from the settings."""
    if launched_by_spark_submit():
        from pyspark import SparkConf

        return SparkConf().get("spark.master", "local").startswith("local")
    return settings.spark_master.startswith("local")


def launched_by_spark_submit() -> bool:
    """spark-submit starts the JVM first and hands Python its gateway port."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _checkpoint_dir(settings: Settings) -> str:
    """ALS needs a checkpoint directory or deep lineage ends in StackOverflowError.

    Local masters use a temporary folder; a cluster needs a folder every executor sees,
    so there it lives beside the runs in the warehouse.
    """
    from movierec.spark.paths import RunPaths

    if settings.spark_master.startswith("local") and not launched_by_spark_submit():
        return tempfile.mkdtemp(prefix="movierec-checkpoints-")
    return RunPaths(settings.warehouse, "x").warehouse + "/checkpoints"
