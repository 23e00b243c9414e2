"""Two admins saving a setting or an SLA policy at once: the second waits for the first and
changes what it wrote. Both looked for the row, found none and inserted it: the second hit
the first's key, a 500. Each test takes the lock from a second connection as a concurrent
save does, inserts there, and checks that the request waiting for it answered 200 on top.
PostgreSQL only: SQLite runs one writing transaction at a time."""

from __future__ import annotations

import threading
import time

import pytest


@pytest.fixture
def holder(second_connection):
    return second_connection


def _while_saving(holder, lock_key: str, insert_sql: str, params: tuple, request):
    with holder.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock_key,))
        cursor.execute(insert_sql, params)
    answer: dict = {}
    thread = threading.Thread(target=lambda: answer.setdefault("response", request()))
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive(), "the request did not wait for the other save"
    holder.commit()
    thread.join(10)
    return answer["response"]


def test_two_first_saves_of_a_setting_are_one_after_the_other(api, admin, holder):
    response = _while_saving(
        holder, "settings",
        "INSERT INTO settings (key, value, updated_at) VALUES (%s, %s, now())",
        ("capacity_weights", '{"voice": 1.0, "chat": 0.5, "default": 0.1}'),
        lambda: api.as_(admin).patch("/api/v1/settings",
                                     json={"capacity_weights": {"default": 0.2}}))
    assert response.status_code == 200, response.text
    # the partial change merged into what the other save wrote
    assert response.json()["capacity_weights"] == {"voice": 1.0, "chat": 0.5, "default": 0.2}


def test_two_first_saves_of_an_sla_policy_are_one_after_the_other(api, admin, holder):
    response = _while_saving(
        holder, "sla_policy:high",
        "INSERT INTO sla_policies (priority, first_response_seconds, warning_ratio, "
        "created_at, updated_at) VALUES (%s, %s, 0.8, now(), now())", ("high", 600),
        lambda: api.as_(admin).put("/api/v1/sla-policies/high",
                                   json={"first_response_seconds": 900}))
    assert response.status_code == 200, response.text
    assert response.json()["first_response_seconds"] == 900
    policies = api.as_(admin).get("/api/v1/sla-policies").json()["items"]
    assert [p["priority"] for p in policies] == ["high"]
