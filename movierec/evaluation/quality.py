"""The quality gate publish applies: a run must not be clearly worse than the one serving."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GATE_METRIC = "ndcg"  # hybrid NDCG@10, relevant = held-out ratings of 4.0 and above


@dataclass(frozen=True)
class GateDecision:
    accept: bool
    reason: str


def _ndcg(metrics: Mapping[str, Any] | None, model: str) -> float | None:
    try:
        return float((metrics or {})["models"][model][GATE_METRIC])
    except (KeyError, TypeError, ValueError):
        return None


def quality_gate(new: Mapping[str, Any] | None, active: Mapping[str, Any] | None, tolerance: float) -> GateDecision:
    """Accept unless the new hybrid's NDCG@10 is more than `tolerance` (a share) below the
    active run's, or below the new run's own popularity baseline.

    A run without evaluation metrics is refused (nothing says it is good); a first run, or an
    active run without metrics, has nothing to be compared with beyond popularity.
    """
    new_ndcg = _ndcg(new, "hybrid")
    if new_ndcg is None:
        return GateDecision(False, "the run has no hybrid NDCG@10 (was the evaluate stage run?)")
    popularity = _ndcg(new, "popularity")
    if popularity is not None and new_ndcg < popularity:
        return GateDecision(False, f"hybrid NDCG@10 {new_ndcg:.4f} is below the popularity baseline {popularity:.4f}")
    active_ndcg = _ndcg(active, "hybrid")
    if active_ndcg is not None and new_ndcg < active_ndcg * (1 - tolerance):
        return GateDecision(
            False,
            f"hybrid NDCG@10 {new_ndcg:.4f} is more than {tolerance:.0%} below the active run's {active_ndcg:.4f}",
        )
    against = f"active {active_ndcg:.4f}" if active_ndcg is not None else "no active run to compare"
    return GateDecision(True, f"hybrid NDCG@10 {new_ndcg:.4f} ({against})")
