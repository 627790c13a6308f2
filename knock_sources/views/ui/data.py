"""What actions wrote: users, objects and their subscribers, tenants, audiences and their members (read-only)."""

from __future__ import annotations

from flask import Blueprint, g, render_template, request
from peewee import fn

from knock_sources.actions.objects import find_object
from knock_sources.actions.users import find_user, users_by_id
from knock_sources.errors import NotFound
from knock_sources.store.dataplane import (
    Audience,
    AudienceMember,
    Object,
    Subscription,
    Tenant,
    User,
    Workflow,
    WorkflowRun,
)
from knock_sources.views.api.common import paginate
from knock_sources.views.api.shapes import serialize_object, serialize_tenant, serialize_user

bp = Blueprint("data", __name__)


def _page(query, id_field):
    return paginate(query, id_field, lambda row: row)


@bp.get("/<env:env>/data/users")
def users():
    """Users, newest first; ``q`` finds one id."""
    query = User.select().where(User.environment == g.environment)
    wanted = request.args.get("q", "").strip()
    if wanted:
        query = query.where(User.external_id == wanted)
    return render_template("data/users.html", page=_page(query, User.id), q=wanted)


@bp.get("/<env:env>/data/users/<user_id>")
def user(user_id):
    """One user, as the API shows it, with their latest workflow runs."""
    found = find_user(g.environment, user_id)
    if found is None:
        raise NotFound(f"User {user_id!r} does not exist in {g.environment.slug}.", code="user_missing")
    runs = list(
        WorkflowRun.select(WorkflowRun, Workflow)
        .join(Workflow)
        .where((WorkflowRun.environment == g.environment) & (WorkflowRun.recipient_id == user_id))
        .order_by(WorkflowRun.id.desc())
        .limit(20)
    )
    return render_template("data/user.html", user=found, shown=serialize_user(found), runs=runs)


@bp.get("/<env:env>/data/objects")
def objects():
    """Objects, newest first; filter by collection."""
    query = Object.select().where(Object.environment == g.environment)
    collection = request.args.get("collection", "").strip()
    if collection:
        query = query.where(Object.collection == collection)
    return render_template("data/objects.html", page=_page(query, Object.id), collection=collection)


@bp.get("/<env:env>/data/objects/<collection>/<object_id>")
def object(collection, object_id):
    """One object and its subscribers."""
    found = find_object(g.environment, collection, object_id)
    if found is None:
        raise NotFound(f"Object {object_id!r} does not exist in {collection!r}.", code="object_missing")
    query = Subscription.select().where(Subscription.object == found)
    return render_template(
        "data/object.html", obj=found, shown=serialize_object(found), page=_page(query, Subscription.id)
    )


@bp.get("/<env:env>/data/tenants")
def tenants():
    """Tenants, newest first."""
    query = Tenant.select().where(Tenant.environment == g.environment)
    return render_template("data/tenants.html", page=_page(query, Tenant.id))


@bp.get("/<env:env>/data/tenants/<tenant_id>")
def tenant(tenant_id):
    """One tenant, as the API shows it."""
    found = Tenant.get_or_none(environment=g.environment, external_id=tenant_id)
    if found is None:
        raise NotFound(f"Tenant {tenant_id!r} does not exist in {g.environment.slug}.", code="tenant_missing")
    return render_template("data/tenant.html", tenant=found, shown=serialize_tenant(found))


@bp.get("/<env:env>/data/audiences")
def audiences():
    """Audiences with their member counts (one grouped query)."""
    page = _page(Audience.select().where(Audience.environment == g.environment), Audience.id)
    ids = [audience.id for audience in page["entries"]]
    counts = dict(
        AudienceMember.select(AudienceMember.audience, fn.COUNT(AudienceMember.id))
        .where(AudienceMember.audience.in_(ids))
        .group_by(AudienceMember.audience)
        .tuples()
    )
    return render_template("data/audiences.html", page=page, counts=counts)


@bp.get("/<env:env>/data/audiences/<key>")
def audience(key):
    """An audience's members, newest first, each with their user (one query for all of them)."""
    found = Audience.get_or_none(environment=g.environment, key=key)
    if found is None:
        raise NotFound(f"Audience {key!r} does not exist in {g.environment.slug}.", code="audience_missing")
    page = _page(AudienceMember.select().where(AudienceMember.audience == found), AudienceMember.id)
    members = users_by_id(g.environment, [member.user_id for member in page["entries"]])
    return render_template("data/audience.html", audience=found, page=page, users=members)
