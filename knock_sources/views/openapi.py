"""``GET /openapi.json``: the OpenAPI 3.1 document of every route, generated with apispec.

Request bodies are the marshmallow schemas the views load them with
(``api/schemas.py``, and the very instances the views use); responses are
the shapes documented in ``api/shapes/schemas.py`` and ``data_schemas.py``.
``OPERATIONS`` says, for each endpoint, which of them apply and which query
parameters it reads; the summary is the view's docstring. Every route must be listed here (a test
checks), so that the schemathesis run of ``make api-check`` exercises all of
them.
"""

from __future__ import annotations

import re
from functools import lru_cache

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin, resolve_schema_cls
from flask import Blueprint, current_app, jsonify
from werkzeug.routing import AnyConverter

from knock_sources.store.dataplane import RUN_STATUSES
from knock_sources.views.api import data, mappings, replays, scripts, sources, triggers, variables
from knock_sources.views.api.common import RowIdSegment
from knock_sources.views.api.schemas import LogQuerySchema, RowId
from knock_sources.views.api.shapes import data_schemas as data_shapes
from knock_sources.views.api.shapes import schemas as shapes
from knock_sources.views.api.shapes.base import page_of

bp = Blueprint("openapi", __name__)

API_KEY = "apiKey"
WRITE_KEY = "writeKey"
METRICS_TOKEN = "metricsToken"

#: A row id where only text can carry it (a path segment, a query string): ``RowId``'s digits.
_ROW_ID_TEXT = {"type": "string", "pattern": RowId.JSON_SCHEMA["pattern"]}
_ENVIRONMENT = {
    "in": "query",
    "name": "environment",
    "schema": {"type": "string"},
    "description": "The environment's slug (default: development).",
}
_PAGE = [
    {"in": "query", "name": "after", "schema": _ROW_ID_TEXT, "description": "Entries older than this cursor."},
    {"in": "query", "name": "before", "schema": _ROW_ID_TEXT, "description": "Entries newer than this cursor."},
    {"in": "query", "name": "limit", "schema": {"type": "integer"}, "description": "Page size, 1 to 100."},
]


def _query(name, description, **schema):
    return {"in": "query", "name": name, "schema": schema or {"type": "string"}, "description": description}


def _op(response=None, *, status=200, body=None, query=(), page=False, tag="sources", environment=True, **extra):
    """One operation's documentation: its 2xx shape, body schema, query parameters."""
    return {
        "response": response,
        "status": status,
        "body": body,
        "query": [*([_ENVIRONMENT] if environment else []), *(_PAGE if page else []), *query],
        "tag": tag,
        **extra,
    }


