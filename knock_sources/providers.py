"""The provider contract: what a source template (Stripe, Clerk, ...) declares.

A provider is a plain object registered through the ``register_providers``
hook. It never imports Flask or reads globals: it receives an ``Envelope`` and
the source environment's configuration, so each one can be tested without an
app, as django-anymail's backends are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any, Mapping

from knock_sources import signing
from knock_sources.errors import PayloadError, SignatureError


@dataclass(frozen=True)
class Envelope:
    """One incoming request as providers, scripts and paths see it.

    ``headers`` has lower-cased names; repeated headers are joined with
    ``", "`` as RFC 9110 allows. ``raw_body`` is the exact bytes received, the
    only thing signatures are computed over. ``body`` is the parsed body: an
    object, or a list for a batch sent to a provider that ``batches``.
    """

    headers: Mapping[str, str]
    raw_body: bytes
    body: dict | list = field(default_factory=dict)
    remote_ip: str | None = None
    received_at: datetime | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        """Return a header by case-insensitive name."""
        return self.headers.get(name.lower(), default)


@dataclass(frozen=True)
class DefaultMapping:
    """An event-action mapping a provider creates on every new source environment."""

    event_type: str
    action_type: str
    action_parameters: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Return the mapping in the JSON API's shape."""
        return {
            "event_type": self.event_type,
            "action_type": self.action_type,
            "action_parameters": self.action_parameters,
        }


def load_example_payloads(package: str, slug: str) -> dict[str, list[dict]]:
    """Return the example payloads stored in ``payloads/<slug>.json`` inside ``package``.

    Providers keep their example requests as data rather than code, in the
    ``example_payloads`` shape (``{event_type: [{"body", "headers"}]}``), and
    load them at import time: ``example_payloads =
    load_example_payloads(__package__, "acme")``. The file is read through
    ``importlib.resources``, so it must be shipped as package data (for
    setuptools, ``[tool.setuptools.package-data]``); it is UTF-8 JSON.
    Raises ``ValueError`` when the file does not hold a JSON object.
    """
    text = resources.files(package).joinpath("payloads", f"{slug}.json").read_text(encoding="utf-8")
    payloads = json.loads(text)
    if not isinstance(payloads, dict):
        raise ValueError(f"{package}/payloads/{slug}.json must hold an object keyed by event type")
    return payloads


