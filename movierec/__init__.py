"""movierec: a hybrid movie recommender (Spark ALS 70% + a content random forest 30%).

The library the batch stages (jobs/), the API (serving/) and the DAG (dags/) share:

    config       every setting, defined once
    cli          the `movierec` command
    spark/       the session, a run's paths, warehouse reads and writes, the --py-files zip
    data/        input schemas, row validation, splits, the MovieLens download, the generator
    features     movie content, user profiles, the pair features
    models/      ALS (als), the content forest (forest), similar movies (similar)
    ranking/     candidates and the hybrid blend (scoring), its calibration, live scoring (online)
    evaluation/  the hold-out protocol, metrics, tuning, the quality gate
    report/      the HTML evaluation report
    stages/      ingest ... publish, the stage runner and the pipeline
    store/       the store's tables and a run's lifecycle (publish, rollback)
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("movierec")
except PackageNotFoundError:  # imported from the --py-files zip, which carries no metadata
    __version__ = "0+unknown"
