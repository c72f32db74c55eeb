"""movierec.ranking.online's request-time path against the batch's own Spark code on the same run.

`RunModels.score` keeps the run on the driver and scores pairs without Spark; these tests
hold it to what the batch's functions give over the run's tables (bit for bit where the
arithmetic is the same, within 1e-12 otherwise: the JVM's exp and C's may differ in the last bit)."""

import math

import numpy as np
import pytest
from pyspark.sql import functions as F

from movierec.ranking import scoring
from movierec.ranking.candidates import candidates
from movierec.spark.paths import RunPaths
from movierec.spark.warehouse import read_table

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def models(spark, pipeline_run):
    from movierec.ranking.online import RunModels

    settings, run_id = pipeline_run
    return RunModels.load(spark, settings, run_id)


def test_als_prediction_is_alsmodel_transform_bit_for_bit(spark, models):
    from movierec.models.als import als_predictions

    users = sorted(models.user_factors)[:5]
    items = sorted(models.item_factors)
    pairs = spark.createDataFrame([(u, m) for u in users for m in items], "user_id int, movie_id int")
    expected = {(r.user_id, r.movie_id): r.prediction for r in models.als.transform(pairs).collect()}
    columns = np.stack([models.item_factors[m] for m in items], axis=1)
    block = als_predictions(np.stack([models.user_factors[u] for u in users]), columns)
    for user, block_row in zip(users, block):
        want = [expected[(user, m)] for m in items]
        assert als_predictions(models.user_factors[user], columns).tolist() == want
        assert block_row.tolist() == want


def test_als_prediction_adds_in_single_precision_in_factor_order():
    from movierec.models.als import als_predictions

    # 1 + 2^-24 is not a float32: adding the small term first or last rounds differently
    user = np.array([1.0, 2.0**-24, 2.0**-24], dtype=np.float32)
    items = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0]], dtype=np.float32)
    assert als_predictions(user, np.ascontiguousarray(items.T)).tolist() == [1.0, 2.0**-23]
    assert als_predictions(user[None, :], np.ascontiguousarray(items.T)).tolist() == [[1.0, 2.0**-23]]


def test_a_block_of_users_predictions_is_each_users_own_across_tiles():
    from movierec.models.als import MOVIES_PER_TILE, als_predictions

    rng = np.random.default_rng(3)
    columns = np.ascontiguousarray(rng.normal(size=(7, 2 * MOVIES_PER_TILE + 5)).astype(np.float32))
    users = rng.normal(size=(5, 7)).astype(np.float32)
    block = als_predictions(users, columns)
    assert block.shape == (5, columns.shape[1])
    for user, row in zip(users, block):
        assert row.view(np.int32).tolist() == als_predictions(user, columns).view(np.int32).tolist()


def same(a, b) -> bool:
    """The same value: equal with the same sign (-0.0 is not 0.0), or both missing (None), or
    both NaN."""
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def test_pair_features_and_forest_on_the_driver_are_the_batchs_bit_for_bit(spark, models):
    """Every pair feature, by name: the driver's `array` against the batch's Spark `column`.

    Forest splits sit exactly on training values: a feature one bit off could change a tree's
    answer, so the driver's features must equal Spark's exactly, not approximately.  The names
    are compared too: a feature the batch computes and the driver does not (or the other way
    round) fails here."""
    from movierec import features as FE
    from movierec.models.forest import cb_scores

    users = sorted(models.user_tastes)[:4]
    movies = sorted(models.movie_contents)[::3]
    pairs = spark.createDataFrame([(u, m) for u in users for m in movies], "user_id int, movie_id int")
    frame = cb_scores(models.forest, FE.pair_features(pairs, models.movie_feats, models.profiles))
    assert [c for c in frame.columns if c not in (*pairs.columns, FE.FEATURES, "cb_raw")] == FE.PAIR_FEATURES
    assert models.forest.numFeatures == len(FE.PAIR_FEATURES)
    batch = frame.collect()
    assert len(batch) == len(users) * len(movies)
    for row in batch:
        values = FE.pair_feature_values(models.user_tastes[row.user_id], models.movie_contents[row.movie_id])
        assert list(values) == FE.PAIR_FEATURES
        for name in FE.PAIR_FEATURES:
            assert same(values[name], row[name]), (row.user_id, row.movie_id, name, values[name], row[name])
        assert FE.feature_vector(values) == pytest.approx(row.features.toArray().tolist(), abs=0, nan_ok=True)
        assert models.forest.predict(row.features) == row.cb_raw


