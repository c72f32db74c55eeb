"""Replay of the temporal hold-out through the feedback route: what a live update recovers of a retrain.

    python benchmarks/replay.py --data-dir ../shared/data/ml-latest-small [--new-users 0.1]
                                [--spark-master local[2]] [--shuffle-partitions 4]

The evaluate stage's split (`movierec.evaluation.protocol.holdout`: each user's latest 20%),
with a share of users (`--new-users`, drawn by a hash of the user id) left out of training
entirely.  For a user of the run, the held-out ratings in time order are cut in two: the first
half is what the user rates after the nightly run, the second half what they rate later, and
the lists are judged on the second half (NDCG@10, relevant = rating >= 4, by
`movierec.evaluation.metrics`).  For a user the run never saw, their whole history is cut the
same way.  Three lists per user:

- batch: the run's list as the API serves it before the user's new ratings (for a new user,
  the popular list);
- live: the list the API serves after the first half went through `POST /users/<id>/ratings`
  (the route, in-process: the store, the route's checks, the live re-solve of
  `movierec.ranking.online.RunModels.recommend`);
- retrain: the list of a whole new run trained on the training part plus every first half.

Both runs are `movierec.stages.pipeline.run_pipeline` with the given settings (no evaluate
stage: the gate is skipped).  The table goes to stdout with the share of the retrain's gain
the live update recovers, (live - batch) / (retrain - batch), and what each costs: the
retrain's wall time against the live GETs' latency.  Progress goes to stderr.
"""

from __future__ import annotations

import hashlib
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402
import pandas as pd  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402

from movierec import config  # noqa: E402
from movierec.config import Settings  # noqa: E402
from movierec.data.schemas import MOVIE, RANK, RATING, TIMESTAMP, USER  # noqa: E402
from movierec.evaluation import metrics as M  # noqa: E402
from movierec.evaluation import protocol as P  # noqa: E402

K = P.K
STAGES = ("ingest", "featurize", "train_als", "train_rf", "score", "publish")
KEY = "replay-benchmark-key"
LISTS = ("batch", "live", "retrain")


