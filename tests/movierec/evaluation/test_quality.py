"""The quality gate: its rule on hand-made metrics, and its accept, reject and override paths
through the real publish stage."""

import pytest

from movierec.evaluation.quality import quality_gate
from movierec.stages.pipeline import run_pipeline
from movierec.stages.publish import RunRejected
from movierec.store import runs as store


def metrics(hybrid, popularity=0.05):
    return {"models": {"hybrid": {"ndcg": hybrid}, "popularity": {"ndcg": popularity}}}


@pytest.mark.parametrize(
    "new, active, accept, why",
    [
        (metrics(0.100), metrics(0.100), True, "0.1000"),
        (metrics(0.096), metrics(0.100), True, "active 0.1000"),  # 4% below: within 5%
        (metrics(0.094), metrics(0.100), False, "more than 5% below"),  # 6% below
        (metrics(0.040), None, False, "below the popularity baseline"),
        (metrics(0.090), None, True, "no active run"),
        (None, metrics(0.1), False, "no hybrid NDCG@10"),
        (metrics(0.090), {"models": {}}, True, "no active run"),  # an active run without metrics
    ],
)
def test_gate_rule(new, active, accept, why):
    decision = quality_gate(new, active, tolerance=0.05)
    assert decision.accept is accept and why in decision.reason


@pytest.mark.spark
@pytest.mark.slow
def test_publish_rejects_then_overrides(spark, pipeline_run, tmp_path):
    settings, run_id = pipeline_run
    db = settings.replace(db_url=f"sqlite:///{tmp_path / 'gate.db'}", skip_quality_gate=False)
    engine = store.engine_for(db.db_url)
    # a serving run that is far better than anything the test run can reach
    store.begin_run(engine, "excellent", {}, store.utc_now())
    store.load_run(engine, "excellent", {"recommendations": [[(1, 1, 1, 0.9, 0.9, 0.9)]]})
    store.activate_run(engine, "excellent", metrics(0.99, 0.0), store.utc_now())

    # (on this small generated set the popularity rule may refuse it first: either way, rejected)
    with pytest.raises(RunRejected, match=r"run test-run-1 rejected: hybrid NDCG@10 .*; run excellent keeps serving"):
        run_pipeline(spark, db, run_id, ["publish"])
    with engine.connect() as conn:
        assert store.active_run_id(conn) == "excellent"
        assert store.get_run(conn, run_id)["status"] == "rejected"

    run_pipeline(spark, db.replace(skip_quality_gate=True), run_id, ["publish"])
    with engine.connect() as conn:
        assert store.active_run_id(conn) == run_id
        assert store.get_run(conn, run_id)["status"] == "published"
