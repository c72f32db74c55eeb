"""Fetch ml-latest-small from GroupLens, verify it and unpack it atomically.

The archive is downloaded into a temporary folder inside the destination, unpacked there,
every CSV is checked against its pinned SHA-256, and only then is the folder renamed to
`<dest>/ml-latest-small`.  A failed, interrupted or corrupt download leaves nothing at the
destination (and an existing data set untouched).

GroupLens publishes an .md5 beside the zip, but the zip itself could not be fetched when
this was written, so the pins are the SHA-256 of the CSV files inside it (taken from a
verified copy of ml-latest-small); `--sha256` pins the archive too.
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

from movierec.files import sha256_file

log = logging.getLogger(__name__)

DEFAULT_URL = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
DATASET = "ml-latest-small"
PINNED_SHA256 = {
    "links.csv": "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31",
    "movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
    "ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
    "tags.csv": "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
}
BLOCK = 1 << 20

Progress = Callable[[int, "int | None"], None]


class DownloadError(RuntimeError):
    """The data set could not be fetched, unpacked or verified."""


class ChecksumError(DownloadError):
    """A file's SHA-256 is not the pinned one."""


def download(
    url: str = DEFAULT_URL,
    dest: str | os.PathLike = "data",
    force: bool = False,
    zip_sha256: str | None = None,
    expected: Mapping[str, str] = PINNED_SHA256,
    timeout: float = 60.0,
    progress: Progress | None = None,
) -> Path:
    """Make `<dest>/ml-latest-small` hold a verified copy of the data set; return its path.

    Nothing is fetched when a copy that passes `expected` is already there, unless `force`.
    `expected` maps file names in the archive to their SHA-256; every one must match.
    """
    if zip_sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", zip_sha256):
        raise DownloadError(f"--sha256 must be 64 hexadecimal digits, got {zip_sha256!r}")
    dest = Path(dest)
    target = dest / DATASET
    if target.is_dir() and not force:
        problems = check_files(target, expected)
        if not problems:
            log.info("%s is already present and verified", target)
            return target
        log.warning("%s is present but does not verify (%s): downloading again", target, "; ".join(problems))

    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        # the work folder sits beside the target, so the final rename stays on one filesystem
        with tempfile.TemporaryDirectory(dir=dest, prefix=f".{DATASET}-") as work:
            archive = Path(work) / "download.zip"
            digest = _fetch(url, archive, timeout, progress)
            if zip_sha256 is not None and digest != zip_sha256.lower():
                raise ChecksumError(f"{url}: archive sha256 is {digest}, expected {zip_sha256.lower()}")
            unpacked = _unpack(archive, Path(work) / "unpacked")
            problems = check_files(unpacked, expected)
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


def _fetch(url: str, path: Path, timeout: float, progress: Progress | None) -> str:
    """Stream `url` into `path`; return the SHA-256 of what was received."""
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "movierec-download"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(path, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            while block := response.read(BLOCK):
                out.write(block)
                digest.update(block)
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
    return digest.hexdigest()


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
