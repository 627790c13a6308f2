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
    """A JSON API body failed validation; ``errors`` holds per-field messages."""

    status = 422
    code = "invalid_params"

    def __init__(self, errors, message="The request body is invalid."):
        super().__init__(message)
        self.errors = errors

    def to_dict(self):
        """Return the JSON error body with the field errors."""
        return {**super().to_dict(), "errors": self.errors}


class LogUnavailable(SourcesError):
    """The event log could not be written, so the sender must retry."""

    status = 503
    code = "log_unavailable"


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
