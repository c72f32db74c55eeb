"""Content features and taste profiles on hand-made rows."""

import math
import random

import numpy as np
import pytest

from movierec import features as FE

pytestmark = pytest.mark.spark


def test_release_year_from_title(spark):
    titles = [
        ("Toy Story (1995)",),
        ("Hamlet (2000) ",),
        ("Babylon 5",),
        ("Death Note: Desu nôto (2006–2007)",),
        ("1984 (1984)",),
    ]
    df = spark.createDataFrame(titles, "title string").select(FE.release_year().alias("year"))
    assert [r["year"] for r in df.collect()] == [1995, 2000, None, 2006, 1984]


def test_map_dot_counts_shared_keys_only(spark):
    df = spark.createDataFrame(
        [({1: 0.5, 2: 1.0}, {2: 2.0, 3: 5.0}), ({}, {1: 1.0})], "a map<int,double>, b map<int,double>"
    )
    assert [r[0] for r in df.select(FE.map_dot("a", "b")).collect()] == [2.0, 0.0]  # 1.0 × 2.0; nothing shared


def test_dense_dot_is_map_dot_bit_for_bit(spark):
    import random
    import struct

    rng = random.Random(3)
    rows = [
        (
            {k: rng.uniform(-1, 1) for k in rng.sample(range(40), rng.randint(0, 12))},
            {k: rng.uniform(-1, 1) / 3 for k in rng.sample(range(60), rng.randint(0, 50))},
        )
        for _ in range(200)
    ]
    rows += [({}, {}), ({3: 1.0}, {}), ({}, {0: 2.0}), ({0: -1.0, 7: 0.5}, {0: 0.25})]
    df = spark.createDataFrame(rows, "a map<int,double>, b map<int,double>")
    dense = df.select("a", FE.dense("b").alias("b"))
    bits = lambda rows: [struct.pack("<d", r[0]) for r in rows]
    assert bits(dense.select(FE.dense_dot("a", "b")).collect()) == bits(df.select(FE.map_dot("a", "b")).collect())
    assert dense.select("b").collect()[-4:] == [([],), ([],), ([2.0],), ([0.25],)]


def test_user_profile_taste_and_exposure(spark):
    movie_feats = spark.createDataFrame(
        [(10, 1990, {0: 1.0}, {}), (11, 2000, {1: 1.0}, {5: 1.0})],
        "movie_id int, year int, genre_map map<int,double>, tag_map map<int,double>",
    )
    ratings = spark.createDataFrame([(1, 10, 5.0), (1, 11, 3.0)], "user_id int, movie_id int, rating double")
    p = FE.user_profiles(ratings, movie_feats).first()
    # mean 4.0; deviations +1 (movie 10, genre 0) and -1 (movie 11, genre 1), each over 2 ratings
    assert (p["user_n"], p["user_mean"], p["user_mean_year"]) == (2, 4.0, 1995.0)
    assert p["genre_taste"] == {0: 0.5, 1: -0.5}
    assert p["genre_exposure"] == {0: 0.5, 1: 0.5}
    assert p["tag_taste"] == {5: -0.5} and p["tag_exposure"] == {5: 0.5}


def test_rating_stats_shrink_towards_the_global_mean(spark):
    ratings = spark.createDataFrame(
        [(1, 10, 5.0)] + [(u, 11, 3.0) for u in range(1, 10)], "user_id int, movie_id int, rating double"
    )
    stats = {r["movie_id"]: r for r in FE.rating_stats(ratings).collect()}
    # global mean = (5 + 9×3) / 10 = 3.2; movie 10: (5 + 10×3.2) / (1 + 10) = 37 / 11
    assert stats[10]["mean_rating"] == pytest.approx(37 / 11)
    assert stats[11]["n_ratings"] == 9 and stats[11]["mean_rating"] == pytest.approx((27 + 32) / 19)


