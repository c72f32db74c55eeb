"""
### movie_recommender — the nightly movierec batch

One `spark-submit` of a `jobs/` stage per task, every task of a run sharing one run id,
so all of them read and write `<warehouse>/runs/<run id>/`:

    ingest >> featurize >> [train_als, train_rf] >> score >> publish
    ingest >> evaluate >> publish

(evaluate refits every model from ingest's output alone, so it runs beside the others;
the edges come from `movierec.stages.pipeline.UPSTREAM`.)

*Where Spark runs* is the Airflow connection `spark_default` alone: host `local[*]` by
default (`make airflow` defines it), or `spark://master:7077`, `yarn`, `k8s://https://…`
by changing only the connection. The `movierec` library travels as a zip in `py_files`,
built once with the code (`make jobs-zip`, the Dockerfile), so executors on a cluster can
import it.

*What the stages do* comes from the `MOVIEREC_*` environment of the process that runs
spark-submit (warehouse, database URL, model settings) and from this run's params (the
trigger form: data directory, top-K, blend weights, ALS rank, skipping the quality gate).

*Failures*: every task retries with exponential backoff and has a time limit. A task that
still fails stops the run there: `publish` never runs, and the store keeps serving the
active run. `publish` itself refuses a run whose quality is clearly below the active one's.

Deployment settings read when this file is parsed (environment of the DAG processor and
the workers), through `movierec.config` like every other setting: `MOVIEREC_DAG_SCHEDULE`
(cron, default `0 2 * * *` UTC; `none` for manual runs only), `MOVIEREC_DAG_RETRIES`
(default 2), `MOVIEREC_JOBS_DIR` (the stage scripts, default `jobs/` of the project),
`MOVIEREC_JOBS_ZIP` (default `var/dist/movierec.zip` in the project; empty: ship nothing),
and the `MOVIEREC_*` settings whose values are the trigger form's defaults.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, Param

from movierec import config
from movierec.spark.paths import RUN_ID_PATTERN
from movierec.stages.pipeline import STAGES, UPSTREAM
from movierec.stages.submit import project_path, stage_submit

DAG_ID = "movie_recommender"
PROJECT = Path(__file__).resolve().parents[1]  # dags/ beside jobs/
CONN_ID = "spark_default"

# stage -> how long one attempt may take before Airflow kills it
STAGE_TIMEOUTS = {
    "ingest": timedelta(minutes=30),
    "featurize": timedelta(minutes=30),
    "train_als": timedelta(hours=2),
    "train_rf": timedelta(hours=1),
    "score": timedelta(hours=1),
    "evaluate": timedelta(hours=1),
    "publish": timedelta(minutes=30),
}


def schedule_of(settings: config.Settings) -> str | None:
    text = settings.dag_schedule.strip()
    return None if text.lower() in {"", "none", "manual"} else text


def jobs_zip_of(settings: config.Settings) -> str | None:
    text = settings.jobs_zip.strip()
    return str(project_path(PROJECT, text)) if text else None


def run_folder(run_id: str) -> str:
    """The run id the stages get: Airflow's own when the warehouse path rule accepts it.

    Airflow's generated ids (`manual__2026-11-29T10:00:00+00:00`, `scheduled__…`) pass
    `movierec.spark.paths.RUN_ID_PATTERN` unchanged. An id given by hand may hold characters the rule
    refuses (Airflow allows `~`, spaces under a custom pattern, more than 200 characters):
    those become `_` and a hash of the original id is appended, so the mapping is
    deterministic (retries and later tasks of the run agree) and two ids do not collide.
    """
    if RUN_ID_PATTERN.match(run_id):
        return run_id
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:10]
    cleaned = re.sub(r"[^A-Za-z0-9_.:+\-]", "_", run_id)
    if not cleaned[:1].isalnum():
        cleaned = "r" + cleaned
    return f"{cleaned[: 200 - len(digest) - 1]}-{digest}"


_settings = config.from_env()
JOBS_DIR = project_path(PROJECT, _settings.jobs_dir)
JOBS_ZIP = jobs_zip_of(_settings)

PARAMS = {
    "data_dir": Param(
        _settings.data_dir,
        type="string",
        minLength=1,
        title="Data directory",
        description="MovieLens directory (ratings.csv, movies.csv, optional tags.csv) as the Spark driver "
        "sees it: a local path or a Hadoop URI.",
    ),
    "top_k": Param(
        _settings.top_k,
        type="integer",
        minimum=1,
        maximum=1000,
        title="Top-K",
        description="Recommendations kept per user.",
    ),
    "cf_weight": Param(
        _settings.cf_weight,
        type="number",
        minimum=0,
        maximum=1,
        title="Collaborative (ALS) weight",
        description="Weight of the ALS score in the blend.",
    ),
    "cb_weight": Param(
        _settings.cb_weight,
        type="number",
        minimum=0,
        maximum=1,
        title="Content (random forest) weight",
        description="Weight of the content score in the blend (both weights must not be 0).",
    ),
    "als_rank": Param(
        _settings.als_rank,
        type="integer",
        minimum=1,
        maximum=500,
        title="ALS rank",
        description="Latent factors of the ALS model.",
    ),
    "skip_quality_gate": Param(
        _settings.skip_quality_gate,
        type="boolean",
        title="Skip the quality gate",
        description="Publish even when this run's NDCG@10 is clearly below the active run's.",
    ),
}

# the same arguments for every stage, so all of them agree on the run's settings; a boolean goes as
# `--flag true|false` (one template per value), which the stages read as `--flag` / `--no-flag`
STAGE_ARGS = [
    "--run-id",
    "{{ run_id | run_folder }}",
    "--data-dir",
    "{{ params.data_dir }}",
    "--top-k",
    "{{ params.top_k }}",
    "--cf-weight",
    "{{ params.cf_weight }}",
    "--cb-weight",
    "{{ params.cb_weight }}",
    "--als-rank",
    "{{ params.als_rank }}",
    "--skip-quality-gate",
    "{{ 'true' if params.skip_quality_gate else 'false' }}",
]

default_args = {
    "owner": "movierec",
    "depends_on_past": False,
    "retries": _settings.dag_retries,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
}


def stage(task_id: str) -> SparkSubmitOperator:
    submit = stage_submit(task_id, _settings, JOBS_DIR, JOBS_ZIP, STAGE_ARGS)
    return SparkSubmitOperator(
        task_id=task_id, conn_id=CONN_ID, execution_timeout=STAGE_TIMEOUTS[task_id], **submit.operator_kwargs()
    )


with DAG(
    dag_id=DAG_ID,
    description="Nightly movierec batch: ingest, features, ALS + random forest, score, evaluate, publish",
    doc_md=__doc__,
    schedule=schedule_of(_settings),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    params=PARAMS,
    user_defined_filters={"run_folder": run_folder},
    tags=["movierec", "spark"],
) as dag:
    tasks = {name: stage(name) for name in STAGES}
    for name, upstream in UPSTREAM.items():  # evaluate refits from ingest's output, beside the others
        for up in upstream:
            tasks[up] >> tasks[name]
