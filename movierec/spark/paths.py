"""Where each stage of a run reads and writes: `<warehouse>/runs/<run_id>/<stage>/...`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# \Z, not $: $ also matches before a final newline, and "abc\n" would pass as a folder name
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+\-]{0,199}\Z")


class BadRunId(ValueError):
    """A run id that cannot be used as a folder name."""


def check_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.match(run_id or ""):
        raise BadRunId(
            f"run id {run_id!r}: use letters, digits and _.:+- (at most 200), starting with a letter or digit"
        )
    return run_id


def _absolute(warehouse: str) -> str:
    """Local paths become absolute file: URIs so Spark and Python agree; URIs stay as they are.

    The path goes in as it is, not percent-encoded (Path.as_uri): Hadoop reads the path part
    of a URI string literally, so "/data/my wh" as_uri'd would be written to "/data/my%20wh"."""
    if "://" in warehouse or warehouse.startswith("file:"):
        return warehouse.rstrip("/")
    return "file://" + Path(warehouse).resolve().as_posix()


@dataclass(frozen=True)
class RunPaths:
    warehouse: str
    run_id: str

    def __post_init__(self) -> None:
        check_run_id(self.run_id)
        object.__setattr__(self, "warehouse", _absolute(self.warehouse))

    @property
    def root(self) -> str:
        return f"{self.warehouse}/runs/{self.run_id}"

    def stage(self, stage: str) -> str:
        return f"{self.root}/{stage}"

    # ingest
    @property
    def ratings(self) -> str:
        return self.stage("ingest") + "/ratings"

    @property
    def movies(self) -> str:
        return self.stage("ingest") + "/movies"

    @property
    def tags(self) -> str:
        return self.stage("ingest") + "/tags"

    @property
    def rejects(self) -> str:
        return self.stage("ingest") + "/rejects"

    @property
    def ingest_report(self) -> str:
        return self.stage("ingest") + "/report"

    # featurize
    @property
    def movie_features(self) -> str:
        return self.stage("featurize") + "/movie_features"

    @property
    def user_profiles(self) -> str:
        return self.stage("featurize") + "/user_profiles"

    @property
    def content_pipeline(self) -> str:
        return self.stage("featurize") + "/content_pipeline"

    # models
    @property
    def als_model(self) -> str:
        return self.stage("train_als") + "/model"

    @property
    def als_report(self) -> str:
        return self.stage("train_als") + "/report"

    @property
    def rf_model(self) -> str:
        return self.stage("train_rf") + "/model"

    @property
    def rf_report(self) -> str:
        return self.stage("train_rf") + "/report"

    # score
    @property
    def user_scales(self) -> str:
        return self.stage("score") + "/user_scales"

    @property
    def recommendations(self) -> str:
        return self.stage("score") + "/recommendations"

    @property
    def popular(self) -> str:
        return self.stage("score") + "/popular"

    @property
    def similar(self) -> str:
        return self.stage("score") + "/similar"

    @property
    def score_report(self) -> str:
        return self.stage("score") + "/report"

    # evaluate
    @property
    def metrics(self) -> str:
        return self.stage("evaluate") + "/metrics"

    @property
    def evaluation_details(self) -> str:
        return self.stage("evaluate") + "/details"

    def evaluation_table(self, name: str) -> str:
        return self.stage("evaluate") + "/tables/" + name

    # publish
    @property
    def publish_report(self) -> str:
        return self.stage("publish") + "/report"


def local_path(uri: str) -> Path | None:
    """The local filesystem path behind a file: URI, or None for a remote URI."""
    if uri.startswith("file://"):
        return Path(uri[len("file://") :])
    if uri.startswith("file:"):
        return Path(uri[len("file:") :])
    if "://" not in uri:
        return Path(uri)
    return None
