"""`movierec serve`: the API under gunicorn (or Flask's dev server with --dev).

Every setting can be given as a flag or a MOVIEREC_* variable; the command hands the
effective settings to gunicorn's workers as MOVIEREC_* variables, so every worker serves
with exactly what this command was given.  Prometheus counters are kept in files (one
fresh folder per start) so that any worker's /metrics adds up all of them.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from movierec.config import Settings, add_flags, env_name, from_args

log = logging.getLogger(__name__)

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def default_workers() -> int:
    """One worker per core, at least 2 (one request never blocks all others), at most 8.

    Not gunicorn's 2×cores+1: the worker class is gthread, so the threads carry the
    concurrency, and a worker that needs live scoring starts a JVM of its own."""
    return max(2, min(8, os.cpu_count() or 1))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bind", default="127.0.0.1:8000", help="host:port to listen on (default %(default)s)")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"gunicorn worker processes (default: one per core, 2..8; here {default_workers()})")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (gthread; default %(default)s)")
    parser.add_argument("--metrics-dir", default=None,
                        help=f"folder for Prometheus multiprocess files (default ${METRICS_ENV} or a fresh temp folder); "
                             "emptied at start")
    parser.add_argument("--dev", action="store_true",
                        help="Flask's development server in one process instead of gunicorn (development only)")
    parser.add_argument("--dry-run", action="store_true", help="print the gunicorn command and exit")
    add_flags(parser)


def settings_environment(settings: Settings) -> dict[str, str]:
    """MOVIEREC_* for every setting, as the workers' create_app() will read them."""
    env = {}
    for f in dataclasses.fields(Settings):
        value = getattr(settings, f.name)
        env[env_name(f.name)] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return env


def prepare_metrics_dir(folder: str | None) -> str:
    """An empty folder for this server's metric files (stale files would add old counts)."""
    folder = folder or os.environ.get(METRICS_ENV) or tempfile.mkdtemp(prefix="movierec-metrics-")
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return str(path)


def gunicorn_command(args: argparse.Namespace, settings: Settings) -> list[str]:
    workers = args.workers or default_workers()
    if workers < 1 or args.threads < 1:
        raise SystemExit("--workers and --threads must be at least 1")
    # a worker busy with a live call for live_timeout seconds must not be killed as stuck
    timeout = int(max(30, settings.live_timeout + 15))
    return [sys.executable, "-m", "gunicorn", "--config", "python:serving.gunicorn_conf",
            "--bind", args.bind, "--workers", str(workers), "--threads", str(args.threads),
            "--worker-class", "gthread", "--timeout", str(timeout), "serving.wsgi:app"]


def run_cli(args: argparse.Namespace) -> int:
    settings = from_args(args)
    env = {**os.environ, **settings_environment(settings)}
    if args.dev:
        os.environ.update(settings_environment(settings))
        host, _, port = args.bind.rpartition(":")
        from serving import create_app

        log.warning("Flask's development server: for development only, use gunicorn to serve")
        create_app().run(host=host or "127.0.0.1", port=int(port), threaded=True)
        return 0
    command = gunicorn_command(args, settings)
    if args.dry_run:
        print(" ".join(command))
        return 0
    env[METRICS_ENV] = prepare_metrics_dir(args.metrics_dir)
    if shutil.which("gunicorn") is None and not _has_module("gunicorn"):
        raise SystemExit("gunicorn is not installed (pip install gunicorn)")
    log.info("serving %s on %s: %s", settings.db_url, args.bind, " ".join(command[1:]))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(command[0], command, env)
    return 0   # not reached


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