#: Endpoint -> documentation. ``response`` is a shape (``None``: no body).
OPERATIONS = {
    "receive.receive": _op(status=204, tag="ingestion", environment=False, security=[], ingest=True),
    "health.healthz": _op(shapes.HealthShape, tag="operations", environment=False, security=[]),
    "metrics.scrape": _op(tag="operations", environment=False, security=[{METRICS_TOKEN: []}], text=True),
    "openapi.document": _op(tag="operations", environment=False, security=[], any_json=True),
    "api.sources.list_sources": _op(page_of(shapes.SourceShape), page=True),
    "api.sources.get_source": _op(shapes.SourceShape),
    "api.sources.put_source": _op(shapes.SourceShape, body=sources.source_body_schema),
    "api.sources.patch_source": _op(shapes.SourceShape, body=sources.source_patch_schema),
    "api.sources.delete_source": _op(status=204),
    "api.sources.rotate_token": _op(shapes.SourceShape, body=sources.rotate_token_schema, body_optional=True),
    "api.mappings.list_mappings": _op(page_of(shapes.MappingShape), tag="mappings"),
    "api.mappings.create_mapping": _op(shapes.MappingShape, status=201, body=mappings.mapping_schema, tag="mappings"),
    "api.mappings.get_mapping": _op(shapes.MappingShape, tag="mappings"),
    "api.mappings.patch_mapping": _op(shapes.MappingShape, body=mappings.mapping_patch_schema, tag="mappings"),
    "api.mappings.delete_mapping": _op(status=204, tag="mappings"),
    "api.mappings.restore_defaults": _op(page_of(shapes.MappingShape), tag="mappings"),
    "api.sources.list_events": _op(page_of(shapes.KnownEventShape), page=True),
    "api.sources.list_logs": _op(
        page_of(shapes.EventLogShape),
        page=True,
        query=[
            {"in": "query", "schema": LogQuerySchema},
            _query("include[]", "`actions` to include each log's action logs.", type="string", enum=["actions"]),
        ],
    ),
    "api.sources.get_log": _op(shapes.EventLogShape),
    "api.sources.status": _op(shapes.SourceStatusShape),
    "api.scripts.test_script": _op(shapes.ScriptTestShape, body=scripts.script_test_body_schema),
    "api.scripts.rehearse": _op(shapes.RehearsalShape, body=scripts.rehearse_body_schema),
    "api.replays.replay_source": _op(
        shapes.ReplayShape, status=202, body=replays.replay_body_schema, dry_run=shapes.ReplayDryRunShape, tag="replays"
    ),
    "api.replays.get_replay": _op(shapes.ReplayShape, tag="replays", environment=False),
    "api.replays.cancel_replay": _op(shapes.ReplayShape, tag="replays", environment=False),
    "api.providers.list_providers": _op(page_of(shapes.ProviderShape), tag="providers", environment=False),
    "api.providers.get_provider": _op(shapes.ProviderShape, tag="providers", environment=False),
    "api.variables.list_variables": _op(page_of(shapes.VariableShape), page=True, tag="variables"),
    "api.variables.put_variable": _op(shapes.VariableShape, body=variables.variable_body_schema, tag="variables"),
    "api.variables.delete_variable": _op(status=204, tag="variables"),
    "api.data.list_workflows": _op(page_of(data_shapes.WorkflowShape), page=True, tag="workflows"),
    "api.data.put_workflow": _op(data_shapes.WorkflowShape, body=data.workflow_body_schema, tag="workflows"),
    "api.data.list_runs": _op(
        page_of(data_shapes.WorkflowRunShape),
        page=True,
        tag="workflows",
        query=[
            _query("recipient", "Runs for this recipient id."),
            _query("recipient_collection", "Runs for recipients of this collection."),
            _query("status", "Runs in this status.", type="string", enum=list(RUN_STATUSES)),
            _query("cancellation_key", "Runs with this cancellation key."),
        ],
    ),
    "api.triggers.list_workflow_triggers": _op(page_of(data_shapes.TriggerShape), tag="workflows"),
    "api.triggers.create_workflow_trigger": _op(
        data_shapes.TriggerShape, status=201, body=triggers.trigger_body_schema, tag="workflows"
    ),
    "api.triggers.get_workflow_trigger": _op(data_shapes.TriggerShape, tag="workflows"),
    "api.triggers.update_workflow_trigger": _op(
        data_shapes.TriggerShape, body=triggers.trigger_update_schema, tag="workflows"
    ),
    "api.triggers.delete_workflow_trigger": _op(status=204, tag="workflows"),
    "api.triggers.list_source_triggers": _op(page_of(data_shapes.TriggerShape), tag="workflows"),
    "tracking.call": _op(
        shapes.TrackingOutcomeShape, tag="tracking", environment=False, security=[{WRITE_KEY: []}], ingest=True
    ),
    "api.data.get_user": _op(data_shapes.UserShape, tag="data"),
    "api.data.get_object": _op(data_shapes.ObjectShape, tag="data"),
    "api.data.list_subscriptions": _op(page_of(data_shapes.SubscriptionShape), page=True, tag="data"),
    "api.data.get_tenant": _op(data_shapes.TenantShape, tag="data"),
    "api.data.list_members": _op(
        page_of(data_shapes.AudienceMemberShape),
        page=True,
        tag="data",
        query=[_query("tenant", "Members within this tenant.")],
    ),
}

_CONVERTER = re.compile(r"<(?:[a-z_]+(?:\([^)]*\))?:)?([a-z_]+)>")


def _json(schema) -> dict:
    return {"application/json": {"schema": schema}}


def _path_parameter(rule, name: str) -> dict:
    converter = rule._converters.get(name)
    schema: dict = {"type": "string"}
    if isinstance(converter, AnyConverter):
        schema["enum"] = sorted(converter.items)
    elif isinstance(converter, RowIdSegment):
        schema = dict(_ROW_ID_TEXT)
    return {"in": "path", "name": name, "required": True, "schema": schema}


