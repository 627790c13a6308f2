"""The provider contract test: checks every provider, ours or a third party's, must pass.

Each check is a plain function ``check_<name>(provider, *, secret_factory=make_secret)``
that raises ``ContractError`` (an ``AssertionError``) describing what is
wrong, so the module needs no test framework. The checks raise it
explicitly rather than with ``assert``, so they still check under
``python -O``. In a plugin's own test suite::

    import pytest
    from knock_sources.testing import CONTRACT_CHECKS

    from knock_sources_acme import AcmeProvider


    @pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda check: check.__name__)
    def test_acme_provider_contract(check):
        check(AcmeProvider())

``assert_provider_contract(provider)`` runs them all at once. Providers whose
secrets have a special format pass ``secret_factory``; the default secret,
``whsec_`` followed by base64, suits plain-string and Svix-style keys alike.

Timestamp checks run when the provider declares ``tolerance_seconds`` (its
default replay window, a positive number of seconds) and ``timestamp_unit``
(``"s"`` or ``"ms"``, the unit of the timestamp it signs), and expect the
``tolerance_seconds`` setting to override the window
(``signing.tolerance_seconds`` does that). They are never skipped by
omission: a signed provider whose signature covers no timestamp (GitHub's)
says so with ``timestamped = False``, and one that declares neither fails
the contract.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from typing import Any, Callable, Iterable

from knock_sources import paths, signing
from knock_sources.actions.base import ACTION_ORDER
from knock_sources.errors import SignatureError
from knock_sources.providers import Envelope

#: Parameters whose plain strings are configured values, not paths (docs/architecture.md 3.2).
LITERAL_PARAMETERS = frozenset({"key", "collection"})
#: Multipliers from seconds to a provider's ``timestamp_unit``.
UNITS = signing.TIMESTAMP_UNITS
#: Header values that must be rejected wherever a provider reads a header.
HOSTILE_VALUES = (
    "",
    " ",
    "\t",
    "garbage",
    "=",
    ",",
    ", ,",
    "\x00",
    "é",
    "\udcff",
    "ÿ" * 4096,
    "a" * 100_000,
    "t=",
    "v1=",
    "t=,v1=",
    "t=abc,v1=abc",
    "t=-1,v1=00",
    "t=1e9,v1=00",
    "t=0x10,v1=00",
    "t=1_700_000_000,v1=00",
    "t=" + "9" * 4000 + ",v1=00",
    "t=１７００００００００,v1=é",
    "v1,",
    "v1,!!!",
    "v1," + base64.b64encode(bytes(32)).decode(),
    "sha256=",
    "sha256=" + "0" * 64,
    "sha256=" + "g" * 64,
    "Bearer",
    "Bearer ",
)
# Runs of hex or base64 long enough to be a digest or a secret.
_DIGEST_LIKE = re.compile(r"[0-9a-fA-F]{32,}|[A-Za-z0-9+/_-]{40,}={0,2}")
_SLUG = re.compile(r"[a-z][a-z0-9_]*\Z")


class ContractError(AssertionError):
    """A provider breaks the contract; the message says which provider and how.

    A subclass of ``AssertionError``, so that test frameworks report it as a
    failure and code catching ``AssertionError`` keeps working.
    """


def make_secret() -> str:
    """Return a fresh random secret in Svix's ``whsec_<base64>`` shape."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode("ascii")


def raw_json(body: Any) -> bytes:
    """Serialize ``body`` the way most providers send it: compact UTF-8 JSON."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def make_envelope(raw_body: bytes, headers: dict | None = None) -> Envelope:
    """Build an ``Envelope`` as ingestion would: lower-cased header names, parsed body."""
    try:
        body = json.loads(raw_body)
    except ValueError:
        body = {}
    lowered = {str(name).lower(): value for name, value in (headers or {}).items()}
    return Envelope(headers=lowered, raw_body=raw_body, body=body if isinstance(body, dict) else {})


def signed_envelope(provider, raw_body: bytes, secret: str, *, timestamp=None, headers=None) -> Envelope:
    """Return an envelope for ``raw_body`` carrying ``provider.sign()``'s headers over ``headers``."""
    signed = provider.sign(raw_body, secret, timestamp=timestamp)
    merged = {str(name).lower(): value for name, value in (headers or {}).items()}
    merged.update({name.lower(): value for name, value in signed.items()})
    return make_envelope(raw_body, merged)


