"""Tenant actions: set and delete (Knock's ``/v1/tenants`` API)."""

from __future__ import annotations

from marshmallow import Schema

from knock_sources.actions.base import Action
from knock_sources.actions.fields import TENANT_NAME_LENGTH, Identifier, JSONObject, Text
from knock_sources.store import utcnow
from knock_sources.store.dataplane import Tenant


def merge(stored: dict, changes: dict) -> dict:
    """Merge ``changes`` into ``stored`` recursively, so ``settings.branding`` keeps unsent keys."""
    merged = dict(stored)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def set_tenant(environment, tenant_id: str, *, name=None, properties=None, settings=None) -> Tenant:
    """Create or update a tenant, merging ``name``, ``properties`` and ``settings``."""
    tenant, _ = Tenant.get_or_create_row(environment=environment, external_id=tenant_id)
    if name is None and not properties and not settings:
        return tenant
    if name is not None:
        tenant.name = name
    tenant.properties = {**(tenant.properties or {}), **(properties or {})}
    tenant.settings = merge(tenant.settings or {}, settings or {})
    tenant.updated_at = utcnow()
    tenant.save()
    return tenant


def set_inline_tenant(environment, tenant: dict) -> Tenant:
    """Set a tenant given inline (``{"id", "name", "settings", ...custom properties}``)."""
    custom = {
        key: value for key, value in tenant.items() if key not in ("id", "name", "settings") and value is not None
    }
    name = tenant.get("name")
    return set_tenant(
        environment,
        tenant["id"],
        name=None if name is None else str(name),
        properties=custom,
        settings=tenant.get("settings"),
    )


class TenantSchema(Schema):
    """A tenant's id."""

    id = Identifier(required=True)


class SetTenantSchema(TenantSchema):
    """Parameters of ``tenants_set``."""

    name = Text(allow_none=True, max_length=TENANT_NAME_LENGTH)
    properties = JSONObject(allow_none=True)
    settings = JSONObject(allow_none=True)


class SetTenant(Action):
    """Create or update a tenant with properties and settings from the event."""

    action_type = "tenants_set"
    name = "Set tenant"
    params_schema = SetTenantSchema

    def execute(self, context, params):
        """Merge the tenant's name, properties and settings (branding, preference set)."""
        created = Tenant.get_or_none(environment=context.environment, external_id=params["id"]) is None
        tenant = set_tenant(
            context.environment,
            params["id"],
            name=params.get("name"),
            properties=params.get("properties"),
            settings=params.get("settings"),
        )
        return {"id": tenant.external_id, "created": created}


class DeleteTenant(Action):
    """Delete a tenant; its users are left alone."""

    action_type = "tenants_delete"
    name = "Delete tenant"
    params_schema = TenantSchema

    def execute(self, context, params):
        """Delete the tenant; one that does not exist is a success with a note (Knock: 204)."""
        deleted = (
            Tenant.delete()
            .where((Tenant.environment == context.environment) & (Tenant.external_id == params["id"]))
            .execute()
        )
        result = {"id": params["id"], "deleted": bool(deleted)}
        if not deleted:
            result["note"] = "tenant did not exist"
        return result
