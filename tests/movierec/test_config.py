"""movierec.config: where settings come from, their kinds, the flags generated from them, secrets kept out."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from movierec import config

README = Path(__file__).resolve().parents[2] / "README.md"


def command_with(*names: str) -> click.Command:
    """A click command offering these settings' flags; it prints the settings it got as JSON."""

    @click.command()
    @config.setting_options(*names)
    def show(settings: config.Settings) -> None:
        click.echo(settings.to_json())

    return show


def run(command: click.Command, args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(command, args, env=env, catch_exceptions=True)


def test_defaults_then_environment_then_flags():
    env = {"MOVIEREC_TOP_K": "50", "MOVIEREC_CF_WEIGHT": "0.6", "MOVIEREC_SKIP_QUALITY_GATE": "yes"}
    result = run(command_with("top_k", "cf_weight", "cb_weight", "skip_quality_gate"), ["--top-k", "20"], env)
    assert result.exit_code == 0, result.output
    s = config.Settings(**json.loads(result.output))
    assert (s.top_k, s.cf_weight, s.cb_weight, s.skip_quality_gate) == (20, 0.6, 0.3, True)
    # a flag the command does not offer is refused, though its variable still counts
    refused = run(command_with("top_k"), ["--cf-weight", "0.5"], env)
    assert refused.exit_code == 2 and "No such option '--cf-weight'" in refused.output


def test_booleans_are_on_off_flags_over_the_environment():
    command = command_with("skip_quality_gate")
    as_json = lambda r: json.loads(r.output)["skip_quality_gate"]
    assert as_json(run(command, [], {})) is False
    assert as_json(run(command, [], {"MOVIEREC_SKIP_QUALITY_GATE": "true"})) is True
    assert as_json(run(command, ["--no-skip-quality-gate"], {"MOVIEREC_SKIP_QUALITY_GATE": "true"})) is False
    assert as_json(run(command, ["--skip-quality-gate"], {"MOVIEREC_SKIP_QUALITY_GATE": "0"})) is True
    assert run(command, ["--skip-quality-gate", "true"], {}).exit_code == 2  # no value after an on/off flag


def test_flag_values_are_checked_like_variables():
    result = run(command_with("top_k"), ["--top-k", "ten"])
    assert isinstance(result.exception, config.ConfigError)
    assert "MOVIEREC_TOP_K / --top-k: invalid literal" in str(result.exception)
    result = run(command_with("top_k"), ["--top-k", "0"])
    assert "top_k must be at least 1" in str(result.exception)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"MOVIEREC_TOP_K": "ten"}, "MOVIEREC_TOP_K / --top-k: invalid literal"),
        ({"MOVIEREC_TOP_K": "0"}, "top_k must be at least 1"),
        ({"MOVIEREC_SKIP_QUALITY_GATE": "maybe"}, "not a boolean"),
        ({"MOVIEREC_CF_WEIGHT": "-1"}, "must be non-negative"),
        ({"MOVIEREC_DAG_RETRIES": "-1"}, "dag_retries must be 0 or more"),
        ({"MOVIEREC_LIVE_TIMEOUT": "0"}, "live_timeout must be more than 0"),
    ],
)
def test_bad_values_say_what_is_wrong(env, message):
    with pytest.raises(config.ConfigError, match=message):
        config.from_env(env)


def test_settings_read_elsewhere_before_are_settings_now():
    s = config.from_env(
        {
            "MOVIEREC_REPORTS_DIR": "/srv/reports",
            "MOVIEREC_DAG_SCHEDULE": "none",
            "MOVIEREC_DAG_RETRIES": "5",
            "MOVIEREC_JOBS_ZIP": "",
            "MOVIEREC_JOBS_DIR": "/opt/jobs",
        }
    )
    assert (s.reports_dir, s.dag_schedule, s.dag_retries, s.jobs_zip, s.jobs_dir) == (
        "/srv/reports",
        "none",
        5,
        "",
        "/opt/jobs",
    )
    d = config.Settings()
    assert (d.reports_dir, d.dag_schedule, d.dag_retries, d.jobs_zip, d.jobs_dir) == (
        "var/reports",
        "0 2 * * *",
        2,
        "var/dist/movierec.zip",
        "jobs",
    )


