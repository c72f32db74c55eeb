"""Each user's candidates (movierec.ranking.candidates) against plain-Python readings of the rules:
ALS's first unrated movies by the model's own predictions, the content side's best unrated pool
movies by genre affinity."""

import random

import numpy as np
import pytest
from pyspark.sql import functions as F

from movierec.models.als import CF_RAW, cf_scores, fit_als
from movierec.ranking.candidates import FROM_ALS, FROM_CONTENT, Catalogue, best_first, candidates

pytestmark = pytest.mark.spark


def pool_catalogue(movies) -> Catalogue:
    """A Catalogue without ALS items, of (movie id, genre map, rating count) pool movies."""
    return Catalogue.build({}, [(m, n) for m, _, n in movies], {m: tuple(g.items()) for m, g, _ in movies})


def test_content_candidates_are_the_best_unrated_movies_of_the_whole_pool():
    # Random genre vectors from few buckets (many movies share one, many affinities tie) and
    # heavy raters.  Weights are multiples of 1/4, so every affinity is exact and the sort
    # below ranks ties as the rule does: more rated first, then the lower movie id.
    rng = random.Random(5)
    weights = lambda keys: {k: rng.choice([0.25, 0.5, 1.0]) for k in rng.sample(range(4), keys)}
    movies = [(m, weights(rng.randint(0, 2)), rng.choice([0, 1, 2, 5, 5, 9])) for m in range(1, 121)]
    catalogue = pool_catalogue(movies)
    dot = lambda a, b: sum(v * b.get(k, 0.0) for k, v in a.items())
    for _ in range(12):
        taste, exposure = weights(rng.randint(0, 3)), {k: -v for k, v in weights(rng.randint(0, 2)).items()}
        rated = set(rng.sample(range(1, 121), rng.choice([0, 3, 40, 100, 118])))
        unrated = [(m, dot(g, exposure) + dot(g, taste), n) for m, g, n in movies if m not in rated]
        best = [m for m, _, _ in sorted(unrated, key=lambda x: (-x[1], -x[2], x[0]))[:7]]
        assert catalogue.content_top(taste, exposure, rated, 7) == best


def test_content_candidates_rank_unrated_movies_by_genre_affinity():
    # movies 1, 2 and 4 share one genre vector, so their affinity is computed once per user
    catalogue = pool_catalogue(
        [(1, {0: 1.0}, 5), (2, {0: 1.0}, 9), (3, {1: 0.6, 2: 0.8}, 7), (4, {0: 1.0}, 9), (5, {}, 0)]
    )
    # user 1: movies 2, 1 (0.7 each; 2 is more rated) ahead of 3 (0.06) and 5 (0); 4 is rated
    assert catalogue.content_top({0: 0.5}, {0: 0.2, 1: 0.1}, {4}, 2) == [2, 1]
    # user 2: 3 has 0.4 + 0.6 - 0.8 = 0.2, 1, 2 and 4 have 0: ties by n_ratings, then movie id: 2
    assert catalogue.content_top({1: 1.0, 2: -1.0}, {2: 0.5}, {5}, 2) == [3, 2]


def test_a_candidate_without_an_als_factor_has_no_cf_raw_and_the_others_their_prediction():
    # movies 10 and 20 have factors; pool movies 15 and 30 have none (15 falls between two
    # factored ids, 30 past the last), so they get None, not a neighbour's prediction
    factors = {10: np.array([1.0, 0.5], np.float32), 20: np.array([-0.25, 2.0], np.float32)}
    pool = [(15, 4), (30, 3), (20, 2)]
    catalogue = Catalogue.build(factors, pool, {15: ((0, 1.0),), 30: ((0, 1.0),), 20: ((1, 1.0),)})
    user = np.array([0.5, 0.75], np.float32)
    ids, cf, als_side, content_side = catalogue.for_user(user, set(), ({0: 1.0}, {}), 2, 3)
    predicted = dict(zip([10, 20], catalogue.predictions(user).tolist()))
    assert ids == [20, 10, 15, 30]  # ALS's by prediction (1.375 > 0.875), then the content side's new ones
    assert cf == [predicted[20], predicted[10], None, None]
    assert als_side == [True, True, False, False] and content_side == [True, False, True, True]


