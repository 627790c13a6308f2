"""The ``/v1`` blueprint itself: bearer-key authentication and the helpers every API module shares.

Shapes follow Knock's Management API. Every call takes ``?environment=``
(default: the first of ``ENVIRONMENTS``); lists use cursor pagination over row ids
(``after``/``before``/``limit``) and answer ``{"entries", "page_info"}``.
"""

from __future__ import annotations

import json

from flask import Blueprint, request

from knock_sources.control.api_keys import is_valid
from knock_sources.errors import AuthenticationRequired, NotFound, SourcesError, ValidationFailed
from knock_sources.ingest import body as ingest_body
from knock_sources.state import current_state
from knock_sources.store import MAX_ROW_ID
from knock_sources.store.control import Environment

bp = Blueprint("api", __name__, url_prefix="/v1")

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100


@bp.before_request
def _authenticate():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationRequired("Send an API key as 'Authorization: Bearer <key>'.", code="api_key_missing")
    if not is_valid(token.strip()):
        raise AuthenticationRequired("The API key is not valid.")


def current_environment() -> Environment:
    """Return the environment named by ``?environment=`` (default: the first configured one)."""
    slug = request.args.get("environment") or current_state().config["ENVIRONMENTS"][0]
    environment = Environment.get_or_none(Environment.slug == slug)
    if environment is None:
        raise NotFound(f"Environment {slug!r} does not exist.", code="environment_missing")
    return environment


def json_body(schema) -> dict:
    """Load the JSON request body with ``schema``; 422 with field errors if invalid.

    Parsed here rather than with ``request.get_json``, whose ``silent`` mode
    lets a deeply nested body's ``RecursionError`` through as a 500; strings
    with lone surrogates are refused because no database can store them.
    """
    try:
        payload, _ = ingest_body.parse_body(request.get_data(), "application/json")
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except SourcesError as exc:
        raise ValidationFailed({"_schema": [exc.message]}) from None
    except (UnicodeEncodeError, RecursionError):
        raise ValidationFailed({"_schema": ["The body holds text that is not valid Unicode."]}) from None
    return schema.load(payload)


def row_id(value: str | int, name: str = "id") -> int:
    """Return ``value`` as a row id; 422 unless it is a whole number a database can hold."""
    text = str(value)
    if not text.isdigit() or int(text) > MAX_ROW_ID:
        raise ValidationFailed({name: ["Not a valid id."]})
    return int(text)


def _cursor(name: str) -> int | None:
    value = request.args.get(name)
    return None if value is None else row_id(value, name)


def paginate(query, id_field, serialize) -> dict:
    """Return one page of ``query``, newest first, as ``{"entries", "page_info"}``."""
    try:
        limit = min(max(int(request.args.get("limit", DEFAULT_PAGE_SIZE)), 1), MAX_PAGE_SIZE)
    except ValueError:
        raise ValidationFailed({"limit": ["Not a valid integer."]}) from None
    after, before = _cursor("after"), _cursor("before")
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
