"""A seeded, MovieLens-shaped synthetic data set (the ml-latest-small CSV layout).

`synthesize(out_dir, users, movies, ratings, seed)` writes ratings.csv, movies.csv,
tags.csv and links.csv.  The data has the structure a recommender should find:

- movies: ids that grow with the time a movie appeared but leave gaps (like the real
  ids), 1..6 of the 19 MovieLens genres (a few with none), a release year in the title.
  About 40% are an old catalogue available from the first day; the rest are released one
  after another over the 22 years the ratings span, so late movies are only rated late.
- popularity is Zipf-like (a few movies get most ratings, many get one or two).
- each user has favourite genres and favourite hidden topics (a latent grouping of movies
  beyond genres); users choose what to rate partly by those tastes, partly by popularity.
- rating = mean + user bias + movie quality + taste for the movie's genres + taste for
  its hidden topic + noise, rounded to half stars (some users use whole stars only) and
  clipped to 0.5..5.
- ratings per user are long-tailed with a floor of 10 when the totals allow; each user
  rates within an activity window, timestamps strictly increasing, written in time order.
- tags go on rated movies, mostly words tied to one of the movie's genres, concentrated
  on a few eager taggers.

Ratings are made and written one chunk of users at a time, so memory stays bounded
(per movie and per chunk, never per rating) at tens of millions of ratings.  The output
depends only on the arguments: the same seed gives the same bytes.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from movierec.data.movielens import NO_GENRES

log = logging.getLogger(__name__)

# the 19 MovieLens genres and how many ml-latest-small movies carry each
GENRE_COUNTS = {
    "Action": 1828,
    "Adventure": 1263,
    "Animation": 611,
    "Children": 664,
    "Comedy": 3756,
    "Crime": 1199,
    "Documentary": 440,
    "Drama": 4361,
    "Fantasy": 779,
    "Film-Noir": 87,
    "Horror": 978,
    "IMAX": 158,
    "Musical": 334,
    "Mystery": 573,
    "Romance": 1596,
    "Sci-Fi": 980,
    "Thriller": 1894,
    "War": 382,
    "Western": 167,
}
GENRES = list(GENRE_COUNTS)

# share of movies with 1, 2, ... 6 genres (ml-latest-small, rounded)
GENRES_PER_MOVIE = np.array([0.29, 0.33, 0.24, 0.10, 0.03, 0.01])
NO_GENRE_SHARE = 0.0035

TAG_WORDS = {
    "Action": ["explosions", "car chase", "fight scenes", "martial arts", "adrenaline"],
    "Adventure": ["treasure hunt", "epic journey", "exploration", "swashbuckling"],
    "Animation": ["pixar", "hand-drawn", "stop motion", "anime"],
    "Children": ["family", "kids", "Disney", "talking animals"],
    "Comedy": ["funny", "dark comedy", "quirky", "hilarious", "Highly quotable"],
    "Crime": ["heist", "mafia", "organized crime", "detective"],
    "Documentary": ["true story", "nature", "politics", "biography"],
    "Drama": ["thought-provoking", "tearjerker", "character study", "family drama"],
    "Fantasy": ["magic", "dragons", "fairy tale", "mythology"],
    "Film-Noir": ["noir", "femme fatale", "black and white"],
    "Horror": ["gore", "creepy", "zombies", "haunted house", "jump scares"],
    "IMAX": ["3D", "spectacle", "big screen"],
    "Musical": ["music", "singing", "dance", "broadway"],
    "Mystery": ["twist ending", "whodunit", "suspense", "puzzle"],
    "Romance": ["love story", "romantic", "chick flick", "bittersweet"],
    "Sci-Fi": ["sci-fi", "time travel", "space", "aliens", "dystopia"],
    "Thriller": ["suspense", "tense", "psychological", "serial killer"],
    "War": ["world war ii", "vietnam", "anti-war", "military"],
    "Western": ["cowboys", "gunfight", "frontier"],
}
GENERIC_TAGS = [
    "atmospheric",
    "visually appealing",
    "In Netflix queue",
    "great soundtrack",
    "overrated",
    "classic",
    "based on a book",
    "slow",
    "surreal",
    "must see",
]

# the ratings span ml-latest-small's: 1996-03-29 .. 2018-09-24
T_START = 828_000_000
T_END = 1_537_800_000
OLD_SHARE = 0.4  # movies available from the first day (released before 1996)
MAX_USER_SHARE = 0.3  # no user rates more than this share of the movies
MIN_PER_USER = 10  # ratings floor per user, when the totals allow
DEFAULT_TAG_SHARE = 0.035  # tags per rating in ml-latest-small
CHUNK_RATINGS = 100000  # ratings made and written at a time
# where a rating's movie comes from: a favourite genre, a favourite hidden topic, overall
# popularity, popularity among recent releases, or uniformly among released movies.
# Recent releases weigh more as a user's history goes on (people first rate the films
# they remember, later the ones they have just seen): from 0 to RECENT_LAST of the choices.
SOURCE_SHARES = np.array([0.32, 0.20, 0.45, 0.0, 0.03])
RECENT_LAST = 0.5
RECENT = 180 * 86_400
FILES = ("movies.csv", "links.csv", "ratings.csv", "tags.csv")
HALF_STARS = [f"{x / 2:.1f}" for x in range(1, 11)]  # "0.5" .. "5.0"

ADJECTIVES = [
    "Silent",
    "Last",
    "Broken",
    "Golden",
    "Dark",
    "Hidden",
    "Wild",
    "Lost",
    "Crimson",
    "Eternal",
    "Little",
    "Burning",
    "Frozen",
    "Secret",
    "Electric",
    "Lonely",
    "Final",
    "Midnight",
    "Savage",
    "Sweet",
    "Iron",
    "Endless",
    "Forgotten",
    "Bright",
    "Café",
]
NOUNS = [
    "River",
    "Night",
    "Kingdom",
    "Stranger",
    "Summer",
    "Machine",
    "Garden",
    "Empire",
    "Heart",
    "Storm",
    "Road",
    "City",
    "Mirror",
    "Island",
    "Song",
    "Shadow",
    "Promise",
    "Witness",
    "Horizon",
    "Dream",
    "Harbor",
    "Winter",
    "Signal",
    "Circus",
    "Fortress",
]
NAMES = ["Amélie", "Johnny", "Marguerite", "Oscar", "Lola", "Kaspar", "Ines", "Dmitri", "Nora", "Sam"]


def synthesize(out_dir, users: int, movies: int, ratings: int, seed: int, tags: int | None = None) -> dict:
    """Write ratings.csv, movies.csv, tags.csv and links.csv into `out_dir`; return a summary.

    Raises ValueError (before writing anything) when the numbers cannot be met.
    """
    tags = round(ratings * DEFAULT_TAG_SHARE) if tags is None else tags
    _check(users, movies, ratings, seed, tags)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    rng = np.random.default_rng([seed, 0])
    cat = _catalogue(rng, movies)
    counts = _ratings_per_user(rng, users, movies, ratings)
    chunks = _chunks(counts)
    tags_per_chunk = rng.multivariate_hypergeometric([int(counts[a:b].sum()) for a, b in chunks], tags)

    # every file is written as <name>.part and renamed at the end: an interrupted run
    # leaves the previous data set whole, never a mix or half a file
    try:
        with _open_part(out / "movies.csv") as f:
            _write_movies(f, cat)
        with _open_part(out / "links.csv") as f:
            _write_links(f, rng, cat["ids"])
        stats = _write_ratings_and_tags(out, seed, cat, counts, chunks, tags_per_chunk, started)
        for name in FILES:
            os.replace(out / (name + ".part"), out / name)
    finally:
        for name in FILES:
            (out / (name + ".part")).unlink(missing_ok=True)
    return {
        "out_dir": str(out),
        "seed": seed,
        "users": users,
        "movies": movies,
        "ratings": stats["written"],
        "tags": tags,
        "rated_movies": stats["rated_movies"],
        "mean_rating": round(stats["rating_sum"] / stats["written"], 3),
        "first_timestamp": stats["first"],
        "last_timestamp": stats["last"],
        "seconds": round(time.monotonic() - started, 1),
    }


def _write_ratings_and_tags(
    out: Path, seed: int, cat: dict, counts: np.ndarray, chunks: list, tags_per_chunk: np.ndarray, started: float
) -> dict:
    """Make and write one chunk of users at a time; return running statistics."""
    ratings = int(counts.sum())
    rated = np.zeros(len(cat["ids"]), dtype=bool)
    stats: dict[str, Any] = {"rating_sum": 0.0, "first": None, "last": None, "written": 0}
    with _open_part(out / "ratings.csv") as rf, _open_part(out / "tags.csv") as tf:
        rf.write("userId,movieId,rating,timestamp\n")
        tag_writer = csv.writer(tf, lineterminator="\n")
        tag_writer.writerow(["userId", "movieId", "tag", "timestamp"])
        for number, ((first, stop), n_tags) in enumerate(zip(chunks, tags_per_chunk)):
            chunk_rng = np.random.default_rng([seed, 1, number])
            rows = _chunk_ratings(chunk_rng, cat, counts[first:stop])
            _write_ratings(rf, first, rows, cat["ids"])
            _write_tags(tag_writer, chunk_rng, first, rows, cat, int(n_tags))
            rated[rows["movie"]] = True
            stats["rating_sum"] += float(rows["rating"].sum())
            stats["written"] += len(rows["movie"])
            stats["first"] = min(stats["first"] or T_END, int(rows["time"].min()))
            stats["last"] = max(stats["last"] or T_START, int(rows["time"].max()))
            log.info(
                "synth: %d of %d ratings (%.0f%%), %.1f s",
                stats["written"],
                ratings,
                100.0 * stats["written"] / ratings,
                time.monotonic() - started,
            )
            del rows  # before the next chunk is made
    stats["rated_movies"] = int(rated.sum())
    return stats


def _check(users: int, movies: int, ratings: int, seed: int, tags: int) -> None:
    for name, value in (("users", users), ("movies", movies), ("ratings", ratings), ("seed", seed), ("tags", tags)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
    if users < 1:
        raise ValueError(f"users must be at least 1, got {users}")
    if movies < 4:
        raise ValueError(f"movies must be at least 4, got {movies}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if ratings < users:
        raise ValueError(f"ratings ({ratings}) must be at least users ({users}): every user rates something")
    cap = _user_cap(movies)
    if ratings > users * cap:
        raise ValueError(
            f"ratings ({ratings}) too many: at most {users * cap} = users x {cap} "
            f"({MAX_USER_SHARE:.0%} of {movies} movies per user); add users or movies"
        )
    if not 0 <= tags <= ratings:
        raise ValueError(f"tags must be between 0 and ratings ({ratings}), got {tags}")


def _user_cap(movies: int) -> int:
    return max(1, int(MAX_USER_SHARE * movies))


# ---------------------------------------------------------------- movies


def _catalogue(rng: np.random.Generator, m: int) -> dict:
    """Movies in index order = the order they became available (ids follow it)."""
    n_old = max(1, math.ceil(OLD_SHARE * m))
    old_year = np.clip(1995 - np.floor(rng.exponential(14.0, n_old)), 1915, 1995).astype(np.int64)
    new_time = np.sort(rng.integers(T_START, T_END, m - n_old))
    available = np.concatenate([np.full(n_old, T_START, dtype=np.int64), new_time])
    year = np.concatenate([old_year, _year_of(new_time)])

    gaps = np.where(rng.random(m) < 0.8, 1, rng.geometric(1 / 60, m))
    ids = np.cumsum(gaps).astype(np.int64)
    ids += 1 - ids[0]

    # genres: k per movie, drawn without replacement by genre frequency (Efraimidis-Spirakis keys)
    k = rng.choice(np.arange(1, 7), size=m, p=GENRES_PER_MOVIE / GENRES_PER_MOVIE.sum())
    k[rng.random(m) < NO_GENRE_SHARE] = 0
    weights = np.array(list(GENRE_COUNTS.values()), dtype=float)
    keys = np.log(rng.random((m, len(GENRES)))) / weights
    order = np.argsort(-keys, axis=1)
    genre = np.zeros((m, len(GENRES)), dtype=bool)
    np.put_along_axis(genre, order, np.arange(len(GENRES))[None, :] < k[:, None], axis=1)

    # Zipf-like popularity over a random ranking; quality leans a little towards popular movies
    rank = rng.permutation(m) + 1
    popularity = 1.0 / rank**1.1
    log_pop = np.log(popularity)
    quality = 0.3 * (log_pop - log_pop.mean()) / (log_pop.std() or 1.0) + rng.normal(0, 0.35, m)
    n_topics = int(np.clip(m // 40, 2, 20))
    topic = rng.integers(0, n_topics, m)

    cat = {
        "ids": ids,
        "year": year,
        "available": available,
        "genre": genre,
        "popularity": popularity,
        "quality": quality,
        "topic": topic,
        "n_topics": n_topics,
        "title": [_title(rng, int(y)) for y in year],
    }
    cat["all"] = _group(np.arange(m), available, popularity)
    cat["by_genre"] = [_group(np.flatnonzero(genre[:, g]), available, popularity) for g in range(len(GENRES))]
    cat["by_topic"] = [_group(np.flatnonzero(topic == c), available, popularity) for c in range(n_topics)]
    return cat


def _year_of(timestamps: np.ndarray) -> np.ndarray:
    return timestamps.astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64) + 1970


def _group(members: np.ndarray, available: np.ndarray, popularity: np.ndarray) -> dict:
    """Movies of a group, in availability order, with cumulative popularity for sampling."""
    return {"members": members, "available": available[members], "cum": np.cumsum(popularity[members])}


def _title(rng: np.random.Generator, year: int) -> str:
    adj, noun, noun2, name = (rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(NOUNS), rng.choice(NAMES))
    pattern = int(rng.integers(0, 7))
    text = [
        f"{adj} {noun}",
        f"{noun} of the {noun2}",
        f"{adj} {noun}, The",
        f"{noun} {rng.integers(2, 5)}",
        f"{name}'s {noun}",
        f"{noun} and {noun2}",
        f"{noun}, {name}",
    ][pattern]
    return f"{text} ({year})"


def _write_movies(f, cat: dict) -> None:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(["movieId", "title", "genres"])
    for i, movie_id in enumerate(cat["ids"].tolist()):
        names = [GENRES[g] for g in np.flatnonzero(cat["genre"][i])]
        writer.writerow([movie_id, cat["title"][i], "|".join(names) or NO_GENRES])


def _write_links(f, rng: np.random.Generator, ids: np.ndarray) -> None:
    imdb = 100_000 + np.cumsum(rng.integers(1, 60, len(ids)))
    tmdb = np.cumsum(rng.integers(1, 30, len(ids)))
    f.write("movieId,imdbId,tmdbId\n")
    f.write("".join(f"{m},{i:07d},{t}\n" for m, i, t in zip(ids.tolist(), imdb.tolist(), tmdb.tolist())))


# ---------------------------------------------------------------- users and ratings


def _ratings_per_user(rng: np.random.Generator, users: int, movies: int, ratings: int) -> np.ndarray:
    """Long-tailed (log-normal) counts summing exactly to `ratings`, floor 10, cap 30% of movies."""
    cap = _user_cap(movies)
    floor = min(MIN_PER_USER, ratings // users, cap)
    weights = rng.lognormal(0.0, 1.2, users)
    counts = floor + rng.multinomial(ratings - floor * users, weights / weights.sum())
    while (over := counts > cap).any():
        excess = int((counts[over] - cap).sum())
        counts[over] = cap
        room = np.where(counts < cap, weights, 0.0)
        counts += rng.multinomial(excess, room / room.sum())
    return counts


def _chunks(counts: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive user ranges of about CHUNK_RATINGS ratings each (a user is never split)."""
    chunk_of_user = (np.cumsum(counts) - counts) // CHUNK_RATINGS
    bounds = [0, *(np.flatnonzero(np.diff(chunk_of_user)) + 1).tolist(), len(counts)]
    return list(zip(bounds[:-1], bounds[1:]))


