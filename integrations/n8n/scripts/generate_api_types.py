# pyright: strict
"""Generate the n8n node's TypeScript API types from the signoff server's own OpenAPI schema.

    uv run python integrations/n8n/scripts/generate_api_types.py          # rewrite the file
    uv run python integrations/n8n/scripts/generate_api_types.py --check  # fail on drift

The node (integrations/n8n) talks to the server with the request, decision and outcome payloads
of `/v1`. Their types in `nodes/shared/api.generated.ts` are written by this script from
`create_app(...).openapi()`, the schema the server serves at `/openapi.json`, so the node and the
server cannot drift: a test (tests/integrations/n8n/test_api_types.py) runs `--check`, and the
node's TypeScript stops compiling when a field it uses changes.

The callback body (`CallbackEvent`) is not an endpoint, so it is not in the OpenAPI document;
its envelope comes from the core model's JSON schema, and every model it refers to (the full
`Request`, decisions, ...) must be the OpenAPI component of the same name.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
TARGET = HERE.parent / "nodes" / "shared" / "api.generated.ts"

ROOTS = (
    "RequestCreate",
    "Request",
    "Decision",
    "DecisionCreate",
    "OutcomeReport",
    "CancelBody",
    "PublicKeys",
    "ErrorBody",
)
"""The OpenAPI components the node uses; everything they refer to is emitted too."""

Schema = Mapping[str, Any]


def openapi_schemas() -> dict[str, Schema]:
    """`components.schemas` of the server's OpenAPI document, built from the app itself."""
    from signoff_server.app import create_app
    from signoff_server.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{Path(tmp) / 'openapi.db'}")
        document = create_app(settings).openapi()
    return cast(dict[str, Schema], document["components"]["schemas"])


def callback_schemas() -> dict[str, Schema]:
    """`CallbackEvent` and `CallbackData` from the core model, refs renamed to components."""
    from signoff.models import CallbackEvent

    schema = CallbackEvent.model_json_schema(
        mode="serialization", ref_template="#/components/schemas/{model}"
    )
    defs = cast(dict[str, Schema], schema.pop("$defs", {}))
    envelope = {"CallbackEvent": cast(Schema, schema), "CallbackData": defs["CallbackData"]}
    return envelope | {f"__def__{name}": body for name, body in defs.items()}


def _refs(schema: Any) -> Iterable[str]:
    if isinstance(schema, Mapping):
        node = cast(Mapping[str, Any], schema)
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref.rsplit("/", 1)[-1]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(schema, list):
        for value in cast(list[Any], schema):
            yield from _refs(value)


def _closure(schemas: Mapping[str, Schema], roots: Sequence[str]) -> list[str]:
    seen: list[str] = []
    todo = list(roots)
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        if name not in schemas:
            raise SystemExit(f"the OpenAPI schema has no component {name!r}")
        seen.append(name)
        todo.extend(r for r in _refs(schemas[name]) if r not in seen)
    return seen


def _literal(value: Any) -> str:
    return json.dumps(value)


def _key(name: str) -> str:
    return name if name.isidentifier() else json.dumps(name)


def _doc(schema: Schema, indent: str) -> list[str]:
    text = schema.get("description")
    if not isinstance(text, str) or not text.strip():
        return []
    lines = text.strip().replace("*/", "* /").splitlines()
    if len(lines) == 1:
        return [f"{indent}/** {lines[0]} */"]
    return [f"{indent}/**", *(f"{indent} * {line}".rstrip() for line in lines), f"{indent} */"]


def ts_type(schema: Schema, indent: str = "") -> str:
    """The TypeScript type for one JSON schema (the subset pydantic and FastAPI emit)."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "const" in schema:
        return _literal(schema["const"])
    if "enum" in schema:
        return " | ".join(_literal(v) for v in cast(list[Any], schema["enum"]))
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            options = [ts_type(s, indent) for s in cast(list[Schema], schema[combinator])]
            return " | ".join(dict.fromkeys(options))
    kind = schema.get("type")
    if kind == "string":
        return "string"
    if kind in ("integer", "number"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "null":
        return "null"
    if kind == "array":
        item = ts_type(cast(Schema, schema.get("items", {})), indent)
        return f"Array<{item}>"
    if kind == "object" or "properties" in schema:
        properties = cast(Mapping[str, Schema], schema.get("properties", {}))
        extra = schema.get("additionalProperties")
        if not properties:
            if isinstance(extra, Mapping):
                return f"Record<string, {ts_type(cast(Schema, extra), indent)}>"
            return "Record<string, JsonValue>"
        return _object_body(schema, indent)
    return "JsonValue"  # {}: any JSON value


def _object_body(schema: Schema, indent: str) -> str:
    properties = cast(Mapping[str, Schema], schema.get("properties", {}))
    required = set(cast(list[str], schema.get("required", [])))
    inner = indent + "\t"
    lines = ["{"]
    for name, prop in properties.items():
        lines.extend(_doc(prop, inner))
        optional = "" if name in required else "?"
        lines.append(f"{inner}{_key(name)}{optional}: {ts_type(prop, inner)};")
    lines.append(f"{indent}}}")
    return "\n".join(lines)


def _declaration(name: str, schema: Schema) -> str:
    doc = _doc(schema, "")
    kind = schema.get("type")
    if (kind == "object" or "properties" in schema) and schema.get("properties"):
        return "\n".join([*doc, f"export interface {name} {_object_body(schema, '')}"])
    if name == "JsonValue":
        return "\n".join(
            [
                *doc,
                "export type JsonValue =",
                "\t| string\n\t| number\n\t| boolean\n\t| null\n\t| JsonValue[]",
                "\t| { [key: string]: JsonValue };",
            ]
        )
    return "\n".join([*doc, f"export type {name} = {ts_type(schema)};"])


def render() -> str:
    """The whole generated TypeScript file."""
    components = openapi_schemas()
    envelope = callback_schemas()
    for name in (n.removeprefix("__def__") for n in envelope if n.startswith("__def__")):
        if name != "CallbackData" and name not in components:
            raise SystemExit(f"the callback body refers to {name!r}, which the OpenAPI lacks")
    names = _closure(components, [*ROOTS, "JsonValue"])
    callback = {k: v for k, v in envelope.items() if not k.startswith("__def__")}
    names += [n for n in _closure(components | callback, list(callback)) if n not in names]
    merged = components | callback
    blocks = [
        "// Generated by integrations/n8n/scripts/generate_api_types.py from the signoff",
        "// server's OpenAPI schema (and the core CallbackEvent model). Do not edit by hand:",
        "// run `uv run python integrations/n8n/scripts/generate_api_types.py` instead.",
    ]
    for name in names:
        blocks.append("")
        blocks.append(_declaration(name, merged[name]))
    return "\n".join(blocks) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the n8n node's API types.")
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    parser.add_argument("--output", type=Path, default=TARGET, help="where to write")
    args = parser.parse_args(argv)
    output = cast(Path, args.output)
    text = render()
    current = output.read_text(encoding="utf-8") if output.exists() else ""
    if cast(bool, args.check):
        if current == text:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"{output} (committed)",
            tofile=f"{output} (from the server's OpenAPI)",
        )
        sys.stdout.writelines(diff)
        print(
            f"\n{output.name} is out of date with the server's OpenAPI schema: run "
            "`uv run python integrations/n8n/scripts/generate_api_types.py`",
            file=sys.stderr,
        )
        return 1
    if current != text:
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