def test_genre_tfidf_downweights_common_genres(spark):
    movies = spark.createDataFrame(
        [(1, "A (2000)", ["Drama"]), (2, "B (2000)", ["Drama", "Horror"]), (3, "C (2000)", ["Drama"])],
        "movie_id int, title string, genres array<string>",
    )
    tags = spark.createDataFrame([], "user_id int, movie_id int, tag string, timestamp long")
    ratings = spark.createDataFrame([(1, 1, 4.0)], "user_id int, movie_id int, rating double")
    _, feats, _ = FE.build_features(movies, ratings, tags, 64, 64)
    weights = {r["movie_id"]: sorted(r["genre_map"].values()) for r in feats.collect()}
    assert weights[1] == [0.0] or weights[1] == []  # Drama is in every movie: IDF log(4/4) = 0
    assert weights[2] == [1.0]  # only Horror carries weight, normalised to 1


def test_untagged_movies_get_an_empty_tag_map_and_tagged_ones_a_unit_vector(spark):
    movies = spark.createDataFrame(
        [(1, "A (2000)", ["Drama"]), (2, "B (2001)", ["Comedy"])], "movie_id int, title string, genres array<string>"
    )
    tags = spark.createDataFrame(
        [(7, 2, "funny", 0), (8, 2, "dark", 0)], "user_id int, movie_id int, tag string, timestamp long"
    )
    ratings = spark.createDataFrame([(7, 1, 4.0), (7, 2, 3.0)], "user_id int, movie_id int, rating double")
    _, feats, _ = FE.build_features(movies, ratings, tags, 64, 64)
    tag_maps = {r["movie_id"]: r["tag_map"] for r in feats.collect()}
    assert tag_maps[1] == {}
    assert len(tag_maps[2]) == 2 and sum(w * w for w in tag_maps[2].values()) == pytest.approx(1.0)


def test_pair_features_on_spark_and_on_the_driver_agree_by_name(spark):
    """Each PairFeature's Spark column and driver value on edge cases: no release year, no
    mean year, empty content and taste maps.  Known answers first, then every feature by name,
    bit for bit, between the two ways (the live path scores with the driver's)."""
    import math

    movie_feats = spark.createDataFrame(
        [
            (10, "A (1990)", ["A", "B"], 1990, {0: 0.6, 1: 0.8}, {5: 1.0}, 3, 3.5, math.log1p(3)),
            (11, "B", [], None, {}, {}, 0, 3.2, 0.0),
        ],
        "movie_id int, title string, genres array<string>, year int, genre_map map<int,double>, "
        "tag_map map<int,double>, n_ratings long, mean_rating double, popularity double",
    )
    profiles = spark.createDataFrame(
        [(1, 4, 4.0, 2000.0, {0: 0.5, 1: -0.25}, {1: 0.5}, {}, {5: 0.25}), (2, 1, 2.0, None, {}, {}, {}, {})],
        "user_id int, user_n long, user_mean double, user_mean_year double, genre_taste map<int,double>, "
        "genre_exposure map<int,double>, tag_taste map<int,double>, tag_exposure map<int,double>",
    )
    pairs = spark.createDataFrame([(u, m) for u in (1, 2) for m in (10, 11)], "user_id int, movie_id int")
    batch = {(r.user_id, r.movie_id): r for r in FE.pair_features(pairs, movie_feats, profiles).collect()}

    pick = lambda key, *names: tuple(batch[key][n] for n in names)
    assert pick((1, 10), "f_user_mean", "f_movie_mean", "f_year", "f_year_gap", "f_genre_count") == (
        4.0,
        3.5,
        1990.0,
        -10.0,
        2.0,
    )
    assert pick((1, 10), "f_genre_taste", "f_genre_exposure", "f_tag_taste", "f_tag_exposure") == pytest.approx(
        (0.1, 0.4, 0.0, 0.25)
    )
    assert pick((1, 11), "f_year", "f_year_gap", "f_genre_taste", "f_genre_count") == (2000.0, 0.0, 0.0, 0.0)
    assert pick((2, 10), "f_year", "f_year_gap", "f_user_log_n") == (1990.0, 0.0, pytest.approx(math.log(2)))
    assert pick((2, 11), "f_year", "f_year_gap") == (0.0, 0.0)  # no year anywhere

    tastes = {r.user_id: FE.UserTaste.from_row(r) for r in FE.user_tastes(profiles).collect()}
    contents = {r.movie_id: FE.MovieContent.from_row(r) for r in FE.movie_contents(movie_feats).collect()}
    for (user, movie), row in batch.items():
        values = FE.pair_feature_values(tastes[user], contents[movie])
        assert list(values) == FE.PAIR_FEATURES == [c for c in row.asDict() if c.startswith("f_")]
        assert {name: row[name] for name in FE.PAIR_FEATURES} == values, (user, movie)
        assert FE.feature_vector(values) == row.features.toArray().tolist()


