"""The hyper-parameter search on generated data: it fits only on the validation split's fit
part (never a test or validation rating), picks the best trial by the objective, and gives
the same trials for the same seed."""

from __future__ import annotations

import pytest

from movierec import features as FE
from movierec.data.schemas import MOVIE, USER
from movierec.data.split import temporal_split, validation_split
from movierec.evaluation import protocol as E
from movierec.evaluation import tuning
from movierec.ranking import calibration

pytestmark = pytest.mark.spark

SPACE = (("rank", {"als_rank": [2, 4]}),)


@pytest.fixture(scope="module")
def data(spark, settings, small_data, tmp_path_factory):
    from movierec.spark.paths import RunPaths
    from movierec.spark.warehouse import read_table
    from movierec.stages.ingest import ingest
    from movierec.stages.runner import run_stage

    run_settings = settings.replace(data_dir=str(small_data), warehouse=str(tmp_path_factory.mktemp("tune")))
    run_stage("ingest", ingest, spark, run_settings, "tune-test")
    paths = RunPaths(run_settings.warehouse, "tune-test")
    return tuple(read_table(spark, p).persist() for p in (paths.movies, paths.ratings, paths.tags))


def _pairs(df) -> set[tuple[int, int]]:
    return {(r[USER], r[MOVIE]) for r in df.select(USER, MOVIE).collect()}


@pytest.fixture(scope="module")
def searched(data, settings):
    """Two searches with the same seed, recording the (user, movie) pairs every fit is given."""
    seen: list[tuple[str, set]] = []

    def spy(name, fn, position):
        def wrapped(*args, **kwargs):
            seen.append((name, _pairs(args[position])))
            return fn(*args, **kwargs)

        return wrapped

    movies, ratings, tags = data
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(E, "fit_als", spy("als", E.fit_als, 0))
        mp.setattr(E, "fit_rf", spy("forest", E.fit_rf, 0))
        mp.setattr(FE, "build_features", spy("features", FE.build_features, 1))
        mp.setattr(FE, "user_profiles", spy("profiles", FE.user_profiles, 0))
        lines: list[str] = []
        first = tuning.search(movies, ratings, tags, settings, SPACE, progress=lines.append)
    second = tuning.search(movies, ratings, tags, settings, SPACE, progress=lambda line: None)
    return first, second, seen, lines


def test_fits_see_only_the_fit_part_never_test_or_validation(data, searched):
    _, ratings, _ = data
    first, _, seen, _ = searched
    train, test = temporal_split(ratings, E.HOLDOUT_SHARE)
    fit, valid = validation_split(train, tuning.VALIDATION_SHARE)
    fit_pairs, valid_pairs, test_pairs = _pairs(fit), _pairs(valid), _pairs(test)
    assert test_pairs and valid_pairs

    kinds = [name for name, _ in seen]
    assert kinds.count("als") == 2, "one ALS fit per grid point"
    assert kinds.count("forest") == 1, "the forest's settings do not change: fitted once"
    assert "features" in kinds and "profiles" in kinds
    for name, pairs in seen:
        assert not pairs & test_pairs, f"{name} was fitted on test ratings"
        assert not pairs & valid_pairs, f"{name} was fitted on validation ratings"
        assert pairs == fit_pairs, f"{name} did not get the whole fit part"
    assert (first.fit_ratings, first.validation_ratings) == (len(fit_pairs), len(valid_pairs))


def test_returns_the_best_trial_by_hybrid_ndcg(searched, settings):
    first, _, _, lines = searched
    assert [t.params["als_rank"] for t in first.trials] == [2, 4]
    assert first.best.hybrid == max(t.hybrid for t in first.trials)
    assert set(first.calibration) == set(calibration.CALIBRATION)
    assert first.settings == settings.replace(als_rank=first.best.params["als_rank"], **first.calibration)
    for trial in first.trials:
        assert 0 <= trial.hybrid <= 1 and 0 <= trial.als <= 1 and 0 <= trial.content <= 1
        assert trial.params == {**tuning.params_of(settings), "als_rank": trial.params["als_rank"]}
    assert sum(line.startswith("trial ") for line in lines) == 2
    table = tuning.results_table(first)
    assert f"{first.best.number}*" in table and "hybrid" in table


def test_same_seed_same_trials(searched):
    first, second, _, _ = searched
    assert [t.params for t in first.trials] == [t.params for t in second.trials]
    # the same lists; a mean over users may differ in its last bit (Spark sums partitions in any order)
    metrics = lambda r: [(t.hybrid, t.als, t.content, t.coverage) for t in r.trials]
    assert metrics(first) == [pytest.approx(m, rel=1e-12) for m in metrics(second)]
    assert first.best.number == second.best.number


def test_best_trial_ties_go_to_the_earlier():
    trials = [tuning.Trial(n, "s", {}, h, 0, 0, 0, 0) for n, h in [(1, 0.1), (2, 0.2), (3, 0.2)]]
    assert tuning.best_trial(trials).number == 2


def test_best_trial_respects_the_coverage_floor():
    trials = [tuning.Trial(1, "s", {}, 0.3, 0, 0, 0.01, 0), tuning.Trial(2, "s", {}, 0.2, 0, 0, 0.1, 0)]
    assert tuning.best_trial(trials, min_coverage=0.05).number == 2
    assert tuning.best_trial(trials, min_coverage=0.5).number == 1, "none covers enough: the best by NDCG"


def test_space_parsing_and_unknown_settings(data, settings):
    assert tuning.parse_space('[["a", {"als_rank": [4, 8]}]]') == (("a", {"als_rank": [4, 8]}),)
    assert tuning.parse_space('{"a": {"rf_depth": [3]}}') == (("a", {"rf_depth": [3]}),)
    movies, ratings, tags = data
    with pytest.raises(ValueError, match="cannot tune top_k"):
        tuning.search(movies, ratings, tags, settings, (("x", {"top_k": [5]}),))
