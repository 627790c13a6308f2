"""Subscription actions: subscribe and unsubscribe recipients to an object."""

from __future__ import annotations

from knock_sources.actions.base import Action
from knock_sources.actions.fields import JSONObject, RecipientList
from knock_sources.actions.objects import ObjectSchema, find_object, set_object
from knock_sources.actions.recipients import ensure_recipient, reference
from knock_sources.models import Subscription, utcnow

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
        obj = set_object(environment, params["collection"], params["id"], {})
        subscribed, skipped = [], []
        for recipient in params["recipients"]:
            if not ensure_recipient(environment, recipient):
                skipped.append({**reference(recipient), "reason": "not identified"})
                continue
            subscription = Subscription.get_or_create_row(
                environment=environment,
                object=obj,
                recipient_collection=recipient["collection"],
                recipient_id=recipient["id"],
            )
            if params.get("properties") is not None:
                subscription.properties = params["properties"]
            subscription.updated_at = utcnow()
            subscription.save()
            subscribed.append(reference(recipient))
        return {"subscribed": subscribed, "skipped_recipients": skipped}


class Unsubscribe(Action):
    """Remove recipients' subscriptions to an object."""

    action_type = "objects_unsubscribe"
    name = "Unsubscribe from object"
    params_schema = UnsubscribeSchema
    literal_params = frozenset({"collection"})

    def execute(self, context, params):
        """Delete the subscriptions; report how many existed."""
        obj = find_object(context.environment, params["collection"], params["id"])
        if obj is None:
            return {"unsubscribed": 0, "note": "object did not exist"}
        removed = 0
        for recipient in params["recipients"]:
            removed += Subscription.delete().where(
                (Subscription.object == obj)
                & (Subscription.recipient_collection == recipient["collection"])
                & (Subscription.recipient_id == recipient["id"])
            ).execute()
        return {"unsubscribed": removed}
