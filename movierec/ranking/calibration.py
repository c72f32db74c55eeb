"""Calibration of the two score components: a z-score as the chance the user likes the movie.

For each component, a logistic regression of `liked` (the held-out rating is 4 or more) on
the component's evidence as z-scores (`movierec.ranking.scoring.z_scores`: per user, over the user's
candidates): ALS's preference estimate for the collaborative side; the forest's predicted
rating, the movie's popularity and mean rating and the user's genre-taste match for the
content side (`movierec.ranking.scoring.CB_EVIDENCE`):

    P(liked | evidence) = logistic(Σ slope × z + intercept)

Fitted on held-out ratings that were never fitted on: `movierec tune` uses its validation
split, carved out of the training part, so the test part of `movierec evaluate` stays
unseen.  A candidate the user did not rate in the held-out part counts as not liked, as in
the ranking metrics.
"""

from __future__ import annotations

from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from movierec.data.schemas import MOVIE, RATING, USER
from movierec.ranking.scoring import CB_SLOPE_SETTINGS, CF_SLOPE_SETTINGS, z_name

LIKED = "liked"
# the settings it gives, in order: each component's slopes (one per piece of evidence), then its intercept
CALIBRATION = (*CF_SLOPE_SETTINGS.values(), "cf_intercept", *CB_SLOPE_SETTINGS.values(), "cb_intercept")


def labelled(z: DataFrame, held_out: DataFrame, threshold: float) -> DataFrame:
    """The candidates (with z-scores) of users who have a held-out part, + liked (1.0 or 0.0)."""
    liked = held_out.where(F.col(RATING) >= threshold).select(USER, MOVIE, F.lit(1.0).alias(LIKED))
    return (
        z.join(held_out.select(USER).distinct(), USER, "left_semi")
        .join(liked, [USER, MOVIE], "left")
        .fillna({LIKED: 0.0})
    )


def fit_line(data: DataFrame, z_cols: list[str]) -> tuple[list[float], float]:
    """(slopes, intercept) of an unregularised logistic regression of liked on the columns."""
    features = VectorAssembler(inputCols=z_cols, outputCol="_x").transform(data)
    model = LogisticRegression(
        featuresCol="_x", labelCol=LIKED, regParam=0.0, standardization=False, maxIter=100, tol=1e-9
    ).fit(features)
    return [float(c) for c in model.coefficients], float(model.intercept)


def calibrate(z: DataFrame, held_out: DataFrame, threshold: float = 4.0) -> dict[str, float]:
    """The calibration settings (CALIBRATION) from candidates' z-scores and held-out ratings, rounded to 4 places."""
    cf_cols, cb_cols = [z_name(n) for n in CF_SLOPE_SETTINGS], [z_name(n) for n in CB_SLOPE_SETTINGS]
    data = labelled(z, held_out, threshold).select(*cf_cols, *cb_cols, LIKED).persist()
    try:
        if data.where(F.col(LIKED) == 1.0).isEmpty():
            raise ValueError("no held-out rating of a candidate reaches the threshold: nothing to calibrate on")
        (cf_slopes, cf_intercept), (cb_slopes, cb_intercept) = fit_line(data, cf_cols), fit_line(data, cb_cols)
    finally:
        data.unpersist()
    values = [*cf_slopes, cf_intercept, *cb_slopes, cb_intercept]
    return {name: round(value, 4) for name, value in zip(CALIBRATION, values)}
