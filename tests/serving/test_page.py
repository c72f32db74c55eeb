"""GET / (the page's HTML) and the evaluation report it links to, through the test client."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def reports(tmp_path) -> Path:
    return tmp_path / "reports"  # the make_app fixture's REPORTS_DIR


def test_the_page_has_the_lookup_forms(sqlite_client):
    response = sqlite_client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    for needle in (
        'id="user-form"',
        'id="user-id"',
        'id="movie-form"',
        "/static/app.js",
        "/openapi.json",
        'href="/docs"',
    ):
        assert needle in html
    assert "evaluation report" not in html  # none written yet
    script = sqlite_client.get("/static/app.js")
    assert script.status_code == 200 and "/recommendations?" in script.get_data(as_text=True)
    script.close()


def test_the_page_links_the_newest_report(sqlite_client, reports):
    (reports / "run-old").mkdir(parents=True)
    (reports / "run-new").mkdir()
    old, new = reports / "run-old" / "index.html", reports / "run-new" / "index.html"
    old.write_text("<html><title>old report</title></html>")
    new.write_text("<html><title>new report</title></html>")
    os.utime(old, (1_700_000_000, 1_700_000_000))
    os.utime(new, (1_800_000_000, 1_800_000_000))
    html = sqlite_client.get("/").get_data(as_text=True)
    assert 'href="/reports/run-new/index.html"' in html
    response = sqlite_client.get("/reports/run-new/index.html")
    assert response.status_code == 200 and "new report" in response.get_data(as_text=True)
    response.close()


def test_the_page_prefers_the_reports_latest_html(sqlite_client, reports):
    # what `movierec report` writes: <run_id>.html and latest.html, a copy of the newest
    reports.mkdir()
    (reports / "latest.html").write_text("<html><title>latest</title></html>")
    (reports / "run-new.html").write_text("<html><title>run-new</title></html>")
    os.utime(reports / "latest.html", (1_700_000_000, 1_700_000_000))
    assert 'href="/reports/latest.html"' in sqlite_client.get("/").get_data(as_text=True)


def test_reports_cannot_reach_outside_their_folder(sqlite_client, reports, tmp_path):
    reports.mkdir()
    (tmp_path / "secret.txt").write_text("no")
    for path in ("/reports/../secret.txt", "/reports/%2e%2e/secret.txt", "/reports/missing.html"):
        response = sqlite_client.get(path)
        assert response.status_code == 404, path
        assert response.is_json


def test_reports_before_any_report_is_404(sqlite_client):
    response = sqlite_client.get("/reports/index.html")
    assert response.status_code == 404
    assert "no evaluation report" in response.get_json()["message"]
