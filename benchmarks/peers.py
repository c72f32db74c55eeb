"""The strongest simple peers beside the hybrid, on exactly the evaluate stage's split and metrics.

    pip install -e '.[bench]'
    python benchmarks/peers.py --data-dir ../shared/data/ml-latest-small [--split temporal|random|both]
                               [--seeds 42,43,44] [--quick] [--spark-master local[2]] [--shuffle-partitions 4]

Rows of the table, for each split and seed:

- movierec's own models through `movierec.evaluation.protocol.measure_split` (what the evaluate
  stage runs): the hybrid with the given settings, ALS alone, content alone, most popular; and the
  seed's configuration (ALS rank 10, alpha 1, regParam 0.1, 10 iterations, every rating a
  positive: benchmarks/quality.md "The seed's configuration through the same evaluation") with
  the same content model and blend.
- peers: most popular (by number of ratings or of likes, chosen on validation), EASE^R (Steck
  2019, closed form on the binarised >= 4 ratings, lambda tuned), and implicit ALS (the
  `implicit` library) fed each of movierec's `als_feedback` transforms binary, rating and
  centred (`movierec.models.als.implicit_feedback`, with Spark's confidence 1 + alpha * |v|).

The splits: `temporal` is the evaluate stage's hold-out (`protocol.holdout`: each user's latest
20%); `random` a per-user random 25% (`movierec.data.split.random_split`, drawn from the seed).
Every model is fitted on the training part only and ranks, for every test user, the movies of
the training part that user has not rated there (the protocol's candidates and catalogue).
Each peer is tuned on an inner validation split carved from the training part by the same
kind of split (temporal: `validation_split`; random: `random_split` of the training part),
by coordinate search over geometric grids that widen while the best value sits on an edge;
the test part is never looked at before the chosen settings are fitted on the whole training
part.  Every figure, validation included, is computed by `movierec.evaluation.metrics` from the
top-10 lists as a Spark DataFrame (model, user_id, rank, movie_id), like the evaluate stage's.
Progress goes to stderr, the Markdown table to stdout.
"""

from __future__ import annotations

import itertools
import logging
import math
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from scipy import sparse  # noqa: E402

from movierec import config  # noqa: E402
from movierec.config import Settings  # noqa: E402
from movierec.data.schemas import MOVIE, RANK, RATING, USER  # noqa: E402
from movierec.data.split import random_split, validation_split  # noqa: E402
from movierec.evaluation import metrics as M  # noqa: E402
from movierec.evaluation import protocol as P  # noqa: E402
from movierec.models.als import implicit_feedback  # noqa: E402

log = logging.getLogger(__name__)

K = P.K  # NDCG@10, precision@10, recall@10, coverage of the top-10 lists
LIKED = P.RELEVANT_THRESHOLD  # relevant = held-out rating >= 4; EASE^R also trains on these
RANDOM_SHARE = 0.25  # the random split: 75/25 per user
VALIDATION_SHARE = 0.2  # the inner temporal split, as `movierec tune` carves it
LISTS_SCHEMA = f"{P.MODEL} string, {USER} int, {RANK} int, {MOVIE} int"
SPLITS = ("temporal", "random")
# the seed's configuration (benchmarks/quality.md): Spark's ALS defaults, every rating a positive
SEED_CONFIGURATION = dict(als_rank=10, als_alpha=1.0, als_reg=0.1, als_iterations=10, als_feedback="rating")
ALS_MODES = ("binary", "rating", "centred")
ALS_ITERATIONS = 15  # implicit's default


def say(message: str) -> None:
    print(f"[peers {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the peers, as plain numpy


def ease_weights(liked: sparse.spmatrix, lam: float) -> np.ndarray:
    """EASE^R's item-item weights B (Steck 2019): argmin ||X - XB||² + λ||B||² with diag(B) = 0,
    in closed form P = (XᵀX + λI)⁻¹, B_ij = -P_ij / P_jj, B_jj = 0.  X: users × items, 0/1.

    The inverse by Cholesky (XᵀX + λI is symmetric positive definite): about half the work of
    a general inverse, which is what EASE^R costs."""
    from scipy.linalg import lapack

    gram = np.asarray((liked.T @ liked).todense(), dtype=np.float64)
    gram[np.diag_indices_from(gram)] += lam
    factor, info = lapack.dpotrf(gram, lower=False, overwrite_a=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"XᵀX + λI is not positive definite (dpotrf info {info})")
    inverse, info = lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"dpotri info {info}")
    # dpotri fills one triangle; in place where possible (9,000 items: 650 MB a matrix)
    weights = np.triu(inverse)
    del inverse, factor, gram
    weights += np.triu(weights, 1).T
    weights /= -np.diag(weights).copy()
    weights[np.diag_indices_from(weights)] = 0.0
    return weights


