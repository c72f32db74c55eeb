"""Fetch a MovieLens data set from GroupLens, verify it and unpack it atomically.

The archive is downloaded into a temporary folder inside the destination, unpacked there,
verified, and only then is the folder renamed to `<dest>/<data set>`.  A failed, interrupted
or corrupt download leaves nothing at the destination (and an existing data set untouched).

How each is verified:
- ml-latest-small: every CSV against the SHA-256 pinned here (taken from a verified copy;
  the zip itself could not be fetched when this was written).
- ml-25m, ml-32m (25 and 32 million ratings, with extra files beside): the archive against
  the MD5 published beside it (`<url>.md5`), fetched first: a download whose checksum cannot
  be fetched is refused.  The SHA-256 of the files ingest reads are then written to
  `MANIFEST.sha256` in the data set's folder, so a later call finds it present and verified
  without fetching anything.
`--sha256` pins the archive too, for any of them.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import cast

from movierec.files import sha256_file

log = logging.getLogger(__name__)

BASE_URL = "https://files.grouplens.org/datasets/movielens"
DATASET = "ml-latest-small"
PINNED_SHA256 = {
    "links.csv": "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31",
    "movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
    "ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
    "tags.csv": "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
}
# the data sets `download` knows: their pinned CSV hashes, or None where the archive is checked
# against the MD5 GroupLens publishes beside it
DATASETS: dict[str, Mapping[str, str] | None] = {DATASET: PINNED_SHA256, "ml-25m": None, "ml-32m": None}
# in an MD5-checked data set's folder: the SHA-256 of the files ingest reads, taken once the
# archive verified (not of the genome files beside: a gigabyte to hash again on every check)
MANIFEST = "MANIFEST.sha256"
MANIFEST_FILES = ("ratings.csv", "movies.csv", "tags.csv")
REQUIRED = ("ratings.csv", "movies.csv")
_PINNED = object()  # `download`'s default `expected`: what DATASETS pins of the data set
BLOCK = 1 << 20

Progress = Callable[[int, "int | None"], None]


class DownloadError(RuntimeError):
    """The data set could not be fetched, unpacked or verified."""


class ChecksumError(DownloadError):
    """A file's SHA-256 is not the pinned one."""


def url_of(dataset: str) -> str:
    """GroupLens's address of a data set's zip."""
    return f"{BASE_URL}/{dataset}.zip"


def download(
    url: str | None = None,
    dest: str | os.PathLike = "data",
    force: bool = False,
    zip_sha256: str | None = None,
    expected: Mapping[str, str] | None | object = _PINNED,
    timeout: float = 60.0,
    progress: Progress | None = None,
    dataset: str = DATASET,
) -> Path:
    """Make `<dest>/<dataset>` hold a verified copy of the data set; return its path.

    `url`: where to fetch the zip (default: GroupLens's, url_of).  `expected` maps file names
    in the archive to their SHA-256, every one must match; None: the archive must match the
    MD5 published at `<url>.md5` instead (the default for a data set DATASETS pins nothing of).
    Nothing is fetched when a copy that passes its check is already there, unless `force`.
    """
    if dataset not in DATASETS:
        raise DownloadError(f"unknown data set {dataset!r}; known: {', '.join(DATASETS)}")
    if zip_sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", zip_sha256):
        raise DownloadError(f"--sha256 must be 64 hexadecimal digits, got {zip_sha256!r}")
    pins = DATASETS[dataset] if expected is _PINNED else cast("Mapping[str, str] | None", expected)
    url = url or url_of(dataset)
    dest = Path(dest)
    target = dest / dataset
    if target.is_dir() and not force:
        problems = check_files(target, pins) if pins is not None else _manifest_problems(target)
        if not problems:
            log.info("%s is already present and verified", target)
            return target
        log.warning("%s is present but does not verify (%s): downloading again", target, "; ".join(problems))

    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        # the work folder sits beside the target, so the final rename stays on one filesystem
        with tempfile.TemporaryDirectory(dir=dest, prefix=f".{dataset}-") as work:
            archive = Path(work) / "download.zip"
            published_md5 = (
                _published_md5(url + ".md5", Path(work) / "download.zip.md5", timeout) if pins is None else None
            )
            digest, md5 = _fetch(url, archive, timeout, progress)
            if zip_sha256 is not None and digest != zip_sha256.lower():
                raise ChecksumError(f"{url}: archive sha256 is {digest}, expected {zip_sha256.lower()}")
            if published_md5 is not None and md5 != published_md5:
                raise ChecksumError(f"{url}: archive md5 is {md5}, {url}.md5 says {published_md5}")
            unpacked = _unpack(archive, Path(work) / "unpacked")
            if pins is None:
                _write_manifest(unpacked)
            else:
                problems = check_files(unpacked, pins)
                if problems:
                    raise ChecksumError(f"{url}: checksum mismatch: " + "; ".join(problems))
            _swap_in(unpacked, target, Path(work) / "previous")
    except BaseException:
        if created and not any(dest.iterdir()):
            dest.rmdir()
        raise
    log.info("%s verified and unpacked into %s", url, target)
    return target


