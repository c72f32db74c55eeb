"""`movierec`, the click command line: its commands and their options, one-line errors before any
work starts, no store made by a read, no secret printed; in-process and as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import movierec
from movierec import config
from movierec.cli import cli, main
from movierec.store import runs as store
from movierec.text import format_table
from tests.ports import free_port
from tests.processes import child_env

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [
    "download",
    "synth",
    "pipeline",
    "evaluate",
    "tune",
    "report",
    "runs",
    "rollback",
    "schema",
    "serve",
    "config",
]


@pytest.fixture(autouse=True)
def no_movierec_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("MOVIEREC_"):
            monkeypatch.delenv(name)


def movierec_process(*args: str, cwd: Path = ROOT, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "movierec.cli", *args],
        cwd=cwd,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def help_of(command: str) -> str:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    return result.output


def published_store(path: Path) -> str:
    """A SQLite store with a published, a rejected and a failed run, their times and metrics known."""
    url = f"sqlite:///{path}"
    engine = store.engine_for(url)
    evaluated = {
        "protocol": {"k": 10},
        "models": {
            "als": {"ndcg": 0.1189, "coverage": 0.07},
            "content": {"ndcg": 0.0283},
            "hybrid": {"coverage": 0.062, "ndcg": 0.1227, "ndcg_all": 0.3},
            "popularity": {"ndcg": 0.074},
        },
    }
    params = {"top_k": 10, "db_url": "postgresql+psycopg://movierec:hunter2@db/movierec"}  # as runs kept it once
    store.begin_run(engine, "night-1", params, "2026-11-30T02:00:01.250000+00:00")
    store.load_run(engine, "night-1", {"recommendations": [[(1, 1, 50, 0.9, 0.8, 0.7)]]})
    store.activate_run(engine, "night-1", evaluated, "2026-11-30T02:03:04.500000+00:00")
    store.begin_run(engine, "night-2", {}, "2026-12-01T02:00:00+00:00")
    store.reject_run(
        engine,
        "night-2",
        "hybrid NDCG@10 0.0500 is below the popularity baseline 0.0740",
        {"protocol": {"k": 10}, "models": {"hybrid": {"ndcg": 0.05}, "popularity": {"ndcg": 0.074}}},
    )
    store.fail_run(engine, "night-3", "score: out of memory")
    engine.dispose()
    return url


# ---------------------------------------------------------------- the group


def test_version():
    result = movierec_process("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"movierec {movierec.__version__}\n"


def test_no_command_prints_the_help_with_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: movierec [OPTIONS] [COMMAND] [ARGS]...")
    listed = [line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()]
    assert listed == COMMANDS


PROBE = (
    "import sys; from movierec.cli import main; code = main(sys.argv[1:]); "
    "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'pyspark', 'py4j', 'flask'}); "
    "print('HEAVY', ','.join(heavy), file=sys.stderr); sys.exit(code)"
)


def probe(*args: str) -> tuple[int, str, list[str]]:
    """Run `movierec ARGS` in a fresh interpreter; (exit code, stderr without the probe line, heavy modules)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=120
    )
    lines = done.stderr.splitlines()
    heavy = [line for line in lines if line.startswith("HEAVY")]
    assert heavy, done.stderr
    rest = "\n".join(line for line in lines if not line.startswith("HEAVY"))
    return done.returncode, rest, [m for m in heavy[-1][len("HEAVY") :].strip().split(",") if m]


def test_help_runs_and_synth_never_load_spark(tmp_path):
    url = published_store(tmp_path / "store.db")
    for args in (
        ["--help"],
        ["pipeline", "--help"],
        ["runs", "--db-url", url],
        ["synth", "--users", "20", "--movies", "60", "--ratings", "300", "--out", str(tmp_path / "d")],
        ["pipeline", "--stages", "ingest,bogus"],
        ["config"],
    ):
        code, err, heavy = probe(*args)
        assert code == (2 if "bogus" in args[-1] else 0), err
        assert heavy == [], f"movierec {' '.join(args)} imported {heavy}"


