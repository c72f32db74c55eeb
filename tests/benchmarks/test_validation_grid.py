"""benchmarks/validation_grid.py: each point's settings reach the fits it measures, fits are
shared where the settings allow, and a grid that names no setting is refused."""

from __future__ import annotations

import click
import pytest

from benchmarks import validation_grid as G


def test_a_grid_is_points_of_typed_setting_overrides():
    assert G.parse_grid("als_rank=48,als_reg=0.1; als_rank=128 ;") == [
        {"als_rank": 48, "als_reg": 0.1},
        {"als_rank": 128},
    ]
    assert G.parse_grid("als_feedback=binary,learn_from_feedback=false") == [
        {"als_feedback": "binary", "learn_from_feedback": False}
    ]


@pytest.mark.parametrize("grid", ["", "rank=48", "als_rank", "als_rank=0.3", " ; "])
def test_a_grid_without_settings_is_refused(grid):
    with pytest.raises(click.BadParameter):
        G.parse_grid(grid)


@pytest.mark.spark
def test_each_point_is_measured_with_its_own_settings(spark, settings, small_data, tmp_path):
    run_settings = settings.replace(data_dir=str(small_data), warehouse=str(tmp_path / "warehouse"))
    points = [{"als_rank": 4}, {"als_rank": 12}, {"als_rank": 12, "rf_depth": 3}]
    rows = G.run(spark, run_settings, ["temporal"], points, seed=42)

    assert [{k: r[k] for k in p} for r, p in zip(rows, points)] == points
    for row in rows:
        assert row["split"] == "temporal"
        assert all(0.0 <= row[m] <= 1.0 for m in G.METRICS)
    # another rank, another ALS model, the same forest; another depth, another forest only
    assert rows[0]["als"] != rows[1]["als"] and rows[0]["content"] == rows[1]["content"]
    assert rows[1]["als"] == rows[2]["als"] and rows[1]["content"] != rows[2]["content"]
    assert "| temporal | 12 | 3 |" in G.markdown_table(rows, points)
