"""`movierec serve`: the API under gunicorn (or Flask's dev server with --dev).

The command (movierec/cli/serve.py) parses the flags; this is what it does with them.  It
hands the effective settings to gunicorn's workers as MOVIEREC_* variables, so every worker
serves with exactly what the command was given.  Prometheus counters are kept in files (one
fresh folder per start) so that any worker's /metrics adds up all of them.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from movierec.config import Settings, api_key_digests, redact_url, to_env

log = logging.getLogger(__name__)

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_BIND = "127.0.0.1:8000"
DEFAULT_THREADS = 4


def default_workers() -> int:
    """One worker per core, at least 2 (one request never blocks all others), at most 8.

    Not gunicorn's 2×cores+1: the worker class is gthread, so the threads carry the
    concurrency, and a worker that needs live scoring starts a JVM of its own."""
    return max(2, min(8, os.cpu_count() or 1))


def prepare_metrics_dir(folder: str | None) -> str:
    """An empty folder for this server's metric files (stale files would add old counts)."""
    folder = folder or os.environ.get(METRICS_ENV) or tempfile.mkdtemp(prefix="movierec-metrics-")
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return str(path)


def worker_threads(settings: Settings, threads: int = DEFAULT_THREADS) -> int:
    """gunicorn threads per worker: `threads`, raised so that at least FREE_THREADS of them are
    never taken by live calls (at most `live_max_pending` requests of a worker wait for Spark).

    Stored pages, /healthz and /readyz are answered in milliseconds on the free ones while
    live calls wait; with fewer threads than live calls may hold, a burst of deep pages would
    queue every other request behind Spark."""
    from serving.live import FREE_THREADS  # no pyspark at import: serving.live imports it lazily

    needed = settings.live_max_pending + FREE_THREADS
    if threads < needed:
        log.warning(
            "%d threads per worker leave too few for anything but live calls (live_max_pending %d): using %d",
            threads,
            settings.live_max_pending,
            needed,
        )
    return max(threads, needed)


def gunicorn_command(
    settings: Settings, bind: str = DEFAULT_BIND, workers: int | None = None, threads: int = DEFAULT_THREADS
) -> list[str]:
    workers = workers or default_workers()
    threads = worker_threads(settings, threads)
    # a worker busy with a live call for live_timeout seconds must not be killed as stuck
    timeout = int(max(30, settings.live_timeout + 15))
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:serving.gunicorn_conf",
        "--bind",
        bind,
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--worker-class",
        "gthread",
        "--timeout",
        str(timeout),
        "serving.wsgi:app",
    ]


class ServeError(RuntimeError):
    """The server cannot start; the message says why and what to do."""


def serve(
    settings: Settings,
    bind: str = DEFAULT_BIND,
    workers: int | None = None,
    threads: int = DEFAULT_THREADS,
    metrics_dir: str | None = None,
    dev: bool = False,
    dry_run: bool = False,
) -> int:
    """Replace this process with gunicorn serving the API (or run Flask's dev server, or, with
    `dry_run`, only print the gunicorn command)."""
    api_key_digests(settings)  # a bad digest or an unreadable keys file: one line now, not a traceback per worker
    env = {**os.environ, **to_env(settings)}
    if dev:
        os.environ.update(to_env(settings))
        host, _, port = bind.rpartition(":")
        from serving import create_app

        log.warning("Flask's development server: for development only, use gunicorn to serve")
        log.info("serving %s on %s (development server)", redact_url(settings.db_url), bind)
        create_app().run(host=host or "127.0.0.1", port=int(port), threaded=True)
        return 0
    command = gunicorn_command(settings, bind, workers, threads)
    if dry_run:
        print(" ".join(command))
        return 0
    if shutil.which("gunicorn") is None and not _has_module("gunicorn"):
        raise ServeError("gunicorn is not installed: pip install gunicorn, or serve with --dev")
    env[METRICS_ENV] = prepare_metrics_dir(metrics_dir)
    log.info("serving %s on %s: %s", redact_url(settings.db_url), bind, " ".join(command[1:]))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(command[0], command, env)
    return 0  # not reached


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
