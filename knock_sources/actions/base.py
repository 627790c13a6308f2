"""The action framework: the ``Action`` base class and Knock's fixed order.

An action is a plain object registered through ``register_actions``. It
declares a marshmallow schema for its resolved parameters and implements
``execute(context, params)``, returning a JSON-able result or raising
``ActionError``. The runner (``actions.runner``) resolves, validates, orders
and logs; actions only do their one job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema
from peewee import chunked

from knock_sources.store import db

# Knock runs the mappings of one event type in this order, whatever order
# they were created in (docs/architecture.md 3.3). workflows_cancel is not in
# Knock's enum; it runs just before triggers so that a cancel-then-retrigger
# event behaves sensibly.
ACTION_ORDER = (
    "users_identify",
    "users_delete",
    "objects_set",
    "objects_delete",
    "tenants_set",
    "tenants_delete",
    "objects_subscribe",
    "objects_unsubscribe",
    "audiences_add_member",
    "audiences_remove_member",
    "workflows_cancel",
    "workflows_trigger",
)


def order_key(action_type: str) -> int:
    """Sort key placing ``action_type`` in Knock's order (unknown types last)."""
    try:
        return ACTION_ORDER.index(action_type)
    except ValueError:
        return len(ACTION_ORDER)


@dataclass
class ActionContext:
    """What an action may touch: the environment and the event that caused it.

    ``on_commit`` collects steps to run once the event's transaction has
    committed (``Action.after_commit``), so that nothing outside the database
    hears of rows that could still be rolled back. ``lookups`` is shared by
    the events of one batch (one transaction): what an action looked up
    there, such as a workflow by key, is not looked up again for the next.
    ``savepoints`` says whether each action runs in a savepoint; a batch
    that runs without them (``store.undone_if_unwritten``) is run again
    with them if an action fails after writing. Such a batch also gives
    its events ``inserts``, where a trigger leaves its workflow runs for
    the batch to insert with the other events' (``insert_rows``) before it
    commits; whatever reads runs inserts them first. ``None``: rows are
    inserted at once.
    """

    environment: Any
    event_log: Any
    registry: Any
    on_commit: list = field(default_factory=list)
    lookups: dict = field(default_factory=dict)
    savepoints: bool = True
    inserts: list | None = None


#: Rows per INSERT: well under SQLite's and PostgreSQL's limits on bound parameters.
ROWS_PER_STATEMENT = 200


def insert_rows(rows) -> None:
    """Insert unsaved model instances, each model's in their order, a few hundred rows per statement.

    The statement is written here rather than built by Peewee, which
    builds one node per value: for a batch's rows that costs more than
    sending them. Fields a row does not set are NULL (a model's defaults
    are set when the row is made).
    """
    by_model: dict[type, list] = {}
    for row in rows:
        by_model.setdefault(type(row), []).append(row.__data__)
    for model, data in by_model.items():
        named = {name for row in data for name in row}
        fields = [field for field in model._meta.sorted_fields if field.name in named]
        # SQLite and PostgreSQL both quote names with double quotes.
        columns = ", ".join(f'"{field.column_name}"' for field in fields)
        placeholders = "(" + ", ".join([db.param] * len(fields)) + ")"
        for chunk in chunked(data, ROWS_PER_STATEMENT):
            values = [field.db_value(row.get(field.name)) for row in chunk for field in fields]
            db.execute_sql(
                f'INSERT INTO "{model._meta.table_name}" ({columns}) VALUES {", ".join([placeholders] * len(chunk))}',
                values,
            )


class Action:
    """Base class for actions; subclasses set the class attributes below."""

    #: Knock's identifier, e.g. ``workflows_trigger``.
    action_type: str = ""
    name: str = ""
    #: marshmallow schema validating the resolved parameters.
    params_schema: type[Schema] = Schema
    #: Parameters whose plain strings are configured values, not paths.
    literal_params: frozenset[str] = frozenset()
    #: The parameter naming the workflow the action triggers or cancels, if any:
    #: the API lists mapped workflows that do not exist.
    workflow_param: str | None = None

    def execute(self, context: ActionContext, params: dict) -> Any:
        """Perform the action with validated ``params``; raise ``ActionError`` on failure."""
        raise NotImplementedError

    def prefetch(self, environment, payloads: list[dict], lookups: dict) -> None:
        """Optionally look up, into ``lookups``, what running with each of ``payloads`` will read.

        A batch calls it once for all of its events' runs of this action in
        ``environment``, before any runs, so that the rows they read are
        read in one query rather than one per event; ``execute`` then finds
        them in ``context.lookups``.
        """

    def after_commit(self, context: ActionContext, result: Any) -> None:
        """Act once ``execute``'s changes are committed, e.g. call plugin hooks.

        Runs outside the action's transaction, so a failure here cannot undo
        them: the runner logs it and the action still counts as a success.
        """

    def describe(self) -> dict:
        """Return the action's type, name and parameters for the API."""
        schema = self.params_schema()
        return {
            "action_type": self.action_type,
            "name": self.name,
            "parameters": {
                name: {"required": field.required, "literal": name in self.literal_params}
                for name, field in schema.fields.items()
            },
        }
