"""The OpenAPI document describes the whole API (issue 12 "Prove it"): every route of the URL
map with its path and query parameters, body, statuses, error schema and auth."""

from __future__ import annotations

import re

from helpdesk.api.openapi import OPERATIONS, UNDESCRIBED

PARAM = re.compile(r"{([a-z_]+)}")
TEXT_PARAMETERS = {"session_id", "key", "channel_key", "provider", "token", "priority"}


def document(api) -> dict:
    response = api.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_every_route_in_the_url_map_is_described(app, api):
    spec = document(api)
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDESCRIBED:
            continue
        path = re.sub(r"<(?:[^:>]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        assert path in spec["paths"], rule.rule
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in spec["paths"][path], (method, rule.rule)
        assert rule.endpoint in OPERATIONS, f"name {rule.endpoint} in OPERATIONS"


def test_path_parameters_are_declared_and_typed(api):
    for path, operations in document(api)["paths"].items():
        for method, operation in operations.items():
            declared = {p["name"]: p for p in operation.get("parameters", [])
                        if p["in"] == "path"}
            assert set(declared) == set(PARAM.findall(path)), (method, path)
            for name, parameter in declared.items():
                assert parameter["required"] is True
                expected = "string" if name in TEXT_PARAMETERS else "integer"
                assert parameter["schema"]["type"] == expected, (path, name)


def test_statuses_errors_and_auth(api):
    spec = document(api)
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "visitor_token" in spec["components"]["securitySchemes"]["visitor"]["description"]
    error = spec["components"]["schemas"]["Error"]["properties"]["error"]
    assert set(error["properties"]) == {"code", "message", "fields"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert any(s.startswith("2") for s in statuses), (method, path)
            for status in statuses - {s for s in statuses if s.startswith("2")}:
                schema = operation["responses"][status]["content"]["application/json"]
                assert schema["schema"] == {"$ref": "#/components/schemas/Error"}
            if path.startswith("/api/v1") and operation["security"]:
                assert "401" in statuses, (method, path)
            if PARAM.search(path):
                assert "404" in statuses, (method, path)
            if "requestBody" in operation:
                assert {"400", "413"} <= statuses, (method, path)
    tickets = spec["paths"]["/api/v1/tickets"]["get"]
    assert {p["name"] for p in tickets["parameters"]} >= {
        "status", "priority", "assignee", "channel", "customer", "q", "page", "per_page"}
    page = tickets["responses"]["200"]["content"]["application/json"]["schema"]
    assert page["properties"]["items"]["type"] == "array"
    assert page["properties"]["items"]["items"] == {"$ref": "#/components/schemas/Ticket"}
    login = spec["paths"]["/api/v1/auth/login"]["post"]
    assert login["security"] == [] and "429" in login["responses"]
    chat = spec["paths"]["/api/v1/chat/sessions/{session_id}/messages"]["post"]
    assert chat["security"] == [{"visitor": []}] and {"200", "201"} <= set(chat["responses"])
    metrics = spec["paths"]["/api/v1/metrics/summary"]["get"]
    assert metrics["security"] == [{"bearer": []}] and "403" in metrics["responses"]
    assert {p["name"] for p in metrics["parameters"]} == {"from", "to", "group_by"}
    assert "/webhooks/{provider}/{key}" in spec["paths"]
    assert spec["paths"]["/api/v1/queue/next"]["post"]["responses"].keys() >= {"200", "204",
                                                                                "409"}


def test_every_list_route_documents_its_paging_and_its_400(api):
    """Each collection route reads `page` and `per_page` (`?page=0` is a 400): the document
    says so for every one of them (four had neither)."""
    spec = document(api)
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            schema = operation["responses"].get("200", {}).get("content", {}).get(
                "application/json", {}).get("schema", {})
            if method != "get" or "items" not in schema.get("properties", {}):
                continue
            if "page" not in schema["properties"]:
                continue  # (contact-reason counts: a whole list of figures, not paged)
            names = {p["name"] for p in operation.get("parameters", [])}
            assert {"page", "per_page"} <= names, path
            assert "400" in operation["responses"], path
