"""`movierec serve`: the gunicorn command it builds and the settings it hands the workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from movierec.config import from_env

ROOT = Path(__file__).resolve().parents[2]


def serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "movierec.cli", "serve", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_dry_run_prints_the_gunicorn_command():
    result = serve("--dry-run", "--bind", "127.0.0.1:9999", "--workers", "3", "--threads", "6", "--live-timeout", "40")
    assert result.returncode == 0, result.stderr
    command = result.stdout.split()
    assert command[1:3] == ["-m", "gunicorn"]
    assert command[-1] == "serving.wsgi:app"
    pairs = dict(zip(command, command[1:]))
    assert pairs["--bind"] == "127.0.0.1:9999" and pairs["--workers"] == "3" and pairs["--threads"] == "6"
    assert pairs["--worker-class"] == "gthread"
    assert pairs["--timeout"] == "55"  # live_timeout 40 + 15: a live call never gets its worker killed
    assert pairs["--config"] == "python:serving.gunicorn_conf"


def test_threads_keep_two_free_beside_the_live_calls():
    # live calls hold at most live_max_pending threads of a worker: two more answer everything else
    result = serve("--dry-run", "--threads", "2", "--live-max-pending", "3")
    assert result.returncode == 0, result.stderr
    command = result.stdout.split()
    assert dict(zip(command, command[1:]))["--threads"] == "5"
    assert "using 5" in result.stderr


def test_default_worker_count_is_one_per_core_within_2_to_8():
    from serving.cli import default_workers

    assert default_workers() == max(2, min(8, os.cpu_count()))


def test_workers_get_exactly_the_commands_settings():
    from movierec.config import to_env

    settings = from_env({}, db_url="sqlite:////tmp/x.db", live_timeout=7.5, warm_spark=True, top_k=33)
    env = to_env(settings)
    assert env["MOVIEREC_DB_URL"] == "sqlite:////tmp/x.db"
    assert env["MOVIEREC_WARM_SPARK"] == "true" and env["MOVIEREC_LIVE_TIMEOUT"] == "7.5"
    assert from_env(env) == settings


@pytest.mark.parametrize(
    "args, message",
    [
        (["--live-timeout", "soon"], "MOVIEREC_LIVE_TIMEOUT / --live-timeout: could not convert"),
        (["--workers", "0"], "--workers"),
        (["--bind", "localhost"], "is not host:port"),
        (["--db-url", "mysql://movierec:pw@db/movierec"], "mysql is not supported"),
        (["--top-k", "5"], "No such option '--top-k'"),  # the API reads the run's own model settings
    ],
)
def test_bad_arguments_are_refused_in_one_line_before_gunicorn_starts(args, message):
    result = serve("--dry-run", *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("movierec serve: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_the_start_line_names_the_store_without_its_password():
    """A real start under gunicorn: the first line names the store, password hidden; then it is stopped."""
    import threading

    from tests.ports import free_port

    url = f"postgresql+psycopg://movierec:s3cret-pw@127.0.0.1:{free_port()}/movierec"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "movierec.cli",
            "serve",
            "--bind",
            f"127.0.0.1:{free_port()}",
            "--workers",
            "1",
            "--db-url",
            url,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    stop = lambda: os.killpg(process.pid, signal.SIGKILL) if process.poll() is None else None
    deadline = threading.Timer(60, stop)
    deadline.start()
    seen = []
    try:
        for line in process.stderr:
            seen.append(line)
            if "Booting worker" in line or len(seen) > 200:
                break
    finally:
        deadline.cancel()
        stop()
        out, err = process.communicate()
    err = "".join(seen) + err
    start = [line for line in err.splitlines() if "serving.cli: serving " in line]
    assert start and "serving postgresql+psycopg://movierec:***@127.0.0.1:" in start[0], err[-2000:]
    assert "gunicorn" in start[0]
    assert "s3cret-pw" not in out + err