def _chunk_ratings(rng: np.random.Generator, cat: dict, counts: np.ndarray) -> dict:
    """Ratings of one chunk of users: arrays user (0-based in chunk), movie (index), rating, time."""
    n_users, n = len(counts), int(counts.sum())
    n_genres, n_topics = len(GENRES), cat["n_topics"]
    user = np.repeat(np.arange(n_users), counts)
    offset = np.concatenate([[0], np.cumsum(counts)[:-1]])

    # tastes: favourite genres (by genre frequency) and hidden topics, on top of mild noise
    n_fav = rng.integers(1, 4, n_users)
    gw = np.array(list(GENRE_COUNTS.values()), dtype=float)
    fav = np.argsort(-np.log(rng.random((n_users, n_genres))) / gw, axis=1)[:, :4]
    genre_taste = rng.normal(0.0, 0.5, (n_users, n_genres))
    for j in range(3):
        has = n_fav > j
        genre_taste[has, fav[has, j]] += 1.5
    genre_taste[np.arange(n_users), fav[:, 3]] -= 1.0  # and one genre they dislike
    fav_topic = rng.integers(0, n_topics, (n_users, 2))
    topic_taste = rng.normal(0.0, 0.2, (n_users, n_topics))
    topic_taste[np.arange(n_users), fav_topic[:, 0]] += 0.8
    topic_taste[np.arange(n_users), fav_topic[:, 1]] += 0.5
    bias = rng.normal(0.0, 0.5, n_users)
    whole_stars = rng.random(n_users) < 0.35

    # activity window per user; heavy raters stay longer; timestamps strictly increasing
    span = T_END - T_START
    duration = np.exp(rng.normal(np.log(counts) + 9.0, 2.0)).clip(counts * 60.0, span - counts - 1.0).astype(np.int64)
    start = T_START + (rng.random(n_users) * (span - duration - counts)).astype(np.int64)
    frac = np.sort(user + rng.random(n)) - user
    position = np.arange(n) - offset[user]
    when = start[user] + (frac * duration[user]).astype(np.int64) + position

    # which movie: see SOURCE_SHARES; always among the movies released by then
    source = rng.choice(len(SOURCE_SHARES), size=n, p=SOURCE_SHARES)
    source[rng.random(n) < RECENT_LAST * position / counts[user]] = 3
    movie = np.full(n, -1, dtype=np.int64)
    pick = np.flatnonzero(source == 0)
    chosen_genre = fav[user[pick], (rng.random(len(pick)) * n_fav[user[pick]]).astype(np.int64)]
    for g in range(n_genres):
        rows = pick[chosen_genre == g]
        movie[rows] = _sample(rng, cat["by_genre"][g], when[rows])
    pick = np.flatnonzero(source == 1)
    chosen_topic = fav_topic[user[pick], rng.integers(0, 2, len(pick))]
    for c in range(n_topics):
        rows = pick[chosen_topic == c]
        movie[rows] = _sample(rng, cat["by_topic"][c], when[rows])
    rows = np.flatnonzero(source == 3)
    movie[rows] = _sample(rng, cat["all"], when[rows], since=when[rows] - RECENT)
    rows = np.flatnonzero(source == 4)
    movie[rows] = _sample(rng, cat["all"], when[rows], uniform=True)
    rows = np.flatnonzero((source == 2) | (movie < 0))  # also where a group had nothing released yet
    movie[rows] = _sample(rng, cat["all"], when[rows])
    _remove_duplicates(rng, cat, user, movie, when)

    genre = cat["genre"][movie]
    affinity = np.zeros(n)
    for g in range(n_genres):  # one genre at a time: no ratings x genres matrix of floats
        affinity += np.where(genre[:, g], genre_taste[user, g], 0.0)
    affinity /= np.maximum(genre.sum(axis=1), 1)
    value = (
        2.65
        + bias[user]
        + cat["quality"][movie]
        + affinity
        + topic_taste[user, cat["topic"][movie]]
        + rng.normal(0.0, 0.65, n)
    )
    step = np.where(whole_stars[user], 1.0, 2.0)
    rating = np.clip(np.round(value * step) / step, 1.0 / step, 5.0)
    return {"user": user, "movie": movie, "rating": rating, "time": when}


