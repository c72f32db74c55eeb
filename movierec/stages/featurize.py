"""Stage `featurize`: movie content features and user taste profiles.

spark-submit jobs/featurize.py --run-id ID
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from movierec import features as FE
from movierec.config import Settings
from movierec.spark.paths import RunPaths
from movierec.spark.warehouse import read_table, write_json, write_table
from movierec.stages.runner import stage_main


def featurize(spark: SparkSession, settings: Settings, paths: RunPaths) -> dict:
    movies, ratings, tags = (read_table(spark, p) for p in (paths.movies, paths.ratings, paths.tags))
    fitted, movie_feats, global_mean = FE.build_features(
        movies, ratings, tags, settings.genre_features, settings.tag_features
    )
    fitted.write().overwrite().save(paths.content_pipeline)
    write_table(movie_feats, paths.movie_features)
    movie_feats = read_table(spark, paths.movie_features)
    write_table(FE.user_profiles(ratings, movie_feats), paths.user_profiles)
    report = {"global_mean_rating": global_mean}
    write_json(spark, paths.stage("featurize") + "/report", report)
    return report


def main(argv: list[str] | None = None) -> int:
    return stage_main("featurize", featurize, argv)
