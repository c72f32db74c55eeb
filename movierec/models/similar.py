"""Similar movies: nearest neighbours by cosine of ALS item factors, computed on the driver.

Item factors are small (movies × rank floats), so numpy in blocks beats a Spark self-join.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from movierec.data.schemas import MOVIE, RANK, SCORE, SIMILAR_MOVIE

BLOCK = 2048


def nearest_neighbours(
    ids: np.ndarray, factors: np.ndarray, k: int, eligible: np.ndarray | None = None
) -> pd.DataFrame:
    """For every movie, the k others with the highest cosine similarity.

    ids: (n,) movie ids; factors: (n, rank); eligible: (n,) bool, movies allowed as neighbours
    (e.g. those with enough ratings for their factors to mean something).
    Returns movie_id, rank (1 = nearest), similar_movie_id, score (cosine).
    """
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    unit = factors / np.where(norms == 0, 1.0, norms)
    eligible = np.ones(len(ids), bool) if eligible is None else eligible
    target_idx = np.flatnonzero(eligible)
    targets = unit[target_idx]
    k = min(k, len(target_idx))
    frames = []
    for start in range(0, len(ids), BLOCK):
        sims = unit[start : start + BLOCK] @ targets.T
        own = np.arange(start, min(start + BLOCK, len(ids)))
        # a movie is not its own neighbour
        self_pos = np.searchsorted(target_idx, own)
        is_target = (self_pos < len(target_idx)) & (target_idx[np.minimum(self_pos, len(target_idx) - 1)] == own)
        sims[np.flatnonzero(is_target), self_pos[is_target]] = -np.inf
        if k == 0:
            continue
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        order = np.lexsort((ids[target_idx][top], -top_sims), axis=1)
        top, top_sims = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_sims, order, axis=1)
        rows = len(own)
        frames.append(
            pd.DataFrame(
                {
                    MOVIE: np.repeat(ids[own], k),
                    RANK: np.tile(np.arange(1, k + 1), rows),
                    SIMILAR_MOVIE: ids[target_idx][top].ravel(),
                    SCORE: top_sims.ravel(),
                }
            )
        )
    if not frames:
        return pd.DataFrame({MOVIE: [], RANK: [], SIMILAR_MOVIE: [], SCORE: []})
    out = pd.concat(frames, ignore_index=True)
    return out[np.isfinite(out[SCORE])]
