"""Which settings the live fallback scores a run with (no Spark needed)."""

from __future__ import annotations

from movierec.config import from_env


def test_a_run_is_scored_with_its_own_model_settings():
    from serving.live import settings_for_run

    mine = from_env({}, db_url="sqlite:////srv/store.db", warehouse="/srv/wh", cf_weight=0.5, cb_weight=0.5)
    run = mine.replace(
        db_url="sqlite:////elsewhere.db", warehouse="/batch/wh", cf_weight=0.7, cb_weight=0.3, als_candidates=77
    ).to_dict()
    merged = settings_for_run(mine, {**run, "no_longer_a_setting": 1})
    assert (merged.cf_weight, merged.cb_weight, merged.als_candidates) == (0.7, 0.3, 77)
    assert (merged.db_url, merged.warehouse) == ("sqlite:////srv/store.db", "/srv/wh")  # where this process runs
    assert settings_for_run(mine, None) is mine
