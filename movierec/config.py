"""The one place settings come from.

Every field of `Settings` can be set three ways, the later winning:
its default here, an environment variable `MOVIEREC_<NAME>`, and a command-line flag
`--<name-with-dashes>`.  The README's configuration table is this class, printed by
`movierec config --markdown`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

ENV_PREFIX = "MOVIEREC_"
ALS_FEEDBACK_MODES = ("rating", "binary", "centred", "midpoint")
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _doc(text: str, default: Any) -> Any:
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class Settings:
    # where things are
    data_dir: str = _doc("MovieLens directory: ratings.csv, movies.csv, optional tags.csv", "data/ml-latest-small")
    warehouse: str = _doc("Stage outputs, `<warehouse>/runs/<run_id>/<stage>/`; a local path or any Hadoop URI", "var/warehouse")
    db_url: str = _doc("SQLAlchemy URL of the store (SQLite or PostgreSQL)", "sqlite:///var/movierec.db")
    spark_master: str = _doc("Spark master for `movierec pipeline` and the live fallback", "local[*]")
    shuffle_partitions: int = _doc("spark.sql.shuffle.partitions (Spark's 200 is far too many locally)", 8)
    driver_memory: str = _doc("spark.driver.memory for sessions this project starts", "4g")
    # ingest
    max_bad_share: float = _doc("Fail ingest when more than this share of rating rows is invalid", 0.01)
    # ranking
    top_k: int = _doc("Recommendations kept per user", 100)
    cf_weight: float = _doc("Weight of the collaborative (ALS) component in the blend", 0.7)
    cb_weight: float = _doc("Weight of the content (random forest) component in the blend", 0.3)
    cf_slope: float = _doc("Calibration of the ALS component: cf_score = logistic(cf_slope * z_cf + cf_intercept); "
                           "fitted by `movierec tune` (jobs/scoring.py, jobs/calibration.py)", 0.5935)
    cf_intercept: float = _doc("Calibration of the ALS component (see cf_slope)", -4.3638)
    cb_slope: float = _doc("Calibration of the content component: slope of the forest's predicted rating in "
                           "cb_score = logistic(Σ slope * z + cb_intercept)", 0.0955)
    cb_popularity_slope: float = _doc("Calibration of the content component: slope of the movie's popularity", 0.6179)
    cb_quality_slope: float = _doc("Calibration of the content component: slope of the movie's mean rating", 0.1158)
    cb_taste_slope: float = _doc("Calibration of the content component: slope of the user's genre taste match", 0.1229)
    cb_intercept: float = _doc("Calibration of the content component (see cb_slope)", -4.3756)
    als_candidates: int = _doc("ALS candidates per user, after removing movies already rated", 300)
    content_candidates: int = _doc("Content candidates per user (taste match), after removing rated movies", 100)
    content_pool: int = _doc("Most-rated movies (plus all unrated new ones) that content candidates come from", 2000)
    popular_n: int = _doc("Most popular movies kept per run for cold-start users", 500)
    similar_k: int = _doc("Similar movies kept per movie (by ALS item factors)", 20)
    # ALS (implicit feedback)
    als_rank: int = _doc("ALS latent factors", 48)
    als_reg: float = _doc("ALS regularisation (regParam)", 0.1)
    als_alpha: float = _doc("ALS implicit confidence scale: confidence = 1 + alpha * abs(feedback value) (see als_feedback)", 1.0)
    als_iterations: int = _doc("ALS iterations (maxIter)", 10)
    als_blocks: int = _doc("ALS user and item blocks (numUserBlocks, numItemBlocks): about the cores Spark has; "
                           "Spark's 10 ran 2,800 tasks per fit on 2 cores", 2)
    als_feedback: str = _doc("How ratings become ALS implicit feedback: rating, binary, centred (minus the user's mean) "
                             "or midpoint (minus 2.75); see jobs/collaborative.py", "centred")
    # content model
    rf_trees: int = _doc("Random forest trees", 40)
    rf_depth: int = _doc("Random forest maximum depth", 8)
    genre_features: int = _doc("HashingTF buckets for genres", 64)
    tag_features: int = _doc("HashingTF buckets for tags", 1024)
    seed: int = _doc("Seed for every random choice (ALS, forest, sampling)", 42)
    # publish
    keep_runs: int = _doc("Published runs kept in the store for rollback", 3)
    quality_tolerance: float = _doc("Publish refuses a run whose hybrid NDCG@10 is this share below the active run's", 0.05)
    skip_quality_gate: bool = _doc("Publish even when the quality gate says no", False)
    # serving
    warm_spark: bool = _doc("Start the live-Spark fallback's session when the API boots", False)
    live_timeout: float = _doc("Seconds a live-Spark scoring call may take before the API answers 503", 20.0)
    page_cache_size: int = _doc("Answers of GET /users/<id>/recommendations each API worker keeps for the active "
                                "run (0: none)", 4096)

    @property
    def weights(self) -> tuple[float, float]:
        return self.cf_weight, self.cb_weight

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r} (use 1/0, true/false, yes/no)")


def _convert(f: dataclasses.Field, text: str) -> Any:
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    try:
        if kind == "bool":
            return _parse_bool(text)
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        return text
    except ValueError as err:
        raise ConfigError(f"{env_name(f.name)} / {flag_name(f.name)}: {err}") from None


class ConfigError(ValueError):
    """A setting has a value that cannot be used."""


def validate(settings: Settings) -> Settings:
    problems = []
    if settings.top_k < 1:
        problems.append("top_k must be at least 1")
    if settings.cf_weight < 0 or settings.cb_weight < 0 or settings.cf_weight + settings.cb_weight <= 0:
        problems.append("cf_weight and cb_weight must be non-negative and not both zero")
    if not 0 <= settings.max_bad_share <= 1:
        problems.append("max_bad_share must be between 0 and 1")
    if settings.keep_runs < 2:
        problems.append("keep_runs must be at least 2 (rollback needs a previous run)")
    for name in ("als_rank", "als_iterations", "als_blocks", "rf_trees", "rf_depth", "shuffle_partitions",
                 "als_candidates", "genre_features", "tag_features", "content_pool", "popular_n",
                 "similar_k"):
        if getattr(settings, name) < 1:
            problems.append(f"{name} must be at least 1")
    if settings.page_cache_size < 0:
        problems.append("page_cache_size must be 0 (no cache) or more")
    if settings.cf_slope < 0 or settings.cb_slope < 0:
        problems.append("cf_slope and cb_slope must be non-negative (a negative slope would rank a component upside down)")
    if settings.als_feedback not in ALS_FEEDBACK_MODES:
        problems.append(f"als_feedback must be one of {', '.join(ALS_FEEDBACK_MODES)}")
    if problems:
        raise ConfigError("; ".join(problems))
    return settings


def from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Defaults, then MOVIEREC_* variables, then keyword overrides."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        if env_name(f.name) in environ:
            values[f.name] = _convert(f, environ[env_name(f.name)])
    values.update(overrides)
    return validate(Settings(**values))


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One optional flag per setting; unset flags leave the environment's value."""
    group = parser.add_argument_group("settings (each also MOVIEREC_<NAME>)")
    for f in fields(Settings):
        group.add_argument(flag_name(f.name), dest=f"setting_{f.name}", default=None,
                           metavar=f.name.upper(), help=f.metadata["doc"])


def from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    overrides = {}
    for f in fields(Settings):
        text = getattr(args, f"setting_{f.name}", None)
        if text is not None:
            overrides[f.name] = _convert(f, text)
    return from_env(environ, **overrides)


def markdown_table() -> str:
    lines = ["| variable | flag | default | meaning |", "| --- | --- | --- | --- |"]
    for f in fields(Settings):
        lines.append(f"| `{env_name(f.name)}` | `{flag_name(f.name)}` | `{f.default}` | {f.metadata['doc']} |")
    return "\n".join(lines)
