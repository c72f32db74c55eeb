"""`movierec download`, `movierec synth`: the data, without Spark."""

from __future__ import annotations

import sys

import click

from movierec.cli.common import Failed, UserError
from movierec.data.download import BASE_URL, DATASET, DATASETS


@click.command(
    short_help="fetch a MovieLens data set from GroupLens, verified",
    help=f"Fetch a MovieLens data set from GroupLens ({DATASET} by default), verify it (the CSVs' pinned "
    "SHA-256 for ml-latest-small; for the large ones, the archive's MD5 that GroupLens publishes beside it), "
    "then move it into place.",
)
@click.option("--dataset", type=click.Choice(list(DATASETS)), default=DATASET, show_default=True, help="which data set")
@click.option("--url", default=None, help=f"archive to fetch [default: {BASE_URL}/<dataset>.zip]")
@click.option("--dest", default="data", show_default=True, help="folder to unpack <dataset>/ into")
@click.option("--force", is_flag=True, help="download again even when a verified copy is present")
@click.option("--sha256", metavar="HEX", help="also require this SHA-256 of the archive itself")
def download(dataset: str, url: str | None, dest: str, force: bool, sha256: str | None) -> int:
    from movierec.data.download import DownloadError
    from movierec.data.download import download as fetch

    try:
        path = fetch(url, dest, force=force, zip_sha256=sha256, progress=_print_progress, dataset=dataset)
    except DownloadError as err:
        raise Failed(f"error: {err}") from None
    click.echo(str(path))
    return 0


def _print_progress(done: int, total: int | None) -> None:
    mb = done / 1e6
    line = (
        f"downloading: {mb:.1f} of {total / 1e6:.1f} MB ({100 * done / total:.0f}%)"
        if total
        else f"downloading: {mb:.1f} MB"
    )
    end = "\n" if total is not None and done >= total else ""
    print("\r" + line, end=end, file=sys.stderr, flush=True)


@click.command(
    short_help="write a MovieLens-shaped synthetic data set",
    help="Write a seeded MovieLens-shaped data set (ratings, movies, tags, links CSVs) with real "
    "structure: long-tailed popularity, genre tastes, half stars, time order, new movies.",
)
@click.option("--users", type=int, required=True, help="number of users")
@click.option("--movies", type=int, required=True, help="number of movies in movies.csv")
@click.option("--ratings", type=int, required=True, help="number of ratings, exactly")
@click.option("--seed", type=int, default=0, show_default=True, help="random seed: the same seed writes the same bytes")
@click.option("--out", required=True, help="directory to write the CSV files into")
@click.option(
    "--tags", type=int, default=None, help="number of tags (default: as many per rating as ml-latest-small has)"
)
def synth(users: int, movies: int, ratings: int, seed: int, out: str, tags: int | None) -> int:
    from movierec.data.synth import synthesize

    try:
        summary = synthesize(out, users, movies, ratings, seed, tags=tags)
    except ValueError as err:
        raise UserError(f"error: {err}") from None
    click.echo(" ".join(f"{key}={value}" for key, value in summary.items()))
    return 0
