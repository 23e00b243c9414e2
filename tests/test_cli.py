"""The `helpdesk` command as an operator meets it: plain one-line errors (exit 2, never a
traceback), our own help, the listing and replay commands, and `helpdesk run`'s Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from helpdesk.cli import main
from tests.support import factories


def _helpdesk(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "REDIS_URL", "HELPDESK_ENV", "HELPDESK_SECRET_KEY")}
    base["HELPDESK_INSTANCE_DIR"] = str(tmp_path / "instance")
    return subprocess.run([sys.executable, "-m", "helpdesk.cli", *args],
                          env={**base, **env}, capture_output=True, text=True, timeout=120)


def _one_plain_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("helpdesk: "), result.stderr
    return lines[0]


def test_startup_errors_are_one_line_with_exit_code_2(tmp_path):
    line = _one_plain_line(_helpdesk("agents", "list", tmp_path=tmp_path,
                                     HELPDESK_ENV="production"))
    assert "HELPDESK_SECRET_KEY" in line and "set it" in line

    line = _one_plain_line(_helpdesk("worker", "--burst", tmp_path=tmp_path))
    assert "REDIS_URL is not set" in line

    line = _one_plain_line(_helpdesk("agents", "list", tmp_path=tmp_path,
                                     DATABASE_URL="nosuchdb://x"))
    assert "DATABASE_URL" in line and "postgresql://" in line

    line = _one_plain_line(_helpdesk("agents", "list", tmp_path=tmp_path,
                                     DATABASE_URL="postgresql://u:secret@127.0.0.1:9/x"))
    assert "cannot use the database" in line and "secret" not in line

    unmigrated = f"sqlite:///{tmp_path / 'empty.db'}"
    line = _one_plain_line(_helpdesk("agents", "list", tmp_path=tmp_path,
                                     DATABASE_URL=unmigrated))
    assert "helpdesk db upgrade" in line
    # The web server refuses to start rather than answer 500s.
    line = _one_plain_line(_helpdesk("web", "--port", "9", tmp_path=tmp_path,
                                     DATABASE_URL=unmigrated))
    assert "not migrated" in line and "helpdesk db upgrade" in line


@pytest.mark.parametrize("name, value", [
    ("HELPDESK_MAX_WEBHOOK_BYTES", "1MB"), ("HELPDESK_OUTBOUND_RETRY_INTERVALS", "10,a"),
    ("HELPDESK_WEBHOOK_RATE", "100/min"), ("HELPDESK_LOGIN_RATE", "lots"),
    ("HELPDESK_SHORT_ABANDON_SECONDS", "5s"), ("HELPDESK_ENV", "prod"),
    # (a misspelt mode ran as pull; `maybe` as 0, silently)
    ("HELPDESK_ROUTING_MODE", "puhs"), ("HELPDESK_ALLOW_PRIVATE_CALLBACKS", "maybe"),
    # (`inf` overflowed every login into a 500; NaN turned expiry off)
    ("HELPDESK_LOGIN_TOKEN_HOURS", "inf"), ("HELPDESK_LOGIN_TOKEN_HOURS", "nan"),
    ("HELPDESK_LOGIN_TOKEN_HOURS", "-1")])
def test_a_bad_setting_is_one_line_naming_it(tmp_path, name, value):
    """A typo in the environment stops the start with the variable named (it was a
    traceback, or for a rate every login or webhook it limits answered 500)."""
    line = _one_plain_line(_helpdesk("agents", "list", tmp_path=tmp_path, **{name: value}))
    assert name in line and value in line


def test_a_relative_instance_folder_is_taken_from_the_current_directory(tmp_path):
    base = {k: v for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "REDIS_URL", "HELPDESK_ENV", "HELPDESK_SECRET_KEY")}
    result = subprocess.run([sys.executable, "-m", "helpdesk.cli", "agents", "list"],
                            env={**base, "HELPDESK_INSTANCE_DIR": "here"}, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert "helpdesk db upgrade" in _one_plain_line(result)  # a fresh folder: not migrated
    assert (tmp_path / "here" / "secret_key").exists()


_SERVE_ONE = """
from werkzeug.serving import make_server
from helpdesk import create_app
server = make_server("127.0.0.1", 0, create_app({"ASYNC_MODE": "threading"}), threaded=True)
print(server.server_port, flush=True)
server.serve_forever()
"""


def test_readyz_names_an_unmigrated_database(tmp_path, redis_url):
    # Its own process: a second app here would rebind the tests' Socket.IO server.
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}",
           "REDIS_URL": redis_url, "HELPDESK_INSTANCE_DIR": str(tmp_path / "instance")}
    server = subprocess.Popen([sys.executable, "-c", _SERVE_ONE], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        port = int(server.stdout.readline())
        ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
    finally:
        server.terminate()
        server.wait(10)
        server.stdout.close()
    assert ready.status_code == 503
    assert ready.json()["down"] == ["migrations"]


def test_readyz_answers_503_when_redis_stops_answering(tmp_path, database_url, redis_url):
    """A paused or partitioned Redis: the connection stays open, no reply comes."""
    from tests.support.slow_redis import SlowRedisProxy

    proxy = SlowRedisProxy(redis_url)
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": proxy.url,
           "HELPDESK_INSTANCE_DIR": str(tmp_path / "instance")}
    server = subprocess.Popen([sys.executable, "-c", _SERVE_ONE], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        port = int(server.stdout.readline())
        before = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=20)
        proxy.reply_delay = 30.0
        started = time.monotonic()
        ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=40)
        waited = time.monotonic() - started
    finally:
        proxy.reply_delay = 0.0
        server.terminate()
        server.wait(10)
        server.stdout.close()
    assert before.status_code == 200, before.text
    assert ready.status_code == 503
    assert ready.json()["down"] == ["redis"]
    assert waited < 4  # (redis-py alone gives up after 5 s)


def test_help_shows_our_commands_not_flasks():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for generic in ("--app", "--env-file", "--debug", "--version", "Flask"):
        assert generic not in result.output
    for command in ("run", "web", "worker", "db", "agents", "channels", "deliveries",
                    "metrics", "demo"):
        assert f"  {command} " in result.output

    db_help = CliRunner().invoke(main, ["db", "--help"]).output
    commands = [line.split()[0] for line in db_help.split("Commands:")[1].splitlines()
                if line.strip()]
    assert commands == ["current", "downgrade", "upgrade"]
    for authoring in ("revision", "migrate", "stamp", "merge", "init"):
        assert f"  {authoring} " not in db_help

    create = CliRunner().invoke(main, ["channels", "create", "--help"]).output
    assert "twilio    sms, voice, whatsapp" in create and "whatsapp|messenger" in create
    wrong = CliRunner().invoke(main, ["channels", "create", "--name", "n", "--kind", "fax",
                                      "--provider", "api"])
    assert wrong.exit_code == 2 and "'fax' is not one of" in wrong.output


def _a_failed_delivery(app, api, drain):
    """A Telegram channel and a delivery of it that failed to parse: the channel."""
    channel = factories.channel(app, "telegram", secrets={"secret_token": "tg-secret",
                                                        "bot_token": "123:abc"})
    response = api.post(f"/webhooks/telegram/{channel.key}", data="{not json",
                        headers={"Content-Type": "application/json",
                                 "X-Telegram-Bot-Api-Secret-Token": "tg-secret"})
    assert response.status_code == 200, response.text
    drain()
    return channel


def test_deliveries_list_and_replay_with_progress(app, api, admin, drain):
    channel = _a_failed_delivery(app, api, drain)
    runner = app.test_cli_runner()
    from helpdesk.cli import deliveries_list, deliveries_replay

    listed = runner.invoke(deliveries_list, ["--status", "failed"])
    assert listed.exit_code == 0, listed.output
    [row] = listed.output.strip().splitlines()
    assert row.split("\t")[1] == "failed" and f"channel {channel.id}" in row

    replayed = runner.invoke(deliveries_replay, ["--failed"])
    assert replayed.exit_code == 0, replayed.output
    assert "replayed 1 failed deliveries in " in replayed.output
    assert "/s)" in replayed.output  # the rate (the bar itself is drawn on a terminal)
    assert runner.invoke(deliveries_list, ["--status", "failed"]).output == ""


def test_commands_beside_helpdesk_run_use_its_embedded_redis(tmp_path, monkeypatch):
    from helpdesk import config, runner

    monkeypatch.delenv("REDIS_URL", raising=False)
    instance = tmp_path / "instance"
    server, url = runner.start_embedded_redis(instance)
    try:
        assert config.recorded_redis_url(instance) == url
        monkeypatch.setenv("HELPDESK_INSTANCE_DIR", str(instance))
        assert config.from_environment()["REDIS_URL"] == url
    finally:
        runner.stop_embedded_redis(server, instance)
    assert config.recorded_redis_url(instance) == ""
    assert config.from_environment()["REDIS_URL"] == ""



@pytest.mark.parametrize("args, problem", [
    (["--email", "not-an-email", "--name", "N"], "--email"),
    (["--email", "a@example.com", "--name", "N", "--level", "0"], "--level"),
    (["--email", "a@example.com", "--name", "x" * 201], "--name"),
    (["--email", "a@example.com", "--name", "N", "--password", "pw", "--password-stdin"],
     "not both")])
def test_agents_create_checks_what_the_api_checks(app, args, problem):
    """The bootstrap command refuses what POST /api/v1/agents refuses (a level 0 agent was
    stored; a long name was a traceback on PostgreSQL), and stores nothing."""
    from sqlalchemy import func, select

    from helpdesk.cli import agents_create
    from helpdesk.extensions import db
    from helpdesk.models import Agent

    result = app.test_cli_runner().invoke(agents_create, args, input="pw\n")
    assert result.exit_code == 2 and problem in result.output, result.output
    assert "Traceback" not in result.output
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(Agent)).scalar_one() == 0
    created = app.test_cli_runner().invoke(
        agents_create, ["--email", "ok@example.com", "--name", "Ok", "--password", "pw-long-1"])
    assert created.exit_code == 0, created.output


def test_agents_token_prints_a_working_token_for_active_agents_only(app, api, agent, admin):
    from helpdesk.cli import agents_token

    runner = app.test_cli_runner()
    printed = runner.invoke(agents_token, [agent.email.upper()])
    assert printed.exit_code == 0, printed.output
    token = printed.output.strip()
    assert api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).json()[
        "email"] == agent.email
    assert api.as_(admin).patch(f"/api/v1/agents/{agent.id}",
                                json={"active": False}).status_code == 200
    refused = runner.invoke(agents_token, [agent.email])
    assert refused.exit_code == 1 and "deactivated" in refused.output
    assert "hd_" not in refused.output
    unknown = runner.invoke(agents_token, ["nobody@example.com"])
    assert unknown.exit_code == 1 and "no agent with email" in unknown.output


def test_an_argument_that_is_not_utf8_is_one_line_not_a_traceback(tmp_path):
    """Bytes that are no UTF-8 in an argument (Python hands them over as lone surrogates)
    passed the checks and failed in the password hash or the database: a traceback."""
    assert _helpdesk("db", "upgrade", tmp_path=tmp_path).returncode == 0
    for args in (["--name", "Caf\udce9", "--password", "long-enough-1"],
                 ["--name", "Cafe", "--password", "long-\udcffenough"]):
        result = _helpdesk("agents", "create", "--email", "a@example.com", *args,
                           tmp_path=tmp_path)
        assert "UTF-8" in _one_plain_line(result)
    listed = _helpdesk("agents", "list", tmp_path=tmp_path)
    assert listed.returncode == 0 and "a@example.com" not in listed.stdout


@pytest.mark.parametrize("args, env, expected", [
    (["worker", "--burst"], {"REDIS_URL": "redis://127.0.0.1:9/0"}, "cannot reach Redis"),
    (["worker", "--burst"], {"REDIS_URL": "notaurl"}, "REDIS_URL is not a Redis URL"),
    (["worker", "--burst"], {"REDIS_URL": "redis://127.0.0.1:99999/0"},
     "REDIS_URL is not a Redis URL"),
    (["web", "--port", "9"], {"REDIS_URL": "notaurl"}, "REDIS_URL is not a Redis URL"),
    (["agents", "list"], {"DATABASE_URL": "mysql://u@127.0.0.1/x"},
     "driver that is not installed")])
def test_redis_and_driver_errors_are_one_line(tmp_path, args, env, expected):
    """A worker in a burst with Redis unreachable retried forever, a traceback a second; a
    URL that is no Redis URL, or a database driver not installed, was a traceback."""
    database = f"sqlite:///{tmp_path / 'h.db'}"
    assert _helpdesk("db", "upgrade", tmp_path=tmp_path,
                     DATABASE_URL=database).returncode == 0
    env = {"DATABASE_URL": database, **env}
    assert expected in _one_plain_line(_helpdesk(*args, tmp_path=tmp_path, **env))


@pytest.mark.parametrize("args", [["web", "--port", "70000"], ["run", "--port", "0"],
                                  ["run", "--workers", "0"]])
def test_ports_and_worker_counts_out_of_range_are_usage_errors(tmp_path, args):
    result = _helpdesk(*args, tmp_path=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "is not in the range" in result.stderr


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_channels_create_checks_what_the_api_checks(app, api, admin, name):
    """A blank name was stored; a long one was a traceback on PostgreSQL."""
    from helpdesk.cli import channels_create

    result = app.test_cli_runner().invoke(channels_create, [
        "--name", name, "--kind", "api", "--provider", "api",
        "--secret", "signing_secret=abc"])
    assert result.exit_code == 2 and "--name" in result.output, result.output
    assert api.as_(admin).get("/api/v1/channels").json()["items"] == []
    refused = api.as_(admin).post("/api/v1/channels", json={
        "name": name, "kind": "api", "provider": "api", "secrets": {"signing_secret": "abc"}})
    assert refused.status_code == 400 and "name" in refused.json()["error"]["fields"]


def test_agents_list_says_who_is_deactivated_one_row_each(app, api, admin):
    from helpdesk.cli import agents_list

    created = api.as_(admin).post("/api/v1/agents", json={
        "email": "tab@example.com", "name": "Tab\tand\nnewline"}).json()
    assert api.as_(admin).patch(f"/api/v1/agents/{created['id']}",
                                json={"active": False}).status_code == 200
    rows = app.test_cli_runner().invoke(agents_list).output.strip().splitlines()
    assert len(rows) == 2 and all(len(row.split("\t")) == 6 for row in rows)
    assert rows[1].split("\t")[2:] == ["Tab and newline", "agent", "level 1", "deactivated"]
    assert rows[0].split("\t")[-1] == "offline"


def test_replaying_failed_deliveries_says_what_it_skipped(app, api, admin, drain):
    from helpdesk.cli import deliveries_replay

    channel = _a_failed_delivery(app, api, drain)
    assert api.as_(admin).delete(f"/api/v1/channels/{channel.id}").status_code == 204
    replayed = app.test_cli_runner().invoke(deliveries_replay, ["--failed"])
    assert replayed.exit_code == 0, replayed.output
    assert "replayed 0 failed deliveries" in replayed.output
    assert "1 skipped (their channel is deleted" in replayed.output


def test_db_downgrade_says_which_revision_it_reached(tmp_path):
    from helpdesk.startup import migration_heads

    database = f"sqlite:///{tmp_path / 'h.db'}"
    assert _helpdesk("db", "upgrade", tmp_path=tmp_path, DATABASE_URL=database).returncode == 0
    result = _helpdesk("db", "downgrade", tmp_path=tmp_path, DATABASE_URL=database)
    assert result.returncode == 0, result.stderr
    (head,) = migration_heads()
    assert f"downgraded to {int(head) - 1:04d}" in result.stdout, result.stdout


def test_a_worker_waiting_for_redis_says_so_without_tracebacks(tmp_path):
    """A worker whose Redis is away keeps trying (a Redis still starting is waited for), one
    line each time; its live figures' pass printed a traceback every second."""
    database = f"sqlite:///{tmp_path / 'h.db'}"
    assert _helpdesk("db", "upgrade", tmp_path=tmp_path, DATABASE_URL=database).returncode == 0
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    worker = subprocess.Popen(
        [sys.executable, "-m", "helpdesk.cli", "worker"], stderr=subprocess.PIPE, text=True,
        env={**base, "HELPDESK_INSTANCE_DIR": str(tmp_path / "instance"),
             "DATABASE_URL": database, "REDIS_URL": "redis://127.0.0.1:9/0"})
    try:
        time.sleep(6)
        assert worker.poll() is None  # still waiting for Redis
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=30)
    assert "Traceback" not in stderr, stderr
    assert "starting again in" in stderr
    assert stderr.count("live metrics pass: Redis is unavailable") == 1, stderr
