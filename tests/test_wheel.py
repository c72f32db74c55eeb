"""The project installs as a wheel: `movierec` and `serving` import from it alone, data files included."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(PROJECT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (found,) = out.glob("movierec-*.whl")
    return found


def test_the_wheel_holds_the_library_the_app_and_their_files_but_no_scripts_or_tests(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"movierec", "serving"}
    assert {
        "movierec/stages/ingest.py",
        "movierec/store/tables.py",
        "serving/api.py",
        "serving/templates/index.html",
        "serving/static/app.js",
    } <= names


def test_movierec_and_serving_import_from_the_installed_wheel(wheel, tmp_path):
    target = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    code = (
        "import movierec, serving, movierec.store.tables, serving.api; "
        "print(movierec.__file__); print(serving.__file__); print(movierec.__version__)"
    )
    # run from / with the wheel's folder first on the path: nothing of the checkout is importable
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    movierec_file, serving_file, version = done.stdout.split()
    assert movierec_file.startswith(str(target)) and serving_file.startswith(str(target))
    assert version == "0.1.0"
