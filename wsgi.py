"""WSGI entry point: ``gunicorn wsgi:app``; also how ``flask`` finds the app."""

from app import create_app

app = create_app()
