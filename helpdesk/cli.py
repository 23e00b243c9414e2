"""The `helpdesk` command (API.md "Operators"); works from any directory."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import select

from helpdesk import create_app


def _cli_app():
    return create_app(socket_server=False)


@click.group(cls=FlaskGroup, create_app=_cli_app, add_default_commands=False,
             load_dotenv=False, set_debug_flag=False)
def main() -> None:
    """helpdesk: one customer, one timeline, one queue."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int,
              help="RQ worker processes (the first also runs the scheduler)")
def run(host: str, port: int, workers: int) -> None:
    """Start everything: migrations, web + Socket.IO, workers, scheduler, embedded Redis."""
    from helpdesk.runner import run_all

    sys.exit(run_all(host, port, workers))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def web(host: str, port: int) -> None:
    """Serve the API and Socket.IO (gunicorn, one gevent worker process per port)."""
    from helpdesk.server import exec_web

    exec_web(host, port)


@main.command()
@click.argument("queue_names", nargs=-1)
@click.option("--burst", is_flag=True, help="Quit when the queues are empty")
@click.option("--no-scheduler", is_flag=True, help="Do not run RQ's scheduler here")
def worker(queue_names: tuple[str, ...], burst: bool, no_scheduler: bool) -> None:
    """Work the RQ queues (default: ingest routing outbound default)."""
    from workers.worker import run as run_worker

    app = current_app._get_current_object()
    run_worker(app, list(queue_names) or None, with_scheduler=not no_scheduler, burst=burst)


@main.group()
def agents() -> None:
    """Manage agents."""


@agents.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["agent", "supervisor", "admin"]), default="agent")
@click.option("--level", type=int, default=1, show_default=True)
@click.option("--password", default=None)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input")
@with_appcontext
def agents_create(email, name, role, level, password, password_stdin) -> None:
    """Create an agent (no password given: a random one is printed, once)."""
    import secrets

    from helpdesk.errors import ApiError
    from helpdesk.services import auth

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    generated = password is None
    if generated:
        password = secrets.token_urlsafe(12)
    try:
        agent = auth.create_agent(email=email, name=name, role=role, level=level,
                                  password=password)
    except ApiError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"created agent {agent.id} {agent.email} ({agent.role}, level {agent.level})")
    if generated:
        click.echo(f"password: {password}  (shown once)")


@agents.command("token")
@click.argument("email")
@with_appcontext
def agents_token(email: str) -> None:
    """Print a new API token for the agent with EMAIL."""
    from helpdesk.extensions import db
    from helpdesk.models import Agent
    from helpdesk.services import auth

    agent = db.session.execute(
        select(Agent).where(Agent.email == email.strip().lower())).scalar_one_or_none()
    if agent is None:
        raise click.ClickException(f"no agent with email {email}")
    click.echo(auth.issue_token(agent))


@agents.command("password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input")
@with_appcontext
def agents_password(email: str, password_stdin: bool) -> None:
    """Reset the password of the agent with EMAIL (a random one is printed unless given on
    standard input); every token the agent had stops working and their sockets close."""
    import secrets

    from helpdesk.extensions import db
    from helpdesk.models import Agent
    from helpdesk.services import auth
    from helpdesk.transaction import commit

    agent = db.session.execute(
        select(Agent).where(Agent.email == email.strip().lower())).scalar_one_or_none()
    if agent is None:
        raise click.ClickException(f"no agent with email {email}")
    password = (sys.stdin.readline().rstrip("\n") if password_stdin
                else secrets.token_urlsafe(12))
    if len(password) < 8:
        raise click.ClickException("password: at least 8 characters")
    auth.set_password(agent, password)
    commit()
    click.echo(f"password reset for {agent.email}; its tokens are revoked")
    if not password_stdin:
        click.echo(f"new password: {password}")


@agents.command("list")
@with_appcontext
def agents_list() -> None:
    """List agents."""
    from helpdesk.extensions import db
    from helpdesk.models import Agent

    for agent in db.session.execute(select(Agent).order_by(Agent.id)).scalars():
        click.echo(f"{agent.id}\t{agent.email}\t{agent.name}\t{agent.role}\tlevel {agent.level}"
                   f"\t{agent.presence}")


