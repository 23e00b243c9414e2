"""WSGI entry point: `gunicorn -k gevent -w 1 wsgi:app` (one process per port)."""

from gevent import monkey

if monkey.is_module_patched("socket"):  # psycopg must wait for the database through gevent
    from helpdesk.server import check_cooperative_database_driver

    check_cooperative_database_driver()

from helpdesk import create_app  # noqa: E402

app = create_app()