def config_for(*secrets: str, **settings) -> dict:
    """Return a verification config holding ``secrets`` and extra ``settings``."""
    return {"signing_secrets": list(secrets), **settings}


def verify_outcome(provider, envelope: Envelope, config: dict) -> SignatureError | None:
    """Run ``verify`` and return its ``SignatureError`` (or ``None``); anything else fails."""
    try:
        provider.verify(envelope, config)
    except SignatureError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - the point is to report any other type
        raise ContractError(f"{provider.slug}: verify raised {type(exc).__name__} instead of SignatureError") from exc
    return None


def assert_accepted(provider, envelope: Envelope, config: dict, why: str = "") -> None:
    """Raise ``ContractError`` unless ``verify`` accepts ``envelope``."""
    error = verify_outcome(provider, envelope, config)
    if error is not None:
        raise ContractError(f"{provider.slug}: {why or 'request'} rejected ({error.code}: {error.message})")


def assert_rejected(provider, envelope, config, why="", code=None) -> SignatureError:
    """Return the safe ``SignatureError`` (with ``code`` if given) ``verify`` raises; else ``ContractError``."""
    error = verify_outcome(provider, envelope, config)
    if error is None:
        raise ContractError(f"{provider.slug}: {why or 'request'} was accepted")
    assert_safe_error(provider, error, config.get("signing_secrets") or ())
    if code is not None and error.code != code:
        raise ContractError(f"{provider.slug}: {why} gave code {error.code!r}, not {code!r}")
    return error


def assert_safe_error(provider, error: SignatureError, secrets: Iterable[str]) -> None:
    """Raise ``ContractError`` unless ``error`` has a code and a message leaking no secret or digest."""
    if not (isinstance(error.code, str) and error.code):
        raise ContractError(f"{provider.slug}: SignatureError without a code")
    message = str(error.message)
    for secret in filter(str.strip, secrets):
        if secret in message:
            raise ContractError(f"{provider.slug}: an error message contains the secret")
    if _DIGEST_LIKE.search(message):
        raise ContractError(f"{provider.slug}: an error message looks like it holds a digest")


def sample_bodies(provider) -> list[tuple[dict, dict]]:
    """Return ``(body, headers)`` pairs: the provider's examples plus a generic event."""
    samples = [
        (example["body"], example.get("headers") or {})
        for examples in provider.example_payloads.values()
        for example in examples
    ]
    return samples + [({"id": "evt_contract", "type": "contract.test", "note": "Zoë 🎉"}, {})]


def now_in_unit(provider, offset_seconds: float = 0) -> int:
    """Return the current time plus ``offset_seconds`` in the provider's timestamp unit."""
    return int((time.time() + offset_seconds) * UNITS[provider.timestamp_unit])


def _timestamped(provider) -> bool:
    """Return whether the timestamp checks apply; ``ContractError`` when the provider leaves it unsaid."""
    tolerance = getattr(provider, "tolerance_seconds", None)
    timestamped = getattr(provider, "timestamped", True)
    if tolerance is None:
        if provider.signed and timestamped:
            raise ContractError(
                f"{provider.slug}: a signed provider must declare tolerance_seconds (its replay window) "
                "or timestamped = False (its signature covers no timestamp)"
            )
        return False
    if not timestamped:
        raise ContractError(f"{provider.slug}: timestamped = False contradicts tolerance_seconds = {tolerance!r}")
    if not (isinstance(tolerance, int) and not isinstance(tolerance, bool) and tolerance > 0):
        raise ContractError(f"{provider.slug}: tolerance_seconds must be a positive whole number, not {tolerance!r}")
    return True


def _scope(example) -> dict:
    headers = {str(name).lower(): value for name, value in (example.get("headers") or {}).items()}
    return {"body": example["body"], "headers": headers, "preprocess": {}}


