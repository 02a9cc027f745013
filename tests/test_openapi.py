"""/openapi.json lists exactly the app's JSON endpoints with their methods."""

from __future__ import annotations

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
