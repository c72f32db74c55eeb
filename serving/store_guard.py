"""A network store that stops answering costs a request at most about `store_timeout`, never a hang.

Two parts, both on the engine (serving/store.py builds it), so every user of the app's
engine is covered without a line in the routes: the API's views, /readyz, /metrics'
scrape of the active run, the live fallback's look-up of a run's settings.

- A deadline on every use of a pooled connection: from the pool's checkout (where this
  module pings the connection, instead of SQLAlchemy's `pool_pre_ping`, so the ping is
  under the deadline too) to its checkin (which rolls back: also a round trip).  A
  watchdog thread shuts down the socket of a connection whose deadline passed; the
  thread that uses it then gets "server closed the connection" from libpq at once, in
  its own thread, and SQLAlchemy throws that connection away as it does for any lost
  connection.  (Why not the usual knobs: with the server's processes stopped, the kernel
  still accepts and ACKs TCP, so TCP keepalives and `tcp_user_timeout` never fire, and
  the server's own `statement_timeout` cannot run; libpq has no client-side query
  timeout; psycopg's `cancel()` needs the frozen server to answer.  `shutdown(2)` rather
  than closing the connection from the watchdog: psycopg connections are not safe to
  close from another thread while in use, and closing the file descriptor would let its
  number be reused under libpq's feet; the watchdog works on a dup of the descriptor
  after checking it is still the same socket, so it never touches anyone else's.)
- A breaker: a connection that could not be made or a deadline that passed marks the store
  down, and from then on the engine refuses at once (`StoreUnavailable`, a 503 with
  Retry-After) instead of making every request wait its own timeout; one probe thread per
  process, off the request threads, tries the store every `PROBE_INTERVAL` s (its tries
  bounded by the same deadline and by libpq's `connect_timeout`) and closes the breaker
  as soon as one answers, so the API recovers without a restart.

Connecting is bounded by libpq's `connect_timeout` (psycopg applies it client-side to the
whole start-up: TCP connect, TLS, authentication), but its minimum is 2 s: with a shorter
store timeout the caller waits for a new connection on a thread of its own, at most the
store timeout (`_connect_within`); measured, the first concurrent requests to a frozen
store took 2.0 s with libpq's timeout alone, 1.0 s this way.  Once the breaker is open,
nothing connects but the probe.  Measured figures: serving/README.md, "Faults".

SQLite is left alone (serving/store.py does not guard it): it is a file in the process,
and its locks already wait at most `SQLITE_BUSY_TIMEOUT_MS`.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Flask

from serving.errors import ApiError, error_response

log = logging.getLogger(__name__)

RETRY_AFTER = 5  # as the app's other "store unreachable" answers (serving/errors.py, /readyz)
PROBE_INTERVAL = 0.5  # seconds between the probe's tries while the store is down
WATCHDOG_IDLE = 10.0  # the watchdog thread ends after this long with nothing to watch
LIBPQ_MIN_CONNECT_TIMEOUT = 2  # libpq (and psycopg) raise any smaller connect_timeout to 2 s


class StoreUnavailable(ApiError):
    """The store is down (or did not answer in time): a 503 with Retry-After, rendered by the
    app's ApiError handler like any other API error."""

    def __init__(self, message: str):
        super().__init__(503, message, {"Retry-After": str(RETRY_AFTER)})


@dataclass
class _Armed:
    deadline: float
    fd: int
    ino: tuple[int, int]  # (st_dev, st_ino) of the socket when armed: it is still ours if they match