def check_metadata(provider, *, secret_factory=make_secret) -> None:
    """Slug, names, categories, docs URL and the API description are well formed."""
    if not (isinstance(provider.slug, str) and _SLUG.match(provider.slug)):
        raise ContractError(f"bad slug {provider.slug!r}")
    if not (isinstance(provider.name, str) and provider.name):
        raise ContractError(f"{provider.slug}: no name")
    if not (isinstance(provider.description, str) and provider.description):
        raise ContractError(f"{provider.slug}: no description")
    if not all(isinstance(c, str) and c for c in provider.categories):
        raise ContractError(f"{provider.slug}: bad categories")
    if not (provider.docs_url is None or re.match(r"https?://", provider.docs_url)):
        raise ContractError(f"{provider.slug}: bad docs_url")
    if not isinstance(provider.signed, bool):
        raise ContractError(f"{provider.slug}: signed must be a bool")
    if not isinstance(getattr(provider, "timestamped", True), bool):
        raise ContractError(f"{provider.slug}: timestamped must be a bool")
    if _timestamped(provider) and provider.timestamp_unit not in UNITS:
        raise ContractError(f"{provider.slug}: timestamp_unit must be one of {sorted(UNITS)}")
    json.dumps(provider.describe())


def check_default_mappings(provider, *, secret_factory=make_secret) -> None:
    """Every default mapping names a Knock action type and well-formed parameters."""
    seen = set()
    for mapping in provider.default_mappings:
        where = f"{provider.slug}: {mapping.event_type} -> {mapping.action_type}"
        if mapping.action_type not in ACTION_ORDER:
            raise ContractError(f"{where}: unknown action type")
        if not (isinstance(mapping.event_type, str) and mapping.event_type):
            raise ContractError(f"{where}: empty event type")
        identity = json.dumps(mapping.to_dict(), sort_keys=True)
        if identity in seen:
            raise ContractError(f"{where}: duplicate mapping")
        seen.add(identity)
        for name, spec in mapping.action_parameters.items():
            literal = name in LITERAL_PARAMETERS
            if literal and not (isinstance(spec, str) or paths.is_literal(spec)):
                raise ContractError(f"{where}: {name} must be a literal")
            problems = paths.validate_parameter_spec(spec, literal=literal)
            if problems:
                raise ContractError(f"{where}: {name}: {problems}")
        if mapping.action_type == "workflows_trigger" and not {"key", "recipients"} <= set(mapping.action_parameters):
            raise ContractError(f"{where}: needs key and recipients")


def check_example_payloads(provider, *, secret_factory=make_secret) -> None:
    """Examples cover every default mapping, resolve to their event type, ids and mapped paths."""
    examples = provider.example_payloads
    for mapping in provider.default_mappings:
        if not examples.get(mapping.event_type):
            raise ContractError(f"{provider.slug}: no example for {mapping.event_type}")
    for event_type, payloads in examples.items():
        for example in payloads:
            where = f"{provider.slug}: example {event_type}"
            if not isinstance(example.get("body"), dict):
                raise ContractError(f"{where}: body must be an object")
            json.dumps(example)
            scope = _scope(example)
            resolved = provider.event_type(lambda path, scope=scope: paths.resolve(path, scope))
            if resolved != event_type:
                raise ContractError(f"{where}: resolves to event type {resolved!r}")
            if provider.idempotency_key_path:
                key = paths.resolve(provider.idempotency_key_path, scope)
                if not (isinstance(key, str) and 0 < len(key) <= 255):
                    raise ContractError(f"{where}: bad idempotency key {key!r}")
            if provider.timestamp_path:
                stamp = paths.resolve(provider.timestamp_path, scope)
                if stamp is paths.MISSING:
                    raise ContractError(f"{where}: no timestamp at {provider.timestamp_path}")
            for mapping in provider.default_mappings:
                if mapping.event_type == event_type:
                    _assert_parameters_resolve(where, mapping, scope)


def _assert_parameters_resolve(where, mapping, scope):
    for name, spec in mapping.action_parameters.items():
        if name in LITERAL_PARAMETERS or spec is None or paths.is_literal(spec):
            continue
        specs = spec.items() if isinstance(spec, dict) else [(name, spec)]
        for field, path in specs:
            if isinstance(path, str):
                found = paths.resolve(path, scope)
                if found is paths.MISSING:
                    raise ContractError(f"{where}: {mapping.action_type}.{field} path {path!r} is missing")


