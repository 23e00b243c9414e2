"""Supervisors' metrics (API.md "Metrics"): exact figures from per-ticket facts and daily roll-ups.

`summary` answers the API; `facts` and `cycles` derive each ticket's resolution cycles from
its history; `rollup` keeps the daily `parts` and value `histograms` in step on every flush;
`counts` and `percentiles` read them back; `live` pushes today's figures to supervisors.
"""

from __future__ import annotations

from flask import Flask

from helpdesk.services.metrics import facts, rollup


def init_app(app: Flask) -> None:
    """Wire the session hooks: roll-ups follow every flush; facts are refreshed at commit."""
    rollup.init_app(app)
    facts.init_app(app)
