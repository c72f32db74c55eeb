"""The synthetic MovieLens generator: exact layout, exact counts, valid values, real structure."""

from __future__ import annotations

import calendar
import csv
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from movierec import cli
from movierec.data import synth

ROOT = Path(__file__).resolve().parents[3]
# written out here, not imported, so a wrong list in movierec/data/synth.py fails the test
MOVIELENS_GENRES = {
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
}
HALF_STARS = {"0.5", "1.0", "1.5", "2.0", "2.5", "3.0", "3.5", "4.0", "4.5", "5.0"}
TITLE = re.compile(r"^.+ \((\d{4})\)$")


def read(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """300 users, 1500 movies, 30000 ratings, written in chunks of about 2000 ratings."""
    out = tmp_path_factory.mktemp("synth")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(synth, "CHUNK_RATINGS", 2000)
        summary = synth.synthesize(out, users=300, movies=1500, ratings=30_000, seed=11, tags=700)
    return out, summary


@pytest.fixture(scope="module")
def parsed(dataset):
    out, _ = dataset
    _, ratings = read(out / "ratings.csv")
    _, movies = read(out / "movies.csv")
    _, tags = read(out / "tags.csv")
    return ratings, movies, tags


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        synth.synthesize(tmp_path / name, users=40, movies=200, ratings=1500, seed=seed)
    for file in ("ratings.csv", "movies.csv", "tags.csv", "links.csv"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file
    for file in ("ratings.csv", "movies.csv", "tags.csv"):
        assert (tmp_path / "a" / file).read_bytes() != (tmp_path / "c" / file).read_bytes(), file


def test_exact_layout_and_counts(dataset, parsed):
    out, summary = dataset
    ratings, movies, tags = parsed
    assert read(out / "ratings.csv")[0] == ["userId", "movieId", "rating", "timestamp"]
    assert read(out / "movies.csv")[0] == ["movieId", "title", "genres"]
    assert read(out / "tags.csv")[0] == ["userId", "movieId", "tag", "timestamp"]
    assert read(out / "links.csv")[0] == ["movieId", "imdbId", "tmdbId"]
    assert b"\r" not in (out / "ratings.csv").read_bytes()
    assert len(ratings) == 30_000
    assert len(movies) == 1500
    assert len(tags) == 700
    assert len({r[0] for r in ratings}) == 300  # every user rated something
    assert {int(r[0]) for r in ratings} == set(range(1, 301))
    assert summary["ratings"] == 30_000 and summary["tags"] == 700
    assert not list(out.glob("*.part"))


def test_values_are_valid(parsed):
    ratings, movies, tags = parsed
    assert all(len(r) == 4 for r in ratings) and all(len(m) == 3 for m in movies)
    assert {r[2] for r in ratings} <= HALF_STARS
    assert {r[2] for r in ratings} == HALF_STARS  # the whole scale is used
    movie_ids = [int(m[0]) for m in movies]
    assert len(set(movie_ids)) == len(movie_ids) and min(movie_ids) >= 1
    assert max(movie_ids) > len(movie_ids)  # ids leave gaps, like the real ones
    assert {int(r[1]) for r in ratings} <= set(movie_ids)
    pairs = [(r[0], r[1]) for r in ratings]
    assert len(set(pairs)) == len(pairs)
    assert all(1 <= int(r[0]) for r in ratings)
    for _, title, genres in movies:
        assert TITLE.match(title), title
        assert genres == "(no genres listed)" or set(genres.split("|")) <= MOVIELENS_GENRES, genres
    assert any("," in m[1] for m in movies)  # such titles are quoted and read back whole
    assert {g for m in movies for g in m[2].split("|")} >= MOVIELENS_GENRES - {"Film-Noir", "IMAX"}
    rated = set(pairs)
    assert all((t[0], t[1]) in rated for t in tags)
    assert len({(t[0], t[1], t[2]) for t in tags}) == len(tags)


def test_timestamps_increase_per_user_and_follow_release(parsed):
    ratings, movies, _ = parsed
    year = {m[0]: int(TITLE.match(m[1]).group(1)) for m in movies}
    last: dict[str, int] = {}
    for user, movie, _, ts in ratings:
        assert int(ts) > last.get(user, 0), (user, ts)
        last[user] = int(ts)
        # a movie is rated no earlier than January 1st of its release year
        assert int(ts) >= calendar.timegm((year[movie], 1, 1, 0, 0, 0)), (movie, year[movie], ts)
    assert min(int(r[3]) for r in ratings) >= calendar.timegm((1996, 1, 1, 0, 0, 0))
    assert max(int(r[3]) for r in ratings) <= calendar.timegm((2018, 12, 31, 0, 0, 0))
    # new movies exist and get rated late
    recent = [int(r[3]) for r in ratings if year[r[1]] >= 2012]
    assert len(recent) > 100 and min(recent) >= calendar.timegm((2012, 1, 1, 0, 0, 0))


def test_long_tail(parsed):
    ratings, movies, _ = parsed
    per_movie = sorted(Counter(r[1] for r in ratings).values(), reverse=True)
    top_share = sum(per_movie[: len(movies) // 10]) / len(ratings)
    assert top_share > 0.25  # a uniform choice of movies would give about 0.12
    per_user = sorted(Counter(r[0] for r in ratings).values())
    assert per_user[0] >= 10
    assert per_user[-1] >= 4 * per_user[len(per_user) // 2]


def split_half_taste(ratings, movies):
    """Per user: the genre rated best in one half of their ratings; how much better that genre
    is rated than the user's other movies in the other half (mean over users)."""
    genres = {m[0]: m[2].split("|") for m in movies}
    seen: dict[str, int] = defaultdict(int)
    first: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    second: dict[str, list[tuple[list[str], float]]] = defaultdict(list)
    for user, movie, stars, _ in ratings:
        seen[user] += 1
        if seen[user] % 2:
            for g in genres[movie]:
                first[user][g].append(float(stars))
        else:
            second[user].append((genres[movie], float(stars)))
    gaps = []
    for user, by_genre in first.items():
        candidates = {g: np.mean(v) for g, v in by_genre.items() if len(v) >= 3}
        if not candidates:
            continue
        best = max(candidates, key=candidates.get)
        inside = [s for gs, s in second[user] if best in gs]
        outside = [s for gs, s in second[user] if best not in gs]
        if inside and outside:
            gaps.append(np.mean(inside) - np.mean(outside))
    return float(np.mean(gaps)), len(gaps)


def test_users_rate_their_favourite_genre_higher(parsed):
    ratings, movies, _ = parsed
    gap, users = split_half_taste(ratings, movies)
    assert users > 250
    assert gap > 0.12
    # the measure itself is not biased: with each user's stars shuffled it finds nothing
    rng = np.random.default_rng(0)
    by_user = defaultdict(list)
    for row in ratings:
        by_user[row[0]].append(row)
    shuffled = []
    for rows in by_user.values():
        stars = rng.permutation([r[2] for r in rows])
        shuffled += [[r[0], r[1], s, r[3]] for r, s in zip(rows, stars)]
    null_gap, _ = split_half_taste(shuffled, movies)
    assert abs(null_gap) < 0.06
    assert gap > null_gap + 0.1


def test_bad_numbers_are_refused_and_nothing_is_written(tmp_path):
    cases = [
        (dict(users=50, movies=100, ratings=40), "at least users"),
        (dict(users=2, movies=100, ratings=1000), "too many"),
        (dict(users=10, movies=100, ratings=200, tags=201), "tags"),
        (dict(users=0, movies=100, ratings=10), "users"),
        (dict(users=10, movies=2, ratings=10), "movies"),
    ]
    for kwargs, message in cases:
        out = tmp_path / "out"
        with pytest.raises(ValueError, match=message):
            synth.synthesize(out, seed=1, **kwargs)
        assert not out.exists()


def test_cli(tmp_path, capsys):
    code = cli.main(
        [
            "synth",
            "--users",
            "20",
            "--movies",
            "100",
            "--ratings",
            "400",
            "--seed",
            "3",
            "--tags",
            "9",
            "--out",
            str(tmp_path / "d"),
        ]
    )
    assert code == 0
    assert "ratings=400" in capsys.readouterr().out
    assert len(read(tmp_path / "d" / "ratings.csv")[1]) == 400
    assert len(read(tmp_path / "d" / "tags.csv")[1]) == 9
    code = cli.main(["synth", "--users", "20", "--movies", "50", "--ratings", "5", "--out", str(tmp_path / "e")])
    assert code == 2
    assert "at least users" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def peak_rss_kib(tmp_path: Path, ratings: int) -> int:
    """Peak RSS of a `movierec synth` child, read with RUSAGE_CHILDREN in a fresh parent
    (so no other child of the test process counts)."""
    out = tmp_path / f"r{ratings}"
    command = [
        sys.executable,
        "-m",
        "movierec.cli",
        "synth",
        "--users",
        str(ratings // 100),
        "--movies",
        "5000",
        "--ratings",
        str(ratings),
        "--seed",
        "1",
        "--tags",
        "0",
        "--out",
        str(out),
    ]
    probe = (
        "import resource, subprocess, sys; "
        f"subprocess.run({command!r}, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    with open(out / "ratings.csv", "rb") as f:
        assert sum(1 for _ in f) == ratings + 1
    return int(done.stdout.strip())


def test_memory_stays_bounded(tmp_path):
    # same shape (100 ratings a user), 15 times the ratings
    small = peak_rss_kib(tmp_path, 200_000)
    large = peak_rss_kib(tmp_path, 3_000_000)
    # holding the 2.8M extra ratings, even packed as int32 user, int32 movie, int32 time and
    # one byte of stars, would need 2.8M x 13 bytes = 36 MB more; allow a third of that
    assert large - small < 2_800_000 * 13 / 3 / 1024, (small, large)


def test_interrupted_run_leaves_the_previous_data_set_whole(tmp_path, monkeypatch):
    synth.synthesize(tmp_path, users=40, movies=200, ratings=1500, seed=1)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setattr(synth, "CHUNK_RATINGS", 300)
    real_chunk = synth._chunk_ratings
    made = []

    def stop_on_third_chunk(*args):
        made.append(1)
        if len(made) == 3:
            raise KeyboardInterrupt
        return real_chunk(*args)

    monkeypatch.setattr(synth, "_chunk_ratings", stop_on_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        synth.synthesize(tmp_path, users=40, movies=200, ratings=1500, seed=2)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_small_data_fixture(small_data):
    _, ratings = read(small_data / "ratings.csv")
    _, movies = read(small_data / "movies.csv")
    _, tags = read(small_data / "tags.csv")
    assert (len(ratings), len(movies), len(tags)) == (8000, 400, 300)
    assert len({r[0] for r in ratings}) == 150


def test_make_dataset_fixture(make_dataset):
    path = make_dataset([(1, 10, 4.0, 100), (2, 10, "bad", 200), (1, 7, 3.5, 300)], tags=[(1, 10, "funny, dark", 150)])
    assert (
        path / "ratings.csv"
    ).read_text() == "userId,movieId,rating,timestamp\n1,10,4.0,100\n2,10,bad,200\n1,7,3.5,300\n"
    assert (
        path / "movies.csv"
    ).read_text() == "movieId,title,genres\n7,Movie 7 (2000),Drama\n10,Movie 10 (2000),Drama\n"
    assert (path / "tags.csv").read_text() == 'userId,movieId,tag,timestamp\n1,10,"funny, dark",150\n'
    assert make_dataset([(1, 1, 5.0, 1)]) != path
    assert not (make_dataset([(1, 1, 5.0, 1)]) / "tags.csv").exists()
