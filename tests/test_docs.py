"""docs/api.md stays true: every route the app serves is documented there, and every
server → client Socket.IO event it lists is emitted somewhere in the code."""

from __future__ import annotations

import re
from pathlib import Path

from helpdesk.config import PROJECT_ROOT

API_DOC = PROJECT_ROOT / "docs" / "api.md"
PATH = re.compile(r"(?<![\w.])/(?:api/v1|webhooks|surveys|healthz|readyz|tickets|supervisor|"
                  r"admin|console)[^\s`'\"?|)]*|(?<=`GET )/(?=`)")
# Rows of the Socket.IO table: | `name` | direction | …
EVENT_ROW = re.compile(r"^\| `([a-z_.]+)` \| ([^|]+) \|", re.MULTILINE)


def _shape(path: str) -> str:
    """`/tickets/<int:ticket_id>` and `/tickets/<id>` are the same route."""
    return re.sub(r"<[^>]+>", "<>", path.rstrip(".,:;"))


def test_every_route_is_documented(app):
    documented = {_shape(p) for p in PATH.findall(API_DOC.read_text())}
    served = {_shape(rule.rule) for rule in app.url_map.iter_rules()
              if rule.endpoint != "static"}
    missing = sorted(served - documented)
    assert not missing, f"routes missing from docs/api.md: {missing}"


def test_every_documented_server_event_is_emitted():
    rows = EVENT_ROW.findall(API_DOC.read_text())
    sent = [name for name, direction in rows if direction.startswith(("server", "both"))]
    assert len(sent) >= 10
    code = "\n".join(p.read_text() for p in (PROJECT_ROOT / "helpdesk").rglob("*.py"))
    never = [name for name in sent if f'"{name}"' not in code]
    assert not never, f"documented but never emitted: {never}"


def test_readme_points_at_docs_not_outside_the_repository():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "../shared" not in readme
    for doc in ("docs/api.md", "docs/design.md", "docs/benchmarks.md"):
        assert doc in readme and Path(PROJECT_ROOT, doc).is_file()
