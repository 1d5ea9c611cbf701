"""Check requests and responses against the discovery document shipped with the client.

The fake Calendar API is only as faithful as its shapes; every call it serves
goes through :func:`check_request` and every body through :func:`check_shape`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from googleapiclient.discovery_cache import get_static_doc


@lru_cache(maxsize=1)
def discovery() -> dict[str, Any]:
    """The Calendar v3 discovery document of the installed google-api-python-client."""
    text = get_static_doc("calendar", "v3")
    assert text is not None
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def method(resource: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = discovery()["resources"][resource]["methods"][name]
    return found


def _check_scalar(name: str, value: str, spec: dict[str, Any]) -> str | None:
    kind = spec.get("type")
    if kind == "boolean" and value not in ("true", "false"):
        return f"{name}={value!r} is not a boolean"
    if kind == "integer":
        try:
            number = int(value)
        except ValueError:
            return f"{name}={value!r} is not an integer"
        if "minimum" in spec and number < int(spec["minimum"]):
            return f"{name}={value} below minimum"
        if "maximum" in spec and number > int(spec["maximum"]):
            return f"{name}={value} above maximum"
    if "enum" in spec and value not in spec["enum"]:
        return f"{name}={value!r} not one of {spec['enum']}"
    return None


def check_request(resource: str, name: str, query: dict[str, list[str]]) -> list[str]:
    """Problems with the query parameters of one call (unknown, mistyped, repeated)."""
    spec = method(resource, name)
    allowed = {k: v for k, v in spec.get("parameters", {}).items() if v.get("location") == "query"}
    standard = discovery()["parameters"]
    problems = []
    for key, values in query.items():
        param = allowed.get(key) or standard.get(key)
        if param is None:
            problems.append(f"{resource}.{name}: unknown parameter {key}")
            continue
        if len(values) > 1 and not param.get("repeated"):
            problems.append(f"{resource}.{name}: parameter {key} repeated")
        for value in values:
            problem = _check_scalar(key, value, param)
            if problem:
                problems.append(f"{resource}.{name}: {problem}")
    return problems


def check_shape(value: Any, schema_or_name: dict[str, Any] | str, path: str = "$") -> list[str]:
    """Problems with ``value`` against a schema (a name such as ``"Event"`` or a dict).

    Unknown fields and wrong JSON types are problems; ``null`` is accepted
    (patch uses it to clear a field).
    """
    schemas: dict[str, Any] = discovery()["schemas"]
    schema: dict[str, Any] = (
        schemas[schema_or_name] if isinstance(schema_or_name, str) else schema_or_name
    )
    if "$ref" in schema:
        schema = schemas[schema["$ref"]]
    if value is None:
        return []
    kind = schema.get("type")
    problems: list[str] = []
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if props is not None and key in props:
                problems += check_shape(item, props[key], f"{path}.{key}")
            elif extra is not None:
                problems += check_shape(item, extra, f"{path}.{key}")
            else:
                problems.append(f"{path}.{key}: unknown field")
    elif kind == "array":
        if not isinstance(value, list):
            return [f"{path}: expected an array"]
        for i, item in enumerate(value):
            problems += check_shape(item, schema.get("items", {}), f"{path}[{i}]")
    elif kind == "string" and not isinstance(value, str):
        problems.append(f"{path}: expected a string")
    elif kind == "boolean" and not isinstance(value, bool):
        problems.append(f"{path}: expected a boolean")
    elif kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        problems.append(f"{path}: expected an integer")
    return problems
