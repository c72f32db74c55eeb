"""Candidates, the hybrid score, and top-K: the one implementation the batch and the live
fallback share.

The scale problem: ALS gives an implicit preference estimate (around 0..1, spread differs
per user), the random forest a predicted rating (0.5..5, narrow spread).  Blending them raw,
as the seed did, lets whichever has the wider spread decide alone; standardising both and
blending the z-scores still gives a weak component as much say as a strong one.  So each
component is put on the one scale that means the same for both: the probability that the
user likes the movie (rates it 4 or more).

    z_x      = (x - mean_u(x)) / std_u(x)        for each piece of evidence x, per user, over
                                                  the user's candidates (EVIDENCE)
    cf_score = logistic(cf_slope × z_cf + cf_intercept)
    cb_score = logistic(Σ slope_x × z_x + cb_intercept)   over the content side's evidence:
               the forest's predicted rating, the movie's popularity and mean rating, the
               user's genre-taste match (CB_EVIDENCE)
    score    = cf_weight × cf_score + cb_weight × cb_score

Slopes and intercepts are logistic regressions of "held-out rating >= 4" on the evidence,
fitted by `movierec tune` on the validation split carved out of the training part
(`movierec.ranking.calibration`); the defaults are ml-latest-small's.  Evidence that predicts well gets
a steep slope, weak evidence a flat one: the 70/30 weights then blend two probabilities,
and each side moves the order only as far as its evidence goes.

The per-user means and deviations are computed once in the batch (`user_scales`) and stored
with the run, so the live fallback puts any new pair on exactly the batch's scale.  A movie
ALS never saw (no cf_raw) gets z_cf = 0, i.e. cf_score = logistic(cf_intercept): the
chance of an average candidate, no evidence either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from pyspark.ml.recommendation import ALSModel
from pyspark.ml.regression import RandomForestRegressionModel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from movierec.data.schemas import CB_SCORE, CF_SCORE, MOVIE, RANK, SCORE, USER
from movierec.features import (
    F_GENRE_TASTE,
    F_MOVIE_MEAN,
    F_MOVIE_POPULARITY,
    MEAN_RATING,
    N_RATINGS,
    pair_features,
)
from movierec.models.als import CF_RAW, cf_scores
from movierec.models.forest import CB_RAW, cb_scores

MIN_STD = 1e-6

# The evidence each component's calibration weighs: name → the raw column it is read from.
# ALS's is its preference estimate; the content side's is the forest's predicted rating and
# three of the pair features it was predicted from (movierec.features.PAIR_FEATURE_SPECS).
CF_EVIDENCE = {"cf": CF_RAW}
CB_EVIDENCE = {"cb": CB_RAW, "popularity": F_MOVIE_POPULARITY, "quality": F_MOVIE_MEAN, "taste": F_GENRE_TASTE}
EVIDENCE = {**CF_EVIDENCE, **CB_EVIDENCE}
# The setting (movierec.config) that holds each piece of evidence's slope, per component.
CF_SLOPE_SETTINGS = {"cf": "cf_slope"}
CB_SLOPE_SETTINGS = {
    "cb": "cb_slope",
    "popularity": "cb_popularity_slope",
    "quality": "cb_quality_slope",
    "taste": "cb_taste_slope",
}


def z_name(name: str) -> str:
    return f"z_{name}"


def mean_column(name: str) -> str:
    """The user_scales column of a piece of evidence's per-user mean (cf_mean, cb_mean, …)."""
    return f"{name}_mean"


def std_column(name: str) -> str:
    """The user_scales column of a piece of evidence's per-user standard deviation (cf_std, …)."""
    return f"{name}_std"


