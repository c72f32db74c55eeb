"""benchmarks/standalone.py without a cluster: its spark-submit line is the DAG's, and a bad
--worker-memory is a usage error before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmarks import standalone
from movierec.config import Settings
from movierec.spark.session import launch_conf


@pytest.mark.parametrize(("text", "mib"), [("512m", 512), ("1536M", 1536), ("1.5g", 1536), ("8G", 8192)])
def test_worker_memory_in_mib(text, mib):
    assert standalone.memory_mib(text) == mib


@pytest.mark.parametrize("text", ["8x", "8", "", "100m", "g"])
def test_a_bad_worker_memory_is_a_usage_error(text, tmp_path):
    result = CliRunner().invoke(standalone.main, ["--data-dir", str(tmp_path), "--worker-memory", text])
    assert result.exit_code == 2
    assert "--worker-memory" in result.output


def test_each_stage_is_submitted_with_the_launch_options_and_the_executors_share_of_the_worker():
    settings = Settings(jobs_dir="jobs", driver_memory="3g")
    command = standalone.submit_command(
        "score", "spark://127.0.0.1:7077", Path("/z/movierec.zip"), settings, "2g", "r-1"
    )
    pairs = {command[i + 1] for i, arg in enumerate(command) if arg == "--conf"}
    assert pairs == {f"{key}={value}" for key, value in launch_conf().items()}
    assert command[command.index("--executor-memory") + 1] == "1843m"  # 2048 less a tenth
    assert command[command.index("--driver-memory") + 1] == "3g"
    assert command[-3:] == [str(standalone.ROOT / "jobs" / "score.py"), "--run-id", "r-1"]
