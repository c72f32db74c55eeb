"""The one place settings come from.

Every field of `Settings` can be set three ways, the later winning: its default here, an
environment variable `MOVIEREC_<NAME>`, and (for the commands that use it) a command-line
flag `--<name-with-dashes>` (booleans: `--<name>` / `--no-<name>`).  The flags are generated
from the fields by `setting_options`, for the `movierec` commands and the stage scripts alike.
The README's configuration table is this class, printed by `movierec config --markdown`.

Each field is of one kind:
- `model`: what defines the model and its data (the data directory, top-K, blend weights,
  calibration, candidate counts, ALS and forest parameters, feature sizes, the seed); a
  published run stores these with itself (`run_params`), so it can be scored and reported
  the way it was made, whatever the serving process was started with;
- `deployment`: where and how it runs (warehouse, store, Spark, time-outs, caches, the
  quality gate, retention, the DAG); never stored with a run.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "MOVIEREC_"
ALS_FEEDBACK_MODES = ("rating", "binary", "centred", "midpoint")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODEL, DEPLOYMENT = "model", "deployment"
KINDS = (MODEL, DEPLOYMENT)


def _model(text: str, default: Any) -> Any:
    return field(default=default, metadata={"doc": text, "kind": MODEL})


def _deployment(text: str, default: Any) -> Any:
    return field(default=default, metadata={"doc": text, "kind": DEPLOYMENT})


@dataclass(frozen=True)
class Settings:
    # where things are
    data_dir: str = _model("MovieLens directory: ratings.csv, movies.csv, optional tags.csv", "data/ml-latest-small")
    warehouse: str = _deployment(
        "Stage outputs, `<warehouse>/runs/<run_id>/<stage>/`; a local path or any Hadoop URI", "var/warehouse"
    )
    db_url: str = _deployment(
        "SQLAlchemy URL of the store (`sqlite:///path` or `postgresql+psycopg://user:password@host/db`)",
        "sqlite:///var/movierec.db",
    )
    spark_master: str = _deployment("Spark master for `movierec pipeline` and the live fallback", "local[*]")
    shuffle_partitions: int = _deployment("spark.sql.shuffle.partitions (Spark's 200 is far too many locally)", 8)
    driver_memory: str = _deployment("spark.driver.memory for sessions this project starts", "4g")
    # ingest
    learn_from_feedback: bool = _model(
        "Ingest adds the ratings posted to the store (POST /users/<id>/ratings) up to a minute before it "
        "starts to ratings.csv's; the run records that cut-off, and later ratings are applied live",
        True,
    )
    max_bad_share: float = _deployment("Fail ingest when more than this share of rating rows is invalid", 0.01)
    # ranking
    top_k: int = _model("Recommendations kept per user", 100)
    cf_weight: float = _model("Weight of the collaborative (ALS) component in the blend", 0.7)
    cb_weight: float = _model("Weight of the content (random forest) component in the blend", 0.3)
    cf_slope: float = _model(
        "Calibration of the ALS component: cf_score = logistic(cf_slope * z_cf + cf_intercept); "
        "fitted by `movierec tune` (movierec/ranking/scoring.py, calibration.py)",
        0.5935,
    )
    cf_intercept: float = _model("Calibration of the ALS component (see cf_slope)", -4.3638)
    cb_slope: float = _model(
        "Calibration of the content component: slope of the forest's predicted rating in "
        "cb_score = logistic(Σ slope * z + cb_intercept)",
        0.0955,
    )
    cb_popularity_slope: float = _model("Calibration of the content component: slope of the movie's popularity", 0.6179)
    cb_quality_slope: float = _model("Calibration of the content component: slope of the movie's mean rating", 0.1158)
    cb_taste_slope: float = _model(
        "Calibration of the content component: slope of the user's genre taste match", 0.1229
    )
    cb_intercept: float = _model("Calibration of the content component (see cb_slope)", -4.3756)
    als_candidates: int = _model("ALS candidates per user, after removing movies already rated", 300)
    content_candidates: int = _model("Content candidates per user (taste match), after removing rated movies", 100)
    content_pool: int = _model("Most-rated movies (plus all unrated new ones) that content candidates come from", 2000)
    popular_n: int = _model("Most popular movies kept per run for cold-start users", 500)
    similar_k: int = _model("Similar movies kept per movie (by ALS item factors)", 20)
    # ALS (implicit feedback)
    als_rank: int = _model("ALS latent factors", 48)
    als_reg: float = _model("ALS regularisation (regParam)", 0.1)
    als_alpha: float = _model(
        "ALS implicit confidence scale: confidence = 1 + alpha * abs(feedback value) (see als_feedback)", 1.0
    )
    als_iterations: int = _model("ALS iterations (maxIter)", 10)
    als_blocks: int = _model(
        "ALS user and item blocks (numUserBlocks, numItemBlocks): about the cores Spark has; "
        "Spark's 10 ran 2,800 tasks per fit on 2 cores",
        2,
    )
    als_feedback: str = _model(
        "How ratings become ALS implicit feedback: rating, binary, centred (minus the user's "
        "mean) or midpoint (minus 2.75); see movierec/models/als.py",
        "centred",
    )
    # content model
    rf_trees: int = _model("Random forest trees", 40)
    rf_depth: int = _model("Random forest maximum depth", 8)
    rf_max_pairs: int = _model(
        "Rated pairs the forest is fitted on at most: above it, a sample of about this many, "
        "chosen by a hash of each pair and the seed (movierec/models/forest.py; README, Scale)",
        250_000,
    )
    genre_features: int = _model("HashingTF buckets for genres", 64)
    tag_features: int = _model("HashingTF buckets for tags", 1024)
    eval_max_users: int = _model(
        "Held-out users the evaluate stage measures at most: above it, a sample of about this many, "
        "chosen by a hash of the user id and the seed; the metrics state the sample and the hybrid "
        "NDCG's 95% interval (movierec/evaluation/protocol.py)",
        10_000,
    )
    seed: int = _model("Seed for every random choice (ALS, forest, sampling)", 42)
    # publish
    keep_runs: int = _deployment("Published runs kept in the store for rollback", 3)
    quality_tolerance: float = _deployment(
        "Publish refuses a run whose hybrid NDCG@10 is this share below the active run's", 0.05
    )
    skip_quality_gate: bool = _deployment("Publish even when the quality gate says no", False)
    # serving
    warm_spark: bool = _deployment("Start the live-Spark fallback's session when the API boots", False)
    live_timeout: float = _deployment(
        "Seconds a client waits in all for a live-Spark answer (queue included) before the API answers 503", 20.0
    )
    live_max_pending: int = _deployment(
        "Live-Spark calls one API worker lets wait or run at once; more are answered 503 at once "
        "(gunicorn keeps at least 2 more threads per worker for everything else)",
        2,
    )
    store_timeout: float = _deployment(
        "Seconds the API waits on a network store (PostgreSQL) for one use of a connection before it answers 503 "
        "and stops asking it until a probe sees it back; SQLite is not bounded",
        1.0,
    )
    page_cache_size: int = _deployment(
        "Answers of GET /users/<id>/recommendations each API worker keeps for the active run (0: none)", 4096
    )
    reports_dir: str = _deployment(
        "Folder of the HTML evaluation reports: `movierec report` writes there, the API's page links the latest",
        "var/reports",
    )
    api_keys: str = _deployment(
        "API keys the write routes accept, as comma-separated SHA-256 hex digests of the keys (never the keys); "
        "none (and no api_keys_file): writes are off",
        "",
    )
    api_keys_file: str = _deployment(
        "A file of more accepted API key digests, one SHA-256 hex digest a line (blank lines and # comments allowed)",
        "",
    )
    # the Airflow DAG (read when dags/movie_recommender.py is parsed)
    dag_schedule: str = _deployment(
        "The DAG's schedule, a cron expression in UTC; `none` for manual runs only", "0 2 * * *"
    )
    dag_retries: int = _deployment("Retries of each DAG task (exponential backoff from 2 minutes)", 2)
    jobs_dir: str = _deployment("Folder of the stage scripts the DAG submits (relative: to the project)", "jobs")
    jobs_zip: str = _deployment(
        "The movierec zip the DAG ships as --py-files (relative: to the project; "
        "empty: ship nothing); `make jobs-zip` builds it",
        "var/dist/movierec.zip",
    )

    @property
    def weights(self) -> tuple[float, float]:
        return self.cf_weight, self.cb_weight

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in fields(Settings)}

# The settings each part reads, for the flags it offers (`setting_options`).
SPARK_SETTINGS = ("spark_master", "shuffle_partitions", "driver_memory")
MODEL_SETTINGS = tuple(name for name, f in FIELDS.items() if f.metadata["kind"] == MODEL)
# ingest + evaluate (`movierec evaluate`, `movierec tune`): no store
EVALUATE_SETTINGS = MODEL_SETTINGS + ("warehouse", "max_bad_share") + SPARK_SETTINGS
# every stage (`movierec pipeline`, `spark-submit jobs/<stage>.py`): all of them share one run's settings
BATCH_SETTINGS = EVALUATE_SETTINGS + ("db_url", "keep_runs", "quality_tolerance", "skip_quality_gate")
REPORT_SETTINGS = ("db_url", "warehouse") + SPARK_SETTINGS
# the API (and its live-Spark fallback, which takes the model settings from the run it scores for)
SERVE_SETTINGS = (
    ("db_url", "warehouse")
    + SPARK_SETTINGS
    + ("warm_spark", "live_timeout", "live_max_pending", "store_timeout", "page_cache_size", "reports_dir")
    + ("api_keys", "api_keys_file")
)
STORE_SETTINGS = ("db_url",)
ALL_SETTINGS = tuple(FIELDS)


def kind(name: str) -> str:
    """`model` or `deployment` (module docstring)."""
    return FIELDS[name].metadata["kind"]


def model_settings(settings: Settings) -> dict[str, Any]:
    """The settings that define the model and its data, by name."""
    return {name: getattr(settings, name) for name in MODEL_SETTINGS}


# what publish records with a run beside its settings (movierec.stages.publish.provenance):
# the code's version and digest, and the input files' sizes and digests; public like the settings
PROVENANCE = ("code_version", "inputs")


def run_params(settings: Settings) -> dict[str, Any]:
    """What a published run stores with itself (runs.params): its model settings, and the warehouse
    its files are in (the report reads them from there); no credentials in any of it."""
    # a local warehouse as an absolute path: the report may read it from another working directory
    warehouse = settings.warehouse if "://" in settings.warehouse else str(Path(settings.warehouse).resolve())
    return {
        name: redact_url(value) if isinstance(value, str) else value
        for name, value in {**model_settings(settings), "warehouse": warehouse}.items()
    }


# ---------------------------------------------------------------- secrets

_USERINFO = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*):[^/?#\s]*@")
_SECRET_QUERY = re.compile(
    r"(?P<head>[?&;][^=&;#]*(?:password|passwd|pwd|secret|token|key)[^=&;#]*=)[^&;#]*", re.IGNORECASE
)
MASK = "***"


def redact_url(url: str) -> str:
    """The URL with its password (`user:password@`, or a password/secret/token/key query value) as ***.

    A database URL goes through SQLAlchemy's own rendering (`hide_password`) when SQLAlchemy
    can read it; any other URL (a warehouse `s3a://key:secret@bucket/...`, a Spark master)
    through a generic masker.  Text that is not a URL comes back as it is."""
    if not isinstance(url, str) or "://" not in url:
        return url
    text = url
    try:
        import sqlalchemy as sa

        parsed = sa.make_url(url)
        if parsed.password is not None:
            text = parsed.render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can read: the generic masker below
        pass
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _SECRET_QUERY.sub(lambda m: m["head"] + MASK, text)


def shown(settings: Settings) -> dict[str, Any]:
    """Every setting by name, as it may be printed or logged: URLs without their passwords."""
    return {name: redact_url(value) if isinstance(value, str) else value for name, value in settings.to_dict().items()}


# ---------------------------------------------------------------- API keys

_DIGEST = re.compile(r"[0-9a-f]{64}")


def _digests_in(entries: Iterable[str], where: str, unit: str) -> list[str]:
    """The SHA-256 hex digests among `entries` (blank ones skipped), lower-cased.

    A wrong entry is a ConfigError that names its place, never its value: a plain key put
    where its digest belongs must not end up in a log."""
    found = []
    for number, entry in enumerate(entries, start=1):
        text = entry.strip().lower()
        if not text:
            continue
        if not _DIGEST.fullmatch(text):
            raise ConfigError(
                f"{where}: {unit} {number} is not a SHA-256 hex digest (64 hex characters); give each key's digest, "
                "never the key itself (`printf %s KEY | sha256sum`)"
            )
        found.append(text)
    return found


def api_key_digests(settings: Settings) -> tuple[str, ...]:
    """Every accepted API key's SHA-256 hex digest: api_keys, then the lines of api_keys_file.

    Read once when the API starts (a changed file takes a restart); a missing file or a line
    that is not a digest is a ConfigError."""
    digests = _digests_in(settings.api_keys.split(","), f"{env_name('api_keys')} / {flag_name('api_keys')}", "entry")
    if settings.api_keys_file:
        where = f"{env_name('api_keys_file')} / {flag_name('api_keys_file')}"
        try:
            lines = Path(settings.api_keys_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else type(err).__name__
            raise ConfigError(f"{where}: cannot read {settings.api_keys_file} ({reason})") from None
        uncommented = [line.split("#", 1)[0] for line in lines]
        digests += _digests_in(uncommented, f"{where} ({settings.api_keys_file})", "line")
    return tuple(dict.fromkeys(digests))


# ---------------------------------------------------------------- reading values


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _type_name(f: dataclasses.Field) -> str:
    return f.type if isinstance(f.type, str) else f.type.__name__


def is_bool(name: str) -> bool:
    return _type_name(FIELDS[name]) == "bool"


TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ValueError(f"not a boolean: {text!r} (use 1/0, true/false, yes/no)")


def _convert(f: dataclasses.Field, text: str) -> Any:
    kind_ = _type_name(f)
    try:
        if kind_ == "bool":
            return _parse_bool(text)
        if kind_ == "int":
            return int(text)
        if kind_ == "float":
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
    for name in (
        "als_rank",
        "als_iterations",
        "als_blocks",
        "rf_trees",
        "rf_depth",
        "rf_max_pairs",
        "eval_max_users",
        "shuffle_partitions",
        "als_candidates",
        "genre_features",
        "tag_features",
        "content_pool",
        "popular_n",
        "similar_k",
    ):
        if getattr(settings, name) < 1:
            problems.append(f"{name} must be at least 1")
    if settings.page_cache_size < 0:
        problems.append("page_cache_size must be 0 (no cache) or more")
    if settings.live_timeout <= 0:
        problems.append("live_timeout must be more than 0 seconds")
    if settings.store_timeout <= 0:
        problems.append("store_timeout must be more than 0 seconds")
    if settings.live_max_pending < 1:
        problems.append("live_max_pending must be at least 1")
    if settings.dag_retries < 0:
        problems.append("dag_retries must be 0 or more")
    if settings.cf_slope < 0 or settings.cb_slope < 0:
        problems.append(
            "cf_slope and cb_slope must be non-negative (a negative slope would rank a component upside down)"
        )
    if settings.als_feedback not in ALS_FEEDBACK_MODES:
        problems.append(f"als_feedback must be one of {', '.join(ALS_FEEDBACK_MODES)}")
    if problems:
        raise ConfigError("; ".join(problems))
    _digests_in(settings.api_keys.split(","), f"{env_name('api_keys')} / {flag_name('api_keys')}", "entry")
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


def to_env(settings: Settings, names: Iterable[str] | None = None) -> dict[str, str]:
    """`settings` (or just `names` of them) as the MOVIEREC_* variables `from_env` reads back to
    the same values: how settings travel to another process (gunicorn workers, spark-submit)."""
    env = {}
    for name in (f.name for f in fields(Settings)) if names is None else names:
        value = getattr(settings, name)
        env[env_name(name)] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return env


def from_options(values: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from parsed flags (None: not given; text, or True/False for a boolean) over the environment."""
    overrides = {}
    for name, value in values.items():
        if value is None:
            continue
        overrides[name] = value if isinstance(value, bool) else _convert(FIELDS[name], value)
    return from_env(environ, **overrides)


