"""Zip the `movierec` package for spark-submit's `--py-files`.

    python -m movierec.spark.package var/dist/movierec.zip

The stage scripts (jobs/*.py) import `movierec.*`.  On a local master the installed package
makes that work; on a cluster the executors (and, in cluster deploy modes, the driver) only
see what spark-submit ships, so the Airflow DAG passes this zip as `py_files`.  It is built
once, with the code (`make jobs-zip`, the Dockerfile), never by a task.

The zip holds `movierec/` at its root (so `import movierec.config` resolves inside it),
every file of the package except caches.  It is reproducible: entries are sorted and stamped
with one fixed time, so the same sources give the same bytes (and the same checksum), and it
is written to a temporary file first and renamed, so a spark-submit that reads it while it
is rebuilt sees the old zip or the new one, never half of one.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import os
import sys
import zipfile
from pathlib import Path

from movierec.files import write_atomically

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parents[1]
# 1980-01-01, the earliest time a zip entry can carry: a fixed stamp makes the bytes reproducible
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".swp"}


def package_files(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The package's files, relative to the folder holding the package, in a stable order."""
    root = package_dir.parent
    found = []
    for dirpath, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in filenames:
            path = Path(dirpath) / name
            if path.suffix in SKIP_SUFFIXES or name.startswith("."):
                continue
            found.append(path.relative_to(root))
    return sorted(found, key=lambda p: p.as_posix())


def zip_bytes(package_dir: Path = PACKAGE_DIR) -> bytes:
    """The zip of the package, in memory."""
    files = package_files(package_dir)
    if not any(p.name == "__init__.py" and len(p.parts) == 2 for p in files):
        raise FileNotFoundError(f"{package_dir} has no __init__.py: not a package")
    root = package_dir.parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel in files:
            info = zipfile.ZipInfo(rel.as_posix(), date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, (root / rel).read_bytes())
    return buffer.getvalue()


def build_zip(out: str | os.PathLike, package_dir: Path = PACKAGE_DIR) -> Path:
    """Write the package to `out` (a .zip path) and return the path."""
    out = Path(out).resolve()
    data = zip_bytes(package_dir)
    write_atomically(out, data)
    log.info("wrote %s: %d bytes, sha256 %s", out, len(data), hashlib.sha256(data).hexdigest()[:12])
    return out


def code_fingerprint(package_dir: Path = PACKAGE_DIR) -> str:
    """`<version>+<12 hex>`: the package's version and a digest of every file the zip would hold.

    A published run records it (runs.params) so the code that made it can be found again: the
    version alone says nothing of a checkout's edits.  The digest is the same whether the
    package is a folder or is imported from the --py-files zip (which holds exactly those files)."""
    from movierec import __version__

    digest = hashlib.sha256()
    for name, data in _package_contents(package_dir):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def _package_contents(package_dir: Path):
    """(path inside the zip, bytes) of each package file, from the folder or from the zip it sits in."""
    if package_dir.is_dir():
        root = package_dir.parent
        return [(rel.as_posix(), (root / rel).read_bytes()) for rel in package_files(package_dir)]
    archive = next((p for p in package_dir.parents if p.suffix == ".zip" and p.is_file()), None)
    if archive is None:
        raise FileNotFoundError(f"{package_dir} is neither a folder nor inside a zip")
    with zipfile.ZipFile(archive) as zf:
        prefix = package_dir.relative_to(archive).as_posix() + "/"
        names = sorted(n for n in zf.namelist() if n.startswith(prefix) and not n.endswith("/"))
        return [(name, zf.read(name)) for name in names]


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m movierec.spark.package", description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the zip to write, e.g. var/dist/movierec.zip")
    args = parser.parse_args(argv)
    path = build_zip(args.out)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
