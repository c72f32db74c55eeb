"""The stage runner through its public behaviour only: `run_stage(stage, fn, spark, settings,
run_id)` (the report, its timing field, the progress lines) and `stage_main(stage, fn, argv)`
(exit code 2 for a bad setting, before any Spark is started).  How the arguments are parsed
is deliberately not looked at."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from movierec.data.validation import DataQualityError
from movierec.spark.paths import BadRunId
from movierec.spark.warehouse import IncompleteOutput
from movierec.stages.publish import RunRejected
from movierec.stages.runner import run_logged, run_stage
from movierec.store.runs import StoreError

PROJECT = Path(__file__).resolve().parents[3]
LOGGER = "movierec.stages.runner"


class Recorder:
    """A stage function that remembers what it was given and sleeps a known time."""

    def __init__(self, result=None, sleep: float = 0.0, error: Exception | None = None):
        self.calls: list[tuple] = []
        self.result, self.sleep, self.error = result, sleep, error

    def __call__(self, spark, settings, paths):
        self.calls.append((spark, settings, paths))
        time.sleep(self.sleep)
        if self.error is not None:
            raise self.error
        return self.result


def runner_messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_run_stage_returns_the_stage_report_plus_its_seconds(settings, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    fn = Recorder({"rows": 3, "note": "x"}, sleep=0.3)
    session = object()  # run_stage only hands the session to the stage
    started = time.perf_counter()
    report = run_stage("ingest", fn, session, settings, "r-1")
    elapsed = time.perf_counter() - started

    assert set(report) == {"rows", "note", "seconds"} and (report["rows"], report["note"]) == (3, "x")
    assert 0.3 <= report["seconds"] <= elapsed + 0.01
    assert report["seconds"] == round(report["seconds"], 2)
    [(spark, given, paths)] = fn.calls
    assert spark is session and given is settings
    assert paths.run_id == "r-1"
    assert paths.root == f"{Path(settings.warehouse).resolve().as_uri()}/runs/r-1"

    start_line, done_line = runner_messages(caplog)
    assert start_line == "stage ingest: run r-1 starting"
    match = re.fullmatch(r"stage ingest: run r-1 done in (\d+\.\d) s", done_line)
    assert match and match.group(1) == f"{report['seconds']:.1f}"


def test_a_stage_without_a_report_gets_one_with_its_seconds(settings):
    report = run_stage("publish", Recorder(None), None, settings, "r-2")
    assert list(report) == ["seconds"] and 0 <= report["seconds"] < 5


def test_a_failing_stage_raises_and_logs_no_done_line(settings, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    with pytest.raises(RuntimeError, match="boom"):
        run_stage("score", Recorder(error=RuntimeError("boom")), None, settings, "r-3")
    assert runner_messages(caplog) == ["stage score: run r-3 starting"]


def test_a_bad_run_id_is_refused_before_the_stage_runs(settings):
    fn = Recorder({})
    with pytest.raises(BadRunId):
        run_stage("ingest", fn, None, settings, "../elsewhere")
    assert fn.calls == []


def test_a_data_error_is_one_line_and_exit_code_1_without_a_traceback(settings, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    fn = Recorder(error=DataQualityError("ratings.csv (/d/ratings.csv) is empty (0 bytes): it was cut off"))
    assert run_logged("ingest", fn, None, settings, "r-4") == 1
    [failed] = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.ERROR]
    assert (
        failed.getMessage()
        == "stage ingest failed for run r-4: ratings.csv (/d/ratings.csv) is empty (0 bytes): it was cut off"
    )
    assert failed.exc_info is None and failed.exc_text is None


@pytest.mark.parametrize(
    "error",
    [
        IncompleteOutput("/w/runs/r/score/recommendations is not completely written (no _SUCCESS): rerun score"),
        RunRejected("run r rejected: hybrid NDCG@10 below the active run's; run a keeps serving"),
        StoreError("run r is active: roll back first"),
    ],
)
def test_an_operators_error_is_one_line_and_exit_code_1(settings, caplog, error):
    caplog.set_level(logging.INFO, logger=LOGGER)
    assert run_logged("publish", Recorder(error=error), None, settings, "r-7") == 1
    [failed] = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.ERROR]
    assert failed.getMessage() == f"stage publish failed for run r-7: {error}" and failed.exc_info is None


def test_a_bug_keeps_its_traceback(settings, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    with pytest.raises(KeyError, match="movie_id"):
        run_logged("ingest", Recorder(error=KeyError("movie_id")), None, settings, "r-5")
    assert runner_messages(caplog)[-1] == "stage ingest failed for run r-5: 'movie_id'"


def test_a_stage_that_runs_exits_0(settings):
    assert run_logged("ingest", Recorder({"rows": 1}), None, settings, "r-6") == 0


# ---------------------------------------------------------------- stage_main, in a fresh process
# A process of its own, so "no Spark was started" can be checked for sure: nothing else in it
# could have launched the JVM gateway.

SCRIPT = textwrap.dedent("""
    import contextlib, io, json, logging, os, sys

    cases = json.loads(sys.argv[1])
    messages = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    logging.getLogger().addHandler(Collect())
    from movierec.stages.runner import stage_main

    results = []
    for argv, env in cases:
        for name in [n for n in os.environ if n.startswith("MOVIEREC_")]:
            del os.environ[name]
        os.environ.update(env)
        calls = []
        messages.clear()
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                code = stage_main("ingest", lambda *args: calls.append(1) or {}, argv)
            except SystemExit as exit:
                code = exit.code
        results.append({"code": code, "stage_ran": bool(calls), "said": "\\n".join(messages) + err.getvalue()})

    from pyspark import SparkContext
    print(json.dumps({"results": results, "gateway": SparkContext._gateway is not None,
                      "context": SparkContext._active_spark_context is not None}))
""")

BAD = [
    # (argv, environment, a word the log must name; None: the parser's own message)
    (["--run-id", "r1", "--top-k", "0"], {}, "top_k"),
    (["--run-id", "r1", "--top-k", "many"], {}, "top"),
    (["--run-id", "r1", "--skip-quality-gate", "maybe"], {}, None),  # how it is worded is the parser's
    (["--run-id", "r1", "--als-feedback", "stars"], {}, "als_feedback"),
    (["--run-id", "r1"], {"MOVIEREC_RF_TREES": "forty"}, "RF_TREES"),
    (["--run-id", "r1"], {"MOVIEREC_CF_WEIGHT": "-1"}, "cf_weight"),
    (["--run-id", "r1", "--no-such-setting", "1"], {}, None),
    (["--top-k", "5"], {}, None),  # no run id
    (["--run-id", "../x"], {}, "run id"),  # refused before Spark starts
]


def test_stage_main_exits_2_on_a_bad_setting_without_starting_spark(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOVIEREC_", "PYSPARK_GATEWAY", "PYSPARK_SUBMIT"))}
    env["PYTHONPATH"] = str(PROJECT)
    cases = [(argv, extra) for argv, extra, _ in BAD]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(cases)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    for (argv, extra, word), result in zip(BAD, answer["results"]):
        assert result["code"] == 2, (argv, extra, result)
        assert not result["stage_ran"], (argv, extra)
        if word is not None:  # logged (or printed on stderr): what an operator reads
            assert word.lower() in result["said"].lower(), (argv, extra, result["said"])
    assert not answer["gateway"] and not answer["context"], "a bad setting started Spark"