def test_live_pairs_have_the_batchs_features_evidence_and_stored_scores(spark, pipeline_run, models):
    """The live path's pairs against the batch on the run's own stored recommendations: every
    pair feature and every piece of evidence by name, exactly, and the stored scores."""
    from movierec import features as FE

    settings, run_id = pipeline_run
    paths = RunPaths(settings.warehouse, run_id)
    stored = read_table(spark, paths.recommendations).where("user_id in (3, 7)").collect()
    for user in (3, 7):
        rows = {r.movie_id: r for r in stored if r.user_id == user}
        assert rows, user
        pairs = spark.createDataFrame([(user, m) for m in rows], "user_id int, movie_id int")
        only = F.col("user_id") == user
        raw = {
            r.movie_id: r
            for r in scoring.raw_scores(
                pairs, models.als, models.forest, models.movie_feats, models.profiles.where(only)
            ).collect()
        }
        feats = {
            r.movie_id: r for r in FE.pair_features(pairs, models.movie_feats, models.profiles.where(only)).collect()
        }
        live = models.pairs(user, list(rows))
        assert sorted(p.movie_id for p in live) == sorted(rows)
        for pair in live:
            assert list(pair.features) == FE.PAIR_FEATURES and list(pair.evidence) == list(scoring.EVIDENCE)
            for name in FE.PAIR_FEATURES:
                assert same(pair.features[name], feats[pair.movie_id][name]), (user, pair.movie_id, name)
            for name, column in scoring.EVIDENCE.items():
                assert same(pair.evidence[name], raw[pair.movie_id][column]), (user, pair.movie_id, name)
        for got in models.score(user, list(rows)):
            want = rows[got["movie_id"]]
            for column in ("score", "cf_score", "cb_score"):
                assert got[column] == pytest.approx(want[column], rel=0, abs=1e-12), (user, got["movie_id"], column)


def test_blend_values_is_scoring_blend(spark, pipeline_run):
    import random

    settings, _ = pipeline_run
    rng = random.Random(5)
    names = list(scoring.EVIDENCE)
    columns = list(scoring.EVIDENCE.values())
    rows = [(1, i, *[None if (i + j) % 7 == 0 else rng.uniform(-1, 5) for j in range(len(names))]) for i in range(200)]
    scale_row = (
        1,
        *[v for j, _ in enumerate(names) for v in (rng.uniform(0, 3), 0.0 if j == 1 else rng.uniform(0.1, 2))],
    )
    raw = spark.createDataFrame(rows, "user_id int, movie_id int, " + ", ".join(f"{c} double" for c in columns))
    scale = spark.createDataFrame(
        [scale_row], "user_id int, " + ", ".join(f"{n}_{stat} double" for n in names for stat in ("mean", "std"))
    )  # one zero spread: the MIN_STD floor
    scales = scoring.scales_of(scale.first())
    assert scales == {n: (scale_row[1 + 2 * j], scale_row[2 + 2 * j]) for j, n in enumerate(names)}
    for params in (
        scoring.Blend.from_settings(settings),
        scoring.Blend.plain(0.2, 0.8),
        scoring.Blend(0.5, 0.5, {"cf": 40.0}, -3.0, {"cb": 30.0, "taste": -2.0}, 1.0),
    ):  # exp overflows
        batch = {r.movie_id: r for r in scoring.blend(raw, scale, params).collect()}
        for row in rows:
            evidence = scoring.evidence_of(dict(zip(columns, row[2:])))
            got = scoring.blend_values(evidence, scales, params)
            for column in ("score", "cf_score", "cb_score"):
                assert math.isclose(got[column], batch[row[1]][column], rel_tol=0, abs_tol=1e-12), (row[1], column)


def test_score_is_the_batch_scoring_of_the_same_pairs(spark, pipeline_run, models):
    settings, run_id = pipeline_run
    paths = RunPaths(settings.warehouse, run_id)
    rated = {r.movie_id for r in read_table(spark, paths.ratings).where("user_id = 3").collect()}
    known = sorted(models.movie_ids - rated)
    without_factors = [m for m in known if m not in models.item_factors][:3]
    movie_ids = known[:25] + without_factors
    assert without_factors, "the run should have catalogue movies that ALS never saw"

    pairs = spark.createDataFrame([(3, m) for m in movie_ids], "user_id int, movie_id int")
    user = F.col("user_id") == 3
    raw = scoring.raw_scores(pairs, models.als, models.forest, models.movie_feats, models.profiles.where(user))
    batch = scoring.blend(raw, models.scales.where(user), scoring.Blend.from_settings(settings))
    expected = {r.movie_id: r.asDict() for r in batch.collect()}

    live = models.score(3, movie_ids)
    assert [r["movie_id"] for r in live] == sorted(movie_ids, key=lambda m: (-expected[m]["score"], m))
    for row in live:
        want = expected[row["movie_id"]]
        for column in ("score", "cf_score", "cb_score"):
            assert row[column] == pytest.approx(want[column], abs=1e-12), (row["movie_id"], column)
    average = 1 / (1 + math.exp(-settings.cf_intercept))  # ALS never saw them: z_cf = 0
    assert all(row["cf_score"] == pytest.approx(average) for row in live if row["movie_id"] in without_factors)


