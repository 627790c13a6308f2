"""The ``/v1`` blueprint itself: bearer-key authentication and the helpers every API module shares.

Shapes follow Knock's Management API. Every call takes ``?environment=``
(default: the first of ``ENVIRONMENTS``); lists use cursor pagination over row ids
(``after``/``before``/``limit``) and answer ``{"entries", "page_info"}``.
"""

from __future__ import annotations

import json

from flask import Blueprint, request
from marshmallow import ValidationError

from knock_sources.control import api_keys
from knock_sources.errors import AuthenticationRequired, NotFound, SourcesError, ValidationFailed
from knock_sources.ingest import body as ingest_body
from knock_sources.state import current_state
from knock_sources.store.control import Environment
from knock_sources.store.keys import KeyRule
from knock_sources.views.api.schemas import PageQuerySchema, RowId

bp = Blueprint("api", __name__, url_prefix="/v1")

page_query_schema = PageQuerySchema()


@bp.before_request
def _authenticate():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationRequired("Send an API key as 'Authorization: Bearer <key>'.", code="api_key_missing")
    if not api_keys.is_valid(token.strip()):
        raise AuthenticationRequired("The API key is not valid.")


def current_environment() -> Environment:
    """Return the environment named by ``?environment=`` (default: the first configured one)."""
    slug = request.args.get("environment") or current_state().config["ENVIRONMENTS"][0]
    environment = Environment.get_or_none(Environment.slug == slug)
    if environment is None:
        raise NotFound(f"Environment {slug!r} does not exist.", code="environment_missing")
    return environment


def json_body(schema, *, optional: bool = False) -> dict:
    """Load the JSON request body with ``schema``; 422 with field errors if invalid.

    Parsed here rather than with ``request.get_json``, whose ``silent`` mode
    lets a deeply nested body's ``RecursionError`` through as a 500; strings
    with lone surrogates are refused because no database can store them.
    With ``optional``, an empty body stands for ``{}``.
    """
    raw = request.get_data()
    if optional and not raw.strip():
        return schema.load({})
    try:
        payload, _ = ingest_body.parse_body(raw, "application/json")
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except SourcesError as exc:
        raise ValidationFailed({"_schema": [exc.message]}) from None
    except (UnicodeEncodeError, RecursionError):
        raise ValidationFailed({"_schema": ["The body holds text that is not valid Unicode."]}) from None
    try:
        return schema.load(payload)
    except ValidationError as exc:
        raise ValidationFailed(exc.messages) from None


def query_args(schema) -> dict:
    """Load the query parameters ``schema`` declares; 422 naming each bad one as a query parameter."""
    given = {name: request.args[name] for name in schema.fields if name in request.args}
    try:
        return schema.load(given)
    except ValidationError as exc:
        raise ValidationFailed(exc.messages, location="query") from None


def path_key(rule: KeyRule, value: str, name: str = "key") -> str:
    """Return ``value``, a key from the URL, if it follows ``rule``; 422 naming it otherwise."""
    problem = rule.problem(value)
    if problem:
        raise ValidationFailed({name: [problem]}, location="path")
    return value


def row_id(value: str, name: str = "id") -> int:
    """Return ``value``, an id from the URL, as a row id; 422 unless a database can hold it."""
    try:
        return RowId().deserialize(value)
    except ValidationError as exc:
        raise ValidationFailed({name: exc.messages}, location="path") from None


def paginate(query, id_field, serialize) -> dict:
    """Return one page of ``query``, newest first, as ``{"entries", "page_info"}``.

    ``limit`` is 1 to 100 (25 by default); anything else is refused with 422.
    """
    page = query_args(page_query_schema)
    limit, after, before = page["limit"], page["after"], page["before"]
    if before is not None:
        rows = list(query.where(id_field > before).order_by(id_field.asc()).limit(limit + 1))
        has_more_newer = len(rows) > limit
        rows = list(reversed(rows[:limit]))
        has_more_older = True
    else:
        if after is not None:
            query = query.where(id_field < after)
        rows = list(query.order_by(id_field.desc()).limit(limit + 1))
        has_more_older = len(rows) > limit
        rows = rows[:limit]
        has_more_newer = after is not None
    ids = [getattr(row, id_field.name) for row in rows]
    return {
        "entries": [serialize(row) for row in rows],
        "page_info": {
            "after": str(ids[-1]) if rows and has_more_older else None,
            "before": str(ids[0]) if rows and has_more_newer else None,
            "page_size": limit,
        },
    }
