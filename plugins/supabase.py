"""Supabase Database Webhooks (unsigned), e.g. a trigger on ``auth.users``.

Database Webhooks carry no signature, timestamp or event id:
https://supabase.com/docs/guides/database/webhooks. The only protection is a
static header configured on the webhook, checked here in constant time when
a secret is set (``Authorization: Bearer <secret>`` by default, or the
header named by the ``secret_header`` setting).
"""

from knock_sources.hookspecs import hookimpl
from knock_sources.paths import MISSING
from knock_sources.providers import DefaultMapping, SharedSecretProvider, load_example_payloads

SECRET_HEADER = "authorization"

_IDENTIFY = {
    "id": "body.record.id",
    "email": "body.record.email",
    "phone_number": "body.record.phone",
    "properties": "body.record.raw_user_meta_data",
}


class SupabaseProvider(SharedSecretProvider):
    """Row changes from Supabase Database Webhooks, typed ``{schema}.{table}:{operation}``."""

    slug = "supabase"
    name = "Supabase"
    description = "Identify users from inserts and updates on Supabase's auth.users table."
    categories = ("Database", "Authentication")
    docs_url = "https://supabase.com/docs/guides/database/webhooks"
    # The type is composed from three fields (see event_type), as Knock's
    # Supabase preprocess script does; there is no single path to it.
    event_type_path = None
    # Supabase sends no event id, so idempotency is left to the user (e.g. a
    # preprocess key built from record.id and record.updated_at).
    idempotency_key_path = None
    secret_header = SECRET_HEADER
    default_mappings = (
        DefaultMapping("auth.users:INSERT", "users_identify", _IDENTIFY),
        DefaultMapping("auth.users:UPDATE", "users_identify", _IDENTIFY),
    )
    # pg_net posts the trigger's row as JSON with only the headers set on the webhook.
    example_payloads = load_example_payloads(__package__, slug)

    def event_type(self, resolve):
        """Return ``"{schema}.{table}:{type}"``, e.g. ``"auth.users:INSERT"``, or ``MISSING``."""
        parts = [resolve(f"body.{name}") for name in ("schema", "table", "type")]
        if not all(isinstance(part, str) and part for part in parts):
            return MISSING
        schema, table, operation = parts
        return f"{schema}.{table}:{operation}"


@hookimpl
def register_providers():
    """Register the Supabase provider."""
    return [SupabaseProvider()]