def _exp(x: float) -> float:
    """math.exp, but infinity where it overflows, as the JVM's exp gives (and the chance is then 0)."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


class Arithmetic(NamedTuple):
    """The few operations of the formulas below that Spark columns and Python floats spell
    differently.  The batch passes SPARK (its columns); the live fallback's driver-side path
    (movierec.ranking.online) passes FLOATS, so both run the one definition of each formula."""

    lit: Callable[[float], Any]
    exp: Callable[[Any], Any]
    greatest: Callable[[Any, Any], Any]
    or_zero: Callable[[Any, Callable[[Any], Any]], Any]  # f(x), or 0.0 where x is missing (null / None)


def _exp_array(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # infinity where it overflows, as _exp
        return np.exp(x)


SPARK = Arithmetic(lit=F.lit, exp=F.exp, greatest=F.greatest, or_zero=lambda x, f: F.coalesce(f(x), F.lit(0.0)))
FLOATS = Arithmetic(lit=float, exp=_exp, greatest=max, or_zero=lambda x, f: 0.0 if x is None else f(x))
# numpy arrays of many pairs at once (NaN where evidence is missing): the live path's lists
ARRAYS = Arithmetic(
    lit=float, exp=_exp_array, greatest=np.maximum, or_zero=lambda x, f: np.where(np.isnan(x), 0.0, f(x))
)


def evidence_of(columns: Mapping[str, Any]) -> dict[str, Any]:
    """A pair's evidence (EVIDENCE name → value) from its raw columns (column name → value or
    Spark column); a column it lacks is missing evidence (None)."""
    return {name: columns.get(col) for name, col in EVIDENCE.items()}


def raw_scores(
    pairs: DataFrame, als: ALSModel, forest: RandomForestRegressionModel, movie_feats: DataFrame, profiles: DataFrame
) -> DataFrame:
    """(user_id, movie_id) pairs → user_id, movie_id, cf_raw (null if ALS cannot score it), cb_raw,
    and the other raw evidence columns (EVIDENCE), by Spark plans: the pair features' columns
    over joins, the forest's transform.  Pairs that carry their cf_raw already keep it.  The
    stages get their candidates' evidence from movierec.ranking.candidates (given the forest,
    the same numbers in one pass in the workers); this is the Spark form it is tested against."""
    with_cf = (
        pairs.select(USER, MOVIE, CF_RAW) if CF_RAW in pairs.columns else cf_scores(als, pairs.select(USER, MOVIE))
    )
    return cb_scores(forest, pair_features(with_cf, movie_feats, profiles)).select(USER, MOVIE, *EVIDENCE.values())


def user_scales(raw: DataFrame) -> DataFrame:
    """Per user: mean and population standard deviation of each piece of evidence over the
    user's candidates (columns mean_column(name), std_column(name): cf_mean, cf_std, cb_mean, …)."""
    present = {name: col for name, col in EVIDENCE.items() if col in raw.columns}
    stats = [
        agg(F.col(col)).alias(column(name))
        for name, col in present.items()
        for column, agg in ((mean_column, F.avg), (std_column, F.stddev_pop))
    ]
    defaults = {column(name): value for name in present for column, value in ((mean_column, 0.0), (std_column, 1.0))}
    return raw.groupBy(USER).agg(*stats).fillna(defaults)  # type: ignore[arg-type]  # a dict of floats is what fillna takes


class Scale(NamedTuple):
    """One user's mean and standard deviation of one piece of evidence (a user_scales pair of columns)."""

    mean: float
    std: float


def scales_of(row) -> dict[str, Scale]:
    """A user_scales row as evidence name → Scale (the live path's copy): only the evidence the
    run's scales hold (a run scored before some evidence was added lacks its columns)."""
    fields = row.asDict()
    return {
        name: Scale(fields[mean_column(name)], fields[std_column(name)])
        for name in EVIDENCE
        if mean_column(name) in fields
    }


