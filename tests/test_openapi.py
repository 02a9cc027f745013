"""/openapi.json lists exactly the app's JSON endpoints with their methods."""

from __future__ import annotations

import dataclasses
import json

import pytest

JSON_PREFIXES = ("/api/", "/v1/", "/v2/", "/rerank", "/health", "/ready", "/openapi.json")


def test_openapi_matches_the_real_routes(shop_app, client):
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    routed = {
        (rule.rule, method)
        for rule in shop_app.url_map.iter_rules()
        if rule.rule.startswith(JSON_PREFIXES)
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert documented == routed
    security = document["components"]["securitySchemes"]["bearerAuth"]
    assert security == {"type": "http", "scheme": "bearer"}
    for path in ("/v2/rerank", "/v1/rerank", "/rerank"):
        assert document["paths"][path]["post"]["security"] == [{"bearerAuth": []}]
        assert {"401", "413", "422", "429", "503"} <= set(document["paths"][path]["post"]["responses"])


def test_every_schema_reference_resolves(client):
    document = client.get("/openapi.json").get_json()
    refs: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert refs
    for ref in refs:
        name = ref.removeprefix("#/components/schemas/")
        assert name in document["components"]["schemas"], ref


def test_the_document_states_this_deployments_limits(shop_services):
    """A deployment with other limits documents its own, and enforces what it documents."""
    from webapp import create_app

    limits = dict(
        max_query_chars=321, rerank_max_documents=7, rank_max_candidates=9, search_max_limit=12, events_max_batch=5
    )
    services = dataclasses.replace(shop_services, settings=shop_services.settings.replace(**limits))
    client = create_app(services=services).test_client()
    document = client.get("/openapi.json").get_json()

    schemas = document["components"]["schemas"]
    cohere = schemas["CohereRerankRequest"]["properties"]
    assert (cohere["query"]["maxLength"], cohere["documents"]["maxItems"]) == (321, 7)
    rank = schemas["RankRequest"]["properties"]
    assert (rank["query"]["maxLength"], rank["candidates"]["maxItems"], rank["top_n"]["maximum"]) == (321, 9, 12)
    search = {p["name"]: p["schema"] for p in document["paths"]["/api/search"]["get"]["parameters"]}
    assert search["q"]["maxLength"] == 321
    for name in ("per_page", "limit"):
        assert (search[name]["maximum"], search[name]["default"]) == (12, 12)  # the default page fits the limit
    tei = _request_schema(document, "/rerank")["properties"]
    assert (tei["query"]["maxLength"], tei["texts"]["maxItems"]) == (321, 7)
    assert _request_schema(document, "/api/events")["properties"]["events"]["maxItems"] == 5

    events = [{"id": f"limit-{i:08d}", "type": "click", "unit": "u", "sku": "A"} for i in range(6)]
    assert client.post("/api/events", json={"events": events}).status_code == 413
    candidates = [f"sku-{i}" for i in range(10)]
    assert client.post("/api/rank", json={"query": "shoes", "candidates": candidates}).status_code == 413

    default = create_app(services=shop_services).test_client().get("/openapi.json").get_json()
    default_rank = default["components"]["schemas"]["RankRequest"]["properties"]
    assert default_rank["candidates"]["maxItems"] == shop_services.settings.rank_max_candidates != 9


def _request_schema(document, path):
    return document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]


def test_the_document_is_valid_openapi_3_1(client):
    """The whole document, generated schemas included, against the OpenAPI 3.1 meta-schema."""
    from openapi_spec_validator import OpenAPIV31SpecValidator, validate

    document = client.get("/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    validate(document, cls=OpenAPIV31SpecValidator)
    broken = {**document, "paths": {"/x": {"get": {"responses": {"200": {"content": {}}}}}}}  # no description
    with pytest.raises(Exception, match="description"):
        validate(broken, cls=OpenAPIV31SpecValidator)


def test_rerank_contracts_are_the_models_schemas(client):
    """The rerank schemas are generated from the pydantic models the endpoints validate with."""
    from webapp.rerank_models import CohereRerankRequest

    document = client.get("/openapi.json").get_json()
    generated = document["components"]["schemas"]["CohereRerankRequest"]
    assert set(generated["properties"]) == set(CohereRerankRequest.model_fields)
    assert not any(key.startswith("x-setting-") for key in json.dumps(document).split('"'))