@pytest.mark.parametrize("n", [0, 1, 3, 7, 50, 200, 201, 500])
def test_best_first_is_the_stable_sort_cut_at_n(n):
    rng = np.random.default_rng(n)
    values = rng.integers(0, 20, 200).astype(np.float32)  # many ties
    values[rng.choice(200, 9, replace=False)] = np.nan
    expected = np.argsort(-values, kind="stable")[:n]
    assert best_first(values, n).tolist() == expected.tolist()


def test_the_batch_gives_each_user_als_first_unrated_movies_with_its_own_predictions(spark, settings):
    rng = random.Random(11)
    # heavy and light raters: a user who rated 30 of 40 movies still gets n = 6 from ALS
    rated = {u: rng.sample(range(1, 41), rng.choice([3, 6, 15, 30])) for u in range(1, 31)}
    ratings = spark.createDataFrame(
        [(u, m, rng.randint(1, 10) / 2) for u, ms in rated.items() for m in ms],
        "user_id int, movie_id int, rating double",
    )
    model = fit_als(ratings, settings.replace(als_rank=4, als_iterations=3, als_feedback="rating"))
    # one genre each, movies 1..40; users 1..30 with a content profile, user 30 with an empty one
    movie_feats = spark.createDataFrame(
        [(m, 2000, 3.5, 0.1, ["g"], {m % 3: 1.0}, {}, sum(m in ms for ms in rated.values())) for m in range(1, 41)],
        "movie_id int, year int, mean_rating double, popularity double, genres array<string>, "
        "genre_map map<int,double>, tag_map map<int,double>, n_ratings long",
    )
    profiles = spark.createDataFrame(
        [(u, {u % 3: 0.5} if u < 30 else {}, {u % 3: 1.0} if u < 30 else {}) for u in range(1, 31)],
        "user_id int, genre_taste map<int,double>, genre_exposure map<int,double>",
    )
    n, n_content = 6, 2
    got = candidates(model, ratings, movie_feats, profiles, n, n_content, 40).collect()

    # ALSModel.transform's prediction of every pair: the ranking the ALS side must follow
    everything = ratings.select("user_id").distinct().crossJoin(movie_feats.select("movie_id"))
    predicted = {(r["user_id"], r["movie_id"]): r[CF_RAW] for r in cf_scores(model, everything).collect()}
    by_user: dict[int, list] = {}
    for row in got:
        by_user.setdefault(row["user_id"], []).append(row)
    assert set(by_user) == set(rated)
    for user, rows in by_user.items():
        unrated = sorted((-predicted[user, m], m) for m in range(1, 41) if m not in rated[user])
        expected = [m for _, m in unrated[:n]]
        assert [r["movie_id"] for r in rows if r[FROM_ALS]] == expected, user
        assert len(expected) == n  # no cap: the heaviest raters get n too
        assert sum(r[FROM_CONTENT] for r in rows) == n_content  # an empty profile too: ties by popularity
        assert len({r["movie_id"] for r in rows}) == len(rows)
        for r in rows:
            assert r["movie_id"] not in rated[user]
            assert r[CF_RAW] == predicted[user, r["movie_id"]]  # transform's very float

    some = spark.createDataFrame([(3,), (7,)], "user_id int")
    subset = candidates(model, ratings, movie_feats, profiles, n, n_content, 40, some)
    assert {r["user_id"] for r in subset.select("user_id").distinct().collect()} == {3, 7}
    assert subset.where(F.col(CF_RAW).isNull()).count() == 0


def test_a_block_of_predictions_gives_each_user_the_candidates_of_their_own():
    rng = np.random.default_rng(11)
    factors = {m: rng.normal(size=3).astype(np.float32) for m in range(1, 40)}
    pool = [(m, int(rng.integers(0, 9))) for m in range(20, 60)]
    catalogue = Catalogue.build(factors, pool, {m: ((m % 4, 1.0),) for m, _ in pool})
    users = [rng.normal(size=3).astype(np.float32), None, rng.normal(size=3).astype(np.float32)]
    block = catalogue.predictions_of(users)
    assert block[1] is None
    taste = ({0: 0.5, 2: -1.0}, {1: 0.25})
    for user, predicted, rated in zip(users, block, [{1, 2, 21}, {3}, set()]):
        alone = catalogue.for_user(user, rated, taste, 6, 4)
        assert catalogue.for_user(user, rated, taste, 6, 4, predicted) == alone
        if user is not None:
            assert predicted.tolist() == catalogue.predictions(user).tolist()