def test_score_of_a_new_movie_uses_the_genres_given(models):
    from movierec.ranking.online import UnknownMovie, UnknownUser

    known = sorted(models.movie_ids)[:2]
    live = {r["movie_id"]: r for r in models.score(3, known + [999_999], {999_999: ["Comedy"]})}
    assert set(live) == {*known, 999_999}
    assert live[999_999]["cf_score"] == pytest.approx(1 / (1 + math.exp(-models.settings.cf_intercept)))
    assert 0 < live[999_999]["cb_score"] < 1
    with pytest.raises(UnknownMovie):
        models.score(3, [999_999])
    with pytest.raises(UnknownUser):
        models.score(10**8, known)


def test_candidates_on_the_driver_are_the_batchs_for_every_user(spark, pipeline_run, models):
    """RunModels.candidates (live recommend's pool) against the batch's, drawn in Spark's Python workers."""
    settings, _ = pipeline_run
    batch = candidates(
        models.als,
        models.ratings,
        models.movie_feats,
        models.profiles,
        settings.als_candidates,
        settings.content_candidates,
        settings.content_pool,
    )
    expected: dict[int, dict[int, float | None]] = {}
    for row in batch.collect():
        expected.setdefault(row.user_id, {})[row.movie_id] = row.cf_raw
    assert len(expected) == len(models.user_ids) > 10
    for user in sorted(expected):
        live = models.candidates(user)
        assert len(live) == len(set(live)), user
        assert set(live) == set(expected[user]), (user, sorted(set(live) ^ set(expected[user])))
        assert not set(live) & models.rated[user]
        # each candidate's cf_raw, as the batch stores it: ALS's prediction, as the live path makes it
        assert [expected[user][m] for m in live] == models.cf_raw(user, live), user


def test_the_batchs_candidate_evidence_is_what_spark_plans_compute(spark, pipeline_run, models):
    """candidates(..., forest=) computes each candidate's content evidence in the workers (the pair
    features' numpy form, the forest's arrays); scoring.raw_scores computes it by Spark's joins,
    columns and the forest's transform.  Every pair of every user of a real run, bit for bit."""
    settings, _ = pipeline_run
    s = settings
    args = (models.als, models.ratings, models.movie_feats, models.profiles)
    sizes = (s.als_candidates, s.content_candidates, s.content_pool)
    plain = candidates(*args, *sizes).select("user_id", "movie_id")
    scored = {(r.user_id, r.movie_id): r for r in candidates(*args, *sizes, forest=models.forest).collect()}
    spark_raw = scoring.raw_scores(plain, models.als, models.forest, models.movie_feats, models.profiles).collect()
    assert len(spark_raw) == len(scored) > 1000
    assert len({user for user, _ in scored}) == len(models.user_ids)
    for want in spark_raw:
        got = scored[want.user_id, want.movie_id]
        for column in scoring.EVIDENCE.values():
            assert same(got[column], want[column]), (want.user_id, want.movie_id, column, got[column], want[column])


def test_recommend_is_the_batch_top_k_of_its_candidates(spark, pipeline_run, models):
    settings, run_id = pipeline_run
    user = sorted(models.user_ids)[1]
    pairs = spark.createDataFrame([(user, m) for m in models.candidates(user)], "user_id int, movie_id int")
    only = F.col("user_id") == user
    raw = scoring.raw_scores(pairs, models.als, models.forest, models.movie_feats, models.profiles.where(only))
    batch = scoring.top_k(scoring.blend(raw, models.scales.where(only), scoring.Blend.from_settings(settings)), 40)
    expected = sorted((r.rank, r.movie_id, r.score) for r in batch.collect())
    live = models.recommend(user, 40)
    assert [(r["rank"], r["movie_id"]) for r in live] == [(rank, movie) for rank, movie, _ in expected]
    assert [r["score"] for r in live] == pytest.approx([score for *_, score in expected], abs=1e-12)
    assert len(models.recommend(user, 10_000)) == len(pairs.collect())  # never more rows than candidates


