"""Operations: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify

from serving import store
from serving.errors import unavailable

log = logging.getLogger(__name__)
bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    """The process answers; says nothing about the store."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Ready when the store answers and a run is active; 503 otherwise."""
    try:
        with current_app.extensions["movierec"].engine.connect() as conn:
            active = store.get_active_run(conn)
    except Exception as err:
        log.warning("readyz: store unreachable: %s", err)
        raise unavailable(f"the store is unreachable ({type(err).__name__})", 5) from None
    if active is None:
        raise unavailable("the store has no active run yet (nothing published)", 60)
    return jsonify(status="ready", run_id=active["run_id"], activated_at=active["activated_at"])


@bp.get("/metrics")
def metrics():
    return current_app.extensions["movierec"].metrics.exposition()
