"""`movierec tune`: choose the ALS and forest hyper-parameters on a validation split.

The data the search sees: the temporal hold-out of `movierec.evaluation.protocol` splits the ratings into
train and test (each user's latest 20%); the search carves its validation part out of the
train part only (`movierec.data.split.validation_split`: each user's latest 20% of their training
ratings) and fits on the rest.  The test part is never fitted on nor scored against, so the
figures of `movierec evaluate` stay an honest estimate after tuning.  Tags are cut the same
way (to what each user had written by their last fitted rating, none on a validation or test
movie).

The search: coordinate-wise, coarse then fine.  Each stage is a small grid over a few
settings; the others stay at the best values found so far (the defaults at first); after a
stage the best trial so far becomes the starting point of the next.  A setting combination
already measured is not measured again.  The objective is the hybrid's NDCG@10 (relevant =
validation rating >= 4) with the configured blend weights, among trials whose hybrid top-10
lists cover at least `min_coverage` of the catalogue; ALS alone, content alone and the
hybrid's coverage are reported beside it.  Content features are built once; an ALS
model or forest is fitted once per distinct setting combination and reused.  Every fit uses
`settings.seed`, so the same seed gives the same trials.

    movierec tune [--max-minutes 30] [--min-coverage 0.065] [--space JSON] [--json FILE]
                  [--data-dir DIR] [--seed 42] [any other model setting's flag]
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from movierec import config
from movierec import features as FE
from movierec.config import Settings
from movierec.data.schemas import USER
from movierec.data.split import temporal_split, validation_split
from movierec.evaluation import metrics as M
from movierec.evaluation import protocol as E
from movierec.models.forest import training_pairs
from movierec.ranking import scoring
from movierec.ranking.calibration import calibrate
from movierec.text import format_table

log = logging.getLogger(__name__)

VALIDATION_SHARE = 0.2
K = E.K
RELEVANT = 4.0
ALS_KEYS = ("als_rank", "als_reg", "als_alpha", "als_iterations", "als_feedback")
RF_KEYS = ("rf_depth", "rf_trees", "rf_max_pairs")
TUNED = ALS_KEYS + RF_KEYS

# (stage name, {setting: values}): the default search, measured in benchmarks/quality.md
Space = Sequence[tuple[str, dict[str, Sequence[Any]]]]
FEEDBACK = list(config.ALS_FEEDBACK_MODES)
DEFAULT_SPACE: Space = (
    ("feedback", {"als_feedback": FEEDBACK}),
    ("als-coarse", {"als_rank": [10, 32], "als_alpha": [0.25, 1.0, 4.0]}),
    ("feedback-2", {"als_feedback": FEEDBACK}),
    ("als-alpha", {"als_alpha": [0.5, 2.0]}),
    ("als-rank", {"als_rank": [16, 24, 48]}),
    ("als-reg", {"als_reg": [0.03, 0.3]}),
    ("als-iterations", {"als_iterations": [10, 20]}),
    ("forest", {"rf_depth": [5, 11], "rf_trees": [20, 80]}),
)
# A trial whose hybrid top-10 lists cover less of the catalogue than this is not chosen: low
# ALS confidence scales gain a little NDCG by recommending the same few popular movies to
# everyone.  The issue asks for coverage above 0.056 under the test protocol; the validation
# catalogue (movies rated in the fit part) is smaller than the test protocol's (movies rated
# in the whole train part) while the lists name about as many distinct movies, so the same
# lists measure about 1.16x higher here (benchmarks/quality.md): 0.065 ~ 0.056.
MIN_COVERAGE = 0.065


@dataclass
class Trial:
    number: int
    stage: str
    params: dict[str, Any]
    hybrid: float
    als: float
    content: float
    coverage: float
    seconds: float


@dataclass
class SearchResult:
    trials: list[Trial]
    best: Trial
    settings: Settings  # the starting settings with the best trial's values
    fit_ratings: int
    validation_ratings: int
    min_coverage: float = 0.0
    skipped: list[dict[str, Any]] = field(default_factory=list)  # combinations left out by the time budget
    catalogue: int = 0  # movies rated in the fit part: the coverage denominator
    calibration: dict[str, float] = field(default_factory=dict)  # of the best trial's components

    def to_dict(self) -> dict[str, Any]:
        return {
            "best": dataclasses.asdict(self.best),
            "trials": [dataclasses.asdict(t) for t in self.trials],
            "fit_ratings": self.fit_ratings,
            "validation_ratings": self.validation_ratings,
            "min_coverage": self.min_coverage,
            "catalogue": self.catalogue,
            "skipped": self.skipped,
            "calibration": self.calibration,
        }


def params_of(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in TUNED}


def validation_data(
    ratings: DataFrame,
    tags: DataFrame,
    holdout_share: float = E.HOLDOUT_SHARE,
    validation_share: float = VALIDATION_SHARE,
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(fit, validation, fit_tags): the validation split of the train part; the test part is dropped.

    Each is materialised once (`localCheckpoint`), so every trial reads the same rows in
    the same order and clearing Spark's cache between trials does not recompute them.
    """
    train, test = temporal_split(ratings, holdout_share)
    fit, valid = validation_split(train, validation_share)
    fit_tags = E.tags_before_cutoff(E.tags_before_cutoff(tags, train, test), fit, valid)
    return fit.localCheckpoint(), valid.localCheckpoint(), fit_tags.localCheckpoint()


