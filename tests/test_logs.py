"""Operational logs: one line per request and per job, JSON on demand, parse failures with
their reason, and never a key, token, query string or body."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

from tests.support import factories


def _records(caplog, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == name]


def test_one_access_line_per_request_without_secrets(app, api, admin, caplog):
    caplog.set_level(logging.INFO, logger="helpdesk.access")
    channel = factories.channel(app, "telegram", secrets={"secret_token": "tg-secret",
                                                          "bot_token": "123:abc"})
    api.post(f"/webhooks/telegram/{channel.key}?hub.verify_token=QUERY-SECRET",
             data="{not json", headers={"Content-Type": "application/json",
                                        "X-Telegram-Bot-Api-Secret-Token": "tg-secret"})
    api.as_(admin).get("/api/v1/queue", params={"per_page": 5})
    lines = [r.fields for r in _records(caplog, "helpdesk.access")]
    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("POST", "/webhooks/telegram/…", 200), ("GET", "/api/v1/queue", 200)]
    assert all(isinstance(line["ms"], float) for line in lines)
    text = "\n".join(r.getMessage() for r in _records(caplog, "helpdesk.access"))
    for secret in (channel.key, "QUERY-SECRET", "tg-secret", admin.token, "per_page"):
        assert secret not in text


def test_one_line_per_job_and_parse_failures_give_their_reason(app, api, caplog, drain):
    caplog.set_level(logging.INFO)
    channel = factories.channel(app, "telegram", secrets={"secret_token": "tg-secret",
                                                          "bot_token": "123:abc"})
    api.post(f"/webhooks/telegram/{channel.key}", data='{"update_id": "BODY-TEXT-1"',
             headers={"Content-Type": "application/json",
                      "X-Telegram-Bot-Api-Secret-Token": "tg-secret"})
    drain()
    jobs = [r.fields for r in _records(caplog, "helpdesk.jobs")]
    assert [(j["job"], j["outcome"]) for j in jobs] == [("process_deliveries", "ok")]
    assert jobs[0]["job_id"] and jobs[0]["ms"] >= 0
    [failure] = [r.getMessage() for r in caplog.records if "failed to parse" in r.getMessage()]
    assert "PayloadError: body is not valid JSON" in failure
    assert "BODY-TEXT-1" not in caplog.text


def test_json_format_is_one_object_per_line():
    code = ("import logging; from helpdesk import logs; logs.configure(); "
            "logs.log_job('route_ticket', 'route-7', 'ok', 3.25); "
            "logging.getLogger('x').warning('plain %s', 'words')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "HELPDESK_LOG_FORMAT": "json"}, timeout=60)
    job, plain = (json.loads(line) for line in result.stderr.strip().splitlines())
    assert (job["logger"], job["job"], job["job_id"], job["outcome"], job["ms"]) == (
        "helpdesk.jobs", "route_ticket", "route-7", "ok", 3.2)
    assert (plain["level"], plain["message"]) == ("WARNING", "plain words")


def test_a_path_no_route_matches_keeps_its_key_and_its_line_to_itself(app, api, caplog):
    """A channel key followed by `%00` matches no route (404), yet it is still the key;
    and a `%0A` in a path must not start a forged log line."""
    caplog.set_level(logging.INFO, logger="helpdesk.access")
    channel = factories.channel(app, "api")
    assert api.post(f"/webhooks/api/{channel.key}%00", json={}).status_code == 404
    api.session.post(f"{api.base_url}/webhooks//api//{channel.key}", json={},
                     allow_redirects=False, timeout=30)  # (a 308 to the merged path)
    assert api.get("/nowhere%0A2026-12-06 INFO helpdesk.access: forged").status_code == 404
    paths = [r.fields["path"] for r in _records(caplog, "helpdesk.access")]
    assert paths == ["/webhooks/api/…", "/webhooks/api/…",
                     "/nowhere\\x0a2026-12-06 INFO helpdesk.access: forged"]
    for line in (r.getMessage() for r in _records(caplog, "helpdesk.access")):
        assert channel.key not in line and "\n" not in line and "\x00" not in line, line
