"""Probes and the OpenAPI document."""

from __future__ import annotations


def test_health_and_readiness(api):
    assert api.get("/healthz").status_code == 200
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"


def test_openapi_is_public_and_describes_the_schemas(api):
    response = api.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/queue/next" in spec["paths"]
    schemas = spec["components"]["schemas"]
    assert "status" in schemas["Ticket"]["properties"]
    assert "text" in schemas["MessageCreate"]["properties"]


def test_unknown_route_is_json_404(api):
    response = api.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
