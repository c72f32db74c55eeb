"""The layout a newcomer relies on: jobs/ holds only thin stage scripts, the library is one package."""

from __future__ import annotations

import ast
from pathlib import Path

from movierec.stages.pipeline import STAGES

PROJECT = Path(__file__).resolve().parents[1]


def test_jobs_holds_one_thin_script_per_stage():
    scripts = sorted(p.stem for p in (PROJECT / "jobs").glob("*.py"))
    assert scripts == sorted(STAGES)
    assert not (PROJECT / "jobs" / "__init__.py").exists(), "jobs/ is scripts, not a package"
    for stage in STAGES:
        tree = ast.parse((PROJECT / "jobs" / f"{stage}.py").read_text())
        imports = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert [(i.module, [a.name for a in i.names]) for i in imports] == [(f"movierec.stages.{stage}", ["main"])]
        functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
        assert not functions, f"jobs/{stage}.py defines {functions[0].name}: logic belongs in movierec.stages"


def test_every_stage_module_has_a_main():
    import importlib

    for stage in STAGES:
        module = importlib.import_module(f"movierec.stages.{stage}")
        assert callable(module.main) and callable(getattr(module, stage)), stage