def ease_scores(liked: sparse.spmatrix, lam: float) -> np.ndarray:
    """Every user's EASE^R score of every item: X B.  Items nobody liked get weight 0 throughout
    (their rows and columns of XᵀX are empty), so they are left out of the inverse and score 0."""
    liked = sparse.csr_matrix(liked, dtype=np.float64)
    used = np.flatnonzero(np.asarray(liked.sum(axis=0)).ravel() > 0)
    scores = np.zeros(liked.shape, dtype=np.float64)
    if used.size:
        sub = liked[:, used]
        scores[:, used] = np.asarray(sub @ ease_weights(sub, lam))
    return scores


def spark_confidence(values: np.ndarray, alpha: float) -> np.ndarray:
    """What `implicit` must be fed to read movierec's feedback value v as Spark's implicit ALS does
    (movierec/models/als.py): preference 1 if v > 0 else 0, confidence 1 + alpha × |v|.  `implicit`
    reads an entry c as preference 1 if c > 0 else 0 with confidence |c| (with its own alpha 1);
    v = 0 is "not rated" in Spark and must be left out of the matrix."""
    return np.sign(values) * (1.0 + alpha * np.abs(values))


def top_k(scores: np.ndarray, rated: sparse.spmatrix, k: int) -> np.ndarray:
    """Each row's k best columns by score, already-rated columns never chosen (the protocol's rule).

    Columns are ordered most popular first (see `Matrices`) and the sort is stable, so ties
    (EASE^R's zeros, a user with no liked movie) go to the more popular movie."""
    masked = np.array(scores, dtype=np.float64, copy=True)
    rated = sparse.csr_matrix(rated)
    rows = np.repeat(np.arange(rated.shape[0]), np.diff(rated.indptr))
    masked[rows, rated.indices] = -np.inf
    return np.argsort(-masked, axis=1, kind="stable")[:, :k]


@dataclass
class Matrices:
    """One training part as matrices: rows are its users, columns its movies (the protocol's
    catalogue: every movie with a training rating) ordered by number of ratings, most first
    (ties: lower movie id)."""

    users: np.ndarray
    movies: np.ndarray
    rated: sparse.csr_matrix  # 1 where the user rated the movie
    liked: sparse.csr_matrix  # 1 where the rating is >= 4
    frame: pd.DataFrame  # the training rows (user_id, movie_id, rating)
    user_index: dict[int, int]

    @classmethod
    def of(cls, train: pd.DataFrame) -> Matrices:
        counts = train.groupby(MOVIE).size().rename("n").reset_index()
        movies = counts.sort_values(["n", MOVIE], ascending=[False, True])[MOVIE].to_numpy()
        users = np.sort(train[USER].unique())
        m = cls(users, movies, None, None, train, {int(u): i for i, u in enumerate(users)})  # type: ignore[arg-type]
        m.rated = m.matrix(train, np.ones(len(train)))
        liked = train[train[RATING] >= LIKED]
        m.liked = m.matrix(liked, np.ones(len(liked)))
        return m

    def matrix(self, rows: pd.DataFrame, values: np.ndarray) -> sparse.csr_matrix:
        movie_index = pd.Series(np.arange(len(self.movies)), index=self.movies)
        r = pd.Series(self.user_index)[rows[USER].to_numpy()].to_numpy()
        c = movie_index[rows[MOVIE].to_numpy()].to_numpy()
        shape = (len(self.users), len(self.movies))
        out = sparse.csr_matrix((np.asarray(values, dtype=np.float64), (r, c)), shape=shape)
        out.eliminate_zeros()
        return out

    def lists(self, name: str, scores: np.ndarray, users: np.ndarray, k: int = K) -> pd.DataFrame:
        """(model, user_id, rank, movie_id): the k best unrated movies of each of `users`."""
        rows = np.array([self.user_index[int(u)] for u in users])
        best = top_k(scores[rows], self.rated[rows], k)
        return pd.DataFrame(
            {
                P.MODEL: name,
                USER: np.repeat(users, best.shape[1]).astype("int32"),
                RANK: np.tile(np.arange(1, best.shape[1] + 1), len(users)).astype("int32"),
                MOVIE: self.movies[best.ravel()].astype("int32"),
            }
        )