def say(message: str) -> None:
    print(f"[replay {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load(spark: SparkSession, settings: Settings) -> tuple[DataFrame, DataFrame]:
    """(ratings, tags) as the ingest stage validates them."""
    from movierec.spark.paths import RunPaths
    from movierec.spark.warehouse import read_table
    from movierec.stages.pipeline import run_pipeline

    run_pipeline(spark, settings.replace(learn_from_feedback=False), "replay-input", ["ingest"])
    paths = RunPaths(settings.warehouse, "replay-input")
    return read_table(spark, paths.ratings).localCheckpoint(), read_table(spark, paths.tags).localCheckpoint()


def halves(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's rows in time order cut in two: (the first n // 2, the rest)."""
    ordered = rows.sort_values([USER, TIMESTAMP, MOVIE])
    position = ordered.groupby(USER).cumcount()
    size = ordered.groupby(USER)[MOVIE].transform("size")
    first = position < size // 2
    return ordered[first], ordered[~first]


def is_new_user(user_id: int, share: float) -> bool:
    """A fixed draw of users the run never sees (a hash, so the same users at every run)."""
    digest = hashlib.sha256(f"replay-{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def write_dataset(folder: Path, source: Path, ratings: pd.DataFrame, tags: pd.DataFrame) -> Path:
    folder.mkdir(parents=True)
    (folder / "movies.csv").write_bytes((source / "movies.csv").read_bytes())
    ratings = ratings.rename(columns={USER: "userId", MOVIE: "movieId"})
    ratings[["userId", "movieId", RATING, TIMESTAMP]].to_csv(folder / "ratings.csv", index=False)
    tags.rename(columns={USER: "userId", MOVIE: "movieId"}).to_csv(folder / "tags.csv", index=False)
    return folder


def pipeline(spark: SparkSession, settings: Settings, run_id: str, data: Path, root: Path) -> tuple[Settings, float]:
    from movierec.stages.pipeline import run_pipeline

    run = settings.replace(
        data_dir=str(data),
        warehouse=str(root / run_id / "warehouse"),
        db_url=f"sqlite:///{root / run_id / 'store.db'}",
        skip_quality_gate=True,
        learn_from_feedback=False,
    )
    started = time.perf_counter()
    run_pipeline(spark, run, run_id, list(STAGES))
    seconds = time.perf_counter() - started
    say(f"run {run_id} on {data}: {seconds:.0f} s")
    return run, seconds


def served(client, user_id: int) -> tuple[list[int], str, float]:
    started = time.perf_counter()
    response = client.get(f"/users/{user_id}/recommendations?k={K}")
    seconds = time.perf_counter() - started
    answer = response.get_json()
    if response.status_code != 200:
        raise RuntimeError(f"GET /users/{user_id}/recommendations: {response.status_code} {answer}")
    return [item["movie_id"] for item in answer["items"]], answer["source"], seconds


def replay(settings: Settings, fed: pd.DataFrame, users: list[int]) -> tuple[dict, dict, list[float], dict]:
    """batch and live lists of each user, the GET-after-POST latencies, and the sources seen."""
    from serving import create_app

    digest = hashlib.sha256(KEY.encode()).hexdigest()
    app = create_app({"SETTINGS": settings.replace(api_keys=digest, live_timeout=600.0), "TESTING": True})
    client = app.test_client()
    auth = {"Authorization": f"Bearer {KEY}"}
    by_user = {user: rows for user, rows in fed.groupby(USER)}
    batch, live, latencies, sources = {}, {}, [], {}
    for number, user in enumerate(users, start=1):
        batch[user], source, _ = served(client, user)
        sources.setdefault(f"batch {source}", 0)
        sources[f"batch {source}"] += 1
        rows = by_user.get(user)
        if rows is not None and len(rows):
            body = [
                {"movie_id": int(m), "rating": float(r), "timestamp": int(t)}
                for m, r, t in rows[[MOVIE, RATING, TIMESTAMP]].itertuples(index=False)
            ]
            for start in range(0, len(body), 500):
                posted = client.post(f"/users/{user}/ratings", json=body[start : start + 500], headers=auth)
                if posted.status_code != 201:
                    raise RuntimeError(f"POST /users/{user}/ratings: {posted.status_code} {posted.get_json()}")
        live[user], source, seconds = served(client, user)
        if rows is not None and len(rows):
            latencies.append(seconds)
        sources.setdefault(f"live {source}", 0)
        sources[f"live {source}"] += 1
        if number % 100 == 0:
            say(f"replayed {number} of {len(users)} users")
    return batch, live, latencies, sources


def stored_lists(client_settings: Settings, users: list[int]) -> dict[int, list[int]]:
    from serving import create_app

    client = create_app({"SETTINGS": client_settings, "TESTING": True}).test_client()
    return {user: served(client, user)[0] for user in users}


def ndcg(spark: SparkSession, lists: dict[int, list[int]], later: pd.DataFrame, users: list[int]) -> tuple[float, int]:
    rows = [(user, rank, movie) for user in users for rank, movie in enumerate(lists[user], start=1)]
    recommendations = spark.createDataFrame(rows, f"{USER} int, {RANK} int, {MOVIE} int")
    test = spark.createDataFrame(later[later[USER].isin(users)][[USER, MOVIE, RATING]])
    measured = M.ranking_metrics(recommendations, test, K, P.RELEVANT_THRESHOLD)
    return float(measured[M.NDCG]), int(measured[M.USERS])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


@click.command(help=__doc__.splitlines()[0])
@click.option("--new-users", type=float, default=0.1, show_default=True, help="share of users left out of training")
@config.setting_options(*config.MODEL_SETTINGS, *config.SPARK_SETTINGS)
def main(new_users: float, settings: Settings) -> int:
    from movierec.spark.session import build_session

    logging.basicConfig(level=logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix="movierec-replay-"))
    settings = settings.replace(warehouse=str(root / "input" / "warehouse"))
    spark = build_session("replay", settings)
    try:
        ratings, tags = load(spark, settings)
        train, test, tags_cut = P.holdout(ratings, tags)
        columns = [USER, MOVIE, RATING, TIMESTAMP]
        train_pd, test_pd = train.select(*columns).toPandas(), test.select(*columns).toPandas()
        tags_pd = tags_cut.toPandas()
        everyone = sorted(set(train_pd[USER]) | set(test_pd[USER]))
        new = {user for user in everyone if is_new_user(user, new_users)}
        known_train = train_pd[~train_pd[USER].isin(new)]
        known_first, known_later = halves(test_pd[~test_pd[USER].isin(new)])
        new_first, new_later = halves(pd.concat([train_pd, test_pd])[lambda d: d[USER].isin(new)])
        say(
            f"{len(everyone) - len(new)} users of the run, {len(new)} left out; fed {len(known_first)} + "
            f"{len(new_first)} ratings, judged on {len(known_later)} + {len(new_later)}"
        )
        source = Path(settings.data_dir)
        batch_run, _ = pipeline(
            spark, settings, "replay-batch", write_dataset(root / "batch-data", source, known_train, tags_pd), root
        )
        retrain_data = pd.concat([known_train, known_first, new_first])
        retrain_run, retrain_seconds = pipeline(
            spark, settings, "replay-retrain", write_dataset(root / "retrain-data", source, retrain_data, tags_pd), root
        )
        fed = pd.concat([known_first, new_first])
        users = sorted(set(known_later[USER]) | set(new_later[USER]))
        started = time.perf_counter()
        batch, live, latencies, sources = replay(batch_run, fed, users)
        replay_seconds = time.perf_counter() - started
        retrain = stored_lists(retrain_run, users)
        later = pd.concat([known_later, new_later])
        table = []
        for group, members in (("users of the run", sorted(set(known_later[USER]))), ("new users", sorted(new))):
            members = [u for u in members if u in set(users)]
            scores = {name: ndcg(spark, lists, later, members) for name, lists in zip(LISTS, (batch, live, retrain))}
            gain = scores["retrain"][0] - scores["batch"][0]
            recovered = (scores["live"][0] - scores["batch"][0]) / gain if gain else float("nan")
            table.append((group, scores, recovered))
    finally:
        spark.stop()

    print(f"data {settings.data_dir}; temporal hold-out, {new_users:.0%} of users left out of training\n")
    print("| users | judged | NDCG@10 batch | live (after POST) | retrain | live recovers of the retrain's gain |")
    print("| --- | --- | --- | --- | --- | --- |")
    for group, scores, recovered in table:
        print(
            f"| {group} | {scores['batch'][1]} | {scores['batch'][0]:.4f} | {scores['live'][0]:.4f} | "
            f"{scores['retrain'][0]:.4f} | {recovered:.0%} |"
        )
    ms = [1000 * s for s in latencies]
    print(
        f"\ncost: retrain (the whole pipeline but evaluate) {retrain_seconds:.0f} s; live: {len(users)} users "
        f"replayed in {replay_seconds:.0f} s, GET after POST p50 {statistics.median(ms):.1f} ms, "
        f"p99 {percentile(ms, 0.99):.1f} ms over {len(ms)} users"
    )
    print("sources: " + ", ".join(f"{k} {v}" for k, v in sorted(sources.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
