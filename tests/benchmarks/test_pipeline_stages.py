"""benchmarks/pipeline_stages.py counts the CPU of a process tree: the JVM's Python workers too."""

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import pipeline_stages  # noqa: E402

# a child that forks a grandchild; the grandchild burns about a second of CPU, then both wait
TREE = """
import os, sys, time
if os.fork() == 0:
    end = time.process_time() + 1.0
    while time.process_time() < end:
        pass
    print("burnt", flush=True)
    time.sleep(60)
    os._exit(0)
time.sleep(60)
"""


def test_the_cpu_of_a_live_grandchild_is_counted():
    child = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "burnt"
        time.sleep(0.1)
        own = sum(int(x) for x in pipeline_stages._stat(child.pid)[11:15])
        assert len(pipeline_stages._descendants(child.pid)) == 1
        assert pipeline_stages.tree_cpu_seconds(child.pid) >= 0.9
        assert own < 50  # ticks: the child itself only slept
    finally:
        subprocess.run(["pkill", "-KILL", "-P", str(child.pid)], check=False)
        child.kill()
        child.wait()
