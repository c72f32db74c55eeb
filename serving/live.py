"""The live-Spark fallback: scores what the store does not hold, with the batch's own code.

One `LiveScorer` per serving process (gunicorn worker).  It owns one SparkSession, built
with `movierec.spark.session.build_session` the first time it is needed (or at boot when
`settings.warm_spark`), and the active run's saved models (`movierec.ranking.online.RunModels`),
reloaded when the caller names another run: the API resolves the active run from the
store on every request, so the fallback follows a publish or a rollback by itself.

Every call runs on the scorer's one worker thread (its own pool: a request thread only
waits), and the caller waits at most `settings.live_timeout` seconds in all, counted from
when its request reached the live path (`deadline`), the wait in the queue included.  At
most `settings.live_max_pending` calls wait or run at once in one process; one more is
refused at once with `LiveBusy`, so live requests never hold more than that many of the
worker's gunicorn threads and stored pages and health checks keep the rest (serving/cli.py
keeps at least `FREE_THREADS` of them).  A call keeps its place until its work is done or
dropped from the queue, so a time-out does not let in a new call behind work still running.

On a time-out the call's work is dropped if still queued, or its Spark job group is
cancelled, the jobs it has not started yet included (starting Spark and loading the models
go on: they serve the calls after it), and `LiveTimeout` (answered as 503 with Retry-After)
is raised; `LiveUnavailable` when Spark cannot start (then new calls fail at once for
`FAILURE_BACKOFF` seconds instead of retrying a JVM launch on every request).  One process
never runs two Spark scorings at once, and nobody waits longer than the time-out.

This module imports no pyspark at import time; the API imports it only when a request
needs live scoring.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from movierec.config import MODEL_SETTINGS, Settings

log = logging.getLogger(__name__)

# seconds a client is asked to wait after a time-out, and after Spark failed to start
TIMEOUT_RETRY_AFTER = 10
FAILURE_BACKOFF = 30
# seconds a client is asked to wait when live_max_pending calls are in flight already: about
# one warm deep-list call, after which a place is likely free again
BUSY_RETRY_AFTER = 5
# gunicorn threads per worker kept for everything but live calls (serving/cli.py)
FREE_THREADS = 2


class LiveUnavailable(RuntimeError):
    """Live scoring cannot answer now; try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class LiveTimeout(LiveUnavailable):
    """The call took longer than settings.live_timeout."""


class LiveBusy(LiveUnavailable):
    """settings.live_max_pending calls wait or run in this process already: refused at once."""


class LiveBadInput(ValueError):
    """The models cannot score what was asked (a movie they never saw, given no genres)."""


# the settings a run's models score with, taken from the run's own parameters (runs.params) when
# its models load: its model settings (movierec.config marks each), except the data directory,
# which the live path never reads (this process keeps its own)
RUN_SETTINGS = frozenset(MODEL_SETTINGS) - {"data_dir"}


def settings_for_run(settings: Settings, run_params: dict[str, Any] | None) -> Settings:
    """This process's settings with the run's model settings (weights, candidates ...) laid over.

    A live score must be the one the batch would have given with that run's parameters,
    whatever the serving process was started with."""
    changes = {k: v for k, v in (run_params or {}).items() if k in RUN_SETTINGS and getattr(settings, k) != v}
    if changes:
        log.info("live fallback: using the run's own %s", ", ".join(f"{k}={v}" for k, v in sorted(changes.items())))
    return settings.replace(**changes) if changes else settings


