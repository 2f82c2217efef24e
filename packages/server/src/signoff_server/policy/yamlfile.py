"""Reading YAML while keeping line numbers, so a config error can name `file:line`.

PyYAML composes the node tree (it is the parser); this module turns nodes into plain Python
values itself, recording the line of every mapping key and sequence item by its path, e.g.
`("policies", 0, "match", "condition") -> 42`.

Plain scalars are typed by the YAML 1.2 core schema (null, booleans `true`/`false`, integers,
floats; everything else is a string), not YAML 1.1's: `17:00` stays the string "17:00" instead
of the sexagesimal number 1020, `no` stays "no", and timestamps stay strings for the schema to
parse. Quoted scalars are always strings. Duplicate keys are errors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["Loc", "YamlDocument", "YamlError", "format_loc", "parse_yaml"]

Loc = tuple[str | int, ...]

_NULL = re.compile(r"~|null|Null|NULL|")
_TRUE = re.compile(r"true|True|TRUE")
_FALSE = re.compile(r"false|False|FALSE")
_INT = re.compile(r"[-+]?[0-9]+")
_OCT = re.compile(r"0o[0-7]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)")
_NAN = re.compile(r"\.(nan|NaN|NAN)")
_MAX_DEPTH = 64


class YamlError(Exception):
    """The text is not YAML this loader accepts; `line` is 1-based when known."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """The document's value and the 1-based line of each path in it."""

    value: Any
    lines: dict[Loc, int] = field(default_factory=dict[Loc, int])

    def line_of(self, loc: Sequence[str | int]) -> tuple[int | None, Loc]:
        """The line of the longest prefix of `loc` found in the document, and that prefix."""
        best: Loc = ()
        for end in range(len(loc), -1, -1):
            prefix = tuple(loc[:end])
            if prefix in self.lines:
                best = prefix
                break
        return self.lines.get(best), best


def format_loc(loc: Sequence[str | int]) -> str:
    """`policies[0].match.condition` for `("policies", 0, "match", "condition")`."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + part
    return text or "(top level)"


def _scalar(node: yaml.ScalarNode) -> Any:
    text: str = node.value
    if node.style is not None:  # quoted or block scalar: always a string
        return text
    if _NULL.fullmatch(text):
        return None
    if _TRUE.fullmatch(text):
        return True
    if _FALSE.fullmatch(text):
        return False
    if _INT.fullmatch(text):
        return int(text)
    if _OCT.fullmatch(text):
        return int(text[2:], 8)
    if _HEX.fullmatch(text):
        return int(text[2:], 16)
    if _FLOAT.fullmatch(text):
        return float(text)
    if _INF.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.fullmatch(text):
        return math.nan
    return text


class _Builder:
    def __init__(self) -> None:
        self.lines: dict[Loc, int] = {}
        self._active: set[int] = set()

    def build(self, node: yaml.Node, path: Loc) -> Any:
        line = node.start_mark.line + 1
        self.lines.setdefault(path, line)
        if len(path) > _MAX_DEPTH:
            raise YamlError("the document is nested too deeply", line)
        if id(node) in self._active:
            raise YamlError("recursive alias: a node contains itself", line)
        if isinstance(node, yaml.ScalarNode):
            return _scalar(node)
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                items: list[Any] = []
                for index, item in enumerate(node.value):
                    self.lines[(*path, index)] = item.start_mark.line + 1
                    items.append(self.build(item, (*path, index)))
                return items
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            raise YamlError(f"unsupported YAML node {type(node).__name__}", line)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: Loc) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlError("mapping keys must be plain strings", key_line)
            key = str(key_node.value)
            if key in result:
                first = self.lines.get((*path, key))
                raise YamlError(f"duplicate key {key!r} (first on line {first})", key_line)
            result[key] = self.build(value_node, (*path, key))
            self.lines[(*path, key)] = key_line  # errors about a field point at its key
        return result


def parse_yaml(text: str) -> YamlDocument:
    """Parse one YAML document; YamlError (with the line) when it is not well-formed."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()  # pyright: ignore[reportUnknownMemberType]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "not valid YAML"
        raise YamlError(f"not valid YAML: {problem}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"not valid YAML: {exc}", None) from None
    if node is None:
        return YamlDocument(None, {})
    builder = _Builder()
    value = builder.build(node, ())
    return YamlDocument(value, builder.lines)