def check_files(folder: Path, expected: Mapping[str, str]) -> list[str]:
    """What is wrong with `folder` against `expected` (file name -> SHA-256); empty when nothing."""
    problems = []
    for name, digest in sorted(expected.items()):
        path = Path(folder) / name
        if not path.is_file():
            problems.append(f"{name} is missing")
            continue
        actual = sha256_file(path)
        if actual != digest.lower():
            problems.append(f"{name} has sha256 {actual}, expected {digest.lower()}")
    return problems


def _manifest_problems(folder: Path) -> list[str]:
    """What is wrong with an MD5-checked data set's folder against the hashes its MANIFEST
    (sha256sum's format) recorded: a missing or malformed manifest, or one without ratings.csv
    and movies.csv, is a problem too (the data set is then fetched again)."""
    path = folder / MANIFEST
    if not path.is_file():
        return [f"{MANIFEST} is missing"]
    recorded = {}
    for line in path.read_text(errors="replace").splitlines():
        found = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line.strip())
        if found is None:
            return [f"{MANIFEST} has a malformed line {line[:60]!r}"]
        recorded[found.group(2)] = found.group(1)
    missing = [name for name in REQUIRED if name not in recorded]
    return [f"{MANIFEST} lists no {', '.join(missing)}"] if missing else check_files(folder, recorded)


def _write_manifest(folder: Path) -> None:
    """Record the SHA-256 of the files ingest reads (in sha256sum's format) after the archive verified."""
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise DownloadError(f"the archive holds no {' and no '.join(missing)}")
    names = [name for name in MANIFEST_FILES if (folder / name).is_file()]
    (folder / MANIFEST).write_text("".join(f"{sha256_file(folder / name)}  {name}\n" for name in names))


def _published_md5(url: str, path: Path, timeout: float) -> str:
    """The MD5 in the `<zip>.md5` published beside the zip (GroupLens's `MD5 (name) = hex`, or
    md5sum's `hex  name`), fetched into `path`."""
    try:
        _fetch(url, path, timeout, None)
    except DownloadError as err:
        raise DownloadError(f"{err}: without its checksum the archive is not fetched") from None
    found = re.search(r"\b[0-9a-fA-F]{32}\b", path.read_text("ascii", errors="replace")[:4096])
    if found is None:
        raise DownloadError(f"{url}: holds no MD5 checksum")
    return found.group(0).lower()


def _fetch(url: str, path: Path, timeout: float, progress: Progress | None) -> tuple[str, str]:
    """Stream `url` into `path`; return the SHA-256 and the MD5 of what was received."""
    digest, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    request = urllib.request.Request(url, headers={"User-Agent": "movierec-download"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(path, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            while block := response.read(BLOCK):
                out.write(block)
                digest.update(block)
                md5.update(block)
                done += len(block)
                if progress:
                    progress(done, total)
    except urllib.error.HTTPError as err:
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise DownloadError(f"{url}: {err.reason}") from None
    except (OSError, http.client.HTTPException) as err:
        raise DownloadError(f"{url}: download failed: {err!r}") from None
    if total is not None and done != total:
        raise DownloadError(f"{url}: received {done} bytes of {total}")
    log.info("downloaded %s (%d bytes, sha256 %s)", url, done, digest.hexdigest())
    return digest.hexdigest(), md5.hexdigest()


def _unpack(archive: Path, into: Path) -> Path:
    """Extract the archive; return the folder in it that holds ratings.csv."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if name.startswith(("/", "\\")) or ".." in Path(name).parts:
                    raise DownloadError(f"archive member {name!r} points outside the archive")
            zf.extractall(into)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError) as err:
        raise DownloadError(f"the download is not a readable zip archive ({err})") from None
    candidates = [into, *sorted(p for p in into.iterdir() if p.is_dir())]
    for folder in candidates:
        if (folder / "ratings.csv").is_file():
            return folder
    raise DownloadError("the archive holds no ratings.csv (neither at its top nor one folder down)")


def _swap_in(new: Path, target: Path, previous: Path) -> None:
    """Rename `new` to `target`; an existing target is moved aside first and restored on failure."""
    had_previous = target.exists()
    if had_previous:
        os.rename(target, previous)
    try:
        os.rename(new, target)
    except BaseException:
        if had_previous:
            os.rename(previous, target)
        raise
