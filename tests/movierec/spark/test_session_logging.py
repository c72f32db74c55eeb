"""The session keeps the pipeline's log readable: Spark's warning about an unpartitioned window
(the popular list's global rank, on purpose) is not printed for every query."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.spark


def test_unpartitioned_window_warning_is_turned_down(spark):
    from movierec.spark.session import QUIET_LOGGERS

    jvm = spark.sparkContext._jvm
    logger = jvm.org.apache.logging.log4j.LogManager.getLogger("org.apache.spark.sql.execution.window.WindowExec")
    assert "org.apache.spark.sql.execution.window" in QUIET_LOGGERS
    assert logger.getLevel().toString() == "ERROR"
    root = jvm.org.apache.logging.log4j.LogManager.getRootLogger()
    assert root.getLevel().toString() == "WARN"  # everything else still warns