def test_the_probe_sees_spark_when_a_command_loads_it(tmp_path):
    """The probe can fail: `tune` imports the tuning module (pyspark) before it checks --space."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
    (data / "movies.csv").write_text("movieId,title,genres\n")
    code, err, heavy = probe("tune", "--data-dir", str(data), "--space", '[["x", {"top_k": [5]}]]')
    assert code == 2 and "cannot tune top_k" in err
    assert "pyspark" in heavy


# ---------------------------------------------------------------- each command's options

SERVE_ONLY = [
    "--bind",
    "--workers",
    "--threads",
    "--metrics-dir",
    "--dev",
    "--dry-run",
    "--warm-spark",
    "--live-timeout",
    "--page-cache-size",
    "--reports-dir",
]
MODEL = [
    "--data-dir",
    "--top-k",
    "--cf-weight",
    "--cb-weight",
    "--cf-slope",
    "--als-rank",
    "--als-feedback",
    "--rf-trees",
    "--seed",
    "--als-candidates",
    "--similar-k",
]
SPARK = ["--spark-master", "--shuffle-partitions", "--driver-memory", "--warehouse"]
PUBLISH = ["--db-url", "--keep-runs", "--quality-tolerance", "--skip-quality-gate", "--no-skip-quality-gate"]
DAG = ["--dag-schedule", "--dag-retries", "--jobs-zip", "--jobs-dir"]


@pytest.mark.parametrize(
    "command, offered, absent",
    [
        ("runs", ["--db-url", "--json"], MODEL + SPARK + SERVE_ONLY + DAG + ["--keep-runs"]),
        ("rollback", ["--db-url", "--to"], MODEL + SPARK + SERVE_ONLY + DAG),
        ("schema", ["--dialect"], ["--db-url"] + MODEL + SPARK),
        ("serve", SERVE_ONLY + ["--db-url"] + SPARK, MODEL + DAG + ["--keep-runs", "--skip-quality-gate"]),
        ("pipeline", ["--run-id", "--stages", "--max-bad-share"] + MODEL + SPARK + PUBLISH, SERVE_ONLY + DAG),
        ("evaluate", ["--run-id"] + MODEL + SPARK, PUBLISH + SERVE_ONLY + DAG),
        ("tune", ["--max-minutes", "--min-coverage", "--space", "--json"] + MODEL + SPARK, PUBLISH + SERVE_ONLY + DAG),
        ("report", ["--run-id", "--out-dir", "--db-url"] + SPARK, MODEL + SERVE_ONLY + DAG + ["--keep-runs"]),
        ("download", ["--url", "--dest", "--force", "--sha256"], ["--db-url"] + MODEL + SPARK),
        (
            "synth",
            ["--users", "--movies", "--ratings", "--seed", "--out", "--tags"],
            ["--db-url", "--top-k", "--warehouse"],
        ),
        ("config", ["--markdown", "--json"] + [config.flag_name(n) for n in config.ALL_SETTINGS], []),
    ],
)
def test_each_command_offers_the_settings_it_reads_and_no_other(command, offered, absent):
    text = help_of(command)
    flags = {word.rstrip(",") for word in text.split() if word.startswith("--")}
    assert set(offered) <= flags, f"{command} lacks {sorted(set(offered) - flags)}"
    assert not set(absent) & flags, f"{command} offers {sorted(set(absent) & flags)}"


def test_a_settings_help_names_its_variable_and_default():
    text = " ".join(help_of("pipeline").split())
    assert "--top-k INTEGER Recommendations kept per user [MOVIEREC_TOP_K; default: 100]" in text
    assert (
        "--skip-quality-gate / --no-skip-quality-gate Publish even when the quality gate says no "
        "[MOVIEREC_SKIP_QUALITY_GATE; default: off]" in text
    )


# ---------------------------------------------------------------- user errors: one line, exit 2, nothing made


def user_error(capsys, args: list[str]) -> str:
    """Run `movierec ARGS` in-process; assert exit code 2 and one line on stderr; return that line."""
    code = main(args)
    captured = capsys.readouterr()
    assert code == 2, (code, captured.err)
    lines = captured.err.strip().splitlines()
    messages = [line for line in lines if " INFO " not in line]  # a log line is not the message
    assert len(messages) == 1, captured.err
    assert "Traceback" not in captured.err
    return messages[0]


def test_read_only_commands_never_make_a_store(capsys, tmp_path):
    missing = tmp_path / "typo" / "store.db"
    url = f"sqlite:///{missing}"
    for command in (
        ["runs"],
        ["runs", "--json"],
        ["rollback"],
        ["rollback", "--to", "night-1"],
        ["report", "--warehouse", str(tmp_path / "warehouse"), "--out-dir", str(tmp_path / "reports")],
    ):
        line = user_error(capsys, [*command, "--db-url", url])
        assert line == (
            f"movierec {command[0]}: no store at {missing} (MOVIEREC_DB_URL / --db-url): check the path, "
            f"or make one with `movierec pipeline`"
        )
    assert files_under(tmp_path) == []


def test_a_file_that_is_no_store_is_left_as_it_was(capsys, tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    line = user_error(capsys, ["runs", "--db-url", f"sqlite:///{empty}"])
    assert "holds no movierec store (no runs table)" in line
    assert empty.read_bytes() == b"" and files_under(tmp_path) == ["empty.db"]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["runs", "--db-url", "mysql://movierec:hunter2@db/movierec"],
            "movierec runs: MOVIEREC_DB_URL / --db-url: mysql is not supported, the store runs on SQLite or PostgreSQL",
        ),
        (["rollback", "--db-url", "postgresql+nosuchdriver://db/movierec"], "no driver for postgresql+nosuchdriver://"),
        (["runs", "--db-url", "just some words"], "is not a database URL; use sqlite:///"),
        (
            ["pipeline", "--stages", "ingest,bogus"],
            "movierec pipeline: --stages: unknown stage bogus; the stages are "
            "ingest,featurize,train_als,train_rf,score,evaluate,publish",
        ),
        (["pipeline", "--stages", "ingest,ingest"], "ingest given more than once"),
        (["pipeline", "--stages", "publish", "--db-url", "mysql://u:hunter2@db/x"], "mysql is not supported"),
        (["pipeline", "--run-id", "a/b"], "movierec pipeline: --run-id: run id 'a/b'"),
        (["pipeline", "--top-k", "ten"], "movierec pipeline: MOVIEREC_TOP_K / --top-k: invalid literal"),
        (["pipeline", "--skip-quality-gate", "true"], "Got unexpected extra argument (true)"),
        (["evaluate", "--als-feedback", "stars"], "als_feedback must be one of rating, binary, centred, midpoint"),
        (["runs", "--bogus"], "movierec runs: No such option '--bogus'. (`movierec runs --help` lists the options)"),
        (["serve", "--workers", "0"], "movierec serve: Invalid value for '--workers'"),
        (["schema", "--dialect", "oracle"], "Invalid value for '--dialect'"),
        (["nosuchcommand"], "movierec: No such command 'nosuchcommand'"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(capsys, args, message):
    line = user_error(capsys, args)
    assert message in line
    assert "hunter2" not in line


def test_an_unreachable_database_is_one_line_without_its_password(capsys):
    url = f"postgresql+psycopg://movierec:hunter2@127.0.0.1:{free_port()}/movierec"
    line = user_error(capsys, ["runs", "--db-url", url])
    assert line.startswith("movierec runs: the store postgresql+psycopg://movierec:***@127.0.0.1:")
    assert "cannot be opened" in line and "check MOVIEREC_DB_URL / --db-url" in line and "hunter2" not in line


def test_a_missing_data_directory_stops_before_spark(capsys, tmp_path):
    for command in ("pipeline", "evaluate", "tune"):
        line = user_error(
            capsys, [command, "--data-dir", str(tmp_path / "nothing"), "--warehouse", str(tmp_path / "w")]
        )
        assert line == (
            f"movierec {command}: no data directory {tmp_path / 'nothing'} (MOVIEREC_DATA_DIR / "
            f"--data-dir): run `movierec download`, or point MOVIEREC_DATA_DIR at a MovieLens directory"
        )
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "movies.csv").write_text("movieId,title,genres\n")
    line = user_error(capsys, ["evaluate", "--data-dir", str(tmp_path / "half")])
    assert "has no ratings.csv" in line
    assert files_under(tmp_path) == ["half", "half/movies.csv"]


def test_a_bad_variable_is_a_user_error_too(capsys, monkeypatch):
    monkeypatch.setenv("MOVIEREC_TOP_K", "0")
    assert user_error(capsys, ["pipeline"]) == "movierec pipeline: top_k must be at least 1"


def test_errors_as_a_real_process_are_one_line_and_exit_2(tmp_path):
    for args, message in (
        (["runs", "--db-url", f"sqlite:///{tmp_path / 'x' / 'store.db'}"], "no store at"),
        (["pipeline", "--stages", "ingest,bogus"], "unknown stage bogus"),
        (["report", "--db-url", "mysql://u:hunter2@db/x"], "mysql is not supported"),
    ):
        done = movierec_process(*args, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and "hunter2" not in done.stderr and done.stdout == ""
    assert files_under(tmp_path) == []  # not even var/ under the working directory


def test_a_refusal_of_the_store_is_exit_code_1(capsys, tmp_path):
    url = published_store(tmp_path / "store.db")
    assert main(["rollback", "--db-url", url]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "movierec rollback: no published run older than the active run night-1 is kept; "
        "`movierec runs` lists what there is"
    )


# ---------------------------------------------------------------- movierec runs


def test_runs_shows_the_hybrids_ndcg_and_each_time_under_its_heading(capsys, tmp_path):
    url = published_store(tmp_path / "store.db")
    assert main(["runs", "--db-url", url]) == 0
    header, rule, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["run_id", "status", "started", "finished", "published", "hybrid", "NDCG@10", "message"]
    assert rule.strip().startswith("------")
    by_run = {row.split()[0].lstrip("*").strip() or row.split()[1]: row for row in rows}
    assert list(by_run) == ["night-3", "night-2", "night-1"]
    published = by_run["night-1"]
    assert published.startswith("*  night-1  published")
    assert published.index("2026-11-30 02:00:01") == header.index("started")
    assert published.index("2026-11-30 02:03:04") == header.index("finished")
    assert published[header.index("published") :].startswith("20")
    # the serving model's figure, right-aligned under its heading; not ALS's, nor ndcg_all
    assert published.endswith("0.1227") and published.index("0.1227") + 6 == header.index("NDCG@10") + 7
    rejected, failed = by_run["night-2"], by_run["night-3"]
    assert rejected.index("2026-12-01 02:00:00") == header.index("started")
    assert rejected[header.index("message") :] == "hybrid NDCG@10 0.0500 is below the popularity baseline 0.0740"
    assert "0.0500" in rejected[header.index("published") : header.index("message")]
    assert failed[header.index("started") : header.index("finished")].strip() == ""
    assert failed[header.index("message") :] == "score: out of memory"


def test_runs_json_has_every_run_without_passwords(capsys, tmp_path):
    url = published_store(tmp_path / "store.db")
    assert main(["runs", "--json", "--db-url", url]) == 0
    out = capsys.readouterr().out
    runs = json.loads(out)
    assert [r["run_id"] for r in runs] == ["night-3", "night-2", "night-1"]
    assert runs[2]["metrics"]["models"]["hybrid"]["ndcg"] == 0.1227 and runs[2]["active"] is True
    assert runs[2]["params"]["db_url"] == "postgresql+psycopg://movierec:***@db/movierec" and "hunter2" not in out


def test_no_runs_says_so(capsys, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store.engine_for(url).dispose()
    assert main(["runs", "--db-url", url]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "(no runs)"


# ---------------------------------------------------------------- schema, config


def test_schema_prints_what_sql_schema_sql_holds():
    done = movierec_process("schema")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (ROOT / "sql" / "schema.sql").read_text()


def test_config_shows_where_each_value_came_from_and_no_password():
    done = movierec_process(
        "config",
        "--top-k",
        "7",
        "--warehouse",
        "s3a://AKIA:hunter2@bucket/w",
        MOVIEREC_DB_URL="postgresql+psycopg://movierec:hunter2@db:5432/movierec",
        MOVIEREC_REPORTS_DIR="/srv/reports",
    )
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()[2:]}
    assert set(rows) == set(config.ALL_SETTINGS)
    assert rows["top_k"][1:4] == ["7", "model", "flag"]
    assert rows["db_url"][1:4] == ["postgresql+psycopg://movierec:***@db:5432/movierec", "deployment", "environment"]
    assert rows["warehouse"][1:4] == ["s3a://AKIA:***@bucket/w", "deployment", "flag"]
    assert rows["reports_dir"][1:4] == ["/srv/reports", "deployment", "environment"]
    assert rows["seed"][1:4] == ["42", "model", "default"]
    assert "hunter2" not in done.stdout + done.stderr
    as_json = movierec_process("config", "--json", MOVIEREC_DB_URL="postgresql+psycopg://u:hunter2@db/m")
    assert json.loads(as_json.stdout)["db_url"] == "postgresql+psycopg://u:***@db/m"


def test_config_markdown_is_the_readme_table(capsys):
    assert main(["config", "--markdown"]) == 0
    table = capsys.readouterr().out.strip()
    assert table == config.markdown_table()
    assert table in (ROOT / "README.md").read_text()


def test_readme_commands_table_matches_the_help():
    """README's Commands table: every command of `movierec --help`, in its order, and only options it has."""
    import re

    section = (ROOT / "README.md").read_text().split("## Commands\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `movierec ")]
    assert [row.split("`")[1].split()[1] for row in rows] == COMMANDS
    for row in rows:
        command = row.split("`")[1].split()[1]
        flags = {word.rstrip(",") for word in help_of(command).split() if word.startswith("--")}
        named = set(re.findall(r"`(--[a-z0-9-]+)", row.split(" | ")[-1]))
        assert named and named <= flags, f"README names {sorted(named - flags)} for `movierec {command}`"