def popularity_scores(m: Matrices, count: str) -> np.ndarray:
    """Everyone's score of every movie: its number of training ratings ("ratings") or of ratings
    >= 4 ("likes")."""
    per_movie = np.asarray((m.rated if count == "ratings" else m.liked).sum(axis=0)).ravel()
    return np.broadcast_to(per_movie, m.rated.shape)


def feedback_values(spark: SparkSession, train: pd.DataFrame, mode: str) -> pd.DataFrame:
    """movierec's own feedback transform (`implicit_feedback`, the Spark function the pipeline
    fits ALS on) of these training rows, back as pandas."""
    frame = spark.createDataFrame(train[[USER, MOVIE, RATING]], f"{USER} int, {MOVIE} int, {RATING} double")
    return implicit_feedback(frame, mode).toPandas()


def als_scores(m: Matrices, values: pd.DataFrame, factors: int, reg: float, alpha: float, seed: int) -> np.ndarray:
    """implicit's ALS (conjugate gradient, 15 iterations) on the feedback values, with Spark's
    confidence (`spark_confidence`); scores are user factors · item factors."""
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    confidence = m.matrix(values, spark_confidence(values[RATING].to_numpy(), alpha)).astype(np.float32)
    with threadpool_limits(1, "blas"), warnings.catch_warnings():  # implicit's own threads, not BLAS's in them
        warnings.filterwarnings("ignore", "OpenBLAS is configured", RuntimeWarning)
        model = AlternatingLeastSquares(
            factors=int(factors), regularization=float(reg), alpha=1.0, iterations=ALS_ITERATIONS, random_state=seed
        )
        model.fit(confidence, show_progress=False)
    return np.asarray(model.user_factors) @ np.asarray(model.item_factors).T


# ---------------------------------------------------------------- the search


@dataclass(frozen=True)
class Axis:
    """One setting's grid: its starting values, and how it widens while the best sits on an edge."""

    values: tuple[float, ...]
    ratio: float = 2.0  # the next value beyond an edge: edge × ratio (or ÷)
    low: float = 0.0  # never below
    high: float = math.inf  # never above
    integer: bool = False

    def beyond(self, value: float, up: bool) -> float | None:
        nxt = value * self.ratio if up else value / self.ratio
        nxt = float(round(nxt)) if self.integer else nxt
        return nxt if self.low <= nxt <= self.high and nxt != value else None


Point = dict[str, Any]


def key(point: Point) -> tuple:
    return tuple(sorted(point.items()))


@dataclass
class Search:
    """The result of `coordinate_search`: the best point, every point's validation NDCG@10, and the
    settings whose chosen value still sits on an edge its grid could not widen past."""

    best: Point
    scores: dict[tuple, float]
    on_edge: list[str]


def coordinate_search(
    measure: Callable[[list[Point]], list[float]], axes: dict[str, Axis], start: Point, widen: bool, sweeps: int = 2
) -> Search:
    """Maximise measure(point) one setting at a time, the others held at the best so far: each
    setting's line is measured in one batch, and widened by one step while its best value is an
    end of the line (as long as `widen` and the axis allows).  A point measured once is never
    measured again; ties keep the earlier value (the start, then lower values)."""
    scores: dict[tuple, float] = {}
    lines = {name: sorted(axis.values) for name, axis in axes.items()}
    best = dict(start)

    def run(points: list[Point]) -> None:
        new = [p for p in {key(p): p for p in points}.values() if key(p) not in scores]
        if new:
            scores.update(zip((key(p) for p in new), measure(new)))

    run([best])
    for _ in range(sweeps):
        moved = False
        for name, axis in axes.items():
            line = lines[name]
            while True:
                run([{**best, name: v} for v in line])
                top = max(line, key=lambda v: (scores[key({**best, name: v})], v == best[name]))
                if not widen or len(line) < 2 or top not in (line[0], line[-1]):
                    break
                nxt = axis.beyond(top, up=top == line[-1])
                if nxt is None or nxt in line:
                    break
                line.insert(0, nxt) if top == line[0] else line.append(nxt)
            lines[name] = sorted(line)
            if top != best[name]:
                best[name], moved = top, True
        if not moved:
            break
    on_edge = []
    for name in axes:
        line = lines[name]
        if len(line) > 1 and best[name] in (line[0], line[-1]):
            on_edge.append(name)
    return Search(best, scores, on_edge)


