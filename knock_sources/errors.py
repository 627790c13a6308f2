"""Errors that know their HTTP status, plus the ones that stand apart.

Every ``SourcesError`` carries a machine-readable ``code`` and a ``status``;
one error handler (``views.init_app``) turns them into ``{"code", "message"}``
JSON. Messages never contain secrets or computed digests.
"""


class SourcesError(Exception):
    """Base class for errors knock_sources turns into HTTP responses."""

    status = 500
    code = "internal_error"

    def __init__(self, message, *, code=None, status=None, detail=None):
        super().__init__(message)
        self.message = message
        #: More than the sender is told, for the event log (never a secret).
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def to_dict(self):
        """Return the JSON error body."""
        return {"code": self.code, "message": self.message}


class PayloadError(SourcesError):
    """The request body cannot be used: malformed, not an object, too deep."""

    status = 400
    code = "invalid_payload"


class InvalidEvent(PayloadError):
    """A body that parsed but is not an event the source accepts; ``errors`` holds per-field messages."""

    code = "invalid_event"

    def __init__(self, message, errors, *, code=None):
        detail = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items())
        super().__init__(message, code=code, detail=detail)
        self.errors = errors

    def to_dict(self):
        """Return the JSON error body with the field errors."""
        return {**super().to_dict(), "errors": self.errors}


class SignatureError(SourcesError):
    """Verification failed; the message says which check, never the digest."""

    status = 401
    code = "verification_failed"


class PayloadTooLarge(SourcesError):
    """The body is over ``MAX_PAYLOAD_BYTES``."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(SourcesError):
    """The content type is neither JSON nor form-encoded, or the content encoding is unknown."""

    status = 415
    code = "unsupported_content_type"


class NotFound(SourcesError):
    """A token, source, log or data-plane record does not exist."""

    status = 404
    code = "resource_missing"


class Conflict(SourcesError):
    """What a request would create already exists."""

    status = 409
    code = "conflict"


class AuthenticationRequired(SourcesError):
    """The JSON API was called without a valid API key."""

    status = 401
    code = "authentication_required"


class ValidationFailed(SourcesError):
    """The request failed validation; ``errors`` lists ``{"field", "in", "message"}`` per problem.

    ``errors`` may be given nested, the way marshmallow reports them
    (``{"source": {"name": ["..."]}}``, list indexes as keys, ``_schema`` for
    the enclosing object); it is flattened into one error per message whose
    ``field`` is the dotted path as the client wrote it
    (``source.environment_settings.development.mappings.0.action_type``).
    ``location`` says where that path points: ``body``, ``query`` or ``path``.
    """

    status = 422
    code = "invalid_params"
    MESSAGES = {
        "body": "The request body is invalid.",
        "query": "The query parameters are invalid.",
        "path": "The URL names an invalid key or id.",
    }

    def __init__(self, errors, message=None, *, location="body"):
        super().__init__(message or self.MESSAGES[location])
        self.errors = errors if isinstance(errors, list) else field_errors(errors, location)

    def within(self, *path) -> "ValidationFailed":
        """Return this error with ``path`` put in front of every field (for services that see part of a body)."""
        prefix = ".".join(str(part) for part in path)
        errors = [
            {**error, "field": f"{prefix}.{error['field']}" if error["field"] else prefix} for error in self.errors
        ]
        return ValidationFailed(errors, self.message)

    def to_dict(self):
        """Return the JSON error body with the field errors."""
        return {**super().to_dict(), "errors": self.errors}


def field_errors(messages, location="body", path=()) -> list[dict]:
    """Flatten marshmallow-style nested ``messages`` into ``[{"field", "in", "message"}]``.

    ``_schema`` stands for the object that holds it, so its messages belong to
    the enclosing path.
    """
    if isinstance(messages, dict):
        return [
            error
            for key, value in messages.items()
            for error in field_errors(value, location, path if key == "_schema" else (*path, str(key)))
        ]
    if isinstance(messages, (list, tuple)):
        if all(isinstance(item, str) for item in messages):
            return [{"field": ".".join(path), "in": location, "message": item} for item in messages]
        return [error for item in messages for error in field_errors(item, location, path)]
    return [{"field": ".".join(path), "in": location, "message": str(messages)}]


class LogUnavailable(SourcesError):
    """The event log could not be written, so the sender must retry."""

    status = 503
    code = "log_unavailable"


class ScriptUnavailable(SourcesError):
    """The script host could not be started or talked to: the script did not run, so the sender must retry.

    Not a verdict on the request, which is why it is a 503 like an unwritable
    event log and never a 401.
    """

    status = 503
    code = "script_unavailable"


class ConfigurationError(Exception):
    """Start-up problems: duplicate slugs or action types, bad plugin config.

    Deliberately not a ``SourcesError`` so that it can never be swallowed and
    turned into an HTTP response (django-anymail does the same).
    """


class ActionError(Exception):
    """An action could not be executed; recorded on its ``ActionLog`` as ``error``.

    ``code`` is a Knock-style error code such as ``workflow_missing``.
    """

    def __init__(self, message, code="action_failed"):
        super().__init__(message)
        self.code = code