def check_sign_then_verify(provider, *, secret_factory=make_secret) -> None:
    """Headers from ``sign()`` are plain ASCII and ``verify`` accepts them, also with a timestamp."""
    secret = secret_factory()
    config = config_for(secret)
    if not provider.is_verifiable(config):
        raise ContractError(f"{provider.slug}: a configured secret must be verifiable")
    for body, headers in sample_bodies(provider):
        raw = raw_json(body)
        signed = provider.sign(raw, secret)
        for name, value in signed.items():
            if not (isinstance(name, str) and name.isascii()):
                raise ContractError(f"{provider.slug}: bad header name {name!r}")
            if not (isinstance(value, str) and value.isascii()):
                raise ContractError(f"{provider.slug}: {name} is not ASCII")
        assert_accepted(provider, signed_envelope(provider, raw, secret, headers=headers), config, "a signed request")
    if _timestamped(provider):
        envelope = signed_envelope(provider, b"{}", secret, timestamp=now_in_unit(provider))
        assert_accepted(provider, envelope, config, "a request signed with an explicit current timestamp")


def check_raw_bytes(provider, *, secret_factory=make_secret) -> None:
    """Verification runs on the raw bytes: a body that is not UTF-8 still verifies."""
    secret = secret_factory()
    raw = b'{"name":"\xff\xfe not utf-8"}'
    assert_accepted(provider, signed_envelope(provider, raw, secret), config_for(secret), "a non-UTF-8 body")


def check_tampered_body(provider, *, secret_factory=make_secret) -> None:
    """A signed provider rejects a body changed after signing."""
    if not provider.signed:
        return
    secret = secret_factory()
    raw = raw_json({"id": "evt_1", "type": "contract.test", "amount": 100})
    envelope = signed_envelope(provider, raw, secret)
    tampered = make_envelope(raw.replace(b"100", b"900"), dict(envelope.headers))
    assert_rejected(provider, tampered, config_for(secret), "a tampered body", code="signature_mismatch")


def check_wrong_secret(provider, *, secret_factory=make_secret) -> None:
    """A request signed with another secret is rejected as a mismatch."""
    envelope = signed_envelope(provider, b'{"type":"contract.test"}', secret_factory())
    config = config_for(secret_factory())
    assert_rejected(provider, envelope, config, "a request signed with another secret", code="signature_mismatch")


def check_no_secret(provider, *, secret_factory=make_secret) -> None:
    """Signed providers fail closed without a secret; unsigned ones are then unverifiable."""
    envelope = signed_envelope(provider, b'{"type":"contract.test"}', secret_factory())
    if provider.is_verifiable(config_for()) is not provider.signed:
        raise ContractError(f"{provider.slug}: is_verifiable without a secret")
    for config in (config_for(), config_for("", "  ")):
        assert_rejected(provider, envelope, config, "a request with no usable secret configured")


def check_rotated_secrets(provider, *, secret_factory=make_secret) -> None:
    """With several secrets configured, a request signed with any of them verifies."""
    old, new, unrelated = secret_factory(), secret_factory(), secret_factory()
    raw = b'{"type":"contract.test"}'
    config = config_for(old, new)
    for secret in (old, new):
        assert_accepted(
            provider, signed_envelope(provider, raw, secret), config, "a request signed with a rotated secret"
        )
    envelope = signed_envelope(provider, raw, unrelated)
    assert_rejected(provider, envelope, config, "a request signed with an unconfigured secret")


def check_timestamp_window(provider, *, secret_factory=make_secret) -> None:
    """Stale and future timestamps are rejected; one inside the window is accepted."""
    if not _timestamped(provider):
        return
    secret, tolerance = secret_factory(), provider.tolerance_seconds
    config = config_for(secret)
    for offset, why in ((-(tolerance + 60), "a stale timestamp"), (tolerance + 60, "a future timestamp")):
        envelope = signed_envelope(provider, b"{}", secret, timestamp=now_in_unit(provider, offset))
        assert_rejected(provider, envelope, config, why, code="timestamp_out_of_tolerance")
    inside = signed_envelope(provider, b"{}", secret, timestamp=now_in_unit(provider, -tolerance / 2))
    assert_accepted(provider, inside, config, "a timestamp inside the tolerance")


def check_timestamp_unit(provider, *, secret_factory=make_secret) -> None:
    """A timestamp in the wrong unit (seconds for milliseconds or back) is rejected."""
    if not _timestamped(provider):
        return
    secret = secret_factory()
    wrong = int(time.time()) if provider.timestamp_unit == "ms" else int(time.time() * 1000)
    envelope = signed_envelope(provider, b"{}", secret, timestamp=wrong)
    assert_rejected(provider, envelope, config_for(secret), "a timestamp in the wrong unit")


