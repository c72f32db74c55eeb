"""`movierec download` against a real HTTP server on 127.0.0.1 serving zips built here."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from movierec import cli
from movierec.data.download import PINNED_SHA256, ChecksumError, DownloadError, check_files, download

REAL_DATA = Path(__file__).resolve().parents[4] / "shared/data/ml-latest-small"
FILES = {
    "ratings.csv": b"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,3.5,964981247\n",
    "movies.csv": b"movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n"
    b'3,"Grumpier, Old Men (1995)",Comedy\n',
    "tags.csv": b"userId,movieId,tag,timestamp\n1,1,funny,964982710\n",
    "links.csv": b"movieId,imdbId,tmdbId\n1,0114709,862\n3,0113228,15602\n",
    "README.txt": b"a small test data set\n",
}
# the SHA-256 of the bytes put in the test zip, computed here rather than by movierec.data.download
EXPECTED = {
    "ratings.csv": hashlib.sha256(FILES["ratings.csv"]).hexdigest(),
    "movies.csv": hashlib.sha256(FILES["movies.csv"]).hexdigest(),
    "tags.csv": hashlib.sha256(FILES["tags.csv"]).hexdigest(),
    "links.csv": hashlib.sha256(FILES["links.csv"]).hexdigest(),
}


def make_zip(files: dict[str, bytes], folder: str = "ml-latest-small") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(f"{folder}/{name}" if folder else name, content)
    return buffer.getvalue()


class Server:
    """A real HTTP server on a free loopback port: serves `files` by path, logs every request."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                if self.path == "/truncated.zip":  # promises more than it sends, then hangs up
                    self.send_response(200)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    self.wfile.write(make_zip(FILES)[:500])
                    self.close_connection = True
                    return
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server():
    s = Server()
    s.files["/ml-latest-small.zip"] = make_zip(FILES)
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_download_verifies_and_unpacks(server, tmp_path):
    dest = tmp_path / "data"
    zip_digest = hashlib.sha256(server.files["/ml-latest-small.zip"]).hexdigest()
    seen = []
    path = download(
        server.url("/ml-latest-small.zip"),
        dest,
        expected=EXPECTED,
        zip_sha256=zip_digest,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert path == dest / "ml-latest-small"
    assert contents(path) == FILES
    assert [p.name for p in dest.iterdir()] == ["ml-latest-small"]  # no temporary files left
    assert server.requests == ["/ml-latest-small.zip"]
    size = len(server.files["/ml-latest-small.zip"])
    assert seen[-1] == (size, size)


def test_archive_with_files_at_its_top_is_accepted(server, tmp_path):
    server.files["/flat.zip"] = make_zip(FILES, folder="")
    path = download(server.url("/flat.zip"), tmp_path, expected=EXPECTED)
    assert contents(path) == FILES


def test_checksum_mismatch_names_the_file_and_leaves_nothing(server, tmp_path):
    dest = tmp_path / "data"
    wrong = dict(EXPECTED, **{"movies.csv": "0" * 64})
    with pytest.raises(ChecksumError, match=r"movies\.csv has sha256 [0-9a-f]{64}, expected 0{64}") as err:
        download(server.url("/ml-latest-small.zip"), dest, expected=wrong)
    assert "ratings.csv" not in str(err.value)
    assert not dest.exists()


def test_missing_file_is_a_mismatch(server, tmp_path):
    server.files["/partial.zip"] = make_zip({k: v for k, v in FILES.items() if k != "tags.csv"})
    dest = tmp_path / "data"
    dest.mkdir()
    with pytest.raises(ChecksumError, match=r"tags\.csv is missing"):
        download(server.url("/partial.zip"), dest, expected=EXPECTED)
    assert list(dest.iterdir()) == []


def test_archive_checksum_mismatch(server, tmp_path):
    with pytest.raises(ChecksumError, match="archive sha256"):
        download(server.url("/ml-latest-small.zip"), tmp_path / "data", expected=EXPECTED, zip_sha256="ab" * 32)
    assert not (tmp_path / "data").exists()


def test_http_404_is_a_clear_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404 Not Found"):
        download(server.url("/nope.zip"), tmp_path / "data", expected=EXPECTED)
    assert not (tmp_path / "data").exists()
    assert server.requests == ["/nope.zip"]


def test_truncated_download_leaves_nothing(server, tmp_path):
    dest = tmp_path / "data"
    dest.mkdir()
    with pytest.raises(DownloadError, match="received 500 bytes of 100000"):
        download(server.url("/truncated.zip"), dest, expected=EXPECTED)
    assert list(dest.iterdir()) == []


def test_not_a_zip(server, tmp_path):
    server.files["/page.html"] = b"<html>maintenance</html>"
    with pytest.raises(DownloadError, match="not a readable zip"):
        download(server.url("/page.html"), tmp_path / "data", expected=EXPECTED)
    assert not (tmp_path / "data").exists()


def test_unsafe_archive_member_is_refused(server, tmp_path):
    server.files["/evil.zip"] = make_zip({"../../escape.csv": b"x", **FILES})
    with pytest.raises(DownloadError, match="outside the archive"):
        download(server.url("/evil.zip"), tmp_path / "a" / "data", expected=EXPECTED)
    assert not (tmp_path / "escape.csv").exists() and not (tmp_path / "a" / "data").exists()


def test_present_and_valid_means_no_request(server, tmp_path):
    target = tmp_path / "ml-latest-small"
    target.mkdir()
    for name, content in FILES.items():
        (target / name).write_bytes(content)
    assert download(server.url("/ml-latest-small.zip"), tmp_path, expected=EXPECTED) == target
    assert server.requests == []


def test_present_but_corrupt_is_downloaded_again(server, tmp_path):
    target = tmp_path / "ml-latest-small"
    target.mkdir()
    for name, content in FILES.items():
        (target / name).write_bytes(content)
    (target / "ratings.csv").write_bytes(b"userId,movieId,rating,timestamp\n1,1,4.0,9")  # cut short
    download(server.url("/ml-latest-small.zip"), tmp_path, expected=EXPECTED)
    assert server.requests == ["/ml-latest-small.zip"]
    assert contents(target) == FILES
    assert [p.name for p in tmp_path.iterdir()] == ["ml-latest-small"]


def test_force_downloads_again_and_a_failed_force_keeps_the_old_copy(server, tmp_path):
    target = tmp_path / "ml-latest-small"
    download(server.url("/ml-latest-small.zip"), tmp_path, expected=EXPECTED)
    download(server.url("/ml-latest-small.zip"), tmp_path, expected=EXPECTED, force=True)
    assert len(server.requests) == 2 and contents(target) == FILES
    with pytest.raises(DownloadError, match="404"):
        download(server.url("/gone.zip"), tmp_path, expected=EXPECTED, force=True)
    wrong = dict(EXPECTED, **{"ratings.csv": "1" * 64})
    with pytest.raises(ChecksumError):
        download(server.url("/ml-latest-small.zip"), tmp_path, expected=wrong, force=True)
    assert contents(target) == FILES
    assert [p.name for p in tmp_path.iterdir()] == ["ml-latest-small"]


def test_cli_refuses_a_zip_that_is_not_the_real_data(server, tmp_path, capsys):
    dest = tmp_path / "data"
    code = cli.main(["download", "--url", server.url("/ml-latest-small.zip"), "--dest", str(dest)])
    assert code == 1
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and "ratings.csv has sha256" in err
    assert not dest.exists()


def test_cli_bad_sha256_argument_makes_no_request(server, tmp_path, capsys):
    code = cli.main(
        ["download", "--url", server.url("/ml-latest-small.zip"), "--dest", str(tmp_path), "--sha256", "xyz"]
    )
    assert code == 1
    assert "64 hexadecimal digits" in capsys.readouterr().err
    assert server.requests == []


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"{REAL_DATA} not present")
def test_pinned_hashes_match_the_real_data():
    assert check_files(REAL_DATA, PINNED_SHA256) == []
    assert set(PINNED_SHA256) == {"ratings.csv", "movies.csv", "tags.csv", "links.csv"}


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"{REAL_DATA} not present")
def test_cli_downloads_the_real_data_with_the_pinned_hashes(server, tmp_path, capsys):
    real = {p.name: p.read_bytes() for p in REAL_DATA.iterdir() if p.is_file()}
    server.files["/real.zip"] = make_zip(real)
    code = cli.main(["download", "--url", server.url("/real.zip"), "--dest", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip() == str(tmp_path / "ml-latest-small")
    assert "downloading:" in err and "(100%)" in err
    assert contents(tmp_path / "ml-latest-small") == dict(sorted(real.items()))
    assert cli.main(["download", "--url", server.url("/real.zip"), "--dest", str(tmp_path)]) == 0
    assert server.requests == ["/real.zip"]  # the second call found it present


# ml-25m's layout: the four CSVs plus the genome files, in a folder named after the data set
LARGE = {
    **FILES,
    "genome-scores.csv": b"movieId,tagId,relevance\n1,1,0.02875\n",
    "genome-tags.csv": b"tagId,tag\n1,007\n",
}


@pytest.fixture
def large(server):
    archive = make_zip(LARGE, folder="ml-25m")
    server.files["/ml-25m.zip"] = archive
    # GroupLens's .md5 beside the zip, in its own format
    server.files["/ml-25m.zip.md5"] = f"MD5 (ml-25m.zip) = {hashlib.md5(archive).hexdigest()}\n".encode()
    return server


def test_a_large_data_set_is_checked_against_the_published_md5(large, tmp_path):
    path = download(large.url("/ml-25m.zip"), tmp_path, dataset="ml-25m")
    assert path == tmp_path / "ml-25m"
    assert large.requests == ["/ml-25m.zip.md5", "/ml-25m.zip"]  # the checksum first: no checksum, no download
    unpacked = contents(path)
    manifest = unpacked.pop("MANIFEST.sha256").decode().splitlines()
    assert unpacked == LARGE
    # the files ingest reads (the genome files are not hashed again on every check)
    assert manifest == [
        f"{hashlib.sha256(LARGE[n]).hexdigest()}  {n}" for n in ("ratings.csv", "movies.csv", "tags.csv")
    ]
    # present and verified by its manifest: nothing fetched again
    assert download(large.url("/ml-25m.zip"), tmp_path, dataset="ml-25m") == path
    assert len(large.requests) == 2
    # a file changed since: fetched and checked again
    (path / "ratings.csv").write_bytes(b"userId,movieId,rating,timestamp\n")
    assert (
        contents(download(large.url("/ml-25m.zip"), tmp_path, dataset="ml-25m"))["ratings.csv"] == FILES["ratings.csv"]
    )
    assert len(large.requests) == 4


@pytest.mark.parametrize(
    "manifest",
    [
        None,
        "",
        "not a checksum line\n",
        "0" * 64 + "  movies.csv\n",
        "0" * 64 + "  ratings.csv\n" + "0" * 64 + " *movies.csv\n",
    ],
    ids=["missing", "empty", "malformed", "without-ratings", "wrong-hash"],
)
def test_a_large_copy_whose_manifest_does_not_verify_is_fetched_again(large, tmp_path, manifest):
    path = download(large.url("/ml-25m.zip"), tmp_path, dataset="ml-25m")
    if manifest is None:
        (path / "MANIFEST.sha256").unlink()
    else:
        (path / "MANIFEST.sha256").write_text(manifest)
    assert download(large.url("/ml-25m.zip"), tmp_path, dataset="ml-25m") == path
    assert len(large.requests) == 4  # the checksum and the zip, twice
    assert (path / "MANIFEST.sha256").read_text().count("\n") == 3


def test_a_large_archive_that_is_not_the_published_one_leaves_nothing(large, tmp_path):
    large.files["/ml-25m.zip.md5"] = b"0123456789abcdef0123456789abcdef  ml-25m.zip\n"
    with pytest.raises(ChecksumError, match=r"archive md5 is .*, .*ml-25m.zip.md5 says 0123456789abcdef"):
        download(large.url("/ml-25m.zip"), tmp_path / "data", dataset="ml-25m")
    assert not (tmp_path / "data").exists()


def test_a_large_archive_without_its_checksum_is_not_fetched(large, tmp_path):
    del large.files["/ml-25m.zip.md5"]
    with pytest.raises(DownloadError, match="HTTP 404.*without its checksum the archive is not fetched"):
        download(large.url("/ml-25m.zip"), tmp_path, dataset="ml-25m")
    assert large.requests == ["/ml-25m.zip.md5"]
    large.files["/ml-25m.zip.md5"] = b"<html>not a checksum</html>"
    with pytest.raises(DownloadError, match="holds no MD5 checksum"):
        download(large.url("/ml-25m.zip"), tmp_path, dataset="ml-25m")
    assert list(tmp_path.iterdir()) == []


def test_cli_downloads_a_large_data_set_by_name(large, tmp_path, capsys):
    code = cli.main(["download", "--dataset", "ml-25m", "--url", large.url("/ml-25m.zip"), "--dest", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip() == str(tmp_path / "ml-25m")
    assert cli.main(["download", "--dataset", "ml-26m", "--dest", str(tmp_path)]) == 2  # not a data set it knows
    assert "ml-26m" in capsys.readouterr().err
