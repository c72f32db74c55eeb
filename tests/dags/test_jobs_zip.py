"""The jobs zip that spark-submit ships as --py-files."""
from __future__ import annotations

import subprocess
import sys
import zipfile

from dag_helpers import PROJECT
from jobs.package import build_zip, sha256


def test_zip_holds_every_module_of_the_jobs_package_and_no_caches(jobs_zip):
    names = set(zipfile.ZipFile(jobs_zip).namelist())
    expected = {p.relative_to(PROJECT).as_posix() for p in (PROJECT / "jobs").rglob("*.py")
                if "__pycache__" not in p.parts}
    assert "jobs/__init__.py" in names and "jobs/config.py" in names and "jobs/package.py" in names
    assert expected <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert {n.split("/")[0] for n in names} == {"jobs", "sql"}


def test_zip_carries_the_store_schema_readable_from_inside_it(jobs_zip):
    """Publish applies sql/schema.sql; imported from the zip, the project root is the zip."""
    assert zipfile.Path(jobs_zip, "sql/schema.sql").read_text() == (PROJECT / "sql" / "schema.sql").read_text()


def test_same_sources_give_the_same_bytes(jobs_zip, tmp_path):
    again = build_zip(tmp_path / "again.zip")
    assert sha256(again) == sha256(jobs_zip)


def test_jobs_import_from_the_zip_alone(jobs_zip):
    """An interpreter without site-packages (so without the editable install) imports
    `jobs` from the zip, as an executor that only got --py-files does."""
    code = "import jobs.config, jobs.paths; print(jobs.config.__file__); print(jobs.config.from_env({}).top_k)"
    done = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(jobs_zip)!r}); {code}"],
                          capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.split()
    assert first.startswith(str(jobs_zip))
    assert int(second) >= 1


def test_command_line_writes_the_zip(tmp_path):
    out = tmp_path / "sub" / "jobs.zip"
    done = subprocess.run([sys.executable, "-m", "jobs.package", str(out)], capture_output=True, text=True,
                          timeout=60, cwd=PROJECT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    assert zipfile.ZipFile(out).testzip() is None
    assert not list(out.parent.glob("*.tmp"))


def test_ensure_zip_rewrites_only_a_zip_that_differs(tmp_path):
    from jobs.package import ensure_zip

    out = tmp_path / "jobs.zip"
    assert ensure_zip(out) is True                       # missing: written
    before = out.stat().st_mtime_ns, out.stat().st_ino
    assert ensure_zip(out) is False                      # current: left alone
    assert (out.stat().st_mtime_ns, out.stat().st_ino) == before
    out.write_bytes(b"not the current code")
    assert ensure_zip(out) is True and zipfile.ZipFile(out).testzip() is None
