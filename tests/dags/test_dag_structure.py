"""The DAG as Airflow parses it: tasks, edges, schedule, params, retries, what each task submits."""

from __future__ import annotations

import copy
import importlib.util
import sys
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from dag_helpers import DAG_FILE, DAG_ID, PROJECT

from movierec.stages.pipeline import STAGES

EXPECTED_EDGES = {
    ("ingest", "featurize"),
    ("featurize", "train_als"),
    ("featurize", "train_rf"),
    ("train_als", "score"),
    ("train_rf", "score"),
    ("ingest", "evaluate"),
    ("score", "publish"),
    ("evaluate", "publish"),
}


def load_dag_module(monkeypatch, name: str, **env: str):
    """Import the DAG file afresh under `name` with extra environment (parse-time settings)."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    spec = importlib.util.spec_from_file_location(name, DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_dag_folder_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert list(dagbag.dags) == [DAG_ID]


def test_exactly_the_stage_tasks_and_edges(dag):
    assert sorted(dag.task_ids) == sorted(STAGES)
    edges = {(up, task.task_id) for task in dag.tasks for up in task.upstream_task_ids}
    assert edges == EXPECTED_EDGES
    assert [t.task_id for t in dag.topological_sort()][0] == "ingest"
    assert dag.get_task("publish").get_flat_relative_ids(upstream=True) == set(STAGES) - {"publish"}


def test_every_task_is_a_spark_submit_of_its_own_stage_file(dag):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    for task in dag.tasks:
        assert isinstance(task, SparkSubmitOperator), task.task_id
        assert task._conn_id == "spark_default"
        app = Path(task.application)
        assert app.name == f"{task.task_id}.py"
        assert app.parent == PROJECT / "jobs"
        assert task.name == f"movierec-{task.task_id}"


def test_stage_files_exist_for_every_task(dag):
    missing = [t.application for t in dag.tasks if not Path(t.application).is_file()]
    assert not missing, f"stage files missing: {missing}"


def test_run_id_is_passed_to_every_stage(dag):
    for task in dag.tasks:
        args = task.application_args
        i = args.index("--run-id")
        assert "run_id" in args[i + 1] and args[i + 1].startswith("{{"), task.task_id


def test_jobs_zip_travels_as_py_files(dag, monkeypatch):
    for task in dag.tasks:
        assert task.py_files == str(PROJECT / "var" / "dist" / "movierec.zip")
    module = load_dag_module(monkeypatch, "_mr_zip", MOVIEREC_JOBS_ZIP="/opt/movierec/dist/jobs.zip")
    assert {t.py_files for t in module.dag.tasks} == {"/opt/movierec/dist/jobs.zip"}
    module = load_dag_module(monkeypatch, "_mr_nozip", MOVIEREC_JOBS_ZIP="")
    assert {t.py_files for t in module.dag.tasks} == {None}


def test_nightly_schedule_without_catchup_one_run_at_a_time(dag):
    assert dag.schedule == "0 2 * * *"
    assert dag.timetable.expression == "0 2 * * *"
    assert str(dag.timetable.timezone) == "UTC"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.start_date.utcoffset() == timedelta(0)


def test_schedule_comes_from_configuration(monkeypatch):
    module = load_dag_module(monkeypatch, "_mr_cron", MOVIEREC_DAG_SCHEDULE="30 3 * * 1")
    assert module.dag.schedule == "30 3 * * 1"
    assert module.dag.timetable.expression == "30 3 * * 1"
    module = load_dag_module(monkeypatch, "_mr_manual", MOVIEREC_DAG_SCHEDULE="none")
    assert module.dag.schedule is None


def test_every_task_retries_with_exponential_backoff_and_has_a_time_limit(dag):
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
        assert task.retry_exponential_backoff >= 2, task.task_id
        assert task.retry_delay >= timedelta(minutes=1), task.task_id
        assert task.max_retry_delay is not None and task.max_retry_delay >= task.retry_delay
        assert task.execution_timeout is not None, task.task_id
        assert timedelta(minutes=5) <= task.execution_timeout <= timedelta(hours=3), task.task_id


def test_nothing_runs_after_a_failed_task(dag):
    """A failure stops the run: every task needs all upstream tasks to succeed, and no
    callback acts on a failure (the store keeps serving the active run)."""
    for task in dag.tasks:
        assert task.trigger_rule == "all_success", task.task_id
        assert not task.on_failure_callback and not task.on_retry_callback, task.task_id
    assert not dag.on_failure_callback


def test_params_have_a_json_schema_for_the_trigger_form(dag):
    from movierec.config import from_env

    params = dag.params
    assert set(params) == {"data_dir", "top_k", "cf_weight", "cb_weight", "als_rank", "skip_quality_gate"}
    types = {name: params.get_param(name).schema["type"] for name in params}
    assert types == {
        "data_dir": "string",
        "top_k": "integer",
        "cf_weight": "number",
        "cb_weight": "number",
        "als_rank": "integer",
        "skip_quality_gate": "boolean",
    }
    for name in params:
        param = params.get_param(name)
        assert param.description and param.schema.get("title"), name
    # defaults are the deployment's settings: MOVIEREC_* of the process that parses the DAG
    defaults = from_env()
    assert params.dump() == {
        "data_dir": defaults.data_dir,
        "top_k": defaults.top_k,
        "cf_weight": defaults.cf_weight,
        "cb_weight": defaults.cb_weight,
        "als_rank": defaults.als_rank,
        "skip_quality_gate": defaults.skip_quality_gate,
    }


def test_param_defaults_follow_the_deployments_settings(monkeypatch):
    module = load_dag_module(
        monkeypatch,
        "_mr_env",
        MOVIEREC_TOP_K="25",
        MOVIEREC_DATA_DIR="/data/ml",
        MOVIEREC_CF_WEIGHT="0.6",
        MOVIEREC_CB_WEIGHT="0.4",
    )
    dumped = module.dag.params.dump()
    assert (dumped["top_k"], dumped["data_dir"], dumped["cf_weight"], dumped["cb_weight"]) == (25, "/data/ml", 0.6, 0.4)


@pytest.mark.parametrize(
    "name,value",
    [
        ("top_k", 0),
        ("top_k", "ten"),
        ("top_k", 2.5),
        ("cf_weight", -0.1),
        ("cb_weight", 1.5),
        ("als_rank", 0),
        ("data_dir", ""),
        ("skip_quality_gate", "yes"),
    ],
)
def test_params_refuse_bad_values(dag, name, value):
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dag.params)
    with pytest.raises(ParamValidationError):
        params[name] = value


def test_params_accept_good_values(dag):
    params = copy.deepcopy(dag.params)
    for name, value in {
        "top_k": 7,
        "cf_weight": 1,
        "cb_weight": 0.0,
        "als_rank": 4,
        "data_dir": "hdfs://nn/ml",
        "skip_quality_gate": True,
    }.items():
        params[name] = value
    assert params.validate()["top_k"] == 7


def render_args(dag, task_id: str, run_id: str, **param_values):
    task = copy.deepcopy(dag.get_task(task_id))
    params = copy.deepcopy(dag.params)
    for name, value in param_values.items():
        params[name] = value
    task.render_template_fields({"run_id": run_id, "params": params.validate()}, jinja_env=dag.get_template_env())
    return task.application_args


def test_params_flow_into_the_stage_arguments(dag):
    args = render_args(
        dag,
        "score",
        "manual__2026-11-29T10:00:00+00:00",
        data_dir="/data/ml",
        top_k=7,
        cf_weight=0.8,
        cb_weight=0.2,
        als_rank=16,
        skip_quality_gate=True,
    )
    assert args == [
        "--run-id",
        "manual__2026-11-29T10:00:00+00:00",
        "--data-dir",
        "/data/ml",
        "--top-k",
        "7",
        "--cf-weight",
        "0.8",
        "--cb-weight",
        "0.2",
        "--als-rank",
        "16",
        "--skip-quality-gate",
        "true",
    ]


def test_rendered_arguments_parse_into_the_stage_settings(dag):
    """The flags the DAG writes are the ones the stages read (movierec.stages.runner's parser)."""
    from movierec.stages.runner import parse_stage_args

    for skip in (False, True):
        args = render_args(
            dag,
            "publish",
            "scheduled__2026-11-29T02:00:00+00:00",
            top_k=7,
            cf_weight=0.6,
            cb_weight=0.4,
            als_rank=12,
            data_dir="/data/ml",
            skip_quality_gate=skip,
        )
        run_id, settings = parse_stage_args("publish", args)
        assert run_id == "scheduled__2026-11-29T02:00:00+00:00"
        assert (
            settings.top_k,
            settings.cf_weight,
            settings.cb_weight,
            settings.als_rank,
            settings.data_dir,
            settings.skip_quality_gate,
        ) == (7, 0.6, 0.4, 12, "/data/ml", skip)


def test_all_tasks_of_a_run_get_the_same_arguments(dag):
    rendered = {t: tuple(render_args(dag, t, "manual__x", top_k=3)) for t in STAGES}
    assert len(set(rendered.values())) == 1


def test_airflow_generated_run_ids_reach_the_stages_unchanged(dag):
    from datetime import datetime

    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType

    from movierec.spark.paths import check_run_id

    when = datetime(2026, 11, 29, 2, 0, 0, 123456, tzinfo=UTC)
    for run_type in (DagRunType.MANUAL, DagRunType.SCHEDULED, DagRunType.ASSET_TRIGGERED, DagRunType.BACKFILL_JOB):
        for logical_date in (when, None):
            run_id = DagRun.generate_run_id(run_type=run_type, logical_date=logical_date, run_after=when)
            assert render_args(dag, "ingest", run_id)[1] == check_run_id(run_id)


@pytest.mark.parametrize("run_id", ["my run", "~nightly", "a/b", "x" * 300, "ünïcode", "-leading-dash", "a~b"])
def test_hand_made_run_ids_map_to_valid_distinct_folders(dag, run_id):
    from movierec.spark.paths import check_run_id

    folder = render_args(dag, "ingest", run_id)[1]
    assert check_run_id(folder) == folder
    assert render_args(dag, "publish", run_id)[1] == folder  # deterministic
    assert render_args(dag, "ingest", run_id + "2")[1] != folder  # no collision with a neighbour
    assert "/" not in folder


def test_run_id_mapping_keeps_distinct_ids_apart(dag):
    # "a~b" and "a_b": the second is already valid, the first must not land in the same folder
    assert render_args(dag, "ingest", "a~b")[1] != render_args(dag, "ingest", "a_b")[1]


def test_no_task_builds_the_zip(dag):
    """The zip is built once with the code (make jobs-zip, the Dockerfile), never by a task."""
    for task in dag.tasks:
        assert task._pre_execute_hook is None, task.task_id


def test_every_task_starts_its_jvms_with_the_projects_options(dag):
    # JVM options only take effect when spark-submit starts the driver, not from the session builder
    from movierec.spark.session import JVM_OPTIONS

    assert "-Xss16m" in JVM_OPTIONS
    for task in dag.tasks:
        assert task.conf["spark.driver.extraJavaOptions"] == JVM_OPTIONS, task.task_id
        assert task.conf["spark.executor.extraJavaOptions"] == JVM_OPTIONS, task.task_id


@pytest.mark.parametrize("executor_memory", [None, "7372m"])
def test_each_task_submits_the_command_the_library_builds(dag, monkeypatch, executor_memory):
    """movierec.stages.submit is what benchmarks/standalone.py and tests/processes.py run: the command
    it builds must be the one Airflow's own SparkSubmitHook builds from each task's arguments."""
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    from movierec import config
    from movierec.stages.submit import stage_submit

    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", "spark://local")
    settings = config.from_env()
    for task in dag.tasks:
        hook = SparkSubmitHook(
            conn_id="spark_default",
            conf=task.conf,
            py_files=task.py_files,
            name=task.name,
            driver_memory=task._driver_memory,
            executor_memory=executor_memory,
            application_args=task.application_args,
        )
        submit = stage_submit(
            task.task_id, settings, Path(task.application).parent, task.py_files, task.application_args
        )
        assert submit.command("spark-submit", "local", executor_memory) == hook._build_spark_submit_command(
            task.application
        ), task.task_id
