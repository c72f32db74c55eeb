"""How long one user's candidates take in a worker (movierec.ranking.candidates.Catalogue) at
ml-25m's shape: 64,500 movies with ALS factors of rank 48, a content pool of 2,000 movies of
about 400 genre kinds, users of 150 ratings; the defaults' 300 ALS and 100 content candidates.

    python benchmarks/catalogue.py [--users 2000] [--movies 64500]

Prints milliseconds per user: ALS's predictions alone, one user at a time and in blocks of
USERS_PER_BLOCK (movierec.models.als.als_predictions, the same bits), and the whole of
Catalogue.for_user with each.  Synthetic factors and genres (numpy, one core, no Spark): this
measures the arithmetic, not the model.
"""

from __future__ import annotations

import os
import time

import click
import numpy as np

from movierec.ranking.candidates import USERS_PER_BLOCK, Catalogue

BLOCK = USERS_PER_BLOCK


def catalogue(rng: np.random.Generator, movies: int, rank: int, pool: int, kinds: int) -> Catalogue:
    factors = {m: rng.normal(size=rank).astype(np.float32) for m in range(1, movies + 1)}
    shapes = [tuple(sorted(rng.choice(20, size=rng.integers(1, 4), replace=False).tolist())) for _ in range(kinds)]
    entries = {}
    for m in range(1, pool + 1):
        genres = shapes[rng.integers(len(shapes))]
        entries[m] = tuple((g, 1.0 / len(genres)) for g in genres)
    counts = [(m, int(rng.integers(1, 50_000))) for m in range(1, pool + 1)]
    return Catalogue.build(factors, counts, entries)


def per_user_ms(seconds: float, users: int) -> str:
    return f"{1000 * seconds / users:.2f} ms/user"


@click.command(help=__doc__.splitlines()[0])
@click.option("--users", default=2000, show_default=True)
@click.option("--movies", default=64_500, show_default=True)
@click.option("--rank", default=48, show_default=True)
@click.option("--seed", default=7, show_default=True)
def main(users: int, movies: int, rank: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    source = catalogue(rng, movies, rank, pool=2000, kinds=400)
    factors = [rng.normal(size=rank).astype(np.float32) for _ in range(users)]
    rated = [set(rng.integers(1, movies, size=150).tolist()) for _ in range(users)]
    taste = ({g: float(rng.normal()) for g in range(20)}, {g: float(rng.random()) for g in range(20)})
    print(f"{users:,} users, {movies:,} movies, rank {rank}; load average {os.getloadavg()[0]:.2f}")

    started = time.perf_counter()
    alone = [source.predictions(f) for f in factors]
    print(f"predictions, one user at a time: {per_user_ms(time.perf_counter() - started, users)}")
    started = time.perf_counter()
    blocks = [p for s in range(0, users, BLOCK) for p in source.predictions_of(factors[s : s + BLOCK])]
    print(f"predictions, blocks of {USERS_PER_BLOCK}: {per_user_ms(time.perf_counter() - started, users)}")
    assert all(np.array_equal(a.view(np.int32), b.view(np.int32)) for a, b in zip(alone, blocks) if b is not None)

    started = time.perf_counter()
    for f, r in zip(factors, rated):
        source.for_user(f, r, taste, 300, 100)
    print(f"for_user, its own predictions: {per_user_ms(time.perf_counter() - started, users)}")
    started = time.perf_counter()
    for s in range(0, users, USERS_PER_BLOCK):
        chunk = factors[s : s + USERS_PER_BLOCK]
        for f, r, p in zip(chunk, rated[s : s + USERS_PER_BLOCK], source.predictions_of(chunk)):
            source.for_user(f, r, taste, 300, 100, p)
    print(f"for_user, block predictions: {per_user_ms(time.perf_counter() - started, users)}")


if __name__ == "__main__":
    main()