def test_feedback_that_repeats_the_runs_ratings_re_solves_the_stored_factor(models):
    """The fold-in over a user's own ratings (given again as feedback) is the factor Spark stored."""
    checked = 0
    for user in sorted(models.user_ids)[:25]:
        movies, ratings = models.user_ratings[user]
        state = models.user_state(user, list(zip(movies.tolist(), ratings.tolist())))
        assert state.rated == models.rated[user]
        stored = models.user_factors[user]
        np.testing.assert_allclose(state.factor, stored, rtol=1e-4, atol=1e-5 * float(np.abs(stored).max()))
        # and the content profile rebuilt from them is the one the batch built
        batch = models.user_tastes[user]
        rebuilt = state.taste
        assert (rebuilt.user_mean, rebuilt.log_n, rebuilt.mean_year) == (batch.user_mean, batch.log_n, batch.mean_year)
        for name in ("genre_taste", "genre_exposure", "tag_taste", "tag_exposure"):
            got, want = getattr(rebuilt, name), getattr(batch, name)
            assert set(got) == set(want), (user, name)
            for key in want:
                assert got[key] == pytest.approx(want[key], rel=1e-15, abs=1e-18), (user, name, key)
        checked += 1
    assert checked == 25


def test_a_rating_given_since_the_run_takes_the_movie_out_and_moves_the_list(models):
    user = sorted(models.user_ids)[2]
    before = models.recommend(user, 20)
    top = before[0]["movie_id"]
    after = models.recommend(user, 20, feedback=[(top, 5.0)])
    assert top not in [row["movie_id"] for row in after]
    assert [row["rank"] for row in after] == list(range(1, 21))
    state = models.user_state(user, [(top, 5.0)])
    assert top in state.rated and not np.allclose(state.factor, models.user_factors[user])
    assert state.taste != models.user_tastes[user]  # the profile counts the new rating
    assert state.taste.log_n == pytest.approx(math.log1p(len(models.rated[user]) + 1))
    # the list is the batch's ranking of the new candidates with the new factor and profile, on
    # the scale over those candidates
    pairs = models.pair_arrays(user, models.candidates(user, state), state=state)
    expected = models.rank(pairs, models.scales_over(pairs), 20)
    assert [row["movie_id"] for row in after] == [row["movie_id"] for row in expected]
    assert models.scales_over(pairs) != models.user_scales[user]
    # a later rating of the same movie replaces the earlier one
    again = models.user_state(user, [(top, 1.0), (top, 5.0)])
    assert again.factor == pytest.approx(state.factor) and again.taste == state.taste


def test_the_scale_over_a_users_candidates_is_the_stored_one_for_every_user(models):
    """scoring.scales_over, the driver's twin of scoring.user_scales, over each user's candidate pairs."""
    for user in sorted(models.user_ids):
        got = models.scales_over(models.pair_arrays(user, models.candidates(user)))
        want = models.user_scales[user]
        assert set(got) == set(want) == set(scoring.EVIDENCE), user
        for name, scale in want.items():
            assert got[name].mean == pytest.approx(scale.mean, rel=1e-12, abs=1e-15), (user, name)
            assert got[name].std == pytest.approx(scale.std, rel=1e-9, abs=1e-15), (user, name)


def test_a_user_the_run_never_saw_gets_the_list_of_a_run_user_with_the_same_ratings(models):
    """A new user's first ratings give a personal list; given exactly a run user's ratings, it is
    that user's list (the fold-in reaches the stored factor to about 1e-4, so near-ties may swap)."""
    from movierec.ranking.online import UnknownUser

    newcomer = max(models.user_ids) + 1
    with pytest.raises(UnknownUser):
        models.recommend(newcomer, 10)
    for user in sorted(models.user_ids)[3:6]:
        movies, ratings = models.user_ratings[user]
        given = list(zip(movies.tolist(), ratings.tolist()))
        stored = models.recommend(user, 10)
        fresh = models.recommend(newcomer, 10, feedback=given)
        assert not {row["movie_id"] for row in fresh} & models.rated[user]
        assert len({row["movie_id"] for row in fresh} & {row["movie_id"] for row in stored}) >= 9, user
        assert [row["score"] for row in fresh] == pytest.approx([row["score"] for row in stored], rel=1e-3)
    one = models.recommend(newcomer, 10, feedback=[(given[0][0], 5.0)])
    assert len(one) == 10 and given[0][0] not in {row["movie_id"] for row in one}
