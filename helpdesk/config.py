"""Configuration from the environment (README.md "Configuration" lists every variable)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A non-editable install (the Docker image) ships migrations/ beside it and says where.
MIGRATIONS_DIR = Path(os.environ.get("HELPDESK_MIGRATIONS_DIR") or PROJECT_ROOT / "migrations")
# `helpdesk run` writes its embedded Redis's URL here, so commands run beside it reach it.
REDIS_URL_FILE = "redis.url"


class ConfigError(RuntimeError):
    """The environment cannot start the system; the message says what to set."""


# PostgreSQL is reached through psycopg 3 (`postgresql+psycopg://`): it binds parameters on
# the server and prepares a statement the connection has run `prepare_threshold` (5) times,
# so the queue's claim statement and the other per-request statements are not planned
# again on every request; and under gevent it waits cooperatively by itself (helpdesk/
# server.py). URLs naming no driver, or psycopg2 (which the project no longer installs),
# are mapped to it.
POSTGRESQL_PREFIXES = ("postgres://", "postgresql://", "postgresql+psycopg2://")
POSTGRESQL_DRIVER = "postgresql+psycopg://"
DATABASE_CONNECT_TIMEOUT = 5  # seconds


def normalize_database_url(url: str) -> str:
    """Map `postgres://`, `postgresql://` and `postgresql+psycopg2://` to psycopg 3."""
    for prefix in POSTGRESQL_PREFIXES:
        if url.startswith(prefix):
            return POSTGRESQL_DRIVER + url[len(prefix):]
    return url


def _number(name: str, default: Any, parse: Any, what: str) -> Any:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return parse(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not {what}") from None


def _int(name: str, default: int) -> int:
    return _number(name, default, int, "a whole number")


def _float(name: str, default: float) -> float:
    return _number(name, default, float, "a number")


def _hours(raw: str) -> float:
    hours = float(raw)
    if not 0 <= hours <= MAX_TOKEN_HOURS:  # (also NaN; `inf` would overflow every login)
        raise ValueError(raw)
    return hours


MAX_TOKEN_HOURS = 10 * 366 * 24


def _flag(name: str, default: bool) -> bool:
    """`1` or `0` (also true/false, yes/no, on/off) in the environment; `default` when unset
    or empty; anything else stops the start (`true` read as 0 was silently off)."""
    raw = (os.environ.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={os.environ[name]!r}: use 1 or 0")


def _routing_mode() -> str:
    """`pull` or `push` (a misspelt mode was taken as pull, silently)."""
    mode = (os.environ.get("HELPDESK_ROUTING_MODE") or "pull").strip().lower()
    if mode not in ("pull", "push"):
        raise ConfigError(f"HELPDESK_ROUTING_MODE={mode!r}: use pull or push")
    return mode


def _intervals(name: str, default: str) -> list[int]:
    raw = os.environ.get(name, default)
    try:
        intervals = [int(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        intervals = [-1]
    if any(seconds < 0 for seconds in intervals):
        raise ConfigError(f"{name}={raw!r} is not a list of seconds, e.g. {default}")
    return intervals


RATE_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """'6000/minute' (or /second, /hour, /day; a plural is fine) → (6000, 60); ValueError
    for anything else."""
    count, _, period = rate.partition("/")
    seconds = RATE_PERIODS.get(period.strip().rstrip("s") or "minute")
    count = count.strip()
    if not (count.isascii() and count.isdigit() and int(count) > 0 and seconds):
        raise ValueError(f"not a rate: {rate!r}")
    return int(count), seconds


def _rate(name: str, default: str) -> str:
    """A rate setting, checked here: a typo stops the start instead of making every
    request it limits fail."""
    raw = os.environ.get(name) or default
    try:
        parse_rate(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a rate: use a count per second, minute, "
                          f"hour or day, e.g. {default}") from None
    return raw


def default_instance_dir() -> Path:
    # (made absolute: Flask takes no relative instance folder, and children run elsewhere)
    return Path(os.environ.get("HELPDESK_INSTANCE_DIR") or PROJECT_ROOT / "instance").absolute()


def _development_secret(instance: Path) -> str:
    """Development without HELPDESK_SECRET_KEY: one random key kept in the instance folder,
    so every process of `helpdesk run` (and the next run) derives the same keys from it
    (channel secrets are encrypted with one)."""
    path = instance / "secret_key"
    if not path.exists():
        instance.mkdir(parents=True, exist_ok=True)
        draft = instance / f".secret_key.{os.getpid()}"
        draft.write_text(secrets.token_hex(32))
        draft.chmod(0o600)
        try:
            os.link(draft, path)  # atomic; another process may have won: theirs is kept
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


def recorded_redis_url(instance: Path) -> str:
    """The embedded Redis of a `helpdesk run` on this instance folder, while it runs."""
    try:
        url = (instance / REDIS_URL_FILE).read_text().strip()
    except OSError:
        return ""
    socket = url.removeprefix("unix://")
    return url if url.startswith("unix://") and os.path.exists(socket) else ""


def from_environment(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the app configuration; `overrides` win over the environment."""
    instance = default_instance_dir()
    env = os.environ.get("HELPDESK_ENV") or "development"
    if env not in ("development", "production"):
        # Anything else ("prod", "staging") would have run with development's defaults: a
        # key file instead of HELPDESK_SECRET_KEY, callbacks into private networks allowed.
        raise ConfigError(f"HELPDESK_ENV={env!r}: use production (or development, the default)")
    secret = os.environ.get("HELPDESK_SECRET_KEY")
    if not secret:
        if env == "production":
            raise ConfigError("HELPDESK_SECRET_KEY is not set and HELPDESK_ENV=production: "
                              "set it to a long random string (python -c 'import secrets; "
                              "print(secrets.token_hex(32))')")
        secret = _development_secret(instance)
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{instance / 'helpdesk.db'}"
    config: dict[str, Any] = {
        "ENV_NAME": env,
        "SECRET_KEY": secret,
        # Keys that still decrypt channel secrets while `helpdesk secrets rotate` runs.
        "OLD_SECRET_KEYS": [key.strip() for key in
                            os.environ.get("HELPDESK_OLD_SECRET_KEYS", "").split(",")
                            if key.strip()],
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": os.environ.get("REDIS_URL") or recorded_redis_url(instance),
        "PUBLIC_URL": os.environ.get("HELPDESK_PUBLIC_URL", "").rstrip("/"),
        # absolute: Flask's send_file would take a relative one from the package's folder
        "DATA_DIR": str(Path(os.environ.get("HELPDESK_DATA_DIR") or instance / "data")
                        .absolute()),
        "INSTANCE_DIR": str(instance),
        "MAX_EMAIL_BYTES": _int("HELPDESK_MAX_EMAIL_BYTES", 50 * 1024 * 1024),
        "MAX_WEBHOOK_BYTES": _int("HELPDESK_MAX_WEBHOOK_BYTES", 1024 * 1024),
        "WEBHOOK_RATE": _rate("HELPDESK_WEBHOOK_RATE", "6000/minute"),
        "LOGIN_RATE": _rate("HELPDESK_LOGIN_RATE", "10/minute"),
        "LOGIN_IP_RATE": _rate("HELPDESK_LOGIN_IP_RATE", "30/minute"),
        # How many proxies (load balancers) in front of the web processes add an
        # X-Forwarded-For: the client's address (per-IP login limits, logs) is read from it.
        # 0 trusts no such header (a client could forge one).
        "TRUSTED_PROXIES": _int("HELPDESK_TRUSTED_PROXIES", 0),
        "THREADING_WINDOW_SECONDS": _int("HELPDESK_THREADING_WINDOW_SECONDS", 24 * 3600),
        "REOPEN_WINDOW_SECONDS": _int("HELPDESK_REOPEN_WINDOW_SECONDS", 7 * 24 * 3600),
        # Integrators' callback_urls may point into private networks (loopback included)
        # only when allowed: by default in development (a local stand-in of the
        # integrator's server), never by default in production.
        "ALLOW_PRIVATE_CALLBACKS": _flag("HELPDESK_ALLOW_PRIVATE_CALLBACKS",
                                         env != "production"),
        "DELIVERY_MAX_CLAIMS": _int("HELPDESK_DELIVERY_MAX_CLAIMS", 3),
        "SWEEP_AFTER_SECONDS": _int("HELPDESK_SWEEP_AFTER_SECONDS", 30),
        "SWEEP_INTERVAL_SECONDS": _int("HELPDESK_SWEEP_INTERVAL_SECONDS", 10),
        "WORK_IDLE_SECONDS": _int("HELPDESK_WORK_IDLE_SECONDS", 600),
        # A token made by login works this long (0: until revoked); the CLI's do not expire.
        "LOGIN_TOKEN_HOURS": _number("HELPDESK_LOGIN_TOKEN_HOURS", 12.0, _hours,
                                     f"a number of hours from 0 to {MAX_TOKEN_HOURS}"),
        "SHORT_ABANDON_SECONDS": _int("HELPDESK_SHORT_ABANDON_SECONDS", 5),
        # Metric percentiles of a period with at most this many values sort them all;
        # longer periods count them in the histograms (services/metrics/percentiles.py).
        "METRICS_SORT_UP_TO": _int("HELPDESK_METRICS_SORT_UP_TO", 20_000),
        "JOB_RETRY_INTERVALS": _intervals("HELPDESK_JOB_RETRY_INTERVALS", "1,5,30"),
        "OUTBOUND_RETRY_INTERVALS": _intervals("HELPDESK_OUTBOUND_RETRY_INTERVALS",
                                               "10,30,120,600,1800"),
        "ROUTING_MODE": _routing_mode(),
        "URGENCY_CONFIG": os.environ.get("HELPDESK_URGENCY_CONFIG") or None,
        "ASYNC_MODE": os.environ.get("HELPDESK_ASYNC_MODE", "auto"),
        "SMTP_URL": os.environ.get("SMTP_URL", ""),
        "TWILIO_API_BASE": os.environ.get("TWILIO_API_BASE", "https://api.twilio.com"),
        "META_GRAPH_API_BASE": os.environ.get("META_GRAPH_API_BASE", "https://graph.facebook.com"),
        "TELEGRAM_API_BASE": os.environ.get("TELEGRAM_API_BASE", "https://api.telegram.org"),
        "X_API_BASE": os.environ.get("X_API_BASE", "https://api.x.com"),
        # hide_parameters: SQL errors in logs never carry message bodies or secrets. Pooled
        # connections idle for a while are pinged before use (extensions.IDLE_PING_SECONDS).
        "SQLALCHEMY_ENGINE_OPTIONS": {"hide_parameters": True,
                                      "pool_size": _int("HELPDESK_DB_POOL_SIZE", 10),
                                      "max_overflow": 20},
    }
    if overrides:
        config.update(overrides)
    if config["ENV_NAME"] == "production":
        # The embedded defaults (a SQLite file in the instance folder, no Redis: no rate
        # limits, no fan-out across web processes) are for development only.
        missing = [name for name, key in (("DATABASE_URL", "SQLALCHEMY_DATABASE_URI"),
                                          ("REDIS_URL", "REDIS_URL"))
                   if not (os.environ.get(name) or (overrides or {}).get(key))]
        if missing:
            raise ConfigError(f"{' and '.join(missing)} must be set when HELPDESK_ENV="
                              "production (the embedded SQLite file and Redis are for "
                              "development)")
    if config["ENV_NAME"] == "production" and not config["PUBLIC_URL"]:
        # Links sent to customers (surveys) and webhook URLs are never built from a
        # request's Host header, which the client chooses.
        raise ConfigError("HELPDESK_PUBLIC_URL is required when HELPDESK_ENV=production "
                           "(e.g. https://help.example.com): survey links and webhook URLs "
                           "are built from it, never from a request's Host header")
    config["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(config["SQLALCHEMY_DATABASE_URI"])
    if config["SQLALCHEMY_DATABASE_URI"].startswith(POSTGRESQL_DRIVER):
        # A host that does not answer (a partition, a lost route) fails a new connection
        # after this many seconds, not the system's two minutes: a request or a readiness
        # probe answers 503 rather than hanging.
        options = dict(config["SQLALCHEMY_ENGINE_OPTIONS"])
        options["connect_args"] = {"connect_timeout": DATABASE_CONNECT_TIMEOUT,
                                   **options.get("connect_args", {})}
        config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    if (config["SQLALCHEMY_DATABASE_URI"].startswith(POSTGRESQL_DRIVER)
            and not _flag("HELPDESK_DB_PREPARE", True)):
        # A pooler that cannot carry prepared statements (PgBouncer < 1.21 in transaction
        # mode): psycopg 3 then never prepares.
        options = dict(config["SQLALCHEMY_ENGINE_OPTIONS"])
        options["connect_args"] = {**options.get("connect_args", {}), "prepare_threshold": None}
        config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    # Flask's own request limit: the larger of ours; per-route limits are checked in handlers.
    config["MAX_CONTENT_LENGTH"] = None
    return config