@main.group()
def channels() -> None:
    """Manage channels."""


@channels.command("create")
@click.option("--name", required=True)
@click.option("--kind", required=True)
@click.option("--provider", required=True)
@click.option("--setting", "settings", multiple=True, metavar="NAME=VALUE")
@click.option("--secret", "secrets", multiple=True, metavar="NAME=VALUE")
@with_appcontext
def channels_create(name, kind, provider, settings, secrets) -> None:
    """Create a channel; prints its id and webhook path (never its secrets)."""
    from helpdesk.errors import ApiError
    from helpdesk.services import channels as channel_service

    try:
        channel = channel_service.create(name, kind, provider, _pairs(settings), _pairs(secrets))
    except ApiError as exc:
        raise click.ClickException(f"{exc.message}: {exc.fields}") from exc
    base = current_app.config["PUBLIC_URL"] or ""
    click.echo(f"created channel {channel.id} {provider}/{kind}: "
               f"{base}/webhooks/{provider}/{channel.key}")


@channels.command("list")
@with_appcontext
def channels_list() -> None:
    """List channels with their webhook paths."""
    from helpdesk.extensions import db
    from helpdesk.services import channels as channel_service

    for channel in db.session.execute(channel_service.active()).scalars():
        click.echo(f"{channel.id}\t{channel.name}\t{channel.provider}/{channel.kind}\t"
                   f"/webhooks/{channel.provider}/{channel.key}")


def _pairs(items: tuple[str, ...]) -> dict[str, str]:
    result = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE")
        result[name] = value
    return result


@main.group()
def secrets() -> None:
    """Channel secrets at rest."""


@secrets.command("rotate")
@with_appcontext
def secrets_rotate() -> None:
    """Re-encrypt every channel's secrets under the current HELPDESK_SECRET_KEY.

    Set the new key in HELPDESK_SECRET_KEY and the old one in HELPDESK_OLD_SECRET_KEYS
    (comma-separated), run this, then drop HELPDESK_OLD_SECRET_KEYS.
    """
    from helpdesk.models.encrypted import SecretsUnreadable
    from helpdesk.services import channels as channel_service

    try:
        count = channel_service.rotate_secrets()
    except SecretsUnreadable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"re-encrypted the secrets of {count} channels under the current key")


@main.group()
def deliveries() -> None:
    """Inspect and replay stored webhook deliveries."""


@deliveries.command("replay")
@click.option("--failed", is_flag=True, required=True, help="Replay every failed delivery")
@with_appcontext
def deliveries_replay(failed: bool) -> None:
    """Put failed deliveries back to processing."""
    from helpdesk.services.ingest import deliveries as delivery_service

    click.echo(f"replaying {delivery_service.replay_failed()} failed deliveries")


@main.group()
def metrics() -> None:
    """Supervisors' metrics."""


@metrics.command("rebuild")
@with_appcontext
def metrics_rebuild() -> None:
    """Recompute every ticket's metric facts from its stored history, then the roll-ups."""
    from helpdesk.services.metrics import facts as ticket_facts
    from helpdesk.services.metrics import rollup as metrics_rollup

    click.echo(f"rebuilt {ticket_facts.rebuild()} ticket facts")
    click.echo(f"rebuilt {metrics_rollup.rebuild()} metric roll-up rows")


@main.group()
def urgency() -> None:
    """Urgency scoring against the priorities people set by hand (docs/urgency.md)."""


def _urgency_config_path(path: str | None) -> str | None:
    return path or current_app.config.get("URGENCY_CONFIG")


@urgency.command("evaluate")
@click.option("--config", "config_path", default=None,
              help="urgency override file (default: HELPDESK_URGENCY_CONFIG)")
