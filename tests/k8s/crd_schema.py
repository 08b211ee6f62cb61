"""The offline schemas of the operators' custom resources (tests/k8s/schemas/).

Each schema file is written in a short notation (schemas/README.md) that this module
compiles into JSON Schema, every object closed (`additionalProperties: false`), so a
misspelt or misplaced field is an error. `validators()` gives one validator per
(apiVersion, kind); the envelope (apiVersion, kind, metadata) is checked too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMAS = Path(__file__).resolve().parent / "schemas"
SCALARS = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "boolean": {"type": "boolean"},
    "number": {"type": "number"},
    "quantity": {"type": ["string", "integer", "number"]},
    "int-or-string": {"type": ["string", "integer"]},
    "string-map": {"type": "object", "additionalProperties": {"type": "string"}},
    "config": {
        "type": "object",
        "additionalProperties": {"type": ["string", "integer", "number", "boolean"]},
    },
}
METADATA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": SCALARS["string-map"],
        "annotations": SCALARS["string-map"],
    },
}


def compile_node(node: Any) -> dict:
    """One node of the notation as JSON Schema (refs point into `#/$defs/`)."""
    if isinstance(node, str):
        if node in SCALARS:
            return dict(SCALARS[node])
        kind, _, rest = node.partition(":")
        values = [v.strip() for v in rest.split(",")]
        if kind == "enum":
            return {"type": "string", "enum": values}
        if kind == "enum-int":
            return {"type": "integer", "enum": [int(v) for v in values]}
        if kind == "ref":
            return {"$ref": f"#/$defs/{rest.strip()}"}
        raise ValueError(f"unknown notation {node!r}")
    if isinstance(node, list):
        assert len(node) == 1, f"an array names one item shape: {node!r}"
        return {"type": "array", "items": compile_node(node[0])}
    if isinstance(node, dict):
        if list(node) == ["*"]:
            return {"type": "object", "additionalProperties": compile_node(node["*"])}
        properties, required = {}, []
        for key, value in node.items():
            name = key.rstrip("!")
            if key.endswith("!"):
                required.append(name)
            properties[name] = compile_node(value)
        schema = {"type": "object", "additionalProperties": False, "properties": properties}
        if required:
            schema["required"] = required
        return schema
    raise ValueError(f"unknown notation {node!r}")


@dataclass(frozen=True)
class SchemaFile:
    path: Path
    operator: str  # the variable in k8s/operators/versions.env
    version: str
    kinds: dict[tuple[str, str], dict]  # (apiVersion, kind) -> JSON Schema of the object


def load(path: Path, core_defs: dict) -> SchemaFile:
    raw = yaml.safe_load(path.read_text())
    defs = {name: compile_node(node) for name, node in {**core_defs, **raw.get("defs", {})}.items()}
    kinds = {}
    for key, spec in raw["kinds"].items():
        api_version, kind = key.split()
        kinds[(api_version, kind)] = {
            "$defs": defs,
            "type": "object",
            "additionalProperties": False,
            "required": ["apiVersion", "kind", "metadata", "spec"],
            "properties": {
                "apiVersion": {"const": api_version},
                "kind": {"const": kind},
                "metadata": METADATA,
                "spec": compile_node(spec),
            },
        }
    return SchemaFile(path, raw["operator"], str(raw["version"]), kinds)


def schema_files() -> list[SchemaFile]:
    core = yaml.safe_load((SCHEMAS / "core.yaml").read_text())["defs"]
    return [load(p, core) for p in sorted(SCHEMAS.glob("*.yaml")) if p.name != "core.yaml"]


def validators() -> dict[tuple[str, str], jsonschema.Draft202012Validator]:
    out = {}
    for schema_file in schema_files():
        for key, schema in schema_file.kinds.items():
            assert key not in out, f"{key} is described twice"
            jsonschema.Draft202012Validator.check_schema(schema)
            out[key] = jsonschema.Draft202012Validator(schema)
    return out


def errors(doc: dict, table: dict[tuple[str, str], jsonschema.Draft202012Validator]) -> list[str]:
    """What is wrong with one custom resource, as `path: message` lines (empty: valid)."""
    validator = table[(doc["apiVersion"], doc["kind"])]
    where = f"{doc['kind']}/{doc['metadata']['name']}"
    found = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{where} {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in found]
