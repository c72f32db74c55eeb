"""Parsing the DAG file is cheap and has no side effects.

The DAG processor re-parses the file every few seconds, so its top level must only build
the DAG: no pyspark, no database, no network.  Each check runs in a fresh interpreter
(nothing cached from other tests) that has imported Airflow first, as the DAG processor
has when it parses a file, and then imports the DAG file under an audit hook.

The time bound is on the CPU time of that import, not on wall-clock time: CPU time does
not grow when other processes (Spark jobs of other tests) compete for the two cores, so
a generous 1 s bound holds on a busy machine and still catches a heavy import (pyspark
alone costs about a second of CPU).
"""

from __future__ import annotations

import json
import subprocess
import sys

from dag_helpers import DAG_FILE, base_env

PARSE_CPU_BOUND_S = 1.0

PROBE = r"""
import importlib.util, json, sys, time
import airflow.sdk  # loaded before any DAG file, as in the DAG processor
import croniter     # Airflow's cron parser: its import runs `file` on the interpreter (platform.architecture)

WATCHED = {"socket.connect", "socket.getaddrinfo", "sqlite3.connect", "subprocess.Popen", "os.system",
           "os.exec", "os.posix_spawn", "urllib.Request"}
seen = []
sys.addaudithook(lambda event, args: seen.append(event) if event in WATCHED else None)

cpu0, wall0 = time.process_time(), time.perf_counter()
spec = importlib.util.spec_from_file_location("movie_recommender", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0

print(json.dumps({
    "cpu": cpu, "wall": wall, "events": sorted(set(seen)), "tasks": len(module.dag.tasks),
    "heavy": sorted(m for m in sys.modules if m.split(".")[0] in {"pyspark", "py4j", "pandas", "sqlalchemy_utils"}),
}))
"""


def parse_in_fresh_interpreter() -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(DAG_FILE)], env=base_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_dag_file_parses_fast_without_pyspark_database_or_network():
    result = parse_in_fresh_interpreter()
    assert result["tasks"] == 7
    assert result["heavy"] == [], "the DAG file must not import pyspark (or other heavy modules)"
    assert result["events"] == [], f"the DAG file touched the network, a database or a process: {result['events']}"
    assert result["cpu"] < PARSE_CPU_BOUND_S, f"parsing took {result['cpu']:.2f} s of CPU (wall {result['wall']:.2f} s)"


def test_the_probe_sees_a_slow_or_heavy_import(tmp_path):
    """The probe itself can fail: a DAG file that imports pyspark and opens a socket is caught."""
    bad = tmp_path / "bad_dag.py"
    bad.write_text(
        "import socket, pyspark.sql\n"
        "try:\n    socket.create_connection(('127.0.0.1', 9), timeout=0.2)\nexcept OSError:\n    pass\n"
        + DAG_FILE.read_text().replace("from __future__ import annotations", "")
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(bad)], env=base_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "pyspark" in {m.split(".")[0] for m in result["heavy"]}
    assert "socket.connect" in result["events"]