def _sample(
    rng: np.random.Generator, group: dict, when: np.ndarray, since: np.ndarray | None = None, uniform: bool = False
) -> np.ndarray:
    """A movie index per time: one of the group's movies released by `when` (and from `since`
    on, if given), by popularity or uniformly; -1 where there is none."""
    hi = np.searchsorted(group["available"], when, side="right")
    lo = np.zeros_like(hi) if since is None else np.searchsorted(group["available"], since, side="left")
    out = np.full(len(when), -1, dtype=np.int64)
    ok = hi > lo
    lo, hi = lo[ok], hi[ok]
    if uniform:
        index = lo + (rng.random(len(lo)) * (hi - lo)).astype(np.int64)
    else:
        cum = group["cum"]
        below = np.where(lo > 0, cum[lo - 1], 0.0)
        target = below + rng.random(len(lo)) * (cum[hi - 1] - below)
        index = np.clip(np.searchsorted(cum, target, side="right"), lo, hi - 1)
    out[ok] = group["members"][index]
    return out


def _remove_duplicates(
    rng: np.random.Generator, cat: dict, user: np.ndarray, movie: np.ndarray, when: np.ndarray
) -> None:
    """Redraw a user's repeated movies (popularity, then uniform); a last resort picks one by one."""
    m = len(cat["ids"])
    for attempt in range(30):
        dup = _duplicates(user * m + movie)
        if not dup.size:
            return
        movie[dup] = _sample(rng, cat["all"], when[dup], uniform=attempt >= 5)
    for row in _duplicates(user * m + movie):
        mine = movie[user == user[row]]
        released = int(np.searchsorted(cat["available"], when[row], side="right"))
        free = np.setdiff1d(np.arange(released), mine)
        movie[row] = free[rng.integers(0, len(free))]  # never empty: a user rates < 30% < 40% old movies


