"""Creating, configuring and describing sources (the service behind the API).

A source is created at account level and gets a ``SourceEnvironment`` with
its own unguessable token in every environment. A source made from a
provider template starts with the provider's settings and default mappings
in each environment. Signing secrets are encrypted and never shown back.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from knock_sources.control import mappings, signing_secrets
from knock_sources.control.encryption import Keyring
from knock_sources.errors import NotFound, ValidationFailed
from knock_sources.ingest import verification
from knock_sources.ingest.cache import snapshot
from knock_sources.scripting import ScriptError, check_script
from knock_sources.store import db, utcnow
from knock_sources.store.control import Environment, Source, SourceEnvironment
from knock_sources.store.keys import SOURCE_KEY
from knock_sources.worker.rules import provider_for

# 18 random bytes: 144 bits, 24 URL-safe characters.
TOKEN_BYTES = 18


def new_token() -> str:
    """Return a fresh, unguessable endpoint token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def endpoint_url(config, token: str) -> str:
    """Return the full webhook URL for ``token``."""
    return f"{config['PUBLIC_BASE_URL']}/integrations/receive/{token}"


def tracking_host(config) -> str:
    """Return the host an SDK is pointed at to use the tracking API (``<host>/v1/batch``...)."""
    return f"{config['PUBLIC_BASE_URL']}/segment"


#: Settings the API shows but never takes: a body read back from a GET may carry them.
READ_ONLY_SETTINGS = ("endpoint", "signing_secrets_info", "write_key", "tracking_host")


def get_source(key: str) -> Source:
    """Return source ``key`` or raise ``NotFound``."""
    source = Source.get_or_none(Source.key == key)
    if source is None:
        raise NotFound(f"Source {key!r} does not exist.", code="source_missing")
    return source


def get_source_environment(source: Source, environment: Environment) -> SourceEnvironment:
    """Return the source's configuration in ``environment``, or raise ``NotFound``.

    Reads never write: every environment is created, with the provider's
    defaults, when the source is (``upsert_source``) or when ``flask init-db``
    meets a newly configured environment (``create_missing_environments``).
    """
    source_env = SourceEnvironment.get_or_none(source=source, environment=environment)
    if source_env is None:
        raise NotFound(
            f"Source {source.key!r} has no {environment.slug!r} environment yet; run 'flask init-db'.",
            code="source_environment_missing",
        )
    return source_env


def create_missing_environments(registry) -> int:
    """Give every source a configuration, with its provider's defaults, in every environment; return how many."""
    created = 0
    environments = list(Environment.select())
    with db.atomic():
        for source in Source.select():
            existing = {
                row.environment_id for row in SourceEnvironment.select().where(SourceEnvironment.source == source)
            }
            provider = provider_for(registry, source.provider)
            for environment in environments:
                if environment.id not in existing:
                    _create_environment(source, environment, provider)
                    created += 1
    return created


def upsert_source(state, key: str, body: dict, *, partial: bool = False) -> Source:
    """Create or update source ``key`` from a validated ``PUT`` (or, with ``partial``, ``PATCH``) body.

    ``state`` is the app's ``KnockSources`` (registry, keyring, script limits).
    ``preconfigured_provider`` chooses the template of a new source, as in
    Knock; naming another provider for an existing source is refused, since
    it would be silently ignored.
    """
    registry = state.registry
    environments = {env.slug: env for env in Environment.select()}
    unknown = sorted(set(body.get("environment_settings", {})) - set(environments))
    if unknown:
        raise ValidationFailed({"environment_settings": {slug: ["Unknown environment."] for slug in unknown}})
    with db.atomic():
        source = Source.get_or_none(Source.key == key)
        if source is None:
            if partial:
                raise NotFound(f"Source {key!r} does not exist.", code="source_missing")
            slug = body.get("preconfigured_provider") or "custom_http"
            if slug not in registry.providers:
                raise ValidationFailed({"preconfigured_provider": [f"No provider {slug!r} is installed."]})
            source = Source.create(key=key, name=body["name"], description=body.get("description"), provider=slug)
            provider = registry.providers[slug]
            for environment in environments.values():
                _create_environment(source, environment, provider)
        else:
            requested = body.get("preconfigured_provider")
            if requested and requested != source.provider:
                raise ValidationFailed(
                    {
                        "preconfigured_provider": [
                            f"Source {key!r} was created from {source.provider!r}; the provider of an existing "
                            "source cannot change. Create a new source instead."
                        ]
                    }
                )
            for name in ("name", "description"):
                if name in body:
                    setattr(source, name, body[name])
            source.updated_at = utcnow()
            source.save()
        for slug, env_body in body.get("environment_settings", {}).items():
            source_env = SourceEnvironment.get_or_none(
                source=source, environment=environments[slug]
            ) or _create_environment(source, environments[slug], provider_for(registry, source.provider))
            try:
                _apply_environment_settings(state, source_env, env_body)
            except ValidationFailed as error:
                raise error.within("environment_settings", slug) from None
    return source


def available_key(wanted: str) -> str:
    """Return ``wanted``, or ``wanted-2``, ``wanted-3``... when a source already has that key."""
    key, suffix = wanted, 1
    while Source.select().where(Source.key == key).exists():
        suffix += 1
        key = f"{wanted}-{suffix}"
    return key


