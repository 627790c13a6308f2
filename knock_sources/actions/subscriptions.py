"""Subscription actions: subscribe and unsubscribe recipients to an object.

As Knock's ``/v1/objects/{collection}/{id}/subscriptions``: at most 100
recipients per call, inline identification of recipients, and subscribing
again updates the existing subscription's properties.
"""

from __future__ import annotations

from knock_sources.actions.base import Action
from knock_sources.actions.fields import JSONObject, RecipientList
from knock_sources.actions.objects import ObjectSchema, find_object
from knock_sources.actions.recipients import ensure_recipient, reference
from knock_sources.store import utcnow
from knock_sources.store.dataplane import Object, Subscription

MAX_SUBSCRIBERS = 100


class SubscribeSchema(ObjectSchema):
    """Parameters of ``objects_subscribe``."""

    recipients = RecipientList(required=True, max_items=MAX_SUBSCRIBERS)
    properties = JSONObject(allow_none=True)


class UnsubscribeSchema(ObjectSchema):
    """Parameters of ``objects_unsubscribe``."""

    recipients = RecipientList(required=True, max_items=MAX_SUBSCRIBERS)


class Subscribe(Action):
    """Subscribe recipients to an object (created if it does not exist yet)."""

    action_type = "objects_subscribe"
    name = "Subscribe to object"
    params_schema = SubscribeSchema
    literal_params = frozenset({"collection"})

    def execute(self, context, params):
        """Create or update one subscription per known or inline-identified recipient."""
        environment = context.environment
        obj, _ = Object.get_or_create_row(
            environment=environment, collection=params["collection"], external_id=params["id"]
        )
        properties = params.get("properties")
        subscribed, updated, skipped = [], [], []
        for recipient in params["recipients"]:
            if not ensure_recipient(environment, recipient, context.lookups):
                skipped.append({**reference(recipient), "reason": "not identified"})
                continue
            keys = {
                "object": obj,
                "recipient_collection": recipient["collection"],
                "recipient_id": recipient["id"],
            }
            existing = Subscription.get_or_none(**keys)
            subscription = existing or Subscription.get_or_create_row(environment=environment, **keys)[0]
            if properties is not None:
                subscription.properties = properties
            subscription.updated_at = utcnow()
            subscription.save()
            (updated if existing else subscribed).append(reference(recipient))
        return {"subscribed": subscribed, "updated": updated, "skipped_recipients": skipped}


class Unsubscribe(Action):
    """Remove recipients' subscriptions to an object."""

    action_type = "objects_unsubscribe"
    name = "Unsubscribe from object"
    params_schema = UnsubscribeSchema
    literal_params = frozenset({"collection"})

    def execute(self, context, params):
        """Delete the subscriptions; report which existed (none is a success, as in Knock)."""
        obj = find_object(context.environment, params["collection"], params["id"])
        if obj is None:
            return {"unsubscribed": [], "note": "object did not exist"}
        unsubscribed = []
        for recipient in params["recipients"]:
            removed = (
                Subscription.delete()
                .where(
                    (Subscription.object == obj)
                    & (Subscription.recipient_collection == recipient["collection"])
                    & (Subscription.recipient_id == recipient["id"])
                )
                .execute()
            )
            if removed:
                unsubscribed.append(reference(recipient))
        result = {"unsubscribed": unsubscribed}
        if len(unsubscribed) < len(params["recipients"]):
            result["note"] = "some recipients were not subscribed"
        return result