class _Models:
    """Fits shared between trials: content features once, ALS and forest once per setting combination."""

    def __init__(self, movies: DataFrame, fit: DataFrame, fit_tags: DataFrame):
        self.movies, self.fit, self.fit_tags = movies, fit, fit_tags
        self.base: E.FittedModels | None = None
        self.als: dict[tuple, Any] = {}
        self.forests: dict[tuple, Any] = {}

    @staticmethod
    def _key(settings: Settings, names: Sequence[str]) -> tuple:
        return tuple(getattr(settings, n) for n in names) + (settings.seed,)

    def for_settings(self, settings: Settings) -> E.FittedModels:
        als_key, rf_key = self._key(settings, ALS_KEYS), self._key(settings, RF_KEYS)
        if self.base is None:
            self.base = E.fit_models(self.movies, self.fit, self.fit_tags, settings)  # features checkpointed
            self.als[als_key], self.forests[rf_key] = self.base.als, self.base.forest
        if als_key not in self.als:
            self.als[als_key] = E.fit_als(self.fit, settings)
        if rf_key not in self.forests:
            pairs, _ = training_pairs(self.fit, self.base.movie_feats, self.base.profiles, settings)
            self.forests[rf_key] = E.fit_rf(pairs, settings)
        return dataclasses.replace(self.base, als=self.als[als_key], forest=self.forests[rf_key])


def validation_metrics(
    fitted: E.FittedModels, fit: DataFrame, valid: DataFrame, settings: Settings, catalogue: int
) -> dict[str, float]:
    """NDCG@10 of the hybrid, ALS alone and content alone on the validation part, hybrid coverage."""
    users = valid.select(USER).distinct()
    names = ["hybrid", "als", "content"]
    lists = E.model_lists(fitted, fit, users, settings, K)
    stacked = E.stack_lists({name: lists[name] for name in names}).persist()
    try:
        ranked = M.ranking_metrics_by(stacked, valid, E.MODEL, names, k=K, relevant_threshold=RELEVANT)
        result = {name: ranked[name][M.NDCG] for name in names}
        result["coverage"] = M.catalogue_coverage_by(stacked, E.MODEL, ["hybrid"], catalogue, k=K)["hybrid"]
    finally:
        stacked.unpersist()
    return result


def calibrate_components(
    fitted: E.FittedModels, fit: DataFrame, valid: DataFrame, settings: Settings
) -> dict[str, float]:
    """The calibration settings (movierec.ranking.calibration) of these models' candidates for the validation users."""
    users = valid.select(USER).distinct()
    found = E.candidate_scores(fitted, fit.join(users, USER, "left_semi"), users, settings, K)
    return calibrate(scoring.z_scores(found.raw, scoring.user_scales(found.raw)), valid, RELEVANT)


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe(params: dict[str, Any]) -> str:
    short = {
        "als_rank": "rank",
        "als_reg": "reg",
        "als_alpha": "alpha",
        "als_iterations": "iter",
        "als_feedback": "feedback",
        "rf_depth": "depth",
        "rf_trees": "trees",
    }
    return " ".join(f"{short.get(k, k)}={_fmt(v)}" for k, v in params.items())