# ---------------------------------------------------------------- the stage scripts: the same flags


def test_stage_scripts_take_the_batch_settings_and_the_dags_boolean_form():
    from movierec.stages.runner import parse_stage_args

    run_id, s = parse_stage_args("publish", ["--run-id", "r1", "--top-k", "7", "--skip-quality-gate", "true"])
    assert (run_id, s.top_k, s.skip_quality_gate) == ("r1", 7, True)
    assert parse_stage_args("publish", ["--run-id", "r1", "--skip-quality-gate", "false"])[1].skip_quality_gate is False
    assert parse_stage_args("publish", ["--run-id", "r1", "--skip-quality-gate"])[1].skip_quality_gate is True
    done = subprocess.run(
        [sys.executable, "jobs/ingest.py", "--help"],
        cwd=ROOT,
        env=child_env(PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: spark-submit jobs/ingest.py [OPTIONS]" in done.stdout
    flags = {word.rstrip(",") for word in done.stdout.split() if word.startswith("--")}
    assert {"--run-id", "--data-dir", "--db-url", "--als-rank", "--no-skip-quality-gate"} <= flags
    assert not {"--live-timeout", "--bind", "--dag-schedule", "--reports-dir"} & flags


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "Missing option '--run-id'"),
        (["--run-id", "r1", "--top-k", "ten"], "MOVIEREC_TOP_K / --top-k: invalid literal"),
        (["--run-id", "a/b"], "Invalid value for --run-id"),
        (["--run-id", "r1", "--live-timeout", "3"], "No such option '--live-timeout'"),
    ],
)
def test_a_stage_with_bad_arguments_exits_2_before_spark(caplog, argv, message):
    from movierec.stages.runner import stage_main

    ran = []
    assert stage_main("ingest", lambda *args: ran.append(args), argv) == 2
    assert ran == []
    assert any(message in record.getMessage() for record in caplog.records), caplog.text


