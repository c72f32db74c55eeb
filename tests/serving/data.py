"""A small store whose every answer is known by construction (written with movierec.store.runs).

Catalogue: movies 1..30, "Movie <id>" released in 1990 + id, genres by id % 3:
    0 -> Comedy, 1 -> Drama|Romance, 2 -> Action|Sci-Fi
plus 31 "Untitled" (no genres, no year), 32 "Noir" (Film-Noir|Comedy) and 33 "Toy Story"
(Adventure|Animation|Children|Comedy|Fantasy, in no list).

Two published runs; "run-new" is active, "run-old" is the one before it.
run-new:
    user 1: 20 stored rows, rank r -> movie 21 - r (movies 20, 19, ..., 1),
            score 1 - r/100, cf_score 1 - r/50, cb_score 0.5
    user 2: trained on (run_users) but no stored rows          -> live
    user 4: 5 stored rows, rank r -> movie 25 + r (26..30)       -> live beyond k=5
    popular: rank r -> POPULAR[r-1], score 100 - r               -> cold starts (user 3, 999)
    similar: movie 1 -> 2, 3, 4, 5, 6 (score 0.9, 0.8, ...); movie 2 -> 1 (0.95)
run-old:
    user 1: 10 stored rows, rank r -> movie 20 + r; user 3 trained on and stored
"""

from __future__ import annotations

OLD_RUN = "run-old"
NEW_RUN = "run-new"
POPULAR = [5, 10, 15, 20, 25, 30, 3, 6, 9, 12, 32, 1]
NEW_PARAMS = {"top_k": 20, "cf_weight": 0.7, "cb_weight": 0.3, "als_rank": 8}
NEW_METRICS = {"hybrid": {"ndcg@10": 0.31, "precision@10": 0.12}, "als": {"ndcg@10": 0.29}}


def genres_of(movie_id: int) -> list[str]:
    if movie_id == 31:
        return []
    if movie_id == 32:
        return ["Film-Noir", "Comedy"]
    if movie_id == 33:
        return ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]
    return {0: ["Comedy"], 1: ["Drama", "Romance"], 2: ["Action", "Sci-Fi"]}[movie_id % 3]


def movies() -> list[tuple]:
    rows = [(m, f"Movie {m} ({1990 + m})", 1990 + m, "|".join(genres_of(m))) for m in range(1, 31)]
    rows += [
        (31, "Untitled", None, ""),
        (32, "Noir (1950)", 1950, "Film-Noir|Comedy"),
        (33, "Toy Story (1995)", 1995, "Adventure|Animation|Children|Comedy|Fantasy"),
    ]
    return rows


def user1_row(rank: int) -> tuple:
    return (1, rank, 21 - rank, 1 - rank / 100, 1 - rank / 50, 0.5)


def load(engine) -> None:
    """Write both runs through the store's own writer; run-new ends active."""
    from movierec.store import runs as store

    store.upsert_movies(engine, [movies()])
    store.begin_run(engine, OLD_RUN, {"top_k": 10}, "2026-01-01T00:00:00+00:00")
    store.load_run(
        engine,
        OLD_RUN,
        {
            "recommendations": [
                [(1, r, 20 + r, 0.9 - r / 100, 0.8, 0.4) for r in range(1, 11)]
                + [(3, r, r, 0.5, 0.5, 0.5) for r in range(1, 4)]
            ],
            "run_users": [[(1, 50), (3, 12)]],
            "popular_movies": [[(r, m, 50.0 - r) for r, m in enumerate([1, 2, 3], start=1)]],
            "similar_movies": [[(1, 1, 30, 0.5)]],
        },
    )
    store.activate_run(engine, OLD_RUN, {"hybrid": {"ndcg@10": 0.3}}, "2026-01-01T01:00:00+00:00")

    store.begin_run(engine, NEW_RUN, NEW_PARAMS, "2026-01-02T00:00:00+00:00")
    store.load_run(
        engine,
        NEW_RUN,
        {
            "recommendations": [
                [user1_row(r) for r in range(1, 21)] + [(4, r, 25 + r, 0.6 - r / 100, 0.6, 0.6) for r in range(1, 6)]
            ],
            "run_users": [[(1, 40), (2, 25), (4, 8)]],
            "popular_movies": [[(r, m, 100.0 - r) for r, m in enumerate(POPULAR, start=1)]],
            "similar_movies": [[(1, r, 1 + r, 1 - r / 10) for r in range(1, 6)] + [(2, 1, 1, 0.95)]],
        },
    )
    store.activate_run(engine, NEW_RUN, NEW_METRICS, "2026-01-02T01:00:00+00:00")
