"""Creating, configuring and describing sources (the service behind the API).

A source is created at account level and gets a ``SourceEnvironment`` with
its own unguessable token in every environment. A source made from a
provider template starts with the provider's settings and default mappings
in each environment. Signing secrets are encrypted and never shown back.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from knock_sources.control import encryption
from knock_sources.errors import NotFound, ValidationFailed
from knock_sources.ingest.cache import snapshot
from knock_sources.paths import validate_parameter_spec
from knock_sources.scripting import ScriptError, check_script
from knock_sources.store import db, to_utc_naive, utcnow
from knock_sources.store.control import Environment, Mapping, Source, SourceEnvironment
from knock_sources.worker.processing import provider_for

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


def upsert_source(registry, config, key: str, body: dict) -> Source:
    """Create or update source ``key`` from a validated ``PUT`` body."""
    environments = {env.slug: env for env in Environment.select()}
    unknown = sorted(set(body["environment_settings"]) - set(environments))
    if unknown:
        raise ValidationFailed({"environment_settings": {slug: ["Unknown environment."] for slug in unknown}})
    with db.atomic():
        source = Source.get_or_none(Source.key == key)
        if source is None:
            # preconfigured_provider is honoured on creation only, as in Knock.
            slug = body["preconfigured_provider"] or "custom_http"
            if slug not in registry.providers:
                raise ValidationFailed({"preconfigured_provider": [f"No provider {slug!r} is installed."]})
            source = Source.create(key=key, name=body["name"], description=body["description"], provider=slug)
            provider = registry.providers[slug]
            for environment in environments.values():
                _create_environment(source, environment, provider)
        else:
            source.name = body["name"]
            source.description = body["description"]
            source.updated_at = utcnow()
            source.save()
        for slug, env_body in body["environment_settings"].items():
            source_env = SourceEnvironment.get_or_none(
                source=source, environment=environments[slug]
            ) or _create_environment(source, environments[slug], provider_for(registry, source.provider))
            _apply_environment_settings(registry, config, source_env, env_body)
    return source


def _create_environment(source, environment, provider) -> SourceEnvironment:
    source_env = SourceEnvironment.create(
        source=source, environment=environment, token=new_token(), settings=provider.default_settings()
    )
    for default in provider.default_mappings:
        Mapping.create(
            source_environment=source_env,
            event_type=default.event_type,
            action_type=default.action_type,
            action_parameters=default.action_parameters,
        )
    return source_env


def _apply_environment_settings(registry, config, source_env, env_body: dict) -> None:
    settings = dict(env_body["settings"])
    if settings.get("preprocess_script"):
        _check_script(config, source_env, settings["preprocess_script"]["source"])
    for name in READ_ONLY_SETTINGS:
        settings.pop(name, None)
    signing_secret = settings.pop("signing_secret", None)
    signing_secrets = settings.pop("signing_secrets", None)
    # Settings merge key by key; null clears a path.
    source_env.settings = {**(source_env.settings or {}), **settings}
    if signing_secrets is not None:
        source_env.signing_secrets = [
            _encrypted(config, entry["secret"], entry["expires_at"]) for entry in signing_secrets
        ]
    elif signing_secret is not None:
        # The new secret becomes the current one; secrets with a future
        # expiry stay valid until then, so a rollover needs no downtime.
        now = utcnow()
        still_valid = [
            entry
            for entry in source_env.signing_secrets or ()
            if entry.get("expires_at") and datetime.fromisoformat(entry["expires_at"]) > now
        ]
        source_env.signing_secrets = [_encrypted(config, signing_secret, None), *still_valid]
    source_env.updated_at = utcnow()
    source_env.save()
    if env_body["mappings"] is not None:
        _replace_mappings(registry, source_env, env_body["mappings"])


def _check_script(config, source_env, source: str) -> None:
    """Refuse a script that does not compile or defines no ``main`` (422, with the engine's message)."""
    try:
        check_script(source, timeout_ms=config["SCRIPT_TIMEOUT_MS"], memory_mb=config["SCRIPT_MEMORY_MB"])
    except ScriptError as error:
        slug = source_env.environment.slug
        raise ValidationFailed(
            {"environment_settings": {slug: {"settings": {"preprocess_script": [str(error)]}}}},
            message=f"The script does not compile: {error}",
        ) from None


def _encrypted(config, secret: str, expires_at) -> dict:
    expires_at = to_utc_naive(expires_at)
    return {
        "secret": encryption.encrypt(config["SECRET_KEY"], secret),
        "expires_at": expires_at.isoformat() if expires_at else None,
    }


def _replace_mappings(registry, source_env, mappings: list[dict]) -> None:
    errors = {}
    for index, mapping in enumerate(mappings):
        problems = mapping_problems(registry, mapping)
        if problems:
            errors[index] = problems
    if errors:
        raise ValidationFailed({"mappings": errors})
    Mapping.delete().where(Mapping.source_environment == source_env).execute()
    for mapping in mappings:
        if mapping["is_deleted"]:
            continue
        Mapping.create(
            source_environment=source_env,
            event_type=mapping["event_type"],
            action_type=mapping["action_type"],
            action_parameters=mapping["action_parameters"] or {},
            active=mapping["active"],
        )


def mapping_problems(registry, mapping: dict) -> dict:
    """Return field errors of a mapping: unknown action, unknown parameters, bad paths."""
    action = registry.actions.get(mapping["action_type"])
    if action is None:
        return {"action_type": [f"Unknown action type {mapping['action_type']!r}."]}
    known = set(action.params_schema().fields)
    problems = {}
    for name, spec in (mapping["action_parameters"] or {}).items():
        if name not in known:
            problems[name] = [f"Unknown parameter for {action.action_type}."]
            continue
        issues = validate_parameter_spec(spec, literal=name in action.literal_params)
        if issues:
            problems[name] = issues
    return {"action_parameters": problems} if problems else {}


def is_verified(registry, source: Source, source_env: SourceEnvironment, secret_key: str) -> bool:
    """Whether requests to this environment are authenticated beyond the URL token.

    Counts only the secrets verification would use now: unexpired and non-blank.
    """
    provider = registry.providers.get(source.provider)
    if provider is None:
        return False
    config = snapshot(source_env, secret_key).verification_config(utcnow())
    config["signing_secrets"] = [secret for secret in config["signing_secrets"] if secret.strip()]
    return provider.is_verifiable(config)
