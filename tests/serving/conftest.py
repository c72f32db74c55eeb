"""Fixtures for the API: a store with known contents (SQLite, and a throwaway PostgreSQL),
the app and its test client, and a real gunicorn."""

from __future__ import annotations

import pytest

from tests.serving import data


def _loaded(url: str) -> str:
    from movierec.store.runs import engine_for

    engine = engine_for(url)
    data.load(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def sqlite_store_url(tmp_path_factory):
    return _loaded(f"sqlite:///{tmp_path_factory.mktemp('serving') / 'store.db'}")


@pytest.fixture(scope="session")
def postgres_store_url(postgres_server):
    return _loaded(postgres_server.create_database("serving"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request):
    """The known store, once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_store_url")


@pytest.fixture
def fresh_store_url(tmp_path):
    """A store of its own, for tests that move the active run."""
    return _loaded(f"sqlite:///{tmp_path / 'fresh.db'}")


@pytest.fixture
def make_app(settings, tmp_path):
    """create_app over a store URL, with a short live timeout and a reports folder of its own."""
    from serving import create_app

    def make(db_url: str, **changes):
        config = {"TESTING": True, "REPORTS_DIR": str(tmp_path / "reports")}
        config.update(changes.pop("config", {}))
        test_settings = settings.replace(**{"db_url": db_url, "live_timeout": 0.5, **changes})
        return create_app({"SETTINGS": test_settings, **config})

    return make


@pytest.fixture
def app(make_app, store_url):
    return make_app(store_url)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def sqlite_client(make_app, sqlite_store_url):
    return make_app(sqlite_store_url).test_client()


@pytest.fixture
def blocked_live(app):
    """The app's live fallback with its one worker thread held busy: every live call times out.

    The timeout path is exercised for real (the executor, the wait, the 503) without Spark."""
    import threading

    release = threading.Event()
    scorer = app.extensions["movierec"].live()
    scorer.run_blocking(lambda: release.wait(30))
    yield scorer
    release.set()
