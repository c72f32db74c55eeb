"""The HTML page: look up a user's recommendations and a movie's similar movies.

The page is static HTML plus a small script that calls the JSON API, so what a person
sees is exactly what the API answers.  When the evaluation report exists under the
reports folder (`movierec report` writes it), the page links to the newest one.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app, render_template, send_from_directory

from serving.errors import not_found

bp = Blueprint("page", __name__)


def reports_dir() -> Path:
    return Path(current_app.config["REPORTS_DIR"]).resolve()


LATEST = "latest.html"  # `movierec report` writes <run_id>.html and this copy of the newest


def latest_report() -> str | None:
    """`latest.html`, else the newest .html file under the reports folder, relative to it."""
    root = reports_dir()
    if not root.is_dir():
        return None
    if (root / LATEST).is_file():
        return LATEST
    pages = [p for p in root.rglob("*.html") if p.is_file()]
    if not pages:
        return None
    newest = max(pages, key=lambda p: (p.stat().st_mtime, str(p)))
    return newest.relative_to(root).as_posix()


@bp.get("/")
def index():
    return render_template("index.html", report=latest_report())


@bp.get("/reports/<path:name>")
def report(name: str):
    root = reports_dir()
    if not root.is_dir():
        raise not_found("no evaluation report has been written yet")
    # send_from_directory refuses paths that leave the folder
    return send_from_directory(root, name, max_age=0)