def test_content_map_dot_is_entries_dot_for_every_movie_bit_for_bit():
    """ContentMap.dot adds each movie's products in order to 0.0, a slot at a time: the doubles
    entries_dot (Spark's aggregate) gives, for movies of different lengths, taken in any order,
    with keys the other map lacks and with an all -0.0 sum (Spark's is 0.0)."""
    rng = random.Random(3)
    entries = [
        tuple((k, rng.uniform(-2, 2)) for k in rng.sample(range(50), rng.choice([0, 1, 2, 7, 30]))) for _ in range(60)
    ]
    entries.append(((3, -1.0), (4, -2.0)))  # with other[3] = other[4] = 0.0: -0.0 + -0.0
    table = FE.ContentMap.of(entries)
    other = {k: rng.uniform(-1, 1) for k in rng.sample(range(60), 25)} | {3: 0.0, 4: 0.0}
    rows = np.array(rng.sample(range(len(entries)), len(entries)))
    got = table.take(rows).dot(other).tolist()
    want = [FE.entries_dot(entries[i], other) for i in rows.tolist()]
    assert got == want
    assert [math.copysign(1.0, g) for g in got] == [math.copysign(1.0, w) for w in want]  # no -0.0 where Spark has 0.0
    assert FE.ContentMap.of([(), ()]).dot(other).tolist() == [0.0, 0.0]


def test_feature_matrix_rows_are_each_pairs_own_values():
    """One user's pairs with many movies at once, in the order asked (take), each row the pair's
    own values: a missing year (then the user's mean year) and a missing genre count (NaN)."""
    user = FE.UserTaste(3.5, math.log1p(4), 1994.5, {0: 0.25, 1: -0.5}, {0: 0.5, 1: 0.5}, {7: 0.125}, {7: 1.0})
    comedy = ((0, 0.6), (1, 0.8))
    contents = {
        10: FE.MovieContent(1990, 3.9, 1.2, 2, comedy, ()),
        11: FE.MovieContent(2001, 3.1, 2.2, 2, comedy, ((7, 1.0),)),
        12: FE.MovieContent(None, 3.3, 0.7, None, comedy, ((7, 0.5),)),
        13: FE.MovieContent(1985, 2.9, 0.1, 1, ((1, 1.0),), ()),
    }
    table = FE.MovieArrays.of(contents)
    assert table.rows_of([13, 99, 10]).tolist() == [3, -1, 0]
    order = [12, 10, 13, 11]
    matrix = FE.feature_matrix(user, table.take(table.rows_of(order)))
    for row, movie in zip(matrix.tolist(), order):
        one = FE.feature_vector(FE.pair_feature_values(user, contents[movie]))
        assert row == pytest.approx(one, abs=0, nan_ok=True), movie
    no_year = dict(zip(FE.PAIR_FEATURES, matrix[0].tolist()))
    assert (no_year["f_year"], no_year["f_year_gap"], math.isnan(no_year["f_genre_count"])) == (1994.5, 0.0, True)
    assert no_year["f_tag_taste"] == 0.0625 and no_year["f_genre_taste"] == 0.6 * 0.25 + 0.8 * -0.5
    assert dict(zip(FE.PAIR_FEATURES, matrix[1].tolist()))["f_year_gap"] == 1990 - 1994.5
