"""A probe for issue 13: which extra evidence could lift a well-tuned ALS on the temporal split?

Not movierec's pipeline: a quick numpy stand-in to decide what is worth building into it.
An `implicit` ALS (centred feedback, the peers' `implicit ALS, centred`; ALS_PARAMS) ranks each user's unrated
movies by its z-scored preference, plus g × the z-score of one extra piece of evidence:

- `recent taste`: the cosine of the movie's item factor with the mean factor of the user's
  last n training ratings (the user's recent taste beside ALS's long-run one);
- `next items`: log1p of how often other users rated the movie within w ratings after one of
  the user's last n movies (what people move on to from where this user is now);
- `recent popularity`: log1p of the movie's ratings in the 730 days before the user's last
  training rating.

g (and n, w) are chosen on an inner split carved from the training part the same way as the
outer one, then measured once on the test part, so no choice sees the test part.  The split
is pandas' version of movierec's (each user's latest 20% by time, or a random 25% per user),
NDCG@10 with relevant = rating >= 4, as `movierec.evaluation.metrics` defines it; figures
are close to, not the same as, `benchmarks/peers.py`'s (its ties and split differ in detail).

    python benchmarks/next_item_probe.py --data-dir ../shared/data/ml-latest-small --split temporal
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit's advice: its own threads, not BLAS's

import numpy as np
import pandas as pd
from scipy import sparse

K = 10
RELEVANT = 4.0
# implicit ALS, centred (factors, regularisation, alpha): near benchmarks/peers.py's choices, and
# as strong alone here (its exact choice, 64 / 16 / 1, scored 0.105 in this probe's split)
ALS_PARAMS = {"temporal": (32, 16.0, 5.0), "random": (32, 64.0, 20.0)}
GAINS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


def split(ratings: pd.DataFrame, kind: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    r = ratings.sort_values(["userId", "timestamp", "movieId"])
    if kind == "random":
        held = np.random.default_rng(seed).random(len(r)) < 0.25
    else:
        pos = r.groupby("userId").cumcount().to_numpy()
        n = r.groupby("userId")["movieId"].transform("size").to_numpy()
        held = pos >= np.ceil(n * 0.8)
    return r[~held], r[held]


class Probe:
    """One (train, test) pair: ALS fitted on train, the evidence computed from train only."""

    def __init__(self, train: pd.DataFrame, test: pd.DataFrame, als_params: tuple[int, float, float], seed: int):
        import implicit

        self.movies = np.array(sorted(train.movieId.unique()))
        index = {m: i for i, m in enumerate(self.movies)}
        self.users = sorted(train.userId.unique())
        uindex = {u: i for i, u in enumerate(self.users)}
        self.train = train.assign(item=train.movieId.map(index), row=train.userId.map(uindex))
        liked = test[(test.rating >= RELEVANT) & test.movieId.isin(index) & test.userId.isin(uindex)]
        self.relevant = liked.groupby("userId")["movieId"].apply(lambda s: {index[m] for m in s})
        self.rated = self.train.groupby("userId")["item"].apply(np.asarray)
        self.sequence = self.train.sort_values(["userId", "timestamp", "movieId"]).groupby("userId")["item"].apply(list)
        factors, reg, alpha = als_params
        deviation = self.train.rating - self.train.groupby("userId").rating.transform("mean")
        shape = (len(self.users), len(self.movies))
        feedback = sparse.csr_matrix((alpha * deviation.to_numpy(), (self.train.row, self.train.item)), shape=shape)
        model = implicit.als.AlternatingLeastSquares(
            factors=factors, regularization=reg, iterations=15, random_state=seed, calculate_training_loss=False
        )
        model.fit(feedback, show_progress=False)
        self.u, self.v = np.asarray(model.user_factors), np.asarray(model.item_factors)
        self.v_unit = self.v / np.maximum(np.linalg.norm(self.v, axis=1, keepdims=True), 1e-9)
        self._next: dict[int, sparse.csr_matrix] = {}
        order = self.train.sort_values("timestamp")
        self.times, self.items_by_time = order.timestamp.to_numpy(), order.item.to_numpy()
        self.last_time = self.train.groupby("userId")["timestamp"].max()

    def next_matrix(self, window: int) -> sparse.csr_matrix:
        """T[a, b]: how often b was rated within `window` ratings after a, by one user (train only)."""
        if window not in self._next:
            rows, cols = [], []
            for seq in self.sequence:
                for i in range(len(seq) - 1):
                    follow = seq[i + 1 : i + 1 + window]
                    rows.extend([seq[i]] * len(follow))
                    cols.extend(follow)
            n = len(self.movies)
            self._next[window] = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
        return self._next[window]

    def evidence(self, name: str, user: int, n: int, window: int) -> np.ndarray:
        last = self.sequence[user][-n:]
        if name == "recent taste":
            return self.v_unit[last].mean(axis=0) @ self.v_unit.T
        if name == "next items":
            return np.log1p(np.asarray(self.next_matrix(window)[last].sum(axis=0)).ravel())
        if name == "recent popularity":
            t = self.last_time[user]
            lo, hi = np.searchsorted(self.times, t - 730 * 86400), np.searchsorted(self.times, t, side="right")
            return np.log1p(np.bincount(self.items_by_time[lo:hi], minlength=len(self.movies)))
        raise ValueError(name)

    def ndcg(self, name: str | None, gain: float, n: int = 10, window: int = 10, extra: tuple = ()) -> float:
        """NDCG@10 of ALS + gain × z(evidence `name`) (+ each (name, gain, n, window) of `extra`)."""
        discounts = 1 / np.log2(np.arange(2, K + 2))
        total = 0.0
        terms = [(name, gain, n, window), *extra] if name is not None else list(extra)
        for user, relevant in self.relevant.items():
            score = _z(self.u[self.users.index(user)] @ self.v.T)
            for term, g, last, w in terms:
                if g:
                    score = score + g * _z(self.evidence(term, user, last, w))
            score[self.rated[user]] = -np.inf
            top = np.argpartition(-score, K)[:K]
            top = top[np.argsort(-score[top], kind="stable")]
            hits = np.array([item in relevant for item in top])
            total += float(discounts[hits].sum() / discounts[: min(len(relevant), K)].sum())
        return total / len(self.relevant)


def _z(a: np.ndarray) -> np.ndarray:
    return (a - a.mean()) / (a.std() + 1e-9)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--split", choices=("temporal", "random"), default="temporal")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    started = time.monotonic()
    ratings = pd.read_csv(args.data_dir / "ratings.csv")
    train, test = split(ratings, args.split, args.seed)
    inner_train, validation = split(train, args.split, args.seed + 1)
    params = ALS_PARAMS[args.split]
    inner, outer = Probe(inner_train, validation, params, args.seed), Probe(train, test, params, args.seed)
    print(f"{args.split} split, seed {args.seed}: ALS alone {outer.ndcg(None, 0):.4f} on test", file=sys.stderr)
    print("| evidence | chosen on validation | validation NDCG@10 | test NDCG@10 | ALS alone (test) |")
    print("|---|---|---|---|---|")
    found: dict[str, tuple[float, int, int]] = {}
    for name, shapes in (
        ("recent taste", [(n, 0) for n in (3, 10, 30)]),
        ("next items", [(n, w) for n in (3, 10, 30) for w in (3, 10)]),
        ("recent popularity", [(0, 0)]),
    ):
        trials = {(g, n, w): inner.ndcg(name, g, n, w) for g in GAINS for n, w in shapes}
        (g, n, w), best = max(trials.items(), key=lambda kv: kv[1])
        chosen = f"g {g}" + (f", last {n}" if n else "") + (f", window {w}" if w else "")
        print(f"| {name} | {chosen} | {best:.4f} | {outer.ndcg(name, g, n, w):.4f} | {outer.ndcg(None, 0):.4f} |")
        sys.stdout.flush()
        found[name] = (g, n, w)
    # the two user-side signals together, each in its chosen shape, their gains chosen jointly
    (_, n1, w1), (_, n2, w2) = found["recent taste"], found["next items"]
    joint = {
        (g1, g2): inner.ndcg("recent taste", g1, n1, w1, extra=(("next items", g2, n2, w2),))
        for g1 in GAINS
        for g2 in GAINS
    }
    (g1, g2), best = max(joint.items(), key=lambda kv: kv[1])
    test_ndcg = outer.ndcg("recent taste", g1, n1, w1, extra=(("next items", g2, n2, w2),))
    print(f"| recent taste + next items | g {g1} + {g2} | {best:.4f} | {test_ndcg:.4f} | {outer.ndcg(None, 0):.4f} |")
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
