"""WSGI entry point: `gunicorn -k gevent -w 1 wsgi:app` (one process per port)."""

from gevent import monkey

if monkey.is_module_patched("socket"):  # psycopg2 must yield to gevent too
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()

from helpdesk import create_app  # noqa: E402

app = create_app()
