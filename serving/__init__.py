"""The movierec API: `create_app()` builds the Flask application.

Configuration comes from `movierec.config.Settings` (defaults, then MOVIEREC_* variables),
the same settings the batch jobs use; tests pass `test_config`, whose "SETTINGS" entry
replaces the settings and whose other entries override Flask's config.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask

if TYPE_CHECKING:
    from serving.live import LiveScorer

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    # POST /recommend bodies above this are refused with 413 (500 movies with genres fit easily)
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "JSON_SORT_KEYS": False,
}


class PageCache:
    """Encoded answers of the active run's stored pages, for as long as that run stays active.

    A published run's rows never change, so an answer read from the store once is the
    answer for the whole activation; entries are kept under the activation's key
    (`store.get_active_run_key`) and all dropped when it changes.  At most `size` answers
    (the oldest go first), so memory stays bounded (about 2.5 KB per 10-item page)."""

    def __init__(self, size: int):
        self.size = size
        # (activation key, answers by page), swapped as one value so a reader never pairs a
        # new key with the old answers
        self._state: tuple[Any, dict[Any, bytes]] = (None, {})
        self._lock = threading.Lock()

    def get(self, run_key, page) -> bytes | None:
        key, answers = self._state
        return answers.get(page) if key == run_key else None

    def put(self, run_key, page, body: bytes) -> None:
        if self.size <= 0:
            return
        with self._lock:
            key, answers = self._state
            if key != run_key:
                self._state = (run_key, {page: body})
                return
            if len(answers) >= self.size:
                answers.pop(next(iter(answers)), None)
            answers[page] = body


class Services:
    """What the routes share: settings, the store's engine, metrics, and the lazy live fallback."""

    def __init__(self, settings, engine, metrics, page_cache_size: int = 0):
        self.settings = settings
        self.pages = PageCache(page_cache_size)
        self.engine = engine
        self.metrics = metrics
        self._live: LiveScorer | None = None
        self._lock = threading.Lock()
        self._genres: tuple[str | None, dict[str, str]] = (None, {})

    def live(self):
        """The process's live-Spark scorer, created on first need (serving.live imports lazily)."""
        if self._live is None:
            with self._lock:
                if self._live is None:
                    from serving.live import LiveScorer

                    self._live = LiveScorer(self.settings, self.run_params)
        return self._live

    def run_params(self, run_id: str) -> dict[str, Any] | None:
        """The settings a run was made with (runs.params), for scoring with its models."""
        from serving import store

        with self.engine.connect() as conn:
            run = store.get_run(conn, run_id)
        return run["params"] if run else None

    @property
    def live_started(self) -> bool:
        return self._live is not None

    def genres(self, conn, run_id: str) -> dict[str, str]:
        """Known genre names by their case-folded spelling; re-read when the active run changes."""
        cached_run, names = self._genres
        if cached_run != run_id:
            from serving import store

            names = {name.casefold(): name for name in store.get_catalogue_genres(conn)}
            self._genres = (run_id, names)
        return names


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    from movierec.config import api_key_digests, from_env
    from serving import api, auth, errors, feedback, openapi, ops, page, store, store_guard
    from serving.metrics import Metrics

    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    test_config = dict(test_config or {})
    settings = test_config.pop("SETTINGS", None) or from_env()
    # where `movierec report` writes the evaluation report the page links to (MOVIEREC_REPORTS_DIR)
    app.config["REPORTS_DIR"] = settings.reports_dir
    app.config.from_mapping(test_config)
    app.json.sort_keys = app.config["JSON_SORT_KEYS"]  # type: ignore[attr-defined]

    # settings.page_cache_size (MOVIEREC_PAGE_CACHE_SIZE), or the test config's PAGE_CACHE_SIZE
    cache_size = app.config.get("PAGE_CACHE_SIZE", settings.page_cache_size)
    services = Services(settings, store.make_engine(settings.db_url, settings.store_timeout), Metrics(app), cache_size)
    app.extensions["movierec"] = services
    # the accepted API keys' digests, read once (a bad one stops the worker here, before it serves)
    app.extensions[auth.EXTENSION] = api_key_digests(settings)
    errors.register_error_handlers(app)
    store_guard.register_error_handlers(app)
    app.register_blueprint(ops.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(feedback.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(page.bp)

    if settings.warm_spark:
        run_id = None
        try:
            with services.engine.connect() as conn:
                run_id = store.get_active_run_id(conn)
        except Exception:
            log.warning("warm_spark: the store did not answer; warming Spark without models")
        services.live().warm(run_id)
    return app
