"""The custom HTTP source (``custom_http``): any service, your own event shape.

Requests are not signed by a known scheme. They are authenticated by the
unguessable endpoint token and, optionally, by a shared secret sent in a
header (``X-Webhook-Secret`` by default, as Knock's default script checks)
or by a verification script (``scripting.py``).
"""

from knock_sources.hookspecs import hookimpl
from knock_sources.providers import DefaultMapping, SharedSecretProvider


class CustomHttpProvider(SharedSecretProvider):
    """Events from any service that can POST JSON."""

    slug = "custom_http"
    name = "Custom HTTP"
    description = "Receive webhook events from any service and map them to actions."
    version = "0.0.1"
    categories = ("Infrastructure",)
    docs_url = "https://docs.knock.app/integrations/sources/custom"
    secret_header = "x-webhook-secret"
    # Knock's Custom HTTP template ships this one mapping (https://docs.knock.app/integrations/sources/custom).
    default_mappings = (
        DefaultMapping(
            event_type="user.identified",
            action_type="users_identify",
            action_parameters={
                "id": "body.user_id",
                "name": "body.name",
                "email": "body.email",
                "properties": "body.metadata",
            },
        ),
    )

    example_payloads = {
        "user.identified": [
            {
                "body": {
                    "type": "user.identified",
                    "user_id": "user_2f9a",
                    "name": "Ada Lovelace",
                    "email": "ada@example.com",
                    "metadata": {"plan": "pro", "company": "Analytical Engines"},
                },
                "headers": {"content-type": "application/json"},
            }
        ]
    }

    def default_settings(self):
        """Custom sources start without idempotency, as in Knock."""
        return {**super().default_settings(), "enforce_verification": False}


@hookimpl
def register_providers():
    """Register the custom HTTP provider."""
    return [CustomHttpProvider()]
