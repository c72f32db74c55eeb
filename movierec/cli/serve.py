"""`movierec serve`: the API under gunicorn; serving/cli.py does the serving."""

from __future__ import annotations

import click

from movierec import config
from movierec.cli.common import Failed, store_url

BIND = "127.0.0.1:8000"  # as serving.cli.DEFAULT_BIND (not imported: serving loads Flask)


def _bind(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if value.startswith("unix:"):  # gunicorn's unix socket form
        return value
    host, colon, port = value.rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r} is not host:port (e.g. {BIND}, 0.0.0.0:8000)")
    return value


@click.command(
    short_help="serve the API under gunicorn",
    help="Serve the API under gunicorn (gthread workers); its start line names the store, without its password.",
)
@click.option("--bind", default=BIND, show_default=True, callback=_bind, help="host:port to listen on")
@click.option("--workers", type=click.IntRange(min=1), help="gunicorn worker processes (default: one per core, 2..8)")
@click.option("--threads", type=click.IntRange(min=1), default=4, show_default=True, help="threads per worker")
@click.option(
    "--metrics-dir",
    help="folder for Prometheus multiprocess files, emptied at start "
    "(default: $PROMETHEUS_MULTIPROC_DIR or a fresh temporary folder)",
)
@click.option("--dev", is_flag=True, help="Flask's development server in one process instead of gunicorn")
@click.option("--dry-run", is_flag=True, help="print the gunicorn command and exit")
@config.setting_options(*config.SERVE_SETTINGS)
def serve(
    bind: str,
    workers: int | None,
    threads: int,
    metrics_dir: str | None,
    dev: bool,
    dry_run: bool,
    settings: config.Settings,
) -> int:
    store_url(settings.db_url)  # a URL no driver can open fails here, not in every worker
    if dev and bind.startswith("unix:"):
        raise click.BadParameter("the development server listens on host:port only", param_hint="--bind")
    from serving.cli import ServeError
    from serving.cli import serve as run

    try:
        return run(settings, bind, workers, threads, metrics_dir, dev=dev, dry_run=dry_run)
    except ServeError as err:
        raise Failed(str(err)) from None
