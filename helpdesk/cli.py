"""The `helpdesk` command (README.md "Commands"); works from any directory."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import click
from flask import current_app
from flask.cli import FlaskGroup, ScriptInfo, with_appcontext
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from helpdesk import create_app, startup

# Flask's generic options (--app, --env-file, --debug) mean nothing for this program.
_FLASK_OPTIONS = ("app", "env_file", "debug")


def _cli_app():
    return create_app(socket_server=False)


class HelpdeskGroup(FlaskGroup):
    """Our commands only, and start-up errors as one line with exit code 2."""

    def __init__(self, **attrs) -> None:
        super().__init__(create_app=_cli_app, add_default_commands=False,
                         add_version_option=False, load_dotenv=False, set_debug_flag=False,
                         **attrs)
        self.params = [p for p in self.params if p.name not in _FLASK_OPTIONS]

    # Flask would also list plugins' commands (Flask-Migrate's whole `db`) and load the
    # app just to print the help.
    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return click.Group.get_command(self, ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return click.Group.list_commands(self, ctx)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            message = startup.explain(exc)
            if message is None:
                raise
            click.echo(f"helpdesk: {message}", err=True)
            ctx.exit(2)


@click.group(cls=HelpdeskGroup)
def main() -> None:
    """helpdesk: one customer, one timeline, one queue.

    Start with `helpdesk run` (everything in one process group, for a laptop);
    in production run `helpdesk db upgrade`, then `helpdesk web` and `helpdesk worker`.
    """


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="RQ worker processes (the first also runs the scheduler)")
def run(host: str, port: int, workers: int) -> None:
    """Start everything: migrations, web + Socket.IO, workers, scheduler, embedded Redis."""
    from helpdesk.runner import run_all

    sys.exit(run_all(host, port, workers))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
def web(host: str, port: int) -> None:
    """Serve the API and Socket.IO (gunicorn, one gevent worker process per port)."""
    from helpdesk.server import exec_web

    app = _cli_app()
    startup.check_redis_url(app)
    startup.check_database(app)  # an unmigrated database would only answer 500s
    exec_web(host, port)


@main.command()
@click.argument("queue_names", nargs=-1)
@click.option("--burst", is_flag=True, help="Quit when the queues are empty")
@click.option("--no-scheduler", is_flag=True, help="Do not run RQ's scheduler here")
def worker(queue_names: tuple[str, ...], burst: bool, no_scheduler: bool) -> None:
    """Work the RQ queues (default: ingest routing outbound default)."""
    from workers.worker import run as run_worker

    app = current_app._get_current_object()
    startup.check_redis(app)
    startup.check_database(app)
    run_worker(app, list(queue_names) or None, with_scheduler=not no_scheduler, burst=burst)


@main.group()
def db() -> None:
    """Apply or revert the database migrations."""


@db.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Migrate the database up to REVISION (default: the latest)."""
    import flask_migrate

    flask_migrate.upgrade(revision=revision)
    click.echo(f"database at {startup.safe_url(current_app)} upgraded to {revision}")