def check_tolerance_override(provider, *, secret_factory=make_secret) -> None:
    """The ``tolerance_seconds`` setting widens the window; a malformed one keeps the default."""
    if not _timestamped(provider):
        return
    secret, tolerance = secret_factory(), provider.tolerance_seconds
    stale = signed_envelope(provider, b"{}", secret, timestamp=now_in_unit(provider, -(tolerance + 60)))
    assert_accepted(provider, stale, config_for(secret, tolerance_seconds=(tolerance + 60) * 2), "a widened window")
    for bad in (0, -5, "9999999", True, None):
        config = config_for(secret, tolerance_seconds=bad)
        assert_rejected(provider, stale, config, f"tolerance_seconds={bad!r}", code="timestamp_out_of_tolerance")


def check_missing_headers(provider, *, secret_factory=make_secret) -> None:
    """Removing any header ``sign()`` produces makes the request fail."""
    secret = secret_factory()
    envelope = signed_envelope(provider, b'{"type":"contract.test"}', secret)
    for name in envelope.headers:
        headers = {other: value for other, value in envelope.headers.items() if other != name}
        assert_rejected(provider, make_envelope(envelope.raw_body, headers), config_for(secret), f"without {name}")


def check_malformed_headers(provider, *, secret_factory=make_secret) -> None:
    """Hostile values in any signed header are rejected with ``SignatureError`` and nothing else."""
    secret = secret_factory()
    envelope = signed_envelope(provider, b'{"type":"contract.test"}', secret)
    for name in envelope.headers:
        for value in HOSTILE_VALUES:
            hostile = make_envelope(envelope.raw_body, {**envelope.headers, name: value})
            assert_rejected(provider, hostile, config_for(secret), f"{name}: {value[:40]!r}")


def check_mangled_headers(provider, *, secret_factory=make_secret) -> None:
    """Duplicated, re-spaced, re-cased or non-ASCII variants of valid headers never crash."""
    secret = secret_factory()
    envelope = signed_envelope(provider, b'{"type":"contract.test"}', secret)
    fullwidth = str.maketrans("0123456789", "０１２３４５６７８９")
    variants: tuple[Callable[[str], str], ...] = (
        lambda v: f"{v}, {v}",
        lambda v: f"{v},{v}",
        lambda v: f" {v} ",
        lambda v: v.upper(),
        lambda v: v.lower(),
        lambda v: v + "é",
        lambda v: v + "\u00c3\u00a9",
        lambda v: v[: len(v) // 2],
        lambda v: v.replace(",", ", "),
        lambda v: v.replace(", ", ","),
        lambda v: v.translate(fullwidth),
    )
    for name, value in envelope.headers.items():
        for variant in variants:
            mangled = make_envelope(envelope.raw_body, {**envelope.headers, name: variant(value)})
            error = verify_outcome(provider, mangled, config_for(secret))
            if error is not None:
                assert_safe_error(provider, error, [secret])


def check_non_ascii_secret(provider, *, secret_factory=make_secret) -> None:
    """A non-ASCII configured secret fails cleanly instead of crashing."""
    envelope = signed_envelope(provider, b'{"type":"contract.test"}', secret_factory())
    assert_rejected(provider, envelope, config_for("sëcret-ü-🔑"), "a non-ASCII secret")


CONTRACT_CHECKS = (
    check_metadata,
    check_default_mappings,
    check_example_payloads,
    check_sign_then_verify,
    check_raw_bytes,
    check_tampered_body,
    check_wrong_secret,
    check_no_secret,
    check_rotated_secrets,
    check_timestamp_window,
    check_timestamp_unit,
    check_tolerance_override,
    check_missing_headers,
    check_malformed_headers,
    check_mangled_headers,
    check_non_ascii_secret,
)


def assert_provider_contract(provider, *, secret_factory=make_secret) -> None:
    """Run every contract check on ``provider``; raise one ``ContractError`` listing failures."""
    failures = []
    for check in CONTRACT_CHECKS:
        try:
            check(provider, secret_factory=secret_factory)
        except AssertionError as exc:
            failures.append(f"{check.__name__}: {exc}")
    if failures:
        raise ContractError("\n".join(failures))
