"""gunicorn settings for `movierec serve` (loaded with `-c python:serving.gunicorn_conf`).

The command line that `serving.cli` builds sets bind, workers, threads and timeout; this
file holds what must be code: the Prometheus multiprocess bookkeeping.
"""

import os

# no app import in the master: each worker builds its own app (engine, Spark) after the fork
preload_app = False
# heartbeat files in memory, not on a possibly slow disk
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# gunicorn 25+ opens a control socket (reload, stop workers, shut down) in $HOME by default:
# the API has no shutdown route, and two servers on one machine would fight over the path
control_socket_disable = True
errorlog = "-"
loglevel = "info"


def child_exit(server, worker):
    """A dead worker's live gauges must not linger in the multiprocess files."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