def connect(state, environment, *, key, name, provider_slug, inactive_defaults=(), signing_secret=None) -> Source:
    """Create source ``key`` from a provider's template, as the dashboard's "Connect" does.

    Every environment gets the provider's settings and default mappings;
    the defaults at the positions in ``inactive_defaults`` are created
    switched off, so that they can be switched on later. ``signing_secret``
    is stored, encrypted, for ``environment`` only.
    """
    problems = {}
    key_problem = SOURCE_KEY.problem(key)
    if key_problem:
        problems["key"] = [key_problem]
    elif Source.select().where(Source.key == key).exists():
        problems["key"] = [f"A source with the key {key!r} already exists."]
    if not name or len(name) > Source.name.max_length:
        problems["name"] = [f"Give the source a name of 1 to {Source.name.max_length} characters."]
    provider = state.registry.providers.get(provider_slug)
    if provider is None:
        problems["provider"] = [f"No provider {provider_slug!r} is installed."]
    if problems:
        raise ValidationFailed(problems)
    with db.atomic():
        source = Source.create(key=key, name=name, provider=provider_slug)
        for each in Environment.select():
            source_env = _create_environment(source, each, provider, inactive_defaults)
            if each.id == environment.id and signing_secret:
                signing_secrets.replace(state.keyring, source_env, signing_secret)
    return source


def _create_environment(source, environment, provider, inactive_defaults=()) -> SourceEnvironment:
    source_env = SourceEnvironment.create(
        source=source, environment=environment, token=new_token(), settings=provider.default_settings()
    )
    mappings.create_defaults(source_env, provider, inactive=inactive_defaults)
    return source_env


def configure(state, source_env, settings: dict) -> None:
    """Change some of an environment's settings (the others are kept); a script is compiled first (422)."""
    _apply_environment_settings(state, source_env, {"settings": settings})


def set_active(state, source_env, active: bool) -> None:
    """Enable or disable a source environment: a disabled one's URL answers 404 and logs nothing."""
    _apply_environment_settings(state, source_env, {"active": active})


def _apply_environment_settings(state, source_env, env_body: dict) -> None:
    keyring = state.keyring
    settings = dict(env_body.get("settings") or {})
    if settings.get("preprocess_script"):
        _check_script(state.config, settings["preprocess_script"]["source"])
    for name in READ_ONLY_SETTINGS:
        settings.pop(name, None)
    signing_secret = settings.pop("signing_secret", None)
    secret_list = settings.pop("signing_secrets", None)
    # Settings merge key by key; null clears a path.
    source_env.settings = {**(source_env.settings or {}), **settings}
    if secret_list is not None:
        source_env.signing_secrets = [
            signing_secrets.new_entry(keyring, entry["secret"], entry["expires_at"]) for entry in secret_list
        ]
    elif signing_secret is not None:
        # The new secret becomes the current one; secrets with a future
        # expiry stay valid until then, so a rollover needs no downtime.
        source_env.signing_secrets = signing_secrets.rolled_over(
            source_env.signing_secrets, signing_secrets.new_entry(keyring, signing_secret)
        )
    if "active" in env_body:
        source_env.active = env_body["active"]
    source_env.updated_at = utcnow()
    source_env.save()
    if env_body.get("mappings") is not None:
        mappings.replace_all(state.registry, source_env, env_body["mappings"])


def _check_script(config, source: str) -> None:
    """Refuse a script that does not compile or defines no ``main`` (422, with the engine's message)."""
    try:
        check_script(source, timeout_ms=config["SCRIPT_TIMEOUT_MS"], memory_mb=config["SCRIPT_MEMORY_MB"])
    except ScriptError as error:
        raise ValidationFailed(
            {"settings": {"preprocess_script": [str(error)]}}, message=f"The script does not compile: {error}"
        ) from None


def verification_summary(state, source: Source, source_env: SourceEnvironment) -> dict:
    """How the environment verifies requests and whether it can accept any now (``verification.summary``)."""
    provider = state.registry.providers.get(source.provider)
    receiving = snapshot(source_env, state.keyring)
    return verification.summary(provider, receiving, active=source_env.active, now=utcnow())


def rotate_token(source_env: SourceEnvironment, grace_seconds: int) -> SourceEnvironment:
    """Give ``source_env`` a new URL token; the current one keeps working for ``grace_seconds``.

    A token still in its grace period from an earlier rotation stops
    working at once: only the last replaced token is kept.
    """
    source_env.previous_token = source_env.token if grace_seconds > 0 else None
    source_env.previous_token_expires_at = utcnow() + timedelta(seconds=grace_seconds) if grace_seconds > 0 else None
    source_env.token = new_token()
    source_env.updated_at = utcnow()
    source_env.save()
    return source_env


def previous_token_expiry(source_env: SourceEnvironment) -> datetime | None:
    """When the environment's previous token stops working, or ``None`` when none still works."""
    expires_at = source_env.previous_token_expires_at
    return expires_at if source_env.previous_token and expires_at and expires_at > utcnow() else None


def rotate_secrets(keyring: Keyring) -> tuple[int, int]:
    """Re-encrypt every signing secret under the current key; return (rotated, undecryptable)."""
    rotated = failed = 0
    for source_env in SourceEnvironment.select(SourceEnvironment, Source).join(Source):
        entries = []
        for entry in source_env.signing_secrets or ():
            token = keyring.rotate(entry["secret"])
            if token is None:
                failed += 1
                keyring.report_undecryptable(
                    f"a signing secret of source {source_env.source.key!r} (environment {source_env.id})"
                )
                entries.append(entry)
            else:
                rotated += 1
                entries.append({**entry, "secret": token})
        if entries:
            source_env.signing_secrets = entries
            source_env.save()
    return rotated, failed