def als_axes(quick: bool) -> dict[str, Axis]:
    if quick:
        return {
            "factors": Axis((8.0,), integer=True),
            "reg": Axis((1.0, 8.0), ratio=8.0),
            "alpha": Axis((1.0, 4.0), ratio=4.0),
        }
    return {
        "factors": Axis((32.0, 64.0, 128.0), low=8, high=512, integer=True),
        "reg": Axis((1.0, 4.0, 16.0, 64.0), ratio=4.0, low=1e-3, high=1e5),
        "alpha": Axis((1.0, 4.0, 16.0), ratio=4.0, low=1e-3, high=1e4),
    }


def ease_axes(quick: bool) -> dict[str, Axis]:
    if quick:
        return {"lam": Axis((10.0, 100.0), ratio=10.0)}
    return {"lam": Axis((100.0, 200.0, 400.0, 800.0, 1600.0), low=0.1, high=1e6)}


# ---------------------------------------------------------------- measuring lists with movierec's metrics


def measure_lists(
    spark: SparkSession, lists: Sequence[pd.DataFrame], test: DataFrame, catalogue: int
) -> dict[str, dict[str, float]]:
    """{model: ndcg, precision, recall, map, hit_rate, users, coverage} of stacked top-k lists, by the
    evaluate stage's functions (`ranking_metrics_by`, `catalogue_coverage_by`) at its k and relevance."""
    stacked = spark.createDataFrame(pd.concat(lists, ignore_index=True), LISTS_SCHEMA).localCheckpoint()
    names = [str(frame[P.MODEL].iloc[0]) for frame in lists]
    ranking = M.ranking_metrics_by(stacked, test, P.MODEL, names, k=K, relevant_threshold=LIKED)
    coverage = M.catalogue_coverage_by(stacked, P.MODEL, names, catalogue, k=K)
    return {name: {**ranking[name], M.COVERAGE: coverage[name]} for name in names}


def label(prefix: str, point: Point) -> str:
    return prefix + "|" + ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.items())


@dataclass
class Peer:
    """A peer: its settings' axes, a start point, and scores(matrices, point) on a training part."""

    name: str
    axes: dict[str, Axis]
    start: Point
    scores: Callable[[Matrices, Point], np.ndarray]


