"""A throwaway PostgreSQL server from the machine's own binaries, for tests and benchmarks.

    with PostgresServer() as server:
        url = server.create_database("movierec")    # postgresql+psycopg://...

`initdb` and `pg_ctl` refuse to run as root, so as root the server runs as the `postgres`
user on a data directory that user owns (a fresh folder under the system temp dir: pytest's
own temp folders are private to root).  It listens on a free port of 127.0.0.1 only, with
its unix socket in its own folder, trusts local connections, and is stopped and removed
on `stop()`, on leaving the `with` block, or at interpreter exit.

For fault tests: `shut_down()` stops the server but keeps its data, `restart()` starts it
again on the same port; `freeze()` sends SIGSTOP to the postmaster and every backend (what a
stuck disk or a hung host looks like to a client: the kernel still accepts and ACKs TCP, no
answer ever comes), `thaw()` sends SIGCONT.
"""

from __future__ import annotations

import atexit
import glob
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from tests.ports import free_port

log = logging.getLogger(__name__)

BIN_ENV = "MOVIEREC_PG_BIN"
SUPERUSER = "postgres"
# a test server trades durability for speed; a benchmark asks for the real thing
FAST_OPTIONS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL binaries are not on this machine."""


class PostgresStartError(RuntimeError):
    """initdb or pg_ctl failed; the message carries their output."""


def find_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: $MOVIEREC_PG_BIN, Debian's newest, or the PATH."""
    candidates = []
    if os.environ.get(BIN_ENV):
        candidates.append(os.environ[BIN_ENV])
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for folder in candidates:
        if all((Path(folder) / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


def _version_key(path: str) -> int:
    match = re.search(r"/(\d+)/bin$", path)
    return int(match.group(1)) if match else 0


class PostgresServer:
    """One PostgreSQL cluster in a temp folder; `start()` then `create_database(name)`."""

    def __init__(self, bin_dir: Path | None = None, fast: bool = True):
        self.bin_dir = bin_dir or find_bin_dir()
        if self.bin_dir is None:
            raise PostgresUnavailable(
                f"PostgreSQL binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on PATH; "
                f"install postgresql or set {BIN_ENV}"
            )
        self.fast = fast
        self.as_root = os.geteuid() == 0
        self.root: Path | None = None
        self.port: int | None = None
        self.running = False
        self._flags = ""
        self.frozen: list[int] = []

    # paths inside the temp folder
    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        """Run a PostgreSQL binary, as the postgres user when we are root."""
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        result = subprocess.run(command, cwd=self.root, capture_output=True, text=True)
        if result.returncode != 0:
            raise PostgresStartError(
                f"{' '.join(command)} exited with {result.returncode}:\n"
                f"{result.stdout}{result.stderr}{self._log_tail()}"
            )
        return result

    def _log_tail(self) -> str:
        if self.root and self.log_file.exists():
            return "\nserver log:\n" + "\n".join(self.log_file.read_text(errors="replace").splitlines()[-20:])
        return ""

    def start(self, attempts: int = 3) -> PostgresServer:
        self.root = Path(tempfile.mkdtemp(prefix="movierec-pg-"))
        if self.as_root:
            shutil.chown(self.root, SUPERUSER, SUPERUSER)
        atexit.register(self.stop)
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )
        for attempt in range(attempts):
            # another process may take the port between free_port() and the server's bind
            self.port = free_port()
            options = {
                "listen_addresses": "127.0.0.1",
                "port": str(self.port),
                "unix_socket_directories": str(self.root),
                **(FAST_OPTIONS if self.fast else {}),
            }
            self._flags = " ".join(f"-c {k}={v}" for k, v in options.items())
            try:
                self._pg_ctl_start()
            except PostgresStartError:
                if attempt == attempts - 1:
                    raise
                log.warning("PostgreSQL did not start on port %s, trying another", self.port)
                continue
            self.running = True
            log.info("PostgreSQL %s running on 127.0.0.1:%s (data in %s)", self.bin_dir, self.port, self.data_dir)
            return self
        raise AssertionError("unreachable")

    def _pg_ctl_start(self) -> None:
        self._run(
            "pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60", "-o", self._flags
        )

    def shut_down(self) -> None:
        """Stop the server (fast shutdown: open connections are ended) but keep its data for `restart()`."""
        self.thaw()
        if self.running:
            self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60")
            self.running = False

    def restart(self) -> None:
        """Start a server stopped by `shut_down()` again, on the same port with the same settings."""
        if not self.running:
            self._pg_ctl_start()
            self.running = True

    def pids(self) -> list[int]:
        """The postmaster's pid (from postmaster.pid) and its children's (from /proc), postmaster first."""
        postmaster = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # "pid (comm) state ppid ...": comm may hold spaces, so split after its closing parenthesis
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # the process ended while we looked
                continue
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
        return [postmaster, *sorted(children)]

    def freeze(self) -> None:
        """SIGSTOP the postmaster, then every backend: nothing answers, connections stay open."""
        if self.frozen:
            return
        postmaster = self.pids()[0]
        os.kill(postmaster, signal.SIGSTOP)  # first, so it forks no backend we would miss
        self.frozen = [postmaster]
        for pid in self.pids()[1:]:
            try:
                os.kill(pid, signal.SIGSTOP)
                self.frozen.append(pid)
            except ProcessLookupError:
                pass

    def thaw(self) -> None:
        """SIGCONT every process `freeze()` stopped; safe to call when nothing is frozen."""
        for pid in self.frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.frozen = []

    def stop(self) -> None:
        """Stop the server and remove its folder; safe to call twice."""
        self.thaw()
        if self.running:
            try:
                self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60")
            except PostgresStartError as err:
                log.error("could not stop PostgreSQL: %s", err)
            self.running = False
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        atexit.unregister(self.stop)

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    # databases
    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def _admin(self):
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True)

    def create_database(self, name: str) -> str:
        """Create an empty database (dropping one of that name) and return its SQLAlchemy URL."""
        _check_name(name)
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        _check_name(name)
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"database name {name!r}: use lower-case letters, digits and _")