# ---------------------------------------------------------------- the one table formatter


def test_format_table_pads_aligns_and_rules():
    table = format_table(("", "name", "n"), [("*", "alpha", 1), (None, "b", 1234)], right=(2,))
    assert table.splitlines() == [
        "   name      n",
        "   -----  ----",
        "*  alpha     1",
        "   b      1234",
    ]
    assert format_table(("a", "b"), [("x", None)], rule=False) == "a  b\nx"


# ---------------------------------------------------------------- end to end, with Spark


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.postgres
def test_pipeline_then_runs_as_real_processes(cli_pipeline, small_data):
    """`movierec pipeline` into PostgreSQL (whose URL has a password; the session's `cli_pipeline`),
    then `movierec runs`: the summary line and the table show the store without its password; the
    run stores its model settings, not the URL; nothing lands in the working directory but the
    warehouse it was given."""
    import sqlalchemy as sa

    done, url, run_id = cli_pipeline.done, cli_pipeline.db_url, cli_pipeline.run_id
    shown = sa.make_url(url).render_as_string(hide_password=True)
    assert done.stdout.splitlines()[-1] == f"published run {run_id} to {shown}" and ":***@" in shown
    assert cli_pipeline.password not in done.stdout + done.stderr

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        params, metrics = conn.execute(
            sa.text("select params, metrics from runs where run_id = :r"), {"r": run_id}
        ).one()
    engine.dispose()
    params, metrics = json.loads(params), json.loads(metrics)
    assert set(params) == set(config.MODEL_SETTINGS) | set(config.PROVENANCE) | {"warehouse"}
    assert params["top_k"] == 10 and params["als_rank"] == 8 and params["data_dir"] == str(small_data)

    listed = movierec_process("runs", "--db-url", url, cwd=cli_pipeline.root)
    assert listed.returncode == 0, listed.stderr
    header, _, row = listed.stdout.splitlines()
    assert row.startswith(f"*  {run_id}  published")
    assert row.split()[-1] == f"{metrics['models']['hybrid']['ndcg']:.4f}"
    assert cli_pipeline.password not in listed.stdout + listed.stderr
    assert files_under(cli_pipeline.root) and {p.split("/")[0] for p in files_under(cli_pipeline.root)} == {"warehouse"}