# ---------------------------------------------------------------- command-line flags

OPTION_PREFIX = "setting_"  # a setting's parameter name in a click command: never clashes with its own options
_METAVARS = {"int": "INTEGER", "float": "NUMBER", "str": "TEXT"}


def _option_help(f: dataclasses.Field) -> str:
    if isinstance(f.default, bool):
        default = "on" if f.default else "off"
    else:
        default = str(f.default) if f.default != "" else '""'
    return f"{f.metadata['doc']} [{env_name(f.name)}; default: {default}]"


def setting_options(*names: str) -> Callable[[Callable], Callable]:
    """A decorator for a click command: one flag per named setting, in the order given, and the
    command gets them as one validated `settings` argument (flag over MOVIEREC_* over default).

    Values are parsed after click, by the same code that reads the environment, so a bad value
    says `MOVIEREC_TOP_K / --top-k: ...` whichever way it came, and raises ConfigError."""
    import click

    unknown = [name for name in names if name not in FIELDS]
    if unknown:
        raise ValueError(f"no such setting: {', '.join(unknown)}")

    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)
        def with_settings(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(OPTION_PREFIX + name) for name in names}
            return command(*args, settings=from_options(values), **kwargs)

        for name in reversed(names):  # click lists options in decorator order, outermost first
            f = FIELDS[name]
            if is_bool(name):
                flag = f"{flag_name(name)}/--no-{flag_name(name)[2:]}"
                option = click.option(flag, OPTION_PREFIX + name, default=None, help=_option_help(f))
            else:
                option = click.option(
                    flag_name(name),
                    OPTION_PREFIX + name,
                    default=None,
                    type=str,
                    metavar=_METAVARS.get(_type_name(f), "TEXT"),
                    help=_option_help(f),
                )
            with_settings = option(with_settings)
        return with_settings

    return decorate


