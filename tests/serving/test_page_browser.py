"""The page in Debian's headless chromium (driven by playwright), against a real gunicorn."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.serving.data import NEW_RUN
from tests.serving.server import Served

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def reports_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("reports")
    (folder / NEW_RUN).mkdir()
    (folder / NEW_RUN / "index.html").write_text(
        "<!doctype html><html><head><title>Evaluation of run-new</title></head>"
        "<body><h1>Evaluation of run-new</h1></body></html>"
    )
    return folder


PAGE_KEY = "page-test-key-0123456789abcdef"


@pytest.fixture(scope="module")
def server(sqlite_store_url, reports_dir, tmp_path_factory):
    import hashlib

    served = Served(
        sqlite_store_url,
        tmp_path_factory.mktemp("gunicorn-page"),
        workers=2,
        env={
            "MOVIEREC_REPORTS_DIR": str(reports_dir),
            "JAVA_HOME": "/nonexistent/java",
            "MOVIEREC_API_KEYS": hashlib.sha256(PAGE_KEY.encode()).hexdigest(),
        },
    )
    try:
        yield served.wait_ready()
    finally:
        served.stop()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/install-system-deps.sh`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(server.base + "/")
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def rows(page):
    return page.locator("#recs tbody tr")


def test_a_user_lookup_shows_titles_genres_year_and_both_scores(page, tmp_path):
    from PIL import Image, ImageStat

    page.locator("#run-id").filter(has_text=NEW_RUN).wait_for()
    page.fill("#user-id", "1")
    page.click("#go")
    rows(page).first.wait_for()
    assert rows(page).count() == 10
    first = rows(page).nth(0).locator("td")
    # rank, title, year, genres, score, ALS, content — as the store holds them for user 1
    assert first.nth(0).inner_text() == "1"
    assert first.nth(1).inner_text() == "Movie 20 (2010)"
    assert first.nth(2).inner_text() == "2010"
    assert first.nth(3).locator(".genre").all_inner_texts() == ["Action", "Sci-Fi"]
    assert first.nth(4).inner_text().strip() == "0.990"
    assert first.nth(5).inner_text().strip() == "0.980"
    assert first.nth(6).inner_text().strip() == "0.500"
    assert "precomputed" in page.inner_text("#status")
    assert rows(page).nth(0).locator(".bar").count() == 3  # score, ALS, content: one scale, 0..1
    assert not page.locator("#recs th.popularity").is_visible()  # rating counts belong to cold starts

    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    image = Image.open(shot).convert("L")
    stats = ImageStat.Stat(image)
    assert image.size[0] >= 1280
    assert stats.var[0] > 500, f"the screenshot looks blank (pixel variance {stats.var[0]:.0f})"
    # more than two shades: text, table lines, header, bars
    assert len(set(image.getdata())) > 20
    keep = os.environ.get("MOVIEREC_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "page.png")


def test_genre_and_k_narrow_the_list(page):
    page.fill("#user-id", "1")
    page.fill("#k", "3")
    page.fill("#genre", "Comedy")
    page.click("#go")
    rows(page).first.wait_for()
    titles = [rows(page).nth(i).locator("td").nth(1).inner_text() for i in range(rows(page).count())]
    assert titles == ["Movie 18 (2008)", "Movie 15 (2005)", "Movie 12 (2002)"]


def test_a_new_user_sees_popular_movies(page):
    page.fill("#user-id", "999")
    page.click("#go")
    rows(page).first.wait_for()
    assert "most popular" in page.inner_text("#status")
    assert rows(page).nth(0).locator("td").nth(1).inner_text() == "Movie 5 (1995)"
    first = rows(page).nth(0).locator("td")
    assert first.nth(5).inner_text().strip() == "–"  # no ALS component
    # no score (a count is no chance) and so no bar beside the others' scores; the count in its own column
    assert first.nth(4).inner_text().strip() == "–"
    assert page.locator("#recs .bar").count() == 0
    assert page.locator("#recs th.popularity").is_visible() and first.nth(7).inner_text().strip() == "99"


def test_similar_movies_from_a_row_and_by_id(page):
    page.fill("#user-id", "1")
    page.click("#go")
    rows(page).first.wait_for()
    rows(page).nth(0).locator("button.similar").click()  # movie 20: the run has no neighbours for it
    page.locator("#similar-status", has_text="Like Movie 20 (2010):").wait_for()
    assert "no similar movies in this run" in page.inner_text("#similar-status")
    assert page.input_value("#movie-id") == "20"
    page.fill("#movie-id", "1")
    page.click("#similar-go")
    page.locator("#similar li").first.wait_for()
    assert page.locator("#similar li").count() == 5
    assert page.locator("#similar li").nth(0).inner_text() == "Movie 2 (1992) — 0.900"
    assert page.inner_text("#similar-status") == "Like Movie 1 (1991):"


def test_bad_input_shows_the_apis_message(page):
    page.fill("#user-id", "abc")
    page.click("#go")
    page.locator("#status.error").wait_for()
    assert "user id must be a non-negative integer" in page.inner_text("#status")
    assert page.locator("#recs").is_hidden()


def test_the_report_link_opens_the_latest_report(page):
    link = page.locator("#report-link")
    assert link.get_attribute("href") == f"/reports/{NEW_RUN}/index.html"
    link.click()
    page.wait_for_load_state()
    assert page.title() == "Evaluation of run-new"


def test_a_rating_given_on_the_page_changes_the_list_and_the_key_stays_in_memory(page, server):
    """A new user rates the first popular movie with the key typed into the page: the list reloads
    without it.  The key is sent only in the request's Authorization header, and the page keeps
    it nowhere but in its box: not in the document, not in any storage or cookie."""
    page.fill("#user-id", "998")
    page.click("#go")
    rows(page).first.wait_for()
    first = rows(page).nth(0).get_attribute("data-movie-id")
    second = rows(page).nth(1).get_attribute("data-movie-id")
    # without a key: a clear message, nothing sent
    rows(page).nth(0).locator("button.rate").click()
    assert "needs an API key" in page.inner_text("#status")
    page.fill("#api-key", PAGE_KEY)
    sent = []
    page.on("request", lambda request: sent.append(request) if request.method == "POST" else None)
    rows(page).nth(0).locator("select.stars").select_option("4.5")
    rows(page).nth(0).locator("button.rate").click()
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('Rated')")
    rows(page).first.wait_for()
    assert rows(page).nth(0).get_attribute("data-movie-id") == second
    assert first not in [rows(page).nth(i).get_attribute("data-movie-id") for i in range(rows(page).count())]
    (post,) = sent
    assert post.headers["authorization"] == f"Bearer {PAGE_KEY}" and '"rating":4.5' in post.post_data
    assert PAGE_KEY not in page.content()
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert page.context.cookies() == []
    # a wrong key: the API's message, and the list as it was
    page.fill("#api-key", "not-the-key")
    rows(page).nth(0).locator("button.rate").click()
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('Could not rate')")
    assert "403" in page.inner_text("#status") or "key" in page.inner_text("#status").lower()
