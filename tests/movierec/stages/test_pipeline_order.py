"""How `run_pipeline` orders stages: evaluate beside the chain, publish after both, failures.

The stage bodies here are stand-ins that record what ran when (the real stages run this
way in the session's pipeline run, conftest.pipeline_run); what is tested is the order."""

import threading
import time

import pytest

from movierec.stages import pipeline
from movierec.stages.pipeline import STAGES, run_pipeline

pytestmark = pytest.mark.spark


class Recorder:
    def __init__(self):
        self.events: list[tuple[str, str, str]] = []  # (stage, "start"/"end", thread name)
        self.lock = threading.Lock()

    def note(self, stage: str, what: str) -> None:
        with self.lock:
            self.events.append((stage, what, threading.current_thread().name))

    def index(self, stage: str, what: str) -> int:
        return [(s, w) for s, w, _ in self.events].index((stage, what))

    def stage(self, name: str, body=None):
        def run(spark, settings, paths):
            self.note(name, "start")
            if body:
                body()
            self.note(name, "end")
            return {"stage": name}

        return run


@pytest.fixture
def recorder(monkeypatch):
    rec = Recorder()
    bodies = {}
    monkeypatch.setattr(pipeline, "stage_function", lambda stage: rec.stage(stage, bodies.get(stage)))
    rec.bodies = bodies
    return rec


def test_evaluate_runs_beside_the_chain_and_publish_waits_for_it(spark, settings, recorder):
    # score (before evaluate in STAGES) goes on only once evaluate has started: run one after
    # the other, score would wait in vain
    evaluate_started = threading.Event()

    def evaluate():
        evaluate_started.set()
        time.sleep(0.2)

    def score():
        assert evaluate_started.wait(timeout=30), "evaluate did not run beside the other stages"

    recorder.bodies["evaluate"] = evaluate
    recorder.bodies["score"] = score

    reports = run_pipeline(spark, settings, "order-1")

    assert list(reports) == list(STAGES)
    assert all(reports[s]["stage"] == s and reports[s]["seconds"] >= 0 for s in STAGES)
    assert recorder.index("evaluate", "start") > recorder.index("ingest", "end")
    assert recorder.index("publish", "start") > recorder.index("evaluate", "end")
    threads = {stage: thread for stage, _, thread in recorder.events}
    assert threads["evaluate"] != threads["score"]
    assert len({threads[s] for s in STAGES if s != "evaluate"}) == 1


def test_without_beside_the_stages_run_one_after_another(spark, settings, recorder):
    recorder.bodies["score"] = lambda: None
    run_pipeline(spark, settings, "order-2", beside=False)

    assert [(s, w) for s, w, _ in recorder.events] == [(s, w) for s in STAGES for w in ("start", "end")]


def test_a_failed_evaluate_stops_the_run_before_publish(spark, settings, recorder):
    def evaluate():
        raise RuntimeError("evaluate broke")

    recorder.bodies["evaluate"] = evaluate
    recorder.bodies["featurize"] = lambda: time.sleep(0.5)

    with pytest.raises(RuntimeError, match="evaluate broke"):
        run_pipeline(spark, settings, "order-3")

    assert ("publish", "start") not in [(s, w) for s, w, _ in recorder.events]


def test_a_failed_stage_of_the_chain_waits_for_evaluate_and_raises_its_error(spark, settings, recorder):
    def featurize():
        raise ValueError("featurize broke")

    recorder.bodies["featurize"] = featurize
    recorder.bodies["evaluate"] = lambda: time.sleep(0.5)

    with pytest.raises(ValueError, match="featurize broke"):
        run_pipeline(spark, settings, "order-4")

    ran = [(s, w) for s, w, _ in recorder.events]
    assert ("evaluate", "end") in ran  # waited for, not left running
    assert not any(s in ("train_als", "train_rf", "score", "publish") for s, _ in ran)
    assert not any(t.name == "movierec-evaluate" and t.is_alive() for t in threading.enumerate())
