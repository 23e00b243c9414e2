"""WSGI entry point: `gunicorn -k gevent -w 1 wsgi:app` (one process per port)."""

from helpdesk import create_app

app = create_app()