class Provider:
    """Base class for source providers; subclasses override class attributes.

    ``verify(envelope, config)`` raises ``SignatureError`` when the request is
    not authentic. ``config`` is a mapping holding ``signing_secrets`` (the
    unexpired secrets of the source environment, in plain text) plus the
    environment's settings. ``sign(raw_body, secret, timestamp=...)`` returns
    headers that ``verify`` accepts; tests and "send test event" use it.
    """

    slug: str = ""
    name: str = ""
    description: str = ""
    version: str = "1.0.0"
    categories: tuple[str, ...] = ()
    docs_url: str | None = None
    #: Whether the provider signs requests cryptographically. Unsigned
    #: providers may still be protected by a shared-secret header.
    signed: bool = True
    #: Replay window for signed timestamps (``tolerance_seconds`` setting overrides).
    tolerance_seconds: int | None = None
    #: Whether the signature covers a timestamp. A signed provider that signs
    #: none (GitHub) sets ``False`` and leaves ``tolerance_seconds`` unset; the
    #: contract kit (``knock_sources.testing``) fails a signed provider that
    #: declares neither, so that its replay checks are never skipped unnoticed.
    timestamped: bool = True
    #: Unit of the signed timestamp: ``"s"`` or ``"ms"`` (WorkOS).
    timestamp_unit: str = "s"
    #: Header carrying a shared secret, for providers checked that way.
    secret_header: str | None = None
    event_type_path: str | None = "body.type"
    timestamp_path: str | None = None
    idempotency_key_path: str | None = None
    default_mappings: tuple[DefaultMapping, ...] = ()
    #: Example requests per event type: ``{event_type: [{"body", "headers"}]}``.
    example_payloads: Mapping[str, list[dict]] = {}
    #: Whether a JSON array body is a batch: one event log per element, all
    #: committed or none (CDP webhook destinations batch).
    batches: bool = False
    #: Whether the Segment-compatible tracking API (``/segment/v1/...``)
    #: takes calls for this provider's sources, the write key being the token.
    tracking_api: bool = False

    def split(self, body: dict | list) -> list:
        """Return the events of a parsed body: the body itself, or a batch's elements.

        Raises ``PayloadError`` for an array sent to a provider that does not
        ``batch`` (override to explain why) and for an empty batch.
        """
        if not isinstance(body, list):
            return [body]
        if not self.batches:
            raise PayloadError("The JSON body must be an object.", code="not_an_object")
        if not body:
            raise PayloadError("The JSON array holds no events.", code="empty_batch")
        return body

    def normalize(self, body: dict) -> dict | None:
        """Check one event; return Knock's normalized form of it, or ``None`` when it has none.

        The normalized form (``{"event", "user_id", "data"}`` for Segment-style
        events) is stored beside the body and overlays it for paths, so that
        ``data.<key>`` addresses ``properties.<key>``. Raise ``PayloadError``
        (``InvalidEvent`` for field errors) for a body the source does not
        accept: it is answered 400, or, inside a batch, logged as rejected.
        """
        return None

    def implicit_mappings(self, settings: Mapping[str, Any], event_type: str) -> tuple[DefaultMapping, ...]:
        """Return the mappings this provider runs for ``event_type`` without storing them.

        A CDP source's "handle identifies" setting is one: identify calls
        identify the user while it is on. They run and are logged like
        stored mappings (their action logs have no mapping id).
        """
        return ()

    def is_verifiable(self, config: Mapping[str, Any]) -> bool:
        """Return whether requests to this environment must pass ``verify``.

        Signed providers always verify (and fail closed without a secret);
        unsigned ones only when a shared secret has been configured.
        """
        return self.signed or bool(config.get("signing_secrets"))

    def verify(self, envelope: Envelope, config: Mapping[str, Any]) -> None:
        """Raise ``SignatureError`` unless the request is authentic."""
        raise SignatureError(f"the {self.slug} provider cannot verify requests")

    def sign(self, raw_body: bytes, secret: str, *, timestamp: int | None = None) -> dict:
        """Return the headers a genuine sender would attach to ``raw_body``."""
        return {}

    def event_type(self, resolve) -> Any:
        """Return the event type, given ``resolve(path)`` over the envelope."""
        return resolve(self.event_type_path)

    def default_settings(self) -> dict:
        """Return the settings a new source environment of this provider starts with."""
        return {
            "event_type_path": self.event_type_path,
            "timestamp_path": self.timestamp_path,
            "idempotency_key_path": self.idempotency_key_path,
            "enforce_idempotency": self.idempotency_key_path is not None,
        }

    def describe(self) -> dict:
        """Return the provider as the ``/v1/source_providers`` API shows it."""
        return {
            "key": self.slug,
            "version": self.version,
            "provider": {
                "name": self.name,
                "description": self.description,
                "categories": list(self.categories),
                "webhook_docs_url": self.docs_url,
            },
            "signed": self.signed,
            "verification": {
                "tolerance_seconds": self.tolerance_seconds,
                "timestamp_unit": self.timestamp_unit,
                "secret_header": self.secret_header,
            },
            "default_settings": self.default_settings(),
            "default_action_mappings": [m.to_dict() for m in self.default_mappings],
            "batches": self.batches,
            "tracking_api": self.tracking_api,
            "example_payloads": dict(self.example_payloads),
        }


class SharedSecretProvider(Provider):
    """An unsigned provider whose requests may carry a shared secret in a header.

    Such senders (Supabase database webhooks, PostHog destinations, your own
    service) cannot sign, so the only check is a static secret compared in
    constant time: ``secret_header`` names the header (the ``secret_header``
    setting overrides it), and ``Authorization: Bearer <secret>`` is accepted.
    """

    signed = False
    timestamped = False
    secret_header: str = "x-webhook-secret"

    def verify(self, envelope: Envelope, config: Mapping[str, Any]) -> None:
        """Raise ``SignatureError`` unless the header carries a configured secret."""
        signing.verify_shared_secret(envelope, config, self.secret_header)

    def sign(self, raw_body: bytes, secret: str, *, timestamp: int | None = None) -> dict:
        """Return the header a sender configured with ``secret`` attaches."""
        return signing.shared_secret_headers(self.secret_header, secret)