@db.command("downgrade")
@click.argument("revision", default="-1")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Revert the database to REVISION (default: one step back; `base` empties it)."""
    import flask_migrate

    from helpdesk.extensions import db as database

    flask_migrate.downgrade(revision=revision)
    with database.engine.connect() as connection:
        reached = startup.database_revision(connection)
    click.echo(f"database at {startup.safe_url(current_app)} downgraded to "
               f"{', '.join(sorted(reached)) or 'base (empty)'}")


@db.command("current")
@with_appcontext
def db_current() -> None:
    """Print the database's revision and the code's latest."""
    from helpdesk.extensions import db as database

    with database.engine.connect() as connection:
        revision = startup.database_revision(connection)
    latest = ", ".join(sorted(startup.migration_heads()))
    click.echo(f"database: {', '.join(sorted(revision)) or 'not migrated'}; code: {latest}")


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

    from marshmallow import ValidationError

    from helpdesk.errors import ApiError
    from helpdesk.schemas.inputs import AgentCreateSchema
    from helpdesk.services import auth

    if password_stdin and password is not None:
        raise click.UsageError("give --password or --password-stdin, not both")
    try:  # what POST /api/v1/agents checks (create_agent checks the password)
        AgentCreateSchema(only=("email", "name", "role", "level")).load(
            {"email": email, "name": name, "role": role, "level": level})
    except ValidationError as exc:
        raise click.UsageError("; ".join(f"--{field}: {' '.join(problems)}"
                                         for field, problems in exc.messages.items())) from exc
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
    if not agent.active:  # (its token would always be refused)
        raise click.ClickException(f"{agent.email} is deactivated: reactivate them first "
                                   "(PATCH /api/v1/agents/<id> {\"active\": true})")
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
        click.echo(f"{agent.id}\t{agent.email}\t{_cell(agent.name)}\t{agent.role}\t"
                   f"level {agent.level}\t{agent.presence if agent.active else 'deactivated'}")


def _cell(text: str) -> str:
    """A value in a tab-separated row: its tabs and line breaks (a name may hold them) as
    spaces, so that one row stays one line of the same columns."""
    return " ".join(text.split()) if text else ""


@main.group()
def channels() -> None:
    """Manage channels."""


def _providers_help() -> str:
    from helpdesk.connectors import providers

    return "\b\nProviders and their kinds:\n" + "\n".join(
        f"  {name:<9} {', '.join(sorted(connector.kinds))}"
        for name, connector in sorted(providers().items()))


def _kinds() -> list[str]:
    from helpdesk.models.channel import KINDS

    return list(KINDS)


def _provider_names() -> list[str]:
    from helpdesk.connectors import providers

    return sorted(providers())


@channels.command("create", epilog=_providers_help())
@click.option("--name", required=True)
@click.option("--kind", required=True, type=click.Choice(_kinds()))
@click.option("--provider", required=True, type=click.Choice(_provider_names()))
@click.option("--setting", "settings", multiple=True, metavar="NAME=VALUE")
@click.option("--secret", "secrets", multiple=True, metavar="NAME=VALUE")
@with_appcontext
def channels_create(name, kind, provider, settings, secrets) -> None:
    """Create a channel; prints its id and webhook path (never its secrets)."""
    from marshmallow import ValidationError

    from helpdesk.errors import ApiError
    from helpdesk.schemas.inputs import ChannelCreateSchema
    from helpdesk.services import channels as channel_service

    try:  # what POST /api/v1/channels checks first
        fields = ChannelCreateSchema().load({"name": name, "kind": kind, "provider": provider,
                                             "settings": _pairs(settings),
                                             "secrets": _pairs(secrets)})
    except ValidationError as exc:
        options = {"settings": "setting", "secrets": "secret"}
        raise click.UsageError("; ".join(f"--{options.get(field, field)}: {problems}"
                                         for field, problems in exc.messages.items())) from exc
    try:
        channel = channel_service.create(**fields)
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


DELIVERY_STATUSES = ("received", "processed", "duplicate", "failed")


@deliveries.command("list")
@click.option("--status", type=click.Choice(DELIVERY_STATUSES), default=None)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@with_appcontext
def deliveries_list(status: str | None, limit: int) -> None:
    """List stored deliveries, newest first (id, status, channel, received, error)."""
    from helpdesk.extensions import db as database
    from helpdesk.services.ingest import deliveries as delivery_service

    for delivery in database.session.execute(
            delivery_service.search(status).limit(limit)).scalars():
        error = (delivery.error or "").splitlines()[0][:120] if delivery.error else ""
        click.echo(f"{delivery.id}\t{delivery.status}\tchannel {delivery.channel_id}\t"
                   f"{delivery.received_at:%Y-%m-%d %H:%M:%S}\t{error}")


@deliveries.command("replay")
@click.option("--failed", is_flag=True, required=True, help="Replay every failed delivery")
@with_appcontext
def deliveries_replay(failed: bool) -> None:
    """Put failed deliveries back to processing."""
    from helpdesk.services.ingest import deliveries as delivery_service

    total, started = len(delivery_service.failed_ids()), time.monotonic()
    if not total:
        click.echo("no failed deliveries")
        return
    attempted = [0]

    with _progress(total, "replaying failed deliveries") as step:
        def counted(n: int) -> None:
            attempted[0] += n
            step(n)
        replayed = delivery_service.replay_failed(progress=counted)
    skipped = attempted[0] - replayed  # a deleted channel's, or replayed meanwhile
    click.echo(f"replayed {replayed} failed deliveries{_took(replayed, started)}"
               + (f"; {skipped} skipped (their channel is deleted, or they were replayed "
                  "meanwhile)" if skipped else ""))
    _warn_without_redis()


def _progress(total: int, label: str):
    """A progress bar with counts and rate, on standard error."""
    started = time.monotonic()
    done = [0]

    def rate(_item) -> str:
        elapsed = time.monotonic() - started
        return f"{done[0] / elapsed:.0f}/s" if elapsed > 0 and done[0] else ""

    bar = click.progressbar(length=total, label=label, show_pos=True, show_eta=True,
                            item_show_func=rate, file=sys.stderr)

    class _Step:
        def __enter__(self) -> Callable[[int], None]:
            bar.__enter__()

            def step(count: int) -> None:
                done[0] += count
                bar.update(count)
            return step

        def __exit__(self, *exc_info) -> None:
            bar.__exit__(*exc_info)

    return _Step()


def _took(count: int, started: float) -> str:
    elapsed = time.monotonic() - started
    return f" in {elapsed:.1f} s ({count / elapsed:.0f}/s)" if elapsed > 0 else ""


def _warn_without_redis() -> None:
    if not current_app.config["REDIS_URL"]:
        click.echo("note: REDIS_URL is not set and no `helpdesk run` is up here: the work "
                   "is stored and the sweeper enqueues it once a worker runs", err=True)


@main.group()
def metrics() -> None:
    """Supervisors' metrics."""


