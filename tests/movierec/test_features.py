"""Content features and taste profiles on hand-made rows."""
import pytest

from movierec import features as FE

pytestmark = pytest.mark.spark


def test_release_year_from_title(spark):
    titles = [("Toy Story (1995)",), ("Hamlet (2000) ",), ("Babylon 5",), ("Death Note: Desu nôto (2006–2007)",),
              ("1984 (1984)",)]
    df = spark.createDataFrame(titles, "title string").select(FE.release_year().alias("year"))
    assert [r["year"] for r in df.collect()] == [1995, 2000, None, 2006, 1984]


def test_map_dot_counts_shared_keys_only(spark):
    df = spark.createDataFrame([({1: 0.5, 2: 1.0}, {2: 2.0, 3: 5.0}), ({}, {1: 1.0})],
                               "a map<int,double>, b map<int,double>")
    assert [r[0] for r in df.select(FE.map_dot("a", "b")).collect()] == [2.0, 0.0]    # 1.0 × 2.0; nothing shared


def test_dense_dot_is_map_dot_bit_for_bit(spark):
    import random
    import struct

    rng = random.Random(3)
    rows = [({k: rng.uniform(-1, 1) for k in rng.sample(range(40), rng.randint(0, 12))},
             {k: rng.uniform(-1, 1) / 3 for k in rng.sample(range(60), rng.randint(0, 50))}) for _ in range(200)]
    rows += [({}, {}), ({3: 1.0}, {}), ({}, {0: 2.0}), ({0: -1.0, 7: 0.5}, {0: 0.25})]
    df = spark.createDataFrame(rows, "a map<int,double>, b map<int,double>")
    dense = df.select("a", FE.dense("b").alias("b"))
    bits = lambda rows: [struct.pack("<d", r[0]) for r in rows]
    assert bits(dense.select(FE.dense_dot("a", "b")).collect()) == bits(df.select(FE.map_dot("a", "b")).collect())
    assert dense.select("b").collect()[-4:] == [([],), ([],), ([2.0],), ([0.25],)]


def test_user_profile_taste_and_exposure(spark):
    movie_feats = spark.createDataFrame(
        [(10, 1990, {0: 1.0}, {}), (11, 2000, {1: 1.0}, {5: 1.0})],
        "movie_id int, year int, genre_map map<int,double>, tag_map map<int,double>")
    ratings = spark.createDataFrame([(1, 10, 5.0), (1, 11, 3.0)], "user_id int, movie_id int, rating double")
    p = FE.user_profiles(ratings, movie_feats).first()
    # mean 4.0; deviations +1 (movie 10, genre 0) and -1 (movie 11, genre 1), each over 2 ratings
    assert (p["user_n"], p["user_mean"], p["user_mean_year"]) == (2, 4.0, 1995.0)
    assert p["genre_taste"] == {0: 0.5, 1: -0.5}
    assert p["genre_exposure"] == {0: 0.5, 1: 0.5}
    assert p["tag_taste"] == {5: -0.5} and p["tag_exposure"] == {5: 0.5}


def test_rating_stats_shrink_towards_the_global_mean(spark):
    ratings = spark.createDataFrame([(1, 10, 5.0)] + [(u, 11, 3.0) for u in range(1, 10)],
                                    "user_id int, movie_id int, rating double")
    stats = {r["movie_id"]: r for r in FE.rating_stats(ratings).collect()}
    # global mean = (5 + 9×3) / 10 = 3.2; movie 10: (5 + 10×3.2) / (1 + 10) = 37 / 11
    assert stats[10]["mean_rating"] == pytest.approx(37 / 11)
    assert stats[11]["n_ratings"] == 9 and stats[11]["mean_rating"] == pytest.approx((27 + 32) / 19)


def test_genre_tfidf_downweights_common_genres(spark):
    movies = spark.createDataFrame([(1, "A (2000)", ["Drama"]), (2, "B (2000)", ["Drama", "Horror"]),
                                    (3, "C (2000)", ["Drama"])], "movie_id int, title string, genres array<string>")
    tags = spark.createDataFrame([], "user_id int, movie_id int, tag string, timestamp long")
    ratings = spark.createDataFrame([(1, 1, 4.0)], "user_id int, movie_id int, rating double")
    _, feats, _ = FE.build_features(movies, ratings, tags, 64, 64)
    weights = {r["movie_id"]: sorted(r["genre_map"].values()) for r in feats.collect()}
    assert weights[1] == [0.0] or weights[1] == []        # Drama is in every movie: IDF log(4/4) = 0
    assert weights[2] == [1.0]                            # only Horror carries weight, normalised to 1


def test_untagged_movies_get_an_empty_tag_map_and_tagged_ones_a_unit_vector(spark):
    movies = spark.createDataFrame([(1, "A (2000)", ["Drama"]), (2, "B (2001)", ["Comedy"])],
                                   "movie_id int, title string, genres array<string>")
    tags = spark.createDataFrame([(7, 2, "funny", 0), (8, 2, "dark", 0)], "user_id int, movie_id int, tag string, timestamp long")
    ratings = spark.createDataFrame([(7, 1, 4.0), (7, 2, 3.0)], "user_id int, movie_id int, rating double")
    _, feats, _ = FE.build_features(movies, ratings, tags, 64, 64)
    tag_maps = {r["movie_id"]: r["tag_map"] for r in feats.collect()}
    assert tag_maps[1] == {}
    assert len(tag_maps[2]) == 2 and sum(w * w for w in tag_maps[2].values()) == pytest.approx(1.0)
