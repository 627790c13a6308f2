"""Dot-path resolution over an event's ``{body, headers, preprocess}`` scope.

Paths follow Knock's rules (docs/architecture.md 3.1): dot notation, case-sensitive
except for header names, namespaces ``body.``, ``headers.`` and
``preprocess.``; a path whose first segment is not a namespace resolves
against ``body``; ``[0]`` and ``.0`` index arrays; a path may select a whole
object. Action parameters are a path, a literal ``{"value": ...}`` or, for
object parameters such as ``data``, an object of ``{field: path}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

NAMESPACES = ("body", "headers", "preprocess")

_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class _Missing:
    """Sentinel for a path that does not resolve (distinct from JSON null)."""

    def __repr__(self):
        return "MISSING"

    def __bool__(self):
        return False


MISSING = _Missing()


class InvalidPath(ValueError):
    """A path is not syntactically valid."""


@lru_cache(maxsize=4096)
def parse_path(path: str) -> tuple[str, tuple[str | int, ...]]:
    """Split ``path`` into its namespace and segments; raise ``InvalidPath``.

    ``[n]`` segments become ints; ``.n`` segments stay strings and index an
    array only when the value met there is one.
    """
    if not isinstance(path, str) or not path.strip():
        raise InvalidPath("a path must be a non-empty string")
    segments: list[str | int] = []
    for part in path.split("."):
        if part == "":
            raise InvalidPath(f"path {path!r} has an empty segment")
        matched_until = 0
        for match in _SEGMENT.finditer(part):
            if match.start() != matched_until:
                break
            key, index = match.groups()
            segments.append(int(index) if index is not None else key)
            matched_until = match.end()
        if matched_until != len(part) or part.startswith("["):
            raise InvalidPath(f"path {path!r} is malformed near {part!r}")
    if segments[0] in NAMESPACES:
        return segments[0], tuple(segments[1:])
    return "body", tuple(segments)


def resolve(path: str, scope: Mapping[str, Any]) -> Any:
    """Return the value at ``path`` in ``scope``, or ``MISSING``."""
    try:
        namespace, segments = parse_path(path)
    except InvalidPath:
        return MISSING
    value = scope.get(namespace, MISSING)
    if namespace == "headers" and segments:
        # Header names are case-insensitive; the envelope stores them lower-cased.
        segments = (str(segments[0]).lower(), *segments[1:])
    for segment in segments:
        value = _step(value, segment)
        if value is MISSING:
            return MISSING
    return value


def _step(value: Any, segment: str | int) -> Any:
    if isinstance(value, list):
        if isinstance(segment, str):
            if not segment.isdigit():
                return MISSING
            segment = int(segment)
        return value[segment] if segment < len(value) else MISSING
    if isinstance(value, dict):
        return value.get(str(segment), MISSING)
    return MISSING


def is_literal(spec: Any) -> bool:
    """Return whether a parameter spec is a literal ``{"value": ...}``."""
    return isinstance(spec, dict) and set(spec) == {"value"}


@dataclass(frozen=True)
class Resolved:
    """A resolved parameter: its value and where it came from, for error messages."""

    value: Any
    origin: str


def resolve_parameter(spec: Any, scope: Mapping[str, Any], *, literal: bool = False) -> Resolved:
    """Resolve one configured action parameter against ``scope``.

    ``literal=True`` marks parameters whose plain strings are configured
    values rather than paths (the workflow key, a collection, an audience key).
    """
    if spec is None:
        return Resolved(MISSING, "not configured")
    if is_literal(spec):
        return Resolved(spec["value"], "literal value")
    if isinstance(spec, str):
        if literal:
            return Resolved(spec, "literal value")
        return Resolved(resolve(spec, scope), f"path '{spec}'")
    if isinstance(spec, dict):
        fields = {}
        for name, sub_spec in spec.items():
            value = resolve_parameter(sub_spec, scope).value
            if value is not MISSING:
                fields[name] = value
        return Resolved(fields, "object of paths")
    return Resolved(spec, "literal value")


def validate_parameter_spec(spec: Any, *, literal: bool = False) -> list[str]:
    """Return problems with a configured parameter (used when saving mappings)."""
    if spec is None or is_literal(spec) or (literal and isinstance(spec, str)):
        return []
    if isinstance(spec, str):
        try:
            parse_path(spec)
        except InvalidPath as exc:
            return [str(exc)]
        return []
    if isinstance(spec, dict):
        return [problem for sub in spec.values() for problem in validate_parameter_spec(sub)]
    return []


def json_type(value: Any) -> str:
    """Return the JSON type name of ``value`` for error messages."""
    if value is MISSING:
        return "nothing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