@metrics.command("rebuild")
@with_appcontext
def metrics_rebuild() -> None:
    """Recompute every ticket's metric facts from its stored history, then the roll-ups."""
    from helpdesk.extensions import db as database
    from helpdesk.models import Ticket
    from helpdesk.services.metrics import facts as ticket_facts
    from helpdesk.services.metrics import rollup as metrics_rollup

    total = database.session.execute(select(func.count()).select_from(Ticket)).scalar_one()
    database.session.rollback()
    started = time.monotonic()
    with _progress(total, "ticket facts") as step:
        facts = ticket_facts.rebuild(progress=step)
    click.echo(f"rebuilt {facts} ticket facts{_took(total, started)}")
    click.echo("rebuilding the metric roll-ups (one transaction)…")
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
              help="An admin API token (default: $HELPDESK_TOKEN, else a new token for "
                   "the first active admin of this installation's database)")
@click.option("--pace", default=0.3, show_default=True, type=click.FloatRange(min=0),
              help="Seconds between deliveries, so events arrive one by one")
def demo(url: str, token: str | None, pace: float) -> None:
    """Fill a running system with realistic, signed traffic on every channel."""
    from helpdesk.demo import DemoError, run_demo

    made = None
    if not token:
        if urlsplit(url).hostname not in LOOPBACK:  # never an admin token to another host
            raise click.ClickException(f"{url} is not this machine: pass --token (an admin "
                                       "token of that system) or set HELPDESK_TOKEN")
        made = token = _first_admins_token()
    try:
        run_demo(url, token, pace=pace, echo=click.echo)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if made:  # made for this run only
            _revoke(made)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _revoke(token: str) -> None:
    from helpdesk.services import auth

    with click.get_current_context().ensure_object(ScriptInfo).load_app().app_context():
        auth.logout(token)


def _first_admins_token() -> str:
    """A new token for the first active admin of the database this installation's
    configuration names (the one `make run` serves, which made that admin)."""
    from helpdesk.extensions import db
    from helpdesk.models import Agent
    from helpdesk.services import auth

    script_info = click.get_current_context().ensure_object(ScriptInfo)
    with script_info.load_app().app_context():
        try:
            admin = db.session.execute(
                select(Agent).where(Agent.role == "admin", Agent.active.is_(True))
                .order_by(Agent.id).limit(1)).scalar_one_or_none()
        except SQLAlchemyError as exc:
            raise click.ClickException(
                "no --token given, and this installation's database cannot be read for an "
                f"admin ({type(exc).__name__}): pass --token or set HELPDESK_TOKEN") from exc
        if admin is None:
            raise click.ClickException(
                "no --token given and no active admin in this installation's database: "
                "create one (helpdesk agents create --role admin …) or pass --token")
        click.echo(f"Using a new API token for {admin.email} (no --token given)")
        return auth.issue_token(admin)


if __name__ == "__main__":
    main()