def _operation(view, doc: dict, rule) -> dict:
    summary, _, description = (view.__doc__ or "").strip().partition("\n")
    operation = {
        "summary": summary.strip(),
        "tags": [doc["tag"]],
        "parameters": [*(_path_parameter(rule, name) for name in sorted(rule.arguments)), *doc["query"]],
        "responses": {"default": {"description": "An error.", "content": _json("Error")}},
    }
    if description.strip():
        operation["description"] = description.strip()
    if "security" in doc:
        operation["security"] = doc["security"]
    success = {"description": "Success."}
    if doc.get("text"):
        success["content"] = {"text/plain": {"schema": {"type": "string"}}}
    elif doc.get("any_json"):
        success["content"] = _json({"type": "object"})
    elif doc["response"] is not None:
        success["content"] = _json(doc["response"])
    operation["responses"][str(doc["status"])] = success
    if doc.get("dry_run"):
        operation["responses"]["200"] = {"description": "The dry run.", "content": _json(doc["dry_run"])}
    if doc["body"] is not None:
        operation["requestBody"] = {"required": not doc.get("body_optional"), "content": _json(doc["body"])}
    if doc.get("ingest"):
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
            },
        }
    return operation


def _schema_name(schema) -> str:
    """Responses by their shape's name (``EventLogShape``: ``EventLog``), requests as inputs (``MappingInput``)."""
    name = resolve_schema_cls(schema).__name__
    if name.endswith("Shape"):
        return name.removesuffix("Shape")
    # An instance leaving fields out is a schema of its own (creating a mapping takes no id).
    without = "".join(field.title().replace("_", "") for field in sorted(getattr(schema, "exclude", ()) or ()))
    return name.removesuffix("Schema") + (f"Without{without}" if without else "") + "Input"


def _row_id_property(converter, field, **kwargs) -> dict:
    """A ``RowId`` field's JSON Schema (apispec knows nothing of the field class and leaves it open)."""
    return dict(RowId.JSON_SCHEMA) if isinstance(field, RowId) else {}


def build(app) -> dict:
    """Return the OpenAPI document of ``app``'s routes; raises ``KeyError`` for an undocumented one."""
    marshmallow = MarshmallowPlugin(schema_name_resolver=_schema_name)
    spec = APISpec(
        title="knock-sources",
        version="1",
        openapi_version="3.1.0",
        plugins=[marshmallow],
        info={"description": "Incoming webhooks and event ingestion, modelled on Knock's Sources."},
        security=[{API_KEY: []}],
    )
    marshmallow.converter.add_attribute_function(_row_id_property)
    spec.components.security_scheme(API_KEY, {"type": "http", "scheme": "bearer", "description": "An API key."})
    spec.components.security_scheme(
        METRICS_TOKEN, {"type": "http", "scheme": "bearer", "description": "METRICS_TOKEN, off the metrics listener."}
    )
    spec.components.security_scheme(
        WRITE_KEY,
        {"type": "http", "scheme": "basic", "description": "A source's write key as the user name (or `writeKey`)."},
    )
    spec.components.schema("Error", schema=shapes.ErrorShape)
    paths: dict = {}
    for rule in app.url_map.iter_rules():
        if not documented(rule.endpoint):
            continue
        doc = OPERATIONS[rule.endpoint]
        path = _CONVERTER.sub(r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(app.view_functions[rule.endpoint], doc, rule)
    for path, operations in sorted(paths.items()):
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    # apispec refers to the error schema by name only where it is a string.
    return _resolve_error_refs(document)


def _resolve_error_refs(node):
    if isinstance(node, dict):
        if node.get("schema") == "Error":
            node["schema"] = {"$ref": "#/components/schemas/Error"}
        for value in node.values():
            _resolve_error_refs(value)
    elif isinstance(node, list):
        for value in node:
            _resolve_error_refs(value)
    return node


def documented(endpoint: str) -> bool:
    """Whether ``endpoint`` belongs in the document: every route but static files and the dashboard's HTML pages."""
    return endpoint != "static" and not endpoint.startswith("ui.")


@lru_cache(maxsize=8)
def _cached(app) -> dict:
    return build(app)


@bp.get("/openapi.json")
def document():
    """The OpenAPI 3.1 document of this API."""
    return jsonify(_cached(current_app._get_current_object()))
