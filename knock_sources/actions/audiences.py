"""Audience actions: add and remove members of a static audience.

As Knock's ``/v1/audiences/{key}/members`` with ``create_audience=true``:
each member is a user (an id or an inline user, identified first) with an
optional tenant, at most 1,000 per call.
"""

from __future__ import annotations

from marshmallow import Schema

from knock_sources.actions.base import Action
from knock_sources.actions.fields import Identifier, LiteralKey, UserList, inline_attributes
from knock_sources.actions.users import identify
from knock_sources.store.dataplane import Audience, AudienceMember

MAX_MEMBERS = 1000


class AudienceMembersSchema(Schema):
    """Parameters of ``audiences_add_member`` and ``audiences_remove_member``."""

    key = LiteralKey(required=True)
    users = UserList(required=True, max_items=MAX_MEMBERS)
    tenant = Identifier(allow_none=True)


class AddAudienceMember(Action):
    """Add users to an audience, creating it if it does not exist."""

    action_type = "audiences_add_member"
    name = "Add audience member"
    params_schema = AudienceMembersSchema
    literal_params = frozenset({"key"})

    def execute(self, context, params):
        """Identify each user (as Knock's members API does) and add the membership."""
        environment = context.environment
        audience, audience_created = Audience.get_or_create_row(environment=environment, key=params["key"])
        tenant = params.get("tenant") or ""
        added, already = [], []
        for user in params["users"]:
            identify(environment, user["id"], inline_attributes(user) or {}, context.lookups)
            _, member_created = AudienceMember.get_or_create_row(audience=audience, user_id=user["id"], tenant=tenant)
            (added if member_created else already).append(user["id"])
        return {"key": audience.key, "audience_created": audience_created, "added": added, "already_members": already}


class RemoveAudienceMember(Action):
    """Remove users from an audience."""

    action_type = "audiences_remove_member"
    name = "Remove audience member"
    params_schema = AudienceMembersSchema
    literal_params = frozenset({"key"})

    def execute(self, context, params):
        """Delete the memberships (within ``tenant`` when given); report how many existed."""
        audience = Audience.get_or_none(environment=context.environment, key=params["key"])
        if audience is None:
            return {"key": params["key"], "removed": 0, "note": "audience did not exist"}
        removed = (
            AudienceMember.delete()
            .where(
                (AudienceMember.audience == audience)
                & (AudienceMember.user_id.in_([user["id"] for user in params["users"]]))
                & (AudienceMember.tenant == (params.get("tenant") or ""))
            )
            .execute()
        )
        return {"key": audience.key, "removed": removed}
