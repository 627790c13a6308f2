"""Recipients shared by triggers and subscriptions: inline identification and references."""

from __future__ import annotations

from knock_sources.actions.fields import USERS_COLLECTION, inline_attributes
from knock_sources.actions.objects import set_object
from knock_sources.actions.users import find_user, identify
from knock_sources.store.dataplane import Object


def ensure_recipient(environment, recipient: dict, lookups: dict | None = None) -> bool:
    """Identify or set an inline recipient; return whether the recipient exists.

    An inline recipient (given as an object) is created or merged; a
    reference (a bare user id) must already exist: Knock runs nothing for it.
    ``lookups`` (an ``ActionContext``'s) keeps the users found (``find_user``).
    """
    attributes = inline_attributes(recipient)
    if recipient["collection"] == USERS_COLLECTION:
        if attributes is not None:
            identify(environment, recipient["id"], attributes, lookups)
            return True
        return find_user(environment, recipient["id"], lookups) is not None
    if attributes is not None:
        set_object(environment, recipient["collection"], recipient["id"], attributes)
        return True
    return (
        Object.select()
        .where(
            (Object.environment == environment)
            & (Object.collection == recipient["collection"])
            & (Object.external_id == recipient["id"])
        )
        .exists()
    )


def reference(recipient: dict) -> dict:
    """Return the ``{"collection", "id"}`` reference of a recipient."""
    return {"collection": recipient["collection"], "id": recipient["id"]}
