"""Content features and taste profiles on hand-made rows."""

import math

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


def test_feature_rows_are_each_pairs_values_with_shared_parts_taken_once():
    """feature_rows takes a dot product once per content-map object, and must still give every
    pair its own values: movies sharing a genre tuple, movies with equal but separate tuples,
    and one whose year is missing (then the user's mean year)."""
    comedy = ((0, 0.6), (1, 0.8))
    equal = tuple((key, value) for key, value in comedy)
    assert equal == comedy and equal is not comedy
    user = FE.UserTaste(3.5, math.log1p(4), 1994.5, {0: 0.25, 1: -0.5}, {0: 0.5, 1: 0.5}, {7: 0.125}, {7: 1.0})
    movies = [
        FE.MovieContent(1990, 3.9, 1.2, 2, comedy, ()),
        FE.MovieContent(2001, 3.1, 2.2, 2, comedy, ((7, 1.0),)),
        FE.MovieContent(None, 3.3, 0.7, 2, equal, ((7, 0.5),)),
        FE.MovieContent(1985, 2.9, 0.1, 1, ((1, 1.0),), ()),
    ]
    expected = [FE.feature_vector(FE.pair_feature_values(user, movie)) for movie in movies]
    assert FE.feature_rows(user, movies) == expected
    assert len({tuple(row) for row in expected}) == len(movies)  # four different rows

    # movies made one at a time and dropped at once: a freed tuple's id is soon another's, and
    # must not hand that one the freed tuple's value
    def one_at_a_time():
        for i in range(200):
            yield FE.MovieContent(2000, 3.0, 1.0, 1, tuple([(i % 2, 1.0 + i)]), ())

    made = list(one_at_a_time())
    assert FE.feature_rows(user, one_at_a_time()) == [
        FE.feature_vector(FE.pair_feature_values(user, movie)) for movie in made
    ]
