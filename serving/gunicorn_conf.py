"""gunicorn settings for `movierec serve` (loaded with `-c python:serving.gunicorn_conf`).

The command line that `serving.cli` builds sets bind, workers, threads and timeout; this
file holds what must be code: the Prometheus multiprocess bookkeeping, and the API's JSON
error body for the requests gunicorn refuses itself.
"""

import json
import os

from gunicorn import util

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


def write_json_error(sock, status_int, reason, mesg):
    """gunicorn's own refusals (414 request line too long, 431 headers too large, 400 malformed
    request, ...) in the API's error body, {"status", "error", "message"}, instead of its HTML page.

    gunicorn has no setting for its error pages: every worker class answers them through
    `gunicorn.util.write_error(sock, status_int, reason, mesg)` (unchanged from 19.x to 27.x),
    so this replaces that function; tests/serving/test_fuzz.py sends such requests to a real
    gunicorn and fails if an answer is not this body."""
    body = json.dumps({"status": status_int, "error": reason, "message": mesg}).encode("ascii")
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


util.write_error = write_json_error