class StoreGuard:
    """The deadline and the breaker of one engine (module docstring)."""

    def __init__(self, engine: sa.Engine, timeout: float):
        self.engine = engine
        self.timeout = timeout
        self._error = engine.dialect.loaded_dbapi.Error
        self._operational = engine.dialect.loaded_dbapi.OperationalError
        self._cond = threading.Condition()
        self._armed: dict[Any, _Armed] = {}  # connection record -> its deadline
        self._expired: set[Any] = set()  # records whose deadline passed while checked out
        self._fresh: set[int] = set()  # id() of DBAPI connections not yet checked out (no ping needed)
        self._watchdog: threading.Thread | None = None
        self._down: str | None = None  # why the store is down; None while it answers
        self._probe: threading.Thread | None = None
        self._local = threading.local()  # .probing (the probe's own thread), .limit (a longer deadline)
        sa.event.listen(engine, "do_connect", self._connect)
        sa.event.listen(engine, "connect", self._connected)
        sa.event.listen(engine, "checkout", self._checkout)
        sa.event.listen(engine, "checkin", self._release)
        for name in ("invalidate", "soft_invalidate", "close", "detach"):
            sa.event.listen(engine, name, self._release)

    # ------------------------------------------------------------ the breaker

    @property
    def down(self) -> str | None:
        """Why the store is considered down, or None while it answers."""
        return self._down

    def check(self) -> None:
        """Refuse at once while the store is down (the probe's own tries pass)."""
        reason = self._down
        if reason is not None and not getattr(self._local, "probing", False):
            raise StoreUnavailable(f"the store is unreachable ({reason}); trying it again in the background")

    def trip(self, reason: str) -> None:
        with self._cond:
            if self._down is None:
                log.warning("the store is down (%s): answering 503 until a probe sees it back", reason)
            self._down = reason
            if self._probe is None:
                self._probe = threading.Thread(
                    target=_probe_loop, args=(weakref.ref(self),), name="movierec-store-probe", daemon=True
                )
                self._probe.start()

    def _probe_once(self) -> bool:
        self._local.probing = True
        try:
            with self.engine.connect() as conn:  # the checkout pings the connection under the deadline
                conn.exec_driver_sql("SELECT 1")
        except Exception as err:  # still down: the next try after the interval
            log.debug("store probe: %s", err)
            return False
        with self._cond:
            self._down = None
            self._probe = None
        log.warning("the store answers again: serving from it")
        return True

    # ------------------------------------------------------------ pool events

    def _connect(self, dialect: sa.Dialect, _record: Any, cargs: tuple, cparams: dict) -> Any:
        """do_connect: refuse while down; a connection that cannot be made in time trips the breaker."""
        self.check()
        try:
            return self._connect_within(dialect, cargs, cparams)
        except self._operational as err:
            self.trip(f"connecting failed: {type(err).__name__}")
            raise

    def _connect_within(self, dialect: sa.Dialect, cargs: tuple, cparams: dict) -> Any:
        """Connect, waiting at most the deadline although libpq's own timeout is at least 2 s.

        Below that, the connection is made on a short-lived thread of its own and the caller
        waits `timeout` for it; a connection that comes too late is closed by that thread
        (the caller has given up on it), one that never comes ends with libpq's timeout.
        A thread per new connection costs about 0.1 ms, against the milliseconds of a
        connection start-up, and pooled connections are reused."""
        limit = getattr(self._local, "limit", None) or self.timeout
        if limit >= LIBPQ_MIN_CONNECT_TIMEOUT:
            return dialect.connect(*cargs, **cparams)
        outcome: dict[str, Any] = {}
        lock = threading.Lock()
        done = threading.Event()

        def attempt() -> None:
            try:
                connection = dialect.connect(*cargs, **cparams)
            except BaseException as err:  # handed to the caller, if it still waits
                outcome["error"] = err
            else:
                with lock:
                    if outcome.get("abandoned"):
                        connection.close()
                        return
                    outcome["connection"] = connection
            finally:
                done.set()

        threading.Thread(target=attempt, name="movierec-store-connect", daemon=True).start()
        done.wait(limit)
        with lock:
            if "connection" not in outcome and "error" not in outcome:
                outcome["abandoned"] = True
                self.trip(f"no connection within {limit:g} s")
                raise StoreUnavailable(f"the store did not answer within {limit:g} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["connection"]

    def _connected(self, dbapi_connection: Any, _record: Any) -> None:
        self._fresh.add(id(dbapi_connection))

    def _checkout(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        """Arm the deadline, then ping (SQLAlchemy's pre-ping would run before any event, unbounded)."""
        self.check()
        self._arm(record, dbapi_connection)
        if id(dbapi_connection) in self._fresh:
            self._fresh.discard(id(dbapi_connection))
            return
        try:
            self.engine.dialect.do_ping(dbapi_connection)
        except self._error as err:
            if record in self._expired:
                raise StoreUnavailable(f"the store did not answer within {self.timeout:g} s") from None
            # lost (the server restarted, or ended it): the pool replaces it, as pre-ping would
            raise sa.exc.DisconnectionError(str(err)) from err

    def _release(self, dbapi_connection: Any, record: Any = None, *_: Any) -> None:
        """checkin, invalidate, close, detach: the connection is no longer in use (or about to be closed)."""
        if dbapi_connection is not None:
            self._fresh.discard(id(dbapi_connection))
        if record is None:
            return
        with self._cond:
            self._armed.pop(record, None)
            self._expired.discard(record)

    # ------------------------------------------------------------ the deadline

    def _arm(self, record: Any, dbapi_connection: Any) -> None:
        try:
            fd = dbapi_connection.fileno()
            stat = os.fstat(fd)
        except (self._error, OSError) as err:  # a connection already lost: the pool replaces it
            raise sa.exc.DisconnectionError(str(err)) from err
        limit = getattr(self._local, "limit", None) or self.timeout
        with self._cond:
            self._expired.discard(record)
            self._armed[record] = _Armed(time.monotonic() + limit, fd, (stat.st_dev, stat.st_ino))
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._watch, name="movierec-store-deadline", daemon=True)
                self._watchdog.start()
            self._cond.notify()

    def _watch(self) -> None:
        with self._cond:
            while True:
                if not self._armed:
                    self._cond.wait(WATCHDOG_IDLE)
                    if not self._armed:
                        self._watchdog = None
                        return
                    continue
                now = time.monotonic()
                due = [record for record, armed in self._armed.items() if armed.deadline <= now]
                if not due:
                    self._cond.wait(min(armed.deadline for armed in self._armed.values()) - now)
                    continue
                for record in due:
                    armed = self._armed.pop(record)
                    self._expired.add(record)
                    _interrupt(armed.fd, armed.ino)
                # set under the lock already held: trip() takes it again (a Condition's lock is an RLock)
                self.trip(f"no answer within {self.timeout:g} s")

    def bounded_by(self, seconds: float) -> _Limit:
        """`with guard.bounded_by(30): ...`: this thread's store uses get a longer deadline
        (creating the tables at boot may wait for another worker's advisory lock)."""
        return _Limit(self._local, seconds)


class _Limit:
    def __init__(self, local: threading.local, seconds: float):
        self.local, self.seconds = local, seconds

    def __enter__(self) -> None:
        self.local.limit = self.seconds

    def __exit__(self, *exc: Any) -> None:
        self.local.limit = None


def _probe_loop(ref: weakref.ReferenceType[StoreGuard]) -> None:
    """Try the store every PROBE_INTERVAL until it answers; ends, too, when its app is gone
    (the thread keeps only a weak reference between tries, so a dropped app is collected)."""
    while True:
        time.sleep(PROBE_INTERVAL)
        guard = ref()
        if guard is None or guard._probe_once():
            return
        del guard


def _interrupt(fd: int, ino: tuple[int, int]) -> None:
    """Shut down the socket behind `fd`, if `fd` still names the socket that was armed."""
    try:
        dup = os.dup(fd)  # ours: the socket cannot be closed and its number reused while we look
    except OSError:
        return
    try:
        stat = os.fstat(dup)
        if (stat.st_dev, stat.st_ino) != ino:
            return  # libpq closed it and the number now names something else
        with socket.socket(fileno=dup) as sock:
            dup = -1  # the socket object closes it
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    finally:
        if dup >= 0:
            os.close(dup)


def connect_timeout(store_timeout: float) -> int:
    """libpq's connect_timeout for a store timeout: whole seconds, at least libpq's 2."""
    return max(LIBPQ_MIN_CONNECT_TIMEOUT, math.ceil(store_timeout))


def register_error_handlers(app: Flask) -> None:
    """The pool's own wait for a free connection (`pool_timeout`) ends in sa.exc.TimeoutError,
    which is not a DBAPIError: a 503 like the store's other failures, not a 500."""

    @app.errorhandler(sa.exc.TimeoutError)
    def _pool_timeout(err: sa.exc.TimeoutError):
        log.warning("no free store connection: %s", err)
        return error_response(503, "the store is busy: no free connection", {"Retry-After": str(RETRY_AFTER)})