def search(
    movies: DataFrame,
    ratings: DataFrame,
    tags: DataFrame,
    settings: Settings,
    space: Space = DEFAULT_SPACE,
    max_minutes: float | None = None,
    min_coverage: float = 0.0,
    progress: Callable[[str], None] = log.info,
) -> SearchResult:
    """Coordinate-wise grid search on the validation split (module docstring); returns every
    trial and the best by hybrid NDCG@10 (ties: the earlier trial) among the trials whose
    hybrid coverage is at least `min_coverage` (among all if none is)."""
    unknown = sorted({name for _, grid in space for name in grid} - set(TUNED))
    if unknown:
        raise ValueError(f"cannot tune {', '.join(unknown)}; tunable: {', '.join(TUNED)}")
    spark = ratings.sparkSession
    started = time.perf_counter()
    fit, valid, fit_tags = validation_data(ratings, tags)
    n_fit, n_valid = fit.count(), valid.count()
    progress(
        f"tune: fitting on {n_fit} ratings, validating on {n_valid} (test part left out); "
        f"choosing among trials with hybrid coverage >= {min_coverage}"
    )
    models = _Models(movies, fit, fit_tags)
    catalogue = None
    trials: list[Trial] = []
    measured: set[tuple] = set()
    skipped: list[dict[str, Any]] = []
    current = settings
    planned = sum(len(list(itertools.product(*grid.values()))) for _, grid in space)
    for stage, grid in space:
        names = list(grid)
        for values in itertools.product(*(grid[n] for n in names)):
            candidate = config.validate(current.replace(**dict(zip(names, values))))
            params = params_of(candidate)
            key = tuple(params.values())
            if key in measured:
                continue
            if max_minutes is not None and time.perf_counter() - started > max_minutes * 60:
                skipped.append({"stage": stage, **params})
                continue
            measured.add(key)
            t0 = time.perf_counter()
            fitted = models.for_settings(candidate)
            if catalogue is None:
                catalogue = fitted.movie_feats.where(F.col(FE.N_RATINGS) > 0).count()
                progress(f"tune: catalogue (movies rated in the fit part) {catalogue}")
            result = validation_metrics(fitted, fit, valid, candidate, catalogue)
            spark.catalog.clearCache()  # the trial's candidate lists; the shared inputs are checkpointed
            trial = Trial(
                len(trials) + 1,
                stage,
                params,
                result["hybrid"],
                result["als"],
                result["content"],
                result["coverage"],
                round(time.perf_counter() - t0, 1),
            )
            trials.append(trial)
            progress(
                f"trial {trial.number:>2} (<= {planned}) [{stage}] {describe(params)}: hybrid {trial.hybrid:.4f} "
                f"als {trial.als:.4f} content {trial.content:.4f} coverage {trial.coverage:.3f} "
                f"({trial.seconds:.0f} s, {(time.perf_counter() - started) / 60:.1f} min in)"
            )
        if trials:
            current = settings.replace(**best_trial(trials, min_coverage).params)
    if not trials:
        raise ValueError("the search measured no trial (empty space or no time)")
    if skipped:
        progress(f"tune: time budget of {max_minutes} min used up; {len(skipped)} combinations not measured")
    best = best_trial(trials, min_coverage)
    if best.coverage < min_coverage:
        progress(f"tune: no trial reached coverage {min_coverage}; the best by NDCG is chosen anyway")
    calibration = calibrate_components(models.for_settings(settings.replace(**best.params)), fit, valid, settings)
    progress("tune: calibration of the best trial's components: " + describe(calibration))
    return SearchResult(
        trials,
        best,
        settings.replace(**best.params, **calibration),
        n_fit,
        n_valid,
        min_coverage,
        skipped,
        catalogue or 0,
        calibration,
    )


def best_trial(trials: Sequence[Trial], min_coverage: float = 0.0) -> Trial:
    """The highest hybrid NDCG (ties: the earlier trial) among trials covering enough of the catalogue."""
    eligible = [t for t in trials if t.coverage >= min_coverage] or list(trials)
    return max(eligible, key=lambda t: (t.hybrid, -t.number))


def results_table(result: SearchResult, markdown: bool = False) -> str:
    """Every trial in order, the best marked with *, trials below the coverage floor with (c)."""
    header = [
        "#",
        "stage",
        *(n.removeprefix("als_").removeprefix("rf_") for n in TUNED),
        "hybrid",
        "als",
        "content",
        "coverage",
        "s",
    ]
    rows = []
    for t in result.trials:
        mark = ("*" if t is result.best else "") + ("(c)" if t.coverage < result.min_coverage else "")
        rows.append(
            [
                f"{t.number}{mark}",
                t.stage,
                *(_fmt(t.params[n]) for n in TUNED),
                f"{t.hybrid:.4f}",
                f"{t.als:.4f}",
                f"{t.content:.4f}",
                f"{t.coverage:.3f}",
                f"{t.seconds:.0f}",
            ]
        )
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    return format_table(header, rows, right=range(2, len(header)))


def parse_space(text: str) -> Space:
    """A JSON list of [stage, {setting: [values]}] (or a JSON object {stage: {setting: [values]}})."""
    raw = json.loads(text)
    items = raw.items() if isinstance(raw, dict) else raw
    return tuple((str(stage), {str(k): list(v) for k, v in grid.items()}) for stage, grid in items)


def run_search(
    settings: Settings,
    run_id: str,
    space: Space = DEFAULT_SPACE,
    max_minutes: float | None = None,
    min_coverage: float = MIN_COVERAGE,
    progress: Callable[[str], None] = log.info,
) -> SearchResult:
    """`movierec tune`: ingest the data directory into run `run_id` (own session), then `search`."""
    from movierec.spark.paths import RunPaths
    from movierec.spark.session import build_session
    from movierec.spark.warehouse import read_table
    from movierec.stages.ingest import ingest
    from movierec.stages.runner import run_stage

    spark = build_session("tune", settings)
    try:
        run_stage("ingest", ingest, spark, settings, run_id)
        paths = RunPaths(settings.warehouse, run_id)
        movies, ratings, tags = (read_table(spark, p) for p in (paths.movies, paths.ratings, paths.tags))
        return search(movies, ratings, tags, settings, space, max_minutes, min_coverage, progress=progress)
    finally:
        spark.stop()