def _duplicates(keys: np.ndarray) -> np.ndarray:
    """Rows whose key already appeared in an earlier row."""
    order = np.argsort(keys, kind="stable")
    repeated = np.flatnonzero(keys[order][1:] == keys[order][:-1]) + 1
    return np.sort(order[repeated])


def _write_ratings(f, first_user: int, rows: dict, ids: np.ndarray, batch: int = 50_000) -> None:
    stars = np.array(HALF_STARS, dtype=object)[(rows["rating"] * 2).astype(np.int64) - 1]
    user, movie = rows["user"] + first_user + 1, ids[rows["movie"]]
    for i in range(0, len(user), batch):  # Python strings cost ~100 bytes a rating: a slice at a time
        part = slice(i, i + batch)
        f.write(
            "".join(
                map(
                    "{},{},{},{}\n".format,
                    user[part].tolist(),
                    movie[part].tolist(),
                    stars[part].tolist(),
                    rows["time"][part].tolist(),
                )
            )
        )


def _write_tags(writer, rng: np.random.Generator, first_user: int, rows: dict, cat: dict, n_tags: int) -> None:
    """Tag `n_tags` distinct rated pairs of the chunk, weighted towards eager taggers."""
    if n_tags == 0:
        return
    eagerness = rng.lognormal(0.0, 2.0, int(rows["user"].max()) + 1)
    keys = np.log(rng.random(len(rows["user"]))) / eagerness[rows["user"]]
    chosen = np.sort(np.argpartition(-keys, n_tags - 1)[:n_tags])
    movies = rows["movie"][chosen]
    genre_of = np.argmax(rng.random((n_tags, len(GENRES))) * cat["genre"][movies], axis=1)
    has_genre = cat["genre"][movies].any(axis=1) & (rng.random(n_tags) < 0.75)
    word = rng.random(n_tags)
    delay = rng.integers(0, 3600, n_tags)
    for i, row in enumerate(chosen.tolist()):
        words = TAG_WORDS[GENRES[genre_of[i]]] if has_genre[i] else GENERIC_TAGS
        writer.writerow(
            [
                int(rows["user"][row]) + first_user + 1,
                int(cat["ids"][movies[i]]),
                words[int(word[i] * len(words))],
                int(rows["time"][row] + delay[i]),
            ]
        )


# ---------------------------------------------------------------- files


def _open_part(path: Path):
    return open(str(path) + ".part", "w", encoding="utf-8", newline="")