@with_appcontext
def urgency_evaluate(config_path: str | None) -> None:
    """Agreement between the urgency score and hand-set priorities."""
    from helpdesk.services.routing import corrections as urgency_corrections
    from helpdesk.services.routing.tuning import LEVELS, evaluate
    from helpdesk.services.routing.urgency import load_urgency_config

    path = _urgency_config_path(config_path)
    config = load_urgency_config(path)
    rows = urgency_corrections.latest_per_ticket()
    if not rows:
        click.echo("no hand-set priorities yet")
        return
    then = sum(row.scored_priority == row.chosen_priority for row in rows)
    result = evaluate(urgency_corrections.samples(rows), config)
    click.echo(f"{len(rows)} tickets with a hand-set priority (config: {path or 'defaults'})")
    click.echo(f"agreement when they were set: {then}/{len(rows)} ({then / len(rows):.1%})")
    click.echo(f"agreement re-scored now:      {result.exact}/{result.total} "
               f"({result.agreement:.1%})")
    click.echo(f"dangerous misses (urgent scored normal/low, high scored low): "
               f"{result.dangerous}")
    click.echo(f"false alarms (low scored high/urgent): {result.false_alarms}")
    click.echo("chosen / scored  " + "  ".join(f"{level:>6}" for level in LEVELS))
    for chosen in LEVELS:
        counts = [result.confusion.get((chosen, scored), 0) for scored in LEVELS]
        click.echo(f"{chosen:<16} " + "  ".join(f"{n:>6}" for n in counts))


@urgency.command("tune")
@click.option("--config", "config_path", default=None,
              help="urgency override file to start from and to write (default: "
                   "HELPDESK_URGENCY_CONFIG)")
@click.option("--apply", "apply_", is_flag=True, help="write the proposed weights to the file")
@with_appcontext
def urgency_tune(config_path: str | None, apply_: bool) -> None:
    """Propose weights that agree better with hand-set priorities (--apply writes them)."""
    import json
    from pathlib import Path

    from helpdesk.services.routing import corrections as urgency_corrections
    from helpdesk.services.routing.tuning import evaluate, merge_override, tune
    from helpdesk.services.routing.urgency import load_urgency_config

    path = _urgency_config_path(config_path)
    config = load_urgency_config(path)
    samples = urgency_corrections.samples(urgency_corrections.latest_per_ticket())
    if not samples:
        click.echo("no hand-set priorities yet: nothing to tune")
        return
    result = tune(samples, config.raw)
    before = evaluate(samples, config)
    click.echo(f"{len(samples)} tickets; agreement {before.agreement:.1%}; "
               f"cost {result.before:.0f} -> {result.after:.0f}")
    if not result.changes:
        click.echo("the current weights are already the best found")
        return
    for key, (old, new) in result.changes.items():
        click.echo(f"  {'.'.join(key)}: {old} -> {new}")
    if not apply_:
        click.echo(json.dumps(result.override, indent=2))
        click.echo("(not written: add --apply)")
        return
    if not path:
        raise click.ClickException("no config file to write: pass --config PATH or set "
                                   "HELPDESK_URGENCY_CONFIG")
    target = Path(path)
    existing = json.loads(target.read_text(encoding="utf-8")) if target.exists() else {}
    target.write_text(json.dumps(merge_override(existing, result.override), indent=2,
                                 ensure_ascii=False) + "\n", encoding="utf-8")
    after = evaluate(samples, load_urgency_config(str(target)))
    click.echo(f"wrote {target}; agreement now {after.agreement:.1%} (workers read it when "
               "they start)")


@main.command(with_appcontext=False)
@click.option("--url", default="http://127.0.0.1:5000", show_default=True,
              help="Base URL of the running system")
@click.option("--token", envvar="HELPDESK_TOKEN", default=None,
              help="An admin API token (default: $HELPDESK_TOKEN)")
@click.option("--pace", default=0.3, show_default=True, type=click.FloatRange(min=0),
              help="Seconds between deliveries, so events arrive one by one")
def demo(url: str, token: str | None, pace: float) -> None:
    """Fill a running system with realistic, signed traffic on every channel."""
    from helpdesk.demo import DemoError, run_demo

    try:
        run_demo(url, token or "", pace=pace, echo=click.echo)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc


if __name__ == "__main__":
    main()