class LiveScorer:
    def __init__(self, settings: Settings, run_params: Callable[[str], dict[str, Any] | None] | None = None):
        self.settings = settings
        self._run_params = run_params or (lambda run_id: None)
        self.timeout = settings.live_timeout
        self.max_pending = settings.live_max_pending
        self._pending = 0  # admitted calls whose work is queued or running (guarded by _lock)
        self._local = threading.local()  # the calling thread's deadline, set by `deadline`
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="movierec-live")
        self._spark = None
        self._models: tuple[str, Any] | None = None  # (run id, RunModels)
        self._failed_until = 0.0
        self._failure = ""
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ public calls

    def warm(self, run_id: str | None = None):
        """Start the session (and load `run_id`'s models) in the background; returns the future."""
        return self._executor.submit(self._warm, run_id)

    def recommend(
        self, run_id: str, user_id: int, k: int, feedback: list[tuple[int, float]] | None = None
    ) -> list[dict[str, Any]]:
        """The user's top k (rank, movie_id, score, cf_score, cb_score), rated movies excluded;
        with `feedback` (ratings given since the run, oldest first) the list for the user's
        ratings with them (movierec.ranking.online.RunModels.user_state)."""
        # on the driver only: no Spark job to cancel, so no job group to set (a py4j round trip)
        return self._call(lambda models: models.recommend(user_id, k, feedback or ()), run_id, spark_jobs=False)

    def score(
        self, run_id: str, user_id: int, movie_ids: list[int], genres: dict[int, list[str]] | None = None
    ) -> list[dict[str, Any]]:
        """One dict (movie_id, score, cf_score, cb_score) per movie."""
        return self._call(lambda models: models.score(user_id, movie_ids, genres or None), run_id)

    def genres(self, run_id: str) -> set[str]:
        """The genre names the run's content model knows."""
        return self._call(lambda models: set(models.genres), run_id)

    @contextlib.contextmanager
    def deadline(self, at: float) -> Iterator[None]:
        """Calls made in this block by this thread answer by time.monotonic() `at` at the latest.

        The API opens it when a request reaches the live path, so the time-out counts from
        there; a call outside any block has `live_timeout` from when it is made."""
        previous = getattr(self._local, "deadline", None)
        self._local.deadline = at
        try:
            yield
        finally:
            self._local.deadline = previous

    @property
    def started(self) -> bool:
        return self._spark is not None

    @property
    def pending(self) -> int:
        """Calls of this process whose work is queued or running now."""
        return self._pending

    @property
    def loaded_run(self) -> str | None:
        return self._models[0] if self._models else None

    # ------------------------------------------------------------ machinery

    def _call(self, work: Callable[[Any], Any], run_id: str, spark_jobs: bool = True):
        """`work(models)` on the scorer's thread, within the caller's deadline; `spark_jobs`: it
        may start Spark jobs, which are then run in a job group of their own and cancelled on a
        time-out (a call on the driver only just ends, milliseconds later)."""
        now = time.monotonic()
        if now < self._failed_until:
            raise LiveUnavailable(
                f"live scoring is unavailable: {self._failure}", retry_after=int(self._failed_until - now) + 1
            )
        deadline = getattr(self._local, "deadline", None) or now + self.timeout
        with self._lock:
            if self._pending >= self.max_pending:
                raise LiveBusy(
                    f"live scoring is busy: {self._pending} live calls wait or run in this worker "
                    f"(live_max_pending {self.max_pending}); try again shortly",
                    retry_after=BUSY_RETRY_AFTER,
                )
            self._pending += 1
        tag = f"movierec-live-{next(self._ids)}"
        abandoned = threading.Event()
        try:
            future = self._executor.submit(self._in_worker, tag, run_id, work, abandoned, deadline, spark_jobs)
        except BaseException:
            self._release()
            raise
        # the place is given back when the work is done or dropped from the queue, not when the
        # caller stops waiting: a call timed out mid-scoring still holds the scorer's thread
        future.add_done_callback(lambda _done: self._release())
        try:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FutureTimeout
            result = future.result(timeout=remaining)
            if result is _SKIPPED:  # the deadline passed before its turn came: as a time-out
                raise FutureTimeout
            return result
        except FutureTimeout:
            abandoned.set()  # not started scoring yet: it never will
            future.cancel()  # still queued: never runs
            self._cancel(tag)  # scoring: its Spark jobs are cancelled, and so are the ones it has yet to start
            raise LiveTimeout(
                f"live scoring took longer than {self.timeout:g} s and was cancelled", retry_after=TIMEOUT_RETRY_AFTER
            ) from None

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1

    def _in_worker(
        self,
        tag: str,
        run_id: str,
        work: Callable[[Any], Any],
        abandoned: threading.Event,
        deadline: float,
        spark_jobs: bool = True,
    ):
        if abandoned.is_set() or time.monotonic() >= deadline:
            return _SKIPPED  # its caller gave up while it was queued: nothing to do for nobody
        spark = self._session()
        # starting Spark and loading a run's models serve every later call: a caller that stops
        # waiting does not cancel them (else under load each try would start the load anew)
        if self.loaded_run != run_id:  # (a py4j round trip, 0.5 ms: not on every call)
            spark.sparkContext.setJobGroup("movierec-live-load", "movierec live fallback: loading models")
        models = self._models_for(spark, run_id)
        if abandoned.is_set() or time.monotonic() >= deadline:
            return _SKIPPED  # the caller has answered 503 already (or is about to): no work for nobody
        if spark_jobs:
            spark.sparkContext.setJobGroup(tag, f"movierec live scoring ({tag})", interruptOnCancel=True)
        from movierec.ranking.online import UnknownMovie, UnknownUser

        try:
            return work(models)
        except (UnknownMovie, UnknownUser) as err:
            raise LiveBadInput(_message(err).strip("'\"")) from None
        except (LiveUnavailable, LiveBadInput):
            raise
        except Exception as err:  # Spark failed mid-call: the client may retry, the log has the trace
            log.exception("live scoring failed")
            raise LiveUnavailable(
                f"live scoring failed: {type(err).__name__}: {_message(err)}", retry_after=TIMEOUT_RETRY_AFTER
            ) from None

    def _warm(self, run_id: str | None) -> None:
        try:
            spark = self._session()
            if run_id is not None:
                self._models_for(spark, run_id)
        except Exception:  # warming is best effort; the first real call reports the problem
            log.exception("could not warm the live fallback")

    def _session(self):
        """The process's SparkSession, started once; a failed start blocks calls for a while."""
        if self._spark is not None:
            return self._spark
        started = time.monotonic()
        try:
            from movierec.spark.session import build_session

            spark = build_session("serving", self.settings)
        except Exception as err:
            self._failure = f"Spark could not start ({type(err).__name__}: {_message(err)})"
            self._failed_until = time.monotonic() + FAILURE_BACKOFF
            log.exception("live fallback: Spark could not start")
            raise LiveUnavailable(
                f"live scoring is unavailable: {self._failure}", retry_after=FAILURE_BACKOFF
            ) from None
        log.info("live fallback: Spark %s ready in %.1f s", spark.version, time.monotonic() - started)
        self._spark = spark
        return spark

    def _models_for(self, spark, run_id: str):
        """The run's models, loaded once; a new active run replaces the old one's."""
        if self._models is not None and self._models[0] == run_id:
            return self._models[1]
        from movierec.ranking.online import RunModels

        started = time.monotonic()
        # what the last load froze (the previous run's models among it) may be collected again
        gc.unfreeze()
        try:
            try:
                models = RunModels.load(spark, settings_for_run(self.settings, self._run_params(run_id)), run_id)
            except Exception as err:
                log.exception("live fallback: could not load run %s", run_id)
                raise LiveUnavailable(
                    f"live scoring is unavailable: the models of run {run_id} could not be loaded "
                    f"({type(err).__name__}: {_message(err)})",
                    retry_after=TIMEOUT_RETRY_AFTER,
                ) from None
            previous, self._models = self._models, (run_id, models)
            if previous is not None and hasattr(previous[1], "close"):
                previous[1].close()
            del previous
        finally:
            _freeze_heap()
        log.info("live fallback: run %s loaded in %.1f s", run_id, time.monotonic() - started)
        return models

    def _cancel(self, tag: str) -> None:
        if self._spark is not None:
            try:
                # the group's running jobs, and any job the call starts in it later (a deep list
                # runs several one after the other): the scorer's thread is free soon after
                self._spark.sparkContext._jsc.sc().cancelJobGroupAndFutureJobs(tag)
            except Exception:
                log.warning("could not cancel Spark job group %s", tag, exc_info=True)

    def run_blocking(self, work: Callable[[], Any]):
        """Run `work` on the scorer's thread (for operations and tests); returns its future."""
        return self._executor.submit(work)


# what the scorer's thread returns for a call whose deadline passed before it ran (never a result)
_SKIPPED = object()


def _freeze_heap() -> None:
    """Collect once, then keep every object alive now out of the cyclic collector's passes.

    A run's models are a few hundred thousand long-lived objects; each full pass of the
    collector walked them all, stopping a live list for 60-80 ms now and then (p99 82 ms
    against p50 11 ms; frozen: p99 15 ms: serving/README.md, "Measured, the GET right after
    a POSTed rating").  The next model load unfreezes them first."""
    gc.collect()
    gc.freeze()


def _message(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__