def scales_over(evidence: Mapping[str, np.ndarray], names: Iterable[str]) -> dict[str, Scale]:
    """`user_scales` of one user on the driver: each named piece of evidence's mean and population
    standard deviation over the user's candidate pairs (one value per pair, NaN where missing),
    missing values left out, as Spark's avg and stddev_pop do; mean 0 and deviation 1 where no
    pair has a value (its fillna).  For a user whose ratings the run lacks (given since, or a
    user it never saw)."""
    scales = {}
    for name in names:
        values = evidence[name][~np.isnan(evidence[name])]
        scales[name] = Scale(float(values.mean()), float(values.std())) if values.size else Scale(0.0, 1.0)
    return scales


@dataclass(frozen=True)
class Blend:
    """The weights and each component's calibration (module docstring): slopes per piece of evidence."""

    cf_weight: float
    cb_weight: float
    cf_slopes: dict[str, float]  # name in CF_EVIDENCE → slope
    cf_intercept: float
    cb_slopes: dict[str, float]  # name in CB_EVIDENCE → slope
    cb_intercept: float

    @classmethod
    def from_settings(cls, settings) -> Blend:
        slopes = lambda names: {name: getattr(settings, setting) for name, setting in names.items()}
        return cls(
            settings.cf_weight,
            settings.cb_weight,
            slopes(CF_SLOPE_SETTINGS),
            settings.cf_intercept,
            slopes(CB_SLOPE_SETTINGS),
            settings.cb_intercept,
        )

    @classmethod
    def plain(cls, cf_weight: float, cb_weight: float) -> Blend:
        """logistic(z_cf) and logistic(z_cb): no calibration, the forest's prediction alone (for tests)."""
        return cls(cf_weight, cb_weight, {"cf": 1.0}, 0.0, {"cb": 1.0}, 0.0)


def z_score(value: Any, mean: Any, std: Any, ops: Arithmetic = SPARK):
    """(value - mean) / std on the user's scale, the spread floored at MIN_STD; 0 where the value is
    missing (no evidence either way).  The one definition: Spark columns (SPARK) in the batch,
    floats (FLOATS) in the live path."""
    return ops.or_zero(value, lambda v: (v - mean) / ops.greatest(std, ops.lit(MIN_STD)))


def z_scores(raw: DataFrame, scales: DataFrame) -> DataFrame:
    """raw + z_<name> for each piece of evidence in both raw and scales: standardised on the user's
    scale, 0 where the value is missing.  (Evidence a run's scales lack, e.g. a run scored before
    that evidence was added, gets no column: `blend` counts it as z = 0.)"""
    present = {
        name: col for name, col in EVIDENCE.items() if col in raw.columns and mean_column(name) in scales.columns
    }
    z = [
        z_score(F.col(col), F.col(mean_column(name)), F.col(std_column(name))).alias(z_name(name))
        for name, col in present.items()
    ]
    return raw.join(scales, USER).select(*raw.columns, *z)


def z_values(evidence: Mapping[str, float | None], scales: Mapping[str, Scale]) -> dict[str, float]:
    """z_scores of one pair on the driver: evidence name → z, for the evidence its user's scales hold."""
    return {name: z_score(evidence.get(name), scale.mean, scale.std, FLOATS) for name, scale in scales.items()}


def calibrated_chance(z: Mapping[str, Any], slopes: Mapping[str, float], intercept: Any, exp: Callable = F.exp):
    """logistic(intercept + Σ slope × z[name]): the evidence as the chance the user likes the movie.

    Evidence z lacks (the run's scales do not hold it) counts as z = 0, no term.  The one
    definition of the formula: with Spark columns (exp = F.exp) in the batch, with floats
    (exp = FLOATS.exp) in the live fallback's driver-side path (movierec.ranking.online)."""
    logit = intercept
    for name, slope in slopes.items():
        if slope and name in z:
            logit = logit + slope * z[name]
    return 1.0 / (1.0 + exp(-logit))


def hybrid_score(cf_score: Any, cb_score: Any, params: Blend):
    """cf_weight × cf_score + cb_weight × cb_score (Spark columns or floats)."""
    return params.cf_weight * cf_score + params.cb_weight * cb_score