def bool_values_as_flags(argv: Sequence[str], names: Iterable[str] = ALL_SETTINGS) -> list[str]:
    """`--skip-quality-gate true` (or `=true`) as `--skip-quality-gate`, `... false` as `--no-skip-quality-gate`:
    the form a scheduler that templates every value writes (the DAG's `STAGE_ARGS`)."""
    flags = {flag_name(name) for name in names if is_bool(name)}
    words = TRUE_WORDS | FALSE_WORDS - {""}
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg, eq, value = argv[i].partition("=")
        if arg in flags and (eq or (i + 1 < len(argv) and argv[i + 1].strip().lower() in words)):
            if not eq:
                value = argv[i + 1]
                i += 1
            try:
                on = _parse_bool(value)
            except ValueError as err:
                raise ConfigError(f"{arg}: {err}") from None
            out.append(arg if on else "--no-" + arg[2:])
        else:
            out.append(argv[i])
        i += 1
    return out


def markdown_table() -> str:
    """The README's table: every setting with its variable, flag, kind, default and meaning."""
    lines = ["| variable | flag | kind | default | meaning |", "| --- | --- | --- | --- | --- |"]
    for f in fields(Settings):
        flag = f"`{flag_name(f.name)}`" + (f" / `--no-{flag_name(f.name)[2:]}`" if is_bool(f.name) else "")
        default = f"`{str(f.default).lower() if isinstance(f.default, bool) else f.default}`" if f.default != "" else ""
        lines.append(f"| `{env_name(f.name)}` | {flag} | {f.metadata['kind']} | {default} | {f.metadata['doc']} |")
    return "\n".join(lines)