def peers(spark: SparkSession, seed: int, quick: bool) -> list[Peer]:
    cache: dict[tuple, pd.DataFrame] = {}

    def values_of(m: Matrices, mode: str) -> pd.DataFrame:
        ident = (id(m.frame), mode)
        if ident not in cache:
            cache[ident] = feedback_values(spark, m.frame, mode)
        return cache[ident]

    def als(mode: str) -> Peer:
        axes = als_axes(quick)
        start = {name: axis.values[len(axis.values) // 2] for name, axis in axes.items()}
        return Peer(
            f"implicit ALS, {mode}",
            axes,
            start,
            lambda m, p: als_scores(m, values_of(m, mode), p["factors"], p["reg"], p["alpha"], seed),
        )

    ease = ease_axes(quick)
    return [
        Peer("most popular", {}, {"count": "ratings"}, lambda m, p: popularity_scores(m, p["count"])),
        Peer(
            "EASE^R",
            ease,
            {"lam": ease["lam"].values[len(ease["lam"].values) // 2]},
            lambda m, p: ease_scores(m.liked, p["lam"]),
        ),
        *(als(mode) for mode in ALS_MODES),
    ]


def tune(spark: SparkSession, peer: Peer, fit: Matrices, validation: DataFrame, widen: bool) -> Search:
    """The peer's settings chosen by validation NDCG@10 (`coordinate_search`)."""
    users = np.sort(validation.select(USER).distinct().toPandas()[USER].to_numpy())
    catalogue = len(fit.movies)

    def measure(points: list[Point]) -> list[float]:
        lists = [fit.lists(label(peer.name, p), peer.scores(fit, p), users) for p in points]
        found = measure_lists(spark, lists, validation, catalogue)
        names = [str(frame[P.MODEL].iloc[0]) for frame in lists]
        for name in names:
            say(f"  validation {name}: NDCG@10 {found[name][M.NDCG]:.4f}")
        return [found[name][M.NDCG] for name in names]

    if peer.name == "most popular":  # a choice of two, not a grid
        scores = dict(
            zip([key({"count": c}) for c in ("ratings", "likes")], measure([{"count": "ratings"}, {"count": "likes"}]))
        )
        best = max(("ratings", "likes"), key=lambda c: scores[key({"count": c})])
        return Search({"count": best}, scores, [])
    return coordinate_search(measure, peer.axes, peer.start, widen)


# ---------------------------------------------------------------- one split, one seed


@dataclass
class SplitResult:
    """One split under one seed: {row name: metrics}, the peers' chosen settings, and their
    test-part lists (stacked pandas, for checking)."""

    split: str
    seed: int
    metrics: dict[str, dict[str, float]]
    chosen: dict[str, Search]
    lists: pd.DataFrame


def splits_of(
    kind: str, ratings: DataFrame, tags: DataFrame, seed: int
) -> tuple[DataFrame, DataFrame, DataFrame, DataFrame, DataFrame]:
    """(train, test, tags known then, inner fit part, inner validation part), all materialised."""
    if kind == "temporal":
        train, test, known = P.holdout(ratings, tags)
        fit, validation = validation_split(train, VALIDATION_SHARE)
    else:
        train, test = random_split(ratings, RANDOM_SHARE, seed)
        train, test = train.localCheckpoint(), test.localCheckpoint()
        known = P.tags_before_cutoff(tags, train, test).localCheckpoint()
        fit, validation = random_split(train, RANDOM_SHARE, seed + 1)
    return train, test, known, fit.localCheckpoint(), validation.localCheckpoint()


MOVIEREC_ROWS = {
    "hybrid": "movierec hybrid",
    "als": "movierec ALS alone",
    "content": "movierec content alone",
    "popularity": "movierec most popular",
}


def measure_split(
    spark: SparkSession,
    kind: str,
    movies: DataFrame,
    ratings: DataFrame,
    tags: DataFrame,
    settings: Settings,
    seed: int,
    quick: bool,
    seed_configuration: bool = True,
) -> SplitResult:
    settings = settings.replace(seed=seed)
    train, test, known, fit, validation = splits_of(kind, ratings, tags, seed)
    metrics: dict[str, dict[str, float]] = {}

    say(f"{kind} seed {seed}: movierec's models (protocol.measure_split)")
    own = P.measure_split(movies, train, test, known, settings).metrics["models"]
    for name, row in MOVIEREC_ROWS.items():
        metrics[row] = own[name]
    if seed_configuration:
        say(f"{kind} seed {seed}: the seed's configuration")
        seeds = P.measure_split(movies, train, test, known, settings.replace(**SEED_CONFIGURATION)).metrics["models"]
        metrics["seed's configuration: hybrid"] = seeds["hybrid"]
        metrics["seed's configuration: ALS alone"] = seeds["als"]

    to_pandas = lambda df: df.select(USER, MOVIE, RATING).toPandas()
    fit_m, train_m = Matrices.of(to_pandas(fit)), Matrices.of(to_pandas(train))
    test_users = np.sort(test.select(USER).distinct().toPandas()[USER].to_numpy())
    chosen: dict[str, Search] = {}
    lists = []
    for peer in peers(spark, seed, quick):
        say(f"{kind} seed {seed}: tuning {peer.name}")
        chosen[peer.name] = search = tune(spark, peer, fit_m, validation, widen=not quick)
        say(
            f"{kind} seed {seed}: {peer.name} chose {search.best}"
            + (f" (on the edge: {search.on_edge})" if search.on_edge else "")
        )
        lists.append(train_m.lists(peer.name, peer.scores(train_m, search.best), test_users))
    metrics.update(measure_lists(spark, lists, test, len(train_m.movies)))
    return SplitResult(kind, seed, metrics, chosen, pd.concat(lists, ignore_index=True))


# ---------------------------------------------------------------- the table


COLUMNS = ((M.NDCG, "NDCG@10"), (M.PRECISION, "P@10"), (M.RECALL, "R@10"), (M.COVERAGE, "coverage"))


def cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def markdown_table(results: list[SplitResult]) -> str:
    """One row per model, for each split NDCG@10, precision, recall and coverage (mean ± sd over seeds)."""
    kinds = [k for k in SPLITS if any(r.split == k for r in results)]
    rows = list(dict.fromkeys(name for r in results for name in r.metrics))
    header = ["model"] + [f"{kind} {title}" for kind in kinds for _, title in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row]
        for kind in kinds:
            for metric, _ in COLUMNS:
                values = [r.metrics[row][metric] for r in results if r.split == kind and row in r.metrics]
                cells.append(cell(values) if values else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chosen_lines(results: list[SplitResult]) -> str:
    """The settings each peer's validation search chose, per split and seed."""
    out = []
    for r in results:
        for name, search in r.chosen.items():
            edge = f"; still on the grid's edge: {', '.join(search.on_edge)}" if search.on_edge else ""
            out.append(f"- {r.split}, seed {r.seed}, {name}: {search.best} ({len(search.scores)} trials{edge})")
    return "\n".join(out)


def load(spark: SparkSession, settings: Settings) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(movies, ratings, tags) as the ingest stage validates them, into a throwaway warehouse."""
    from movierec.spark.paths import RunPaths
    from movierec.spark.warehouse import read_table
    from movierec.stages.pipeline import run_pipeline

    run_pipeline(spark, settings, "peers", ["ingest"])
    paths = RunPaths(settings.warehouse, "peers")
    movies, ratings, tags = (read_table(spark, p).localCheckpoint() for p in (paths.movies, paths.ratings, paths.tags))
    return movies, ratings, tags


def run(
    spark: SparkSession,
    settings: Settings,
    splits: Sequence[str],
    seeds: Sequence[int],
    quick: bool = False,
    seed_configuration: bool = True,
) -> list[SplitResult]:
    movies, ratings, tags = load(spark, settings)
    results = []
    for kind, seed in itertools.product(splits, seeds):
        started = time.perf_counter()
        results.append(measure_split(spark, kind, movies, ratings, tags, settings, seed, quick, seed_configuration))
        say(f"{kind} seed {seed}: done in {time.perf_counter() - started:.0f} s")
        for name, row in results[-1].metrics.items():  # kept in the log should a later split fail
            say(f"  {kind} seed {seed} {name}: " + ", ".join(f"{t} {row[m]:.4f}" for m, t in COLUMNS))
    return results


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"not a comma-separated list of integers: {text!r}") from None
    if not seeds:
        raise click.BadParameter("give at least one seed")
    return seeds


@click.command(help=__doc__.splitlines()[0])
@click.option("--split", "split", type=click.Choice(["temporal", "random", "both"]), default="both", show_default=True)
@click.option("--seeds", default="42", show_default=True, help="comma-separated seeds: mean ± sd over them")
@click.option("--quick", is_flag=True, help="tiny grids, no widening (for tests)")
@click.option(
    "--no-seed-configuration",
    is_flag=True,
    help="leave out the seed's configuration row (one evaluation less per split)",
)
@config.setting_options("data_dir", *config.SPARK_SETTINGS)
def main(split: str, seeds: str, quick: bool, no_seed_configuration: bool, settings: Settings) -> int:
    from movierec.spark.session import build_session

    logging.basicConfig(level=logging.WARNING)
    seed_list = parse_seeds(seeds)
    kinds = list(SPLITS) if split == "both" else [split]
    settings = settings.replace(warehouse=str(Path(tempfile.mkdtemp(prefix="movierec-peers-")) / "warehouse"))
    spark = build_session("peers", settings)
    try:
        results = run(spark, settings, kinds, seed_list, quick, not no_seed_configuration)
    finally:
        spark.stop()
    print(f"data {settings.data_dir}; splits {', '.join(kinds)}; seeds {', '.join(map(str, seed_list))}\n")
    print(markdown_table(results))
    print("\nChosen on the inner validation split:\n")
    print(chosen_lines(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
