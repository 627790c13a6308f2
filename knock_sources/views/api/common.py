"""The ``/v1`` blueprint itself: bearer-key authentication and the helpers every API module shares.

Shapes follow Knock's Management API. Every call takes ``?environment=``
(default: the first of ``ENVIRONMENTS``); lists use cursor pagination over row ids
(``after``/``before``/``limit``) and answer ``{"entries", "page_info"}``.
"""

from __future__ import annotations

from flask import Blueprint, request
from marshmallow import ValidationError
from werkzeug.routing import BaseConverter

from knock_sources.control import api_keys
from knock_sources.errors import AuthenticationRequired, NotFound, SourcesError, ValidationFailed
from knock_sources.ingest import body as ingest_body
from knock_sources.state import current_state
from knock_sources.store import find_unstorable
from knock_sources.store.control import Environment
from knock_sources.store.keys import KeyRule
from knock_sources.views.api.schemas import PageQuerySchema, RowId

bp = Blueprint("api", __name__, url_prefix="/v1")


class RowIdSegment(BaseConverter):
    """A URL segment holding a row id (``<row_id:log_id>``): the view gets an ``int``, the OpenAPI document the rule.

    It matches any segment, as the default converter does, and leaves it
    text: ``_read_row_ids`` turns it into the id once the caller is
    authenticated, answering 422 with the parameter named, where a
    converter refusing it would give a bare 404 (and before the API key).
    """


@bp.record_once
def _register_row_id_segment(state) -> None:
    # Before any of the blueprint's rules is bound: Flask registers a
    # blueprint's own deferred functions before its children's routes.
    state.app.url_map.converters["row_id"] = RowIdSegment


page_query_schema = PageQuerySchema()
# A request body's ceiling: sources with scripts and rehearsals of the largest
# accepted payloads fit many times over.
MAX_BODY_BYTES = 16 * 1024 * 1024
# Fields of a request body that hold a sample payload rather than values to store.
SAMPLE_FIELDS = frozenset({"payload"})


@bp.before_request
def _authenticate():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationRequired("Send an API key as 'Authorization: Bearer <key>'.", code="api_key_missing")
    if not api_keys.is_valid(token.strip()):
        raise AuthenticationRequired("The API key is not valid.")


@bp.before_request
def _read_row_ids():
    # After _authenticate (hooks run in the order they were added).
    converters = request.url_rule._converters if request.url_rule else {}
    for name, converter in converters.items():
        if isinstance(converter, RowIdSegment):
            request.view_args[name] = row_id(request.view_args[name], name)


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
    lets a deeply nested body's ``RecursionError`` through as a 500, with the
    rules ingestion uses (charset, numbers JSON can carry). Text no database
    can store (a NUL, a lone surrogate) is refused naming its field, except
    inside the ``payload`` of a dry run, which is a sample of what ingestion
    accepts. With ``optional``, an empty body stands for ``{}``.
    """
    # Unreadable (400) and too large (413) stand as they are; the rest is the body's content.
    raw = ingest_body.read_body(request.stream, request.content_length, MAX_BODY_BYTES)
    if optional and not raw.strip():
        return schema.load({})
    try:
        payload = ingest_body.RequestBody.parse(raw, "application/json", request.mimetype_params.get("charset")).data
    except SourcesError as exc:
        raise ValidationFailed({"_schema": [exc.message]}) from None
    found = find_unstorable({key: value for key, value in payload.items() if key not in SAMPLE_FIELDS})
    if found:
        where, problem = found
        raise ValidationFailed({".".join(map(str, where)): [f"holds {problem}, which cannot be stored."]})
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
