"""The movierec zip that spark-submit ships as --py-files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from movierec.files import sha256_file as sha256
from movierec.spark.package import build_zip

PROJECT = Path(__file__).resolve().parents[3]


def test_zip_holds_every_module_of_the_library_and_no_caches(jobs_zip):
    names = set(zipfile.ZipFile(jobs_zip).namelist())
    expected = {
        p.relative_to(PROJECT).as_posix()
        for p in (PROJECT / "movierec").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert {"movierec/__init__.py", "movierec/config.py", "movierec/stages/ingest.py"} <= names
    assert names == expected
    assert {n.split("/")[0] for n in names} == {"movierec"}


def test_same_sources_give_the_same_bytes(jobs_zip, tmp_path):
    again = build_zip(tmp_path / "again.zip")
    assert sha256(again) == sha256(jobs_zip)


def test_the_library_imports_from_the_zip_alone(jobs_zip):
    """An interpreter without site-packages (so without the installed package) imports
    `movierec` from the zip, as an executor that only got --py-files does."""
    code = (
        "import movierec.config, movierec.spark.paths; "
        "print(movierec.config.__file__); print(movierec.config.from_env({}).top_k)"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(jobs_zip)!r}); {code}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.split()
    assert first.startswith(str(jobs_zip))
    assert int(second) >= 1


def test_command_line_writes_the_zip(tmp_path):
    out = tmp_path / "sub" / "movierec.zip"
    done = subprocess.run(
        [sys.executable, "-m", "movierec.spark.package", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    assert zipfile.ZipFile(out).testzip() is None
    assert not list(out.parent.glob("*.tmp"))


def test_the_code_fingerprint_is_the_same_from_the_folder_and_from_the_zip(jobs_zip, tmp_path):
    from movierec.spark.package import PACKAGE_DIR, code_fingerprint

    version, digest = code_fingerprint().split("+")
    assert len(digest) == 12 and version
    assert code_fingerprint(Path(jobs_zip) / "movierec") == code_fingerprint()
    # one changed byte in one module changes it
    changed = tmp_path / "movierec"
    subprocess.run(["cp", "-r", str(PACKAGE_DIR), str(changed)], check=True)
    (changed / "text.py").write_text((changed / "text.py").read_text() + "\n")
    assert code_fingerprint(changed) != code_fingerprint()