def component_scores(z: Mapping[str, Any], params: Blend, ops: Arithmetic = SPARK) -> dict[str, Any]:
    """cf_score and cb_score, each component's calibrated chance, from the z-scores (Spark columns or floats)."""
    return {
        CF_SCORE: calibrated_chance(z, params.cf_slopes, ops.lit(params.cf_intercept), ops.exp),
        CB_SCORE: calibrated_chance(z, params.cb_slopes, ops.lit(params.cb_intercept), ops.exp),
    }


def blend(raw: DataFrame, scales: DataFrame, params: Blend) -> DataFrame:
    """raw scores + cf_score, cb_score (each a calibrated chance, 0..1) and the hybrid score."""
    z = z_scores(raw, scales)
    chances = component_scores({name: F.col(z_name(name)) for name in EVIDENCE if z_name(name) in z.columns}, params)
    scaled = z.select(*raw.columns, *[chance.alias(column) for column, chance in chances.items()])
    return scaled.withColumn(SCORE, hybrid_score(F.col(CF_SCORE), F.col(CB_SCORE), params))


def blend_values(evidence: Mapping[str, float | None], scales: Mapping[str, Scale], params: Blend) -> dict[str, float]:
    """blend of one pair on the driver: score, cf_score, cb_score from its evidence (EVIDENCE name →
    raw value, None where missing) and its user's scales, by the same formulas as the batch."""
    chances = component_scores(z_values(evidence, scales), params, FLOATS)
    return {SCORE: hybrid_score(chances[CF_SCORE], chances[CB_SCORE], params), **chances}


def blend_arrays(
    evidence: Mapping[str, np.ndarray], scales: Mapping[str, Scale], params: Blend
) -> dict[str, np.ndarray]:
    """blend_values of many pairs of one user at once: evidence name → one value per pair (NaN
    where missing) → score, cf_score, cb_score arrays, by the same formulas."""
    z = {
        name: z_score(evidence[name], scale.mean, scale.std, ARRAYS)
        for name, scale in scales.items()
        if name in evidence
    }
    chances = component_scores(z, params, ARRAYS)
    return {SCORE: hybrid_score(chances[CF_SCORE], chances[CB_SCORE], params), **chances}


def top_k(scored: DataFrame, k: int, by: str = SCORE) -> DataFrame:
    """The best k rows per user by `by` (ties: lower movie id first), numbered rank 1..k."""
    window = Window.partitionBy(USER).orderBy(F.col(by).desc(), F.col(MOVIE).asc())
    return scored.withColumn(RANK, F.row_number().over(window)).where(F.col(RANK) <= k)


def content_pool(movie_feats: DataFrame, size: int) -> DataFrame:
    """The movies content candidates are drawn from: the most rated, plus every unrated (new) one."""
    window = Window.orderBy(F.col(N_RATINGS).desc(), F.col(MEAN_RATING).desc(), F.col(MOVIE).asc())
    ranked = movie_feats.withColumn("_pop_rank", F.row_number().over(window))
    return ranked.where((F.col("_pop_rank") <= size) | (F.col(N_RATINGS) == 0)).drop("_pop_rank")


def popular_movies(movie_feats: DataFrame, n: int) -> DataFrame:
    """rank, movie_id, score: the n most rated movies (ties: higher mean rating), for cold starts."""
    window = Window.orderBy(F.col(N_RATINGS).desc(), F.col(MEAN_RATING).desc(), F.col(MOVIE).asc())
    return (
        movie_feats.where(F.col(N_RATINGS) > 0)
        .select(MOVIE, F.col(N_RATINGS).cast("double").alias(SCORE), N_RATINGS, MEAN_RATING)
        .withColumn(RANK, F.row_number().over(window))
        .where(F.col(RANK) <= n)
        .select(RANK, MOVIE, SCORE)
    )
