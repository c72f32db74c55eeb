"""The score stage killed with SIGKILL while it writes its largest output, then retried as Airflow
retries a task (the same spark-submit again): the retry's output equals an uninterrupted run's row
for row, and in between no later stage reads what the killed attempt left.

The stage runs as the DAG runs it (tests/processes.py: spark-submit of jobs/score.py with the DAG's
launch options and the movierec zip), in a session of its own, and the kill goes to its whole
process group (spark-submit, the JVM, the driver's Python), as an out-of-memory kill or a lost
worker does.  The uninterrupted run is the session's pipeline run, with the same settings: its
score output is the expected answer, and the killed run starts from a copy of its inputs."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from movierec.spark.paths import RunPaths, local_path
from movierec.spark.warehouse import SUCCESS, IncompleteOutput, read_table
from movierec.stages.publish import publish
from movierec.stages.runner import run_stage
from movierec.store import runs as store
from tests.processes import StageProcess, wait_until

pytestmark = [pytest.mark.spark, pytest.mark.slow]

RUN_ID = "kill-retry-1"
INPUTS = ("ingest", "featurize", "train_als", "train_rf")  # what score reads, copied from the pipeline run
RECOMMENDATION_COLUMNS = ("user_id", "rank", "movie_id", "score", "cf_score", "cb_score")


def rows(spark, path: str, columns) -> Counter:
    """A table's rows as a multiset, so a duplicate row shows."""
    return Counter(tuple(r) for r in read_table(spark, path).select(*columns).collect())


def leftovers(folder: Path) -> list[str]:
    """What a committed output must not hold: Spark's `_temporary` working folders."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("_temporary"))


def test_score_killed_mid_write_is_refused_downstream_and_its_retry_equals_an_uninterrupted_run(
    spark, pipeline_run, jobs_zip, tmp_path
):
    reference_settings, reference_id = pipeline_run
    reference = RunPaths(reference_settings.warehouse, reference_id)
    warehouse = tmp_path / "warehouse"
    for stage in INPUTS:
        shutil.copytree(local_path(reference.stage(stage)), warehouse / "runs" / RUN_ID / stage)
    # the model settings of the uninterrupted run, a smaller driver for the subprocesses
    settings = reference_settings.replace(
        warehouse=str(warehouse), db_url=f"sqlite:///{tmp_path / 'store.db'}", driver_memory="1g"
    )
    paths = RunPaths(settings.warehouse, RUN_ID)
    recommendations = local_path(paths.recommendations)
    score_folder = local_path(paths.stage("score"))

    # 1. kill the stage once Spark is writing the recommendations (its largest output)
    with StageProcess("score", RUN_ID, settings, jobs_zip, tmp_path / "score-killed.log") as stage:
        wait_until(lambda: (recommendations / "_temporary").exists(), stage, "it began writing recommendations")
        survivors = stage.kill()
    assert survivors == [], f"processes of the killed stage outlived it: {survivors}"
    assert recommendations.exists() and not (recommendations / SUCCESS).exists()

    # 2. nothing downstream reads what it left: the table is refused, and publish fails without serving it
    with pytest.raises(IncompleteOutput, match="not completely written"):
        read_table(spark, paths.recommendations)
    with pytest.raises(IncompleteOutput):
        run_stage("publish", publish, spark, settings.replace(skip_quality_gate=True), RUN_ID)
    engine = store.engine_for(settings.db_url)
    with engine.connect() as conn:
        assert store.active_run_id(conn) is None
        assert store.get_run(conn, RUN_ID)["status"] == "failed"
        assert conn.execute(sa.text("SELECT count(*) FROM recommendations")).scalar() == 0

    # 3. Airflow's retry: the same command again, over what the killed attempt left
    with StageProcess("score", RUN_ID, settings, jobs_zip, tmp_path / "score-retry.log") as retry:
        assert retry.wait(timeout=600) == 0, retry.log()[-5000:]

    # 4. the retry's output is the uninterrupted run's, row for row, with no duplicates and no leftovers
    assert leftovers(score_folder) == []
    for table in ("user_scales", "recommendations", "popular", "similar", "report"):
        assert (score_folder / table / SUCCESS).exists(), table
    expected = rows(spark, reference.recommendations, RECOMMENDATION_COLUMNS)
    got = rows(spark, paths.recommendations, RECOMMENDATION_COLUMNS)
    ranked = lambda counter: Counter({key[:3]: n for key, n in counter.items()})  # (user, rank, movie)
    assert sum(got.values()) == sum(expected.values()) == 150 * settings.top_k  # small_data's users
    assert max(got.values()) == 1  # no row twice
    assert ranked(got) == ranked(expected)
    scores = lambda counter: [value for row in sorted(counter) for value in row[3:]]
    assert scores(got) == pytest.approx(scores(expected), rel=1e-9)
    for path in ("popular", "similar", "user_scales"):
        columns = read_table(spark, getattr(reference, path)).columns
        assert rows(spark, getattr(paths, path), columns) == rows(spark, getattr(reference, path), columns), path

    # 5. and the run now publishes: exactly its rows
    report = run_stage("publish", publish, spark, settings.replace(skip_quality_gate=True), RUN_ID)
    assert report["status"] == "published" and report["rows"]["recommendations"] == sum(expected.values())
    with engine.connect() as conn:
        assert store.active_run_id(conn) == RUN_ID
        stored = Counter(
            tuple(r)
            for r in conn.execute(
                sa.text(f"SELECT {', '.join(RECOMMENDATION_COLUMNS)} FROM recommendations WHERE run_id = :r"),
                {"r": RUN_ID},
            )
        )
    assert stored == got
    engine.dispose()