def test_every_setting_is_a_model_or_a_deployment_setting():
    kinds = {name: config.kind(name) for name in config.ALL_SETTINGS}
    assert set(kinds.values()) == {"model", "deployment"}
    for name in (
        "data_dir",
        "top_k",
        "cf_weight",
        "cb_slope",
        "als_rank",
        "als_feedback",
        "rf_trees",
        "tag_features",
        "seed",
        "als_candidates",
        "content_pool",
        "popular_n",
        "similar_k",
    ):
        assert kinds[name] == "model", name
    for name in (
        "warehouse",
        "db_url",
        "spark_master",
        "driver_memory",
        "shuffle_partitions",
        "live_timeout",
        "page_cache_size",
        "warm_spark",
        "keep_runs",
        "quality_tolerance",
        "skip_quality_gate",
        "max_bad_share",
        "reports_dir",
        "dag_schedule",
        "dag_retries",
        "jobs_zip",
        "jobs_dir",
    ):
        assert kinds[name] == "deployment", name


def test_a_run_stores_its_model_settings_and_warehouse_without_credentials():
    s = config.from_env(
        {},
        db_url="postgresql+psycopg://movierec:hunter2@db/movierec",
        top_k=7,
        als_rank=12,
        warehouse="s3a://AKIA123:hunter2@bucket/warehouse",
        live_timeout=3.0,
    )
    model = config.model_settings(s)
    assert model["top_k"] == 7 and model["als_rank"] == 12 and model["data_dir"] == s.data_dir
    assert not {"db_url", "warehouse", "live_timeout", "spark_master", "keep_runs"} & set(model)
    params = config.run_params(s)
    assert set(params) == set(model) | {"warehouse"}
    assert params["warehouse"] == "s3a://AKIA123:***@bucket/warehouse"
    assert "hunter2" not in repr(params)


@pytest.mark.parametrize(
    "url, shown",
    [
        (
            "postgresql+psycopg://movierec:s3cr%40t@db.example:5432/movierec",
            "postgresql+psycopg://movierec:***@db.example:5432/movierec",
        ),
        ("postgresql://u@h/db?password=pw&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require"),
        ("sqlite:///var/movierec.db", "sqlite:///var/movierec.db"),
        ("s3a://key:se@cret@bucket/path", "s3a://key:***@bucket/path"),
        ("hdfs://nn:8020/warehouse?delegation_token=abc", "hdfs://nn:8020/warehouse?delegation_token=***"),
        ("spark://master:7077", "spark://master:7077"),
        ("k8s://https://kube:443", "k8s://https://kube:443"),
        ("var/warehouse", "var/warehouse"),
    ],
)
def test_urls_are_shown_without_passwords(url, shown):
    assert config.redact_url(url) == shown


def test_the_dags_boolean_form_becomes_the_flag_pair():
    assert config.bool_values_as_flags(["--run-id", "r", "--skip-quality-gate", "true", "--top-k", "3"]) == [
        "--run-id",
        "r",
        "--skip-quality-gate",
        "--top-k",
        "3",
    ]
    assert config.bool_values_as_flags(["--skip-quality-gate", "false"]) == ["--no-skip-quality-gate"]
    assert config.bool_values_as_flags(["--warm-spark=no", "--skip-quality-gate"]) == [
        "--no-warm-spark",
        "--skip-quality-gate",
    ]
    assert config.bool_values_as_flags(["--data-dir", "true"]) == ["--data-dir", "true"]  # not a boolean
    with pytest.raises(config.ConfigError, match="--warm-spark: not a boolean"):
        config.bool_values_as_flags(["--warm-spark=maybe"])


def test_markdown_table_has_one_row_per_setting_with_its_kind():
    rows = [line for line in config.markdown_table().splitlines()[2:]]
    assert len(rows) == len(config.ALL_SETTINGS)
    assert (
        "| `MOVIEREC_SKIP_QUALITY_GATE` | `--skip-quality-gate` / `--no-skip-quality-gate` | deployment | "
        "`false` |" in config.markdown_table()
    )
    assert "| `MOVIEREC_TOP_K` | `--top-k` | model | `100` |" in config.markdown_table()


def test_readme_documents_every_setting():
    readme = README.read_text()
    missing = [config.env_name(f) for f in config.Settings.__dataclass_fields__ if config.env_name(f) not in readme]
    assert not missing, f"README lacks {missing}: paste `movierec config --markdown`"
    assert config.markdown_table() in readme, "README's table is stale: paste `movierec config --markdown`"


def test_no_setting_is_read_from_the_environment_outside_config():
    """Every MOVIEREC_* variable is a setting, read by movierec.config only (API keys are serving's own)."""
    root = README.parent
    pattern = re.compile(r"""environ(?:\.get\(|\[)\s*["'](MOVIEREC_[A-Z_]+)""")
    found = {}
    for folder in ("movierec", "serving", "dags"):
        for path in (root / folder).rglob("*.py"):
            for name in pattern.findall(path.read_text(encoding="utf-8")):
                found.setdefault(name, []).append(str(path.relative_to(root)))
    found.pop("MOVIEREC_API_KEYS", None)
    assert found == {}, f"read outside movierec/config.py: {found}"
