"""Ingest on malformed input files, written as raw bytes: each is a one-line error naming the file and what is
wrong, or rows set aside with their reason; never a crash, a silent drop or a silent 1970 date."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from movierec.data.movielens import FIRST_TIMESTAMP
from movierec.data.validation import DataQualityError
from movierec.spark.paths import RunPaths
from movierec.spark.warehouse import read_table
from movierec.stages.ingest import ingest

pytestmark = pytest.mark.spark

PROJECT = Path(__file__).resolve().parents[3]
T0 = 1_100_000_000  # 2004-11-09: a MovieLens-era timestamp

MOVIES_HEADER = b"movieId,title,genres\n"
MOVIE_ROWS = [
    b"1,Toy Story (1995),Adventure|Animation\n",
    b"2,Jumanji (1995),Adventure|Children\n",
    b'3,"Grumpier Old Men, The (1995)",Comedy|Romance\n',
]
RATINGS_HEADER = b"userId,movieId,rating,timestamp\n"
RATING_ROWS = [f"{u},{m},3.5,{T0 + u * 10 + m}\n".encode() for u in range(1, 31) for m in (1, 2, 3)]
TAGS_HEADER = b"userId,movieId,tag,timestamp\n"
TAG_ROWS = [f"{u},1,pixar,{T0 + u}\n".encode() for u in range(1, 11)]

MOVIES = MOVIES_HEADER + b"".join(MOVIE_ROWS)
RATINGS = RATINGS_HEADER + b"".join(RATING_ROWS)
TAGS = TAGS_HEADER + b"".join(TAG_ROWS)
BOM = b"\xef\xbb\xbf"


def crlf(text: bytes) -> bytes:
    return text.replace(b"\n", b"\r\n")


@dataclass
class Case:
    """What the files hold, and either the error (a regular expression) or the rows set aside per file."""

    id: str
    ratings: bytes = RATINGS
    movies: bytes = MOVIES
    tags: bytes | None = TAGS
    error: str | None = None
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)


CASES = [
    # whole-file problems: one line naming the file and what is wrong
    Case("empty ratings.csv", ratings=b"", error=r"ratings\.csv \(.*ratings\.csv\) is empty \(0 bytes\)"),
    Case("empty movies.csv", movies=b"", error=r"movies\.csv \(.*movies\.csv\) is empty \(0 bytes\)"),
    Case("empty tags.csv", tags=b"", error=r"tags\.csv \(.*tags\.csv\) is empty \(0 bytes\)"),
    Case("header-only ratings.csv", ratings=RATINGS_HEADER, error=r"^ratings\.csv: a header and no rows"),
    Case("header-only movies.csv", movies=MOVIES_HEADER, error=r"^movies\.csv: a header and no rows"),
    Case(
        "ratings.csv without its timestamp column",
        ratings=b"userId,movieId,rating\n" + b"".join(r.rsplit(b",", 1)[0] + b"\n" for r in RATING_ROWS),
        error=r"ratings\.csv \(.*\) has no column timestamp \(MovieLens's are userId,movieId,rating,timestamp\): "
        r"its header is userId,movieId,rating$",
    ),
    Case(
        "movies.csv without its genres column",
        movies=b"movieId,title\n1,Toy Story (1995)\n2,Jumanji (1995)\n",
        error=r"movies\.csv \(.*\) has no column genres \(.*\): its header is movieId,title$",
    ),
    Case(
        "a BOM does not hide a missing column",
        movies=BOM + b"movieId,title\n1,Toy Story (1995)\n",
        error=r"movies\.csv \(.*\) has no column genres \(.*\): its header is movieId,title$",
    ),
    Case(
        "a column named twice",
        ratings=b"userId,movieId,rating,timestamp,rating\n1,1,3.5,1100000011,4.0\n",
        error=r"ratings\.csv \(.*\) names column rating twice",
    ),
    # read as they should be: nothing set aside
    Case("a byte-order mark", ratings=BOM + RATINGS, movies=BOM + MOVIES, tags=BOM + TAGS),
    Case("CRLF line ends", ratings=crlf(RATINGS), movies=crlf(MOVIES), tags=crlf(TAGS)),
    Case("BOM and CRLF", ratings=BOM + crlf(RATINGS), movies=BOM + crlf(MOVIES)),
    Case(
        "an extra column in the header and every row is read by name and ignored",
        movies=b"movieId,imdbId,title,genres\n" + b"".join(row.replace(b",", b",00,", 1) for row in MOVIE_ROWS),
    ),
    Case(
        "columns in another order are read by name",
        ratings=b"timestamp,rating,movieId,userId\n"
        + b"".join(b",".join(reversed(row.strip().split(b","))) + b"\n" for row in RATING_ROWS),
    ),
    Case(
        "no newline after the last row: set aside although it looks whole (a cut can look whole)",
        ratings=RATINGS.rstrip(b"\n"),
        rejected={"ratings": {"truncated_row": 1}},
    ),
    # rows set aside with their reason
    Case(
        "ratings.csv cut in the middle of its last row",
        ratings=RATINGS + b"31,1,4.",
        rejected={"ratings": {"truncated_row": 1}},
    ),
    Case(
        "ratings.csv cut in the last row's timestamp",
        ratings=RATINGS + b"31,1,4.5,11000",
        rejected={"ratings": {"truncated_row": 1}},
    ),
    Case(
        "movies.csv cut in the last row's genres (which alone would look valid)",
        movies=MOVIES + b"4,Heat (1995),Act",
        rejected={"movies": {"truncated_row": 1}},
    ),
    Case(
        "movies.csv cut inside a quoted title",
        movies=MOVIES + b'4,"Heat (19',
        rejected={"movies": {"truncated_row": 1}},
    ),
    Case(
        "a timestamp cut short, and one in milliseconds",
        ratings=RATINGS + f"31,1,4.5,{str(T0)[:5]}\n31,2,4.5,{T0 * 1000}\n".encode(),
        rejected={"ratings": {"bad_timestamp": 2}},
    ),
    Case(
        "a title that is not UTF-8 (Latin-1)",
        movies=MOVIES + b"4,Am\xe9lie (2001),Comedy|Romance\n",
        ratings=RATINGS + f"31,4,4.0,{T0}\n".encode(),  # its movie was set aside: unknown_movie, counted
        rejected={"movies": {"bad_encoding": 1}, "ratings": {"unknown_movie": 1}},
    ),
    Case(
        "a tag that is not UTF-8",
        tags=TAGS + f"11,1,caf\xe9,{T0}\n".encode("latin-1"),
        rejected={"tags": {"bad_encoding": 1}},
    ),
    Case(
        "a row with an extra field",
        ratings=RATINGS + f"31,1,4.5,{T0},oops\n".encode(),
        rejected={"ratings": {"malformed_row": 1}},
    ),
    Case(
        "a row with a field missing",
        movies=MOVIES + b"4,Heat (1995)\n",
        rejected={"movies": {"malformed_row": 1}},
    ),
]


def write_files(root: Path, case: Case) -> Path:
    root.mkdir()
    (root / "ratings.csv").write_bytes(case.ratings)
    (root / "movies.csv").write_bytes(case.movies)
    if case.tags is not None:
        (root / "tags.csv").write_bytes(case.tags)
    return root


def data_rows(text: bytes | None) -> int:
    """Rows of a file apart from its header, counted independently of Spark: its line ends."""
    if not text:
        return 0
    return len(text.replace(b"\r\n", b"\n").rstrip(b"\n").split(b"\n")) - 1


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_malformed_file_is_an_error_or_its_rows_are_set_aside_with_a_reason(spark, settings, tmp_path, case):
    data = write_files(tmp_path / "data", case)
    run_id = "malformed-" + str(CASES.index(case))
    s = settings.replace(data_dir=str(data), max_bad_share=0.5)
    paths = RunPaths(s.warehouse, run_id)

    if case.error is not None:
        with pytest.raises(DataQualityError, match=case.error) as caught:
            ingest(spark, s, paths)
        assert "\n" not in str(caught.value)
        return

    report = ingest(spark, s, paths)
    files = {"ratings": case.ratings, "movies": case.movies, "tags": case.tags}
    rejects = read_table(spark, paths.rejects).collect()
    for name, text in files.items():
        expected = case.rejected.get(name, {})
        assert report[name]["rows"] == data_rows(text), name  # every row is counted: none dropped silently
        assert report[name]["rejected"] == expected, name
        assert Counter(r["reason"] for r in rejects if r["source"] == f"{name}.csv") == Counter(expected), name
    ratings = read_table(spark, paths.ratings)
    assert ratings.count() == data_rows(case.ratings) - sum(case.rejected.get("ratings", {}).values())
    assert ratings.where(f"timestamp < {FIRST_TIMESTAMP}").count() == 0
    kept = {(r["user_id"], r["movie_id"], r["rating"], r["timestamp"]) for r in ratings.collect()}
    assert (7, 2, 3.5, T0 + 72) in kept  # a row read from its own columns, whatever their order
    movies = {r["movie_id"]: (r["title"], list(r["genres"])) for r in read_table(spark, paths.movies).collect()}
    assert movies[1] == ("Toy Story (1995)", ["Adventure", "Animation"])  # no BOM, no \r
    assert movies[3] == ("Grumpier Old Men, The (1995)", ["Comedy", "Romance"])
    assert all("\ufffd" not in title for title, _ in movies.values())
    if case.tags is not None:
        assert {r["tag"] for r in read_table(spark, paths.tags).collect()} == {"pixar"}


def test_the_stage_prints_a_data_error_as_one_line_and_exits_1(tmp_path):
    """`spark-submit jobs/ingest.py` on an empty ratings.csv: the one line, exit code 1, no traceback."""
    data = write_files(tmp_path / "data", Case("empty", ratings=b""))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOVIEREC_", "PYSPARK_GATEWAY", "PYSPARK_SUBMIT"))}
    env.update(PYTHONPATH=str(PROJECT), SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable)
    args = ["--run-id", "empty-1", "--data-dir", str(data), "--warehouse", str(tmp_path / "wh")]
    args += ["--spark-master", "local[1]", "--driver-memory", "1g"]
    done = subprocess.run(
        [sys.executable, str(PROJECT / "jobs/ingest.py"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    [line] = [line for line in done.stderr.splitlines() if "stage ingest failed" in line]
    assert "ratings.csv" in line and "is empty (0 bytes)" in line
