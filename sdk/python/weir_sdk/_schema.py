"""JSON Schemas for tools, from a function's signature and docstring.

A model is shown the schema, and weir checks a call's arguments against it
before the tool runs, so a parameter's type hint is what it gets: ``str``,
``int``, ``float``, ``bool``, ``list[T]``, ``dict[str, T]``, ``Optional[T]``,
``Literal[...]``, unions of these, or no hint (anything). A parameter without
a default is required; arguments the function does not take are refused.
Descriptions come from the docstring: its first paragraph for the tool, and
the entries of an ``Args:`` section (or ``:param name:`` lines) for the
parameters.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from typing import Any, Callable, Dict, List, Tuple

_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def type_schema(hint: Any, where: str) -> Dict[str, Any]:
    """The JSON Schema of one type hint; ``where`` names it in errors."""
    if hint is inspect.Parameter.empty or hint is Any:
        return {}
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        options = [type_schema(a, where) for a in args]
        return options[0] if len(options) == 1 else {"anyOf": options}
    if hint is list or origin is list:
        return {"type": "array", "items": type_schema(args[0], where)} if args else {"type": "array"}
    if hint is dict or origin is dict:
        schema: Dict[str, Any] = {"type": "object"}
        if len(args) == 2:
            schema["additionalProperties"] = type_schema(args[1], where)
        return schema
    raise TypeError(
        f"{where}: a tool parameter may be str, int, float, bool, list, dict, Optional, "
        f"Literal or a union of these, not {hint!r}"
    )


def docstring_parts(fn: Callable[..., Any]) -> Tuple[str, Dict[str, str]]:
    """The docstring's first paragraph, and its parameter descriptions."""
    doc = inspect.getdoc(fn) or ""
    summary = doc.split("\n\n")[0].replace("\n", " ").strip()
    params: Dict[str, str] = {}
    for name, text in re.findall(r"^:param\s+(\w+):\s*(.+)$", doc, re.MULTILINE):
        params[name] = text.strip()
    section = re.search(r"^(?:Args|Arguments|Parameters):\s*\n((?:[ \t]+.*\n?)+)", doc, re.MULTILINE)
    if section:
        current = None
        for line in section.group(1).splitlines():
            entry = re.match(r"^\s+(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", line)
            if entry:
                current = entry.group(1)
                params[current] = entry.group(2).strip()
            elif current and line.strip():
                params[current] += " " + line.strip()
    return summary, params


def tool_schema(fn: Callable[..., Any]) -> Tuple[str, Dict[str, Any]]:
    """A tool's description and the JSON Schema of its arguments."""
    summary, described = docstring_parts(fn)
    hints = typing.get_type_hints(fn)
    properties: Dict[str, Any] = {}
    required: List[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise TypeError(
                f"tool `{fn.__name__}`: parameter `{param.name}` must be a plain named parameter"
            )
        where = f"tool `{fn.__name__}`, parameter `{param.name}`"
        schema = type_schema(hints.get(param.name, inspect.Parameter.empty), where)
        if param.name in described:
            schema["description"] = described[param.name]
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
        else:
            schema["default"] = param.default
        properties[param.name] = schema
    parameters: Dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        parameters["required"] = required
    return summary, parameters
