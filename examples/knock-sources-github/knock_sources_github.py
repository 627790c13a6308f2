"""GitHub webhooks as a knock-sources provider: an example third-party plugin.

Signature scheme: https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
Events and payloads: https://docs.github.com/en/webhooks/webhook-events-and-payloads

Installed next to knock-sources, this module is found through the
``knock_sources`` entry point declared in ``pyproject.toml``.
"""

from knock_sources import DefaultMapping, Provider, hookimpl, signing
from knock_sources.errors import SignatureError

__version__ = "0.1.0"

SIGNATURE_HEADER = "X-Hub-Signature-256"
PREFIX = "sha256="

_USER = {
    "login": "octocat",
    "id": 583231,
    "avatar_url": "https://avatars.githubusercontent.com/u/583231?v=4",
    "type": "User",
}
_REPOSITORY = {
    "id": 1296269,
    "name": "Hello-World",
    "full_name": "octocat/Hello-World",
    "private": False,
    "html_url": "https://github.com/octocat/Hello-World",
    "default_branch": "main",
    "owner": _USER,
}


def _example(event, delivery, body):
    headers = {
        "content-type": "application/json",
        "user-agent": "GitHub-Hookshot/7a1e5c9",
        "x-github-event": event,
        "x-github-delivery": delivery,
        "x-github-hook-id": "292430182",
    }
    return [{"body": body, "headers": headers}]


def _trigger(event, workflow_key, item):
    # The author of the issue or pull request is the recipient, keyed by login.
    return DefaultMapping(
        event,
        "workflows_trigger",
        {
            "key": workflow_key,
            "recipients": f"body.{item}.user.login",
            "data": {
                "action": "body.action",
                "title": f"body.{item}.title",
                "url": f"body.{item}.html_url",
                "repository": "body.repository.full_name",
            },
        },
    )


class GitHubProvider(Provider):
    """Repository events from GitHub, verified with the webhook's secret."""

    slug = "github"
    name = "GitHub"
    description = "Trigger workflows from GitHub issues and pull requests, and track repositories."
    version = __version__
    categories = ("Developer tools",)
    docs_url = "https://docs.github.com/en/webhooks"
    # The type is only in a header; body.action refines it ("opened", "closed").
    event_type_path = "headers.x-github-event"
    # GitHub signs no timestamp, so replays are stopped by idempotency alone.
    timestamped = False
    idempotency_key_path = "headers.x-github-delivery"
    default_mappings = (
        _trigger("issues", "github-issue", "issue"),
        _trigger("pull_request", "github-pull-request", "pull_request"),
        DefaultMapping(
            "repository",
            "objects_set",
            {
                "collection": "repositories",
                "id": "body.repository.full_name",
                "name": "body.repository.name",
                "properties": {"url": "body.repository.html_url", "private": "body.repository.private"},
            },
        ),
    )
    example_payloads = {
        "issues": _example(
            "issues",
            "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            {
                "action": "opened",
                "issue": {
                    "id": 1,
                    "number": 1347,
                    "title": "Found a bug",
                    "state": "open",
                    "user": _USER,
                    "html_url": "https://github.com/octocat/Hello-World/issues/1347",
                },
                "repository": _REPOSITORY,
                "sender": _USER,
            },
        ),
        "pull_request": _example(
            "pull_request",
            "8b1c2d3e-cc78-11e3-81ab-4c9367dc0958",
            {
                "action": "opened",
                "number": 1348,
                "pull_request": {
                    "id": 2,
                    "number": 1348,
                    "title": "Fix the bug",
                    "state": "open",
                    "user": _USER,
                    "html_url": "https://github.com/octocat/Hello-World/pull/1348",
                },
                "repository": _REPOSITORY,
                "sender": _USER,
            },
        ),
        "repository": _example(
            "repository",
            "9c2d3e4f-cc78-11e3-81ab-4c9367dc0958",
            {
                "action": "created",
                "repository": _REPOSITORY,
                "sender": _USER,
            },
        ),
    }

    def verify(self, envelope, config):
        """Raise ``SignatureError`` unless ``X-Hub-Signature-256`` matches a configured secret."""
        secrets = signing.signing_secrets(config)
        header = signing.require_header(envelope, SIGNATURE_HEADER)
        # A header sent twice arrives joined with ", "; every copy must carry the prefix.
        values = [value.strip() for value in header.split(",")]
        if not all(value.startswith(PREFIX) for value in values):
            raise SignatureError(f"the {SIGNATURE_HEADER} header is malformed", code="signature_malformed")
        signatures = [value[len(PREFIX) :] for value in values]
        signing.check_signatures((signing.hmac_sha256_hex(s, envelope.raw_body) for s in secrets), signatures)

    def sign(self, raw_body, secret, *, timestamp=None):
        """Return the ``X-Hub-Signature-256`` header for ``raw_body`` (GitHub signs no timestamp)."""
        return {SIGNATURE_HEADER: PREFIX + signing.hmac_sha256_hex(secret, raw_body)}


@hookimpl
def register_providers():
    """Register the GitHub provider."""
    return [GitHubProvider()]
