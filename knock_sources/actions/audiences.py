"""Audience actions: add and remove members of a static audience."""

from __future__ import annotations

from marshmallow import Schema

from knock_sources.actions.base import Action
from knock_sources.actions.fields import Text, UserList, inline_attributes
from knock_sources.actions.users import upsert_user
from knock_sources.models import Audience, AudienceMember

MAX_MEMBERS = 1000


class AudienceMembersSchema(Schema):
    """Parameters of ``audiences_add_member`` and ``audiences_remove_member``."""

    key = Text(required=True)
    users = UserList(required=True, max_items=MAX_MEMBERS)
    tenant = Text(allow_none=True)


class AddAudienceMember(Action):
    """Add users to an audience, creating it if it does not exist."""

    action_type = "audiences_add_member"
    name = "Add audience member"
    params_schema = AudienceMembersSchema
    literal_params = frozenset({"key"})

    def execute(self, context, params):
        """Identify each user (as Knock's members API does) and add the membership."""
        environment = context.environment
        audience = Audience.get_or_create_row(environment=environment, key=params["key"])
        tenant = params.get("tenant") or ""
        for user in params["users"]:
            upsert_user(environment, user["id"], inline_attributes(user))
            AudienceMember.get_or_create_row(audience=audience, user_id=user["id"], tenant=tenant)
        return {"key": audience.key, "added": [user["id"] for user in params["users"]]}


class RemoveAudienceMember(Action):
    """Remove users from an audience."""

    action_type = "audiences_remove_member"
    name = "Remove audience member"
    params_schema = AudienceMembersSchema
    literal_params = frozenset({"key"})

    def execute(self, context, params):
        """Delete the memberships; report how many existed."""
        audience = Audience.get_or_none(environment=context.environment, key=params["key"])
        if audience is None:
            return {"key": params["key"], "removed": 0, "note": "audience did not exist"}
        removed = AudienceMember.delete().where(
            (AudienceMember.audience == audience)
            & (AudienceMember.user_id.in_([user["id"] for user in params["users"]]))
            & (AudienceMember.tenant == (params.get("tenant") or ""))
        ).execute()
        return {"key": audience.key, "removed": removed}
