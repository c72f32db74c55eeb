"""The WSGI entry point for gunicorn: `gunicorn serving.wsgi:app` (each worker builds its own app)."""

from serving import create_app

app = create_app()
