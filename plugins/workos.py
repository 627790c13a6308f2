"""WorkOS webhooks (Directory Sync and SSO), signed with ``WorkOS-Signature``.

Signature scheme: https://workos.com/docs/events/data-syncing/webhooks
(see "Validating webhooks"; the SDKs' ``webhooks.verify_header``).
Event payloads: https://workos.com/docs/events
"""

from knock_sources import signing
from knock_sources.hookspecs import hookimpl
from knock_sources.providers import DefaultMapping, Provider, load_example_payloads

SIGNATURE_HEADER = "WorkOS-Signature"
#: Directory groups become Knock objects in this collection.
GROUPS_COLLECTION = "directory_groups"


def _mapping(event_type, action_type, **parameters):
    return DefaultMapping(event_type, action_type, parameters)


def _membership(event_type, action_type):
    return _mapping(
        event_type,
        action_type,
        collection=GROUPS_COLLECTION,
        id="body.data.group.id",
        recipients="body.data.user.id",
    )


def _connection_trigger(event_type, workflow_key):
    # A connection belongs to an organization, not a user: the organization id
    # is the recipient and the tenant. Point the recipients elsewhere if needed.
    return _mapping(
        event_type,
        "workflows_trigger",
        key=workflow_key,
        recipients="body.data.organization_id",
        tenant="body.data.organization_id",
        data="body.data",
    )


_USER_IDENTIFY = {
    "id": "body.data.id",
    "email": "body.data.email",
    "properties": "body.data.custom_attributes",
}
_GROUP_SET = {
    "collection": GROUPS_COLLECTION,
    "id": "body.data.id",
    "name": "body.data.name",
    "properties": {"directory_id": "body.data.directory_id", "organization_id": "body.data.organization_id"},
}


class WorkOSProvider(Provider):
    """Directory Sync and SSO events from WorkOS, verified with the endpoint's secret."""

    slug = "workos"
    name = "WorkOS"
    description = "Sync directory users and groups and react to SSO connection changes from WorkOS."
    categories = ("Authentication", "Directory Sync")
    docs_url = "https://workos.com/docs/events/data-syncing/webhooks"
    event_type_path = "body.event"
    timestamp_path = "body.created_at"  # ISO-8601
    idempotency_key_path = "body.id"
    #: The WorkOS SDKs' default; checked in milliseconds because that is what WorkOS sends.
    tolerance_seconds = 180
    timestamp_unit = "ms"
    default_mappings = (
        _mapping("dsync.user.created", "users_identify", **_USER_IDENTIFY),
        _mapping("dsync.user.updated", "users_identify", **_USER_IDENTIFY),
        _mapping(
            "dsync.user.deleted",
            "workflows_trigger",
            key="directory-user-deleted",
            recipients="body.data.id",
            data="body.data",
        ),
        _mapping("dsync.group.created", "objects_set", **_GROUP_SET),
        _mapping("dsync.group.updated", "objects_set", **_GROUP_SET),
        _mapping("dsync.group.deleted", "objects_delete", collection=GROUPS_COLLECTION, id="body.data.id"),
        _membership("dsync.group.user_added", "objects_subscribe"),
        _membership("dsync.group.user_removed", "objects_unsubscribe"),
        _connection_trigger("connection.activated", "sso-connection-activated"),
        _connection_trigger("connection.deactivated", "sso-connection-deactivated"),
    )
    example_payloads = load_example_payloads(__package__, slug)

    def verify(self, envelope, config):
        """Raise ``SignatureError`` unless the ``v1`` signature matches a configured secret.

        The header is ``t=<unix ms>, v1=<hex>``. The WorkOS SDK splits on
        exactly ``", "``; we accept any spacing. The signed content uses the
        millisecond timestamp exactly as sent.
        """
        signing.verify_timestamped_hmac(
            envelope, config, SIGNATURE_HEADER, tolerance=self.tolerance_seconds, unit=self.timestamp_unit
        )

    def sign(self, raw_body, secret, *, timestamp=None):
        """Return a ``WorkOS-Signature`` header for ``raw_body`` (``timestamp`` in Unix milliseconds)."""
        value = signing.sign_timestamped_hmac(
            raw_body, secret, timestamp=timestamp, unit=self.timestamp_unit, separator=", "
        )
        return {SIGNATURE_HEADER: value}


@hookimpl
def register_providers():
    """Register the WorkOS provider."""
    return [WorkOSProvider()]
