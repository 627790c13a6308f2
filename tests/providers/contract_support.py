"""Providers for testing the contract kit itself, importable from a ``python -O`` subprocess too."""

from knock_sources import signing
from knock_sources.providers import Provider

SIGNATURE_HEADER = "X-Body-Signature"


class UndeclaredProvider(Provider):
    """A signed provider in GitHub's shape (HMAC of the raw body, no timestamp) that does not say so."""

    slug = "undeclared"
    name = "Undeclared"
    description = "Signs the body and no timestamp, but declares neither tolerance_seconds nor timestamped."

    def verify(self, envelope, config):
        """Raise ``SignatureError`` unless the header is the body's HMAC under a configured secret."""
        secrets = signing.signing_secrets(config)
        signature = signing.require_header(envelope, SIGNATURE_HEADER)
        signing.check_signatures((signing.hmac_sha256_hex(s, envelope.raw_body) for s in secrets), [signature])

    def sign(self, raw_body, secret, *, timestamp=None):
        """Return the header ``verify`` accepts (there is no timestamp to sign)."""
        return {SIGNATURE_HEADER: signing.hmac_sha256_hex(secret, raw_body)}


class UntimedProvider(UndeclaredProvider):
    """The same provider, declaring that its signature covers no timestamp."""

    slug = "untimed"
    timestamped = False


class GullibleProvider(UntimedProvider):
    """A provider that accepts every request, so most checks must fail."""

    slug = "gullible"

    def verify(self, envelope, config):
        """Accept anything."""
