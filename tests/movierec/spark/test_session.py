"""The one session builder: what it applies (checked on the running session and its JVM, not
on the builder's own constants), and that a process never gets a second session."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from movierec.spark.session import _checkpoint_dir, build_session, launch_conf, launched_by_spark_submit

pytestmark = pytest.mark.spark

JIT_OPTIONS = {
    "Tier3InvocationThreshold",
    "Tier3MinInvocationThreshold",
    "Tier3CompileThreshold",
    "Tier4InvocationThreshold",
    "Tier4MinInvocationThreshold",
    "Tier4CompileThreshold",
    "Tier4BackEdgeThreshold",
}


def test_the_session_carries_the_settings(spark, settings):
    # the `settings` fixture: local[2], 4 shuffle partitions, 4g of driver memory
    assert (settings.spark_master, settings.shuffle_partitions, settings.driver_memory) == ("local[2]", 4, "4g")
    conf = spark.sparkContext.getConf()
    assert spark.sparkContext.master == "local[2]"
    assert spark.conf.get("spark.sql.shuffle.partitions") == "4"
    assert conf.get("spark.default.parallelism") == "4"
    assert spark.sparkContext.defaultParallelism == 4
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.adaptive.enabled") == "true"
    assert conf.get("spark.ui.showConsoleProgress") == "false"
    assert conf.get("spark.driver.memory") == "4g"
    assert spark.sparkContext.appName == "movierec-tests"


def test_shuffles_use_the_configured_partitions(spark):
    # adaptive execution may coalesce them; without it a shuffle has exactly this many
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    try:
        grouped = spark.range(100).selectExpr("id % 7 as k").groupBy("k").count()
        assert grouped.rdd.getNumPartitions() == 4
    finally:
        spark.conf.set("spark.sql.adaptive.enabled", "true")


def test_the_driver_jvm_runs_with_the_launch_options(spark):
    """The options reach the JVM itself: its input arguments and its garbage collectors."""
    management = spark.sparkContext._jvm.java.lang.management.ManagementFactory
    arguments = list(management.getRuntimeMXBean().getInputArguments())
    assert "-Xss16m" in arguments  # deep ALS lineage needs a big thread stack
    assert "-XX:+UseParallelGC" in arguments
    assert "-Xmx4g" in arguments  # spark.driver.memory
    collectors = {bean.getName() for bean in management.getGarbageCollectorMXBeans()}
    assert collectors == {"PS Scavenge", "PS MarkSweep"}  # the parallel collector, not G1
    tiers = {m.group(1) for a in arguments if (m := re.fullmatch(r"-XX:(Tier\w+)=\d+", a))}
    assert tiers == JIT_OPTIONS


def test_launch_conf_gives_driver_and_executors_the_same_jvm_options(spark):
    conf = launch_conf()
    assert set(conf) == {"spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions"}
    for value in conf.values():
        tokens = value.split()
        assert tokens[:2] == ["-Xss16m", "-XX:+UseParallelGC"]
        assert {re.fullmatch(r"-XX:(Tier\w+)=\d+", t).group(1) for t in tokens[2:]} == JIT_OPTIONS
        assert not any("G1" in t for t in tokens)
    # Spark puts its own defaults in front; ours follow
    executor = spark.sparkContext.getConf().get("spark.executor.extraJavaOptions").split()
    assert {"-Xss16m", "-XX:+UseParallelGC"} <= set(executor)


def test_a_checkpoint_directory_is_set(spark):
    folder = spark.sparkContext.getCheckpointDir()
    assert folder and Path(re.sub(r"^file:", "", folder)).is_dir()


def test_no_second_session_in_a_process(spark, settings):
    other = build_session("another", settings.replace(shuffle_partitions=7, spark_master="local[1]"))
    assert other is spark
    assert spark.conf.get("spark.sql.shuffle.partitions") == "4"
    assert spark.sparkContext.master == "local[2]"


def test_spark_submit_is_recognised_by_its_gateway_port(monkeypatch):
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    assert launched_by_spark_submit() is False
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "40123")
    assert launched_by_spark_submit() is True


def test_checkpoints_on_a_cluster_live_beside_the_runs(settings, tmp_path, monkeypatch):
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    cluster = settings.replace(spark_master="spark://master:7077", warehouse=str(tmp_path / "wh"))
    assert _checkpoint_dir(cluster) == f"file://{tmp_path}/wh/checkpoints"
    remote = settings.replace(spark_master="spark://master:7077", warehouse="s3a://bucket/wh")
    assert _checkpoint_dir(remote) == "s3a://bucket/wh/checkpoints"
    # local, but started by spark-submit (which may run on a cluster): the warehouse too
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "40123")
    assert _checkpoint_dir(settings.replace(warehouse="s3a://bucket/wh")) == "s3a://bucket/wh/checkpoints"
    # local, started here: a temporary folder of its own
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT")
    local = Path(_checkpoint_dir(settings))
    assert local.is_dir() and local.name.startswith("movierec-checkpoints-")
