"""`helpdesk demo` against the live test server: every connector, then a filled queue."""

from __future__ import annotations

from click.testing import CliRunner

from helpdesk.cli import main
from helpdesk.demo import run_demo
from tests.support import factories
from tests.support.signing import deliveries, timeline


def test_demo_fills_the_queue_across_channels(app, api, admin, drain):
    printed: list[str] = []
    summary = run_demo(api.base_url, admin.token, echo=printed.append)
    assert summary.refused == []
    assert len(summary.channels) == 14 and summary.deliveries >= 20
    assert any("/api/v1/queue" in line for line in printed)

    drain()
    staff = api.as_(admin)
    assert deliveries(staff, "failed") == []
    assert {d["status"] for d in deliveries(staff)} == {"processed"}
    queue = staff.get("/api/v1/queue").json()
    assert queue["total"] >= 8
    tickets = staff.get("/api/v1/tickets", params={"per_page": 200}).json()["items"]
    assert len({t["channel"]["kind"] for t in tickets}) >= 6

    customers = staff.get("/api/v1/customers", params={"per_page": 200}).json()["items"]
    timelines = {c["id"]: timeline(staff, c["id"]) for c in customers}
    on_two = [cid for cid, items in timelines.items()
              if len({i["channel"]["id"] for i in items if i["type"] == "message"}) >= 2]
    assert len(on_two) >= 3
    outcomes = sorted(i["call"]["outcome"] for items in timelines.values()
                      for i in items if i["type"] == "call")
    assert outcomes == ["abandoned", "voicemail"]
    voicemail = next(i["call"] for items in timelines.values() for i in items
                     if i["type"] == "call" and i["call"]["outcome"] == "voicemail")
    assert "Marco Rossi" in voicemail["transcript"]

    vip = staff.get(f"/api/v1/customers/{summary.vip_id}").json()
    assert vip["tier"] == "vip" and summary.vip_id in on_two
    vip_ticket = next(t for t in tickets if t["customer_id"] == summary.vip_id)
    ticket = staff.get(f"/api/v1/tickets/{vip_ticket['id']}").json()
    assert {"tier", "intent"} <= {r["factor"] for r in ticket["urgency_reasons"]}
    assert ticket["priority"] in ("high", "urgent")


def test_a_second_demo_uses_the_same_channels(app, api, admin, drain):
    """A demo run again adds traffic, not a second set of 14 channels; its webhooks still
    verify (the channels take the new run's secrets)."""
    first = run_demo(api.base_url, admin.token, echo=lambda _line: None)
    drain()
    second = run_demo(api.base_url, admin.token, echo=lambda _line: None)
    assert second.refused == []
    assert sorted(c.id for c in second.channels) == sorted(c.id for c in first.channels)
    assert api.as_(admin).get("/api/v1/channels").json()["total"] == 14
    drain()
    assert deliveries(api.as_(admin), "failed") == []
    assert len(deliveries(api.as_(admin))) == first.deliveries + second.deliveries


def test_demo_command_explains_a_missing_or_refused_token(api, agent, database_url, redis_url):
    runner = CliRunner()
    this_installation = {"HELPDESK_TOKEN": "", "DATABASE_URL": database_url,
                         "REDIS_URL": redis_url}
    no_admin = runner.invoke(main, ["demo", "--url", api.base_url], env=this_installation)
    assert no_admin.exit_code == 1 and "no active admin" in no_admin.output
    assert "--token" in no_admin.output
    refused = runner.invoke(main, ["demo", "--url", api.base_url, "--token", agent.token])
    assert refused.exit_code == 1 and "403" in refused.output
    unreachable = runner.invoke(main, ["demo", "--url", "http://127.0.0.1:9", "--token", "t"])
    assert unreachable.exit_code == 1 and "cannot reach" in unreachable.output


def test_demo_without_a_token_uses_the_installations_first_admin(app, api, admin, database_url,
                                                                 redis_url):
    """`make run` made an admin; `helpdesk demo` alone then works (API.md names no token)."""
    later = factories.agent(app, role="admin", level=3)
    done = CliRunner().invoke(main, ["demo", "--url", api.base_url, "--pace", "0"],
                              env={"HELPDESK_TOKEN": "", "DATABASE_URL": database_url,
                                   "REDIS_URL": redis_url})
    assert done.exit_code == 0, done.output
    assert f"Using a new API token for {admin.email}" in done.output
    assert later.email not in done.output
    assert "Demo traffic sent to" in done.output
    with app.app_context():  # the token made for the run is revoked when it ends
        from sqlalchemy import func, select

        from helpdesk.extensions import db
        from helpdesk.models import ApiToken

        live = db.session.execute(select(func.count()).select_from(ApiToken).where(
            ApiToken.agent_id == admin.id, ApiToken.revoked_at.is_(None))).scalar_one()
    assert live == 1  # the test's own
    elsewhere = CliRunner().invoke(main, ["demo", "--url", "https://help.example.com"],
                                   env={"HELPDESK_TOKEN": "", "DATABASE_URL": database_url,
                                        "REDIS_URL": redis_url})
    assert elsewhere.exit_code == 1 and "--token" in elsewhere.output
    assert "Using a new API token" not in elsewhere.output
