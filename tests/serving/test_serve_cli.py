"""`movierec serve`: the gunicorn command it builds and the settings it hands the workers."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from movierec.config import from_env

ROOT = Path(__file__).resolve().parents[2]


def serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "movierec.cli", "serve", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_dry_run_prints_the_gunicorn_command():
    result = serve("--dry-run", "--bind", "127.0.0.1:9999", "--workers", "3", "--threads", "2",
                   "--live-timeout", "40")
    assert result.returncode == 0, result.stderr
    command = result.stdout.split()
    assert command[1:3] == ["-m", "gunicorn"]
    assert command[-1] == "serving.wsgi:app"
    pairs = dict(zip(command, command[1:]))
    assert pairs["--bind"] == "127.0.0.1:9999" and pairs["--workers"] == "3" and pairs["--threads"] == "2"
    assert pairs["--worker-class"] == "gthread"
    assert pairs["--timeout"] == "55"   # live_timeout 40 + 15: a live call never gets its worker killed
    assert pairs["--config"] == "python:serving.gunicorn_conf"


def test_default_worker_count_is_one_per_core_within_2_to_8():
    from serving.cli import default_workers

    assert default_workers() == max(2, min(8, os.cpu_count()))


def test_workers_get_exactly_the_commands_settings():
    from serving.cli import settings_environment

    settings = from_env({}, db_url="sqlite:////tmp/x.db", live_timeout=7.5, warm_spark=True, top_k=33)
    env = settings_environment(settings)
    assert env["MOVIEREC_DB_URL"] == "sqlite:////tmp/x.db"
    assert env["MOVIEREC_WARM_SPARK"] == "true" and env["MOVIEREC_LIVE_TIMEOUT"] == "7.5"
    assert from_env(env) == settings


def test_bad_settings_are_refused_before_gunicorn_starts():
    result = serve("--dry-run", "--live-timeout", "soon")
    assert result.returncode != 0
    assert "MOVIEREC_LIVE_TIMEOUT / --live-timeout" in result.stderr


def test_the_metrics_folder_starts_empty(tmp_path):
    from serving.cli import prepare_metrics_dir

    (tmp_path / "counter_123.db").write_bytes(b"stale")
    (tmp_path / "keep.txt").write_text("not ours")
    assert prepare_metrics_dir(str(tmp_path)) == str(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]

