"""`movierec serve` as a real process on a free port of 127.0.0.1, for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


class Served:
    """gunicorn started through `python -m movierec.cli serve`; stop() ends it (and only it)."""

    def __init__(
        self, db_url: str, workdir: Path, workers: int = 2, env: dict | None = None, extra: list[str] | None = None
    ):
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.metrics_dir = workdir / "metrics"
        self.log_path = workdir / "gunicorn.log"
        command = [
            sys.executable,
            "-m",
            "movierec.cli",
            "serve",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(workers),
            "--metrics-dir",
            str(self.metrics_dir),
            "--db-url",
            db_url,
            *(extra or []),
        ]
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self._log = open(self.log_path, "w")
        # its own process group, so stop() reaches the gunicorn master and its workers only
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = 60) -> Served:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer /healthz in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()
