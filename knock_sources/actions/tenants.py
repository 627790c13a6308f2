"""Tenant actions: set and delete (Knock's ``/v1/tenants`` API)."""

from __future__ import annotations

from marshmallow import Schema

from knock_sources.actions.base import Action
from knock_sources.actions.fields import Identifier, JSONObject, Text
from knock_sources.models import Tenant, utcnow


def set_tenant(environment, tenant_id: str, attributes: dict) -> Tenant:
    """Create or update a tenant; ``name`` and ``settings`` are fields, the rest properties."""
    tenant = Tenant.get_or_create_row(environment=environment, external_id=tenant_id)
    properties = dict(tenant.properties or {})
    for key, value in attributes.items():
        if value is None or key == "id":
            continue
        if key == "name":
            tenant.name = value if isinstance(value, str) else str(value)
        elif key == "settings" and isinstance(value, dict):
            tenant.settings = {**(tenant.settings or {}), **value}
        else:
            properties[key] = value
    tenant.properties = properties
    tenant.updated_at = utcnow()
    tenant.save()
    return tenant


class TenantSchema(Schema):
    """A tenant's id."""

    id = Identifier(required=True)


class SetTenantSchema(TenantSchema):
    """Parameters of ``tenants_set``."""

    name = Text(allow_none=True)
    properties = JSONObject(allow_none=True)
    settings = JSONObject(allow_none=True)


class SetTenant(Action):
    """Create or update a tenant with properties and settings from the event."""

    action_type = "tenants_set"
    name = "Set tenant"
    params_schema = SetTenantSchema

    def execute(self, context, params):
        """Merge the tenant's name, properties and settings."""
        attributes = {**(params.get("properties") or {}), "name": params.get("name"), "settings": params.get("settings")}
        tenant = set_tenant(context.environment, params["id"], attributes)
        return {"id": tenant.external_id}


class DeleteTenant(Action):
    """Delete a tenant; its users are left alone."""

    action_type = "tenants_delete"
    name = "Delete tenant"
    params_schema = TenantSchema

    def execute(self, context, params):
        """Delete the tenant; one that does not exist is a success with a note."""
        deleted = Tenant.delete().where(
            (Tenant.environment == context.environment) & (Tenant.external_id == params["id"])
        ).execute()
        return {"id": params["id"], "deleted": bool(deleted), **({} if deleted else {"note": "tenant did not exist"})}
