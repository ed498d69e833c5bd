"""The published OpenAPI document, for tests: read it, check what it says about operations, and
check that real answers have the shapes it documents."""

from __future__ import annotations

import json
from functools import cache

import jsonschema

METHODS = ("get", "post", "put", "patch", "delete")


@cache
def api_schema() -> dict:
    """The document /api/schema/ serves, as plain JSON."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


def operations(schema: dict) -> list[tuple[str, str, dict]]:
    return [
        (method.upper(), path, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def resolve(schema: dict, node: dict) -> dict:
    """Follow ``$ref`` (and a lone ``allOf: [$ref]``) to the schema it names."""
    while True:
        if "$ref" in node:
            node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
        elif len(node.get("allOf", [])) == 1 and "properties" not in node:
            node = node["allOf"][0]
        else:
            return node


def shape_problems(schema: dict, node: dict) -> list[str]:
    """Why a request or response body ``node`` is not a typed shape (empty when it is): a bare
    object (no properties), an untyped value, or a list of either. Binary files are typed."""
    node = resolve(schema, node)
    if node.get("type") == "string" and node.get("format") == "binary":
        return []
    if node.get("type") == "array":
        return [f"list of: {p}" for p in shape_problems(schema, node.get("items", {}))]
    if not node.get("properties"):
        return [f"untyped body {json.dumps(node)[:80]}"]
    results = node["properties"].get("results")
    if results is not None and set(node["properties"]) >= {"count", "results"}:
        return [f"page of: {p}" for p in shape_problems(schema, results)]
    return []


def _json_schema(node):
    """OpenAPI 3.0 schema -> JSON Schema: ``nullable`` becomes a null type, and objects that list
    their properties accept no others (a key the document does not name is drift)."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("nullable", "readOnly", "writeOnly", "example", "examples"):
            continue
        if key == "properties":
            out[key] = {name: _json_schema(sub) for name, sub in value.items()}
        else:
            out[key] = _json_schema(value)
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def assert_documented(response, method: str, path: str) -> None:
    """``response`` (a test client's) has a status the document lists for ``method path`` (the
    path as the document writes it, ``/api/v1/projects/{slug}/``) and a body of the documented shape."""
    schema = api_schema()
    op = schema["paths"][path][method.lower()]
    status = str(response.status_code)
    assert status in op["responses"], f"{method} {path} answered {status}, not documented"
    content = op["responses"][status].get("content")
    if content is None:
        assert not response.content, f"{method} {path} {status}: undocumented body"
        return
    body_schema = content["application/json"]["schema"]
    root = {"components": _json_schema(schema["components"]), **_json_schema(body_schema)}
    jsonschema.validate(response.json(), root, cls=jsonschema.Draft202012Validator)
