"""What every dashboard page shares: the parent blueprint, CSRF, the sign-in gate, the environment, errors.

One parent blueprint (``ui``) holds what every page shares: CSRF checks on
every unsafe request (only here, so ingestion, the tracking API and the
``/v1`` JSON API are outside CSRF by construction), the sign-in gate, which
fails closed until an administrator exists, the environment taken from the
URL (``/<env>/...``), and HTML error pages.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

import limits
from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from redis import RedisError
from werkzeug.exceptions import HTTPException, TooManyRequests
from werkzeug.routing import BaseConverter

from knock_sources.config import ENVIRONMENT_SLUG, RESERVED_SLUGS
from knock_sources.control import admins, sources
from knock_sources.errors import SourcesError, ValidationFailed
from knock_sources.state import current_state
from knock_sources.store.control import Environment

log = logging.getLogger(__name__)

bp = Blueprint("ui", __name__)
csrf = CSRFProtect()
LIMITER = "knock_sources_login_limiter"
#: Endpoints reachable without a session (the sign-in page itself).
PUBLIC_ENDPOINTS = frozenset({"ui.auth.login"})


class EnvironmentSlug(BaseConverter):
    """The environment in a dashboard URL (``/<env:env>/...``): never a first segment the API owns.

    Without it ``GET /v1/workflows/{key}``, which the API does not answer,
    fell through to the page ``/<env>/workflows/<key>`` and got HTML.
    """

    regex = rf"(?!(?:{'|'.join(RESERVED_SLUGS)})(?![a-z0-9_-])){ENVIRONMENT_SLUG.pattern}"


def configure(app) -> None:
    """Configure sessions, CSRF and the login rate limiter of ``app``, and the ``env`` URL converter."""
    app.url_map.converters["env"] = EnvironmentSlug
    config = app.config
    config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=config["SESSION_LIFETIME_HOURS"])
    config["SESSION_COOKIE_NAME"] = "knock_sources_session"
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    config["SESSION_COOKIE_SECURE"] = config["PUBLIC_BASE_URL"].startswith("https://")
    # The cookie is sent back only when the session changes. Re-sent on every
    # response, a page's own background request (the path check as you type)
    # that was sent with the cookie from before a form post could answer after
    # it and put that old cookie back, losing the post's flash message. The
    # session's lifetime runs from sign-in (``login_at``), so nothing is lost.
    config["SESSION_REFRESH_EACH_REQUEST"] = False
    # Checked only by the ``ui`` blueprint (see ``_protect``), never app-wide.
    config["WTF_CSRF_CHECK_DEFAULT"] = False
    # Tokens are bound to the session, which already expires.
    config["WTF_CSRF_TIME_LIMIT"] = None
    csrf.init_app(app)
    app.extensions[LIMITER] = LoginLimit(config["LOGIN_RATE_LIMIT"], config["REDIS_URL"])


class LoginLimit:
    """Sign-in attempts per client address, counted in memory or, with ``REDIS_URL``, in Redis (shared by processes).

    Built on ``limits``, the library Flask-Limiter is made of, called from the
    sign-in view only: Flask-Limiter's extension would check every request
    of the app, ingestion included (about 60 µs each).
    """

    NAMESPACE = "knock_sources_login"

    def __init__(self, rate: str, redis_url: str | None):
        self.items = limits.parse_many(rate)
        self.limiter = FixedWindowRateLimiter(storage_from_string(redis_url or "memory://"))

    def hit(self, client: str) -> None:
        """Count one attempt from ``client``; ``TooManyRequests`` (429) once it is over the limit."""
        try:
            allowed = all([self.limiter.hit(item, self.NAMESPACE, client) for item in self.items])
        except (RedisError, ConnectionError) as exc:
            # A rate limit is a brake, not a lock: an outage must not lock administrators out.
            log.warning("the sign-in rate limit could not be checked: %s", exc)
            return
        if not allowed:
            raise TooManyRequests()


def count_login_attempt() -> None:
    """Count a sign-in attempt of the current client (429 past ``LOGIN_RATE_LIMIT``)."""
    current_app.extensions[LIMITER].hit(request.remote_addr or "unknown")


@bp.url_value_preprocessor
def _take_environment(endpoint, values):
    g.environment_slug = values.pop("env", None) if values else None


@bp.url_defaults
def _add_environment(endpoint, values):
    if "env" not in values and current_app.url_map.is_endpoint_expecting(endpoint, "env"):
        values["env"] = g.environment.slug


@bp.before_request
def _protect():
    csrf.protect()
    g.admin = _signed_in_admin()
    if g.admin is None and request.endpoint not in PUBLIC_ENDPOINTS:
        if not admins.exists():
            return render_template("auth/setup.html"), 503
        return redirect(url_for("ui.auth.login", next=request.full_path.rstrip("?")))
    # In the configured order: the first is every page's default, as it is the API's.
    configured = current_app.config["ENVIRONMENTS"]
    rank = {slug: index for index, slug in enumerate(configured)}
    g.environments = sorted(Environment.select(), key=lambda row: (rank.get(row.slug, len(configured)), row.id))
    g.environment = _environment(g.environment_slug, g.environments)
    return None


def _signed_in_admin():
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    login_at = session.get("login_at")
    if not isinstance(login_at, (int, float)) or time.time() - login_at > lifetime:
        return None
    return admins.signed_in(session.get("admin_id"), session.get("auth"))


def _environment(slug, environments):
    if slug is None:
        return environments[0] if environments else None
    for environment in environments:
        if environment.slug == slug:
            return environment
    raise SourcesError(f"Environment {slug!r} does not exist.", code="environment_missing", status=404)


def source_environment(key: str):
    """Return source ``key`` and its configuration in the page's environment (404 if there is no such source)."""
    source = sources.get_source(key)
    source_env = sources.get_source_environment(source, g.environment)
    source_env.source = source
    return source, source_env


def field_errors(error: ValidationFailed) -> dict[str, list[str]]:
    """A ``ValidationFailed``'s messages by field path (``"action_parameters.recipients"``), to show beside fields."""
    by_field: dict[str, list[str]] = {}
    for problem in error.errors:
        by_field.setdefault(problem["field"], []).append(problem["message"])
    return by_field


def safe_next(target: str | None) -> str | None:
    """Return ``target`` if it is a path on this site (no open redirect), else ``None``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def start_session(admin) -> None:
    """Sign ``admin`` in: a fresh session (no fixation), valid for ``SESSION_LIFETIME_HOURS``."""
    session.clear()
    session.permanent = True
    session["admin_id"] = admin.id
    session["auth"] = admins.session_fingerprint(admin)
    session["login_at"] = time.time()


#: Pages about one row, and the listing to show instead when switching environments.
_SWITCH_FALLBACKS = {
    "ui.logs.detail": "ui.logs.index",
    "ui.mappings.edit": "ui.mappings.index",
    "ui.workflows.detail": "ui.workflows.index",
    "ui.data.user": "ui.data.users",
    "ui.data.object": "ui.data.objects",
    "ui.data.tenant": "ui.data.tenants",
    "ui.data.audience": "ui.data.audiences",
}


@bp.app_template_global()
def environment_url(slug: str) -> str:
    """The current page in environment ``slug`` (its listing, for a page about one row)."""
    endpoint = _SWITCH_FALLBACKS.get(request.endpoint, request.endpoint)
    url_map = current_app.url_map
    if request.method != "GET" or not endpoint or not url_map.is_endpoint_expecting(endpoint, "env"):
        return url_for("ui.sources.index", env=slug)
    args = {
        name: value
        for name, value in (request.view_args or {}).items()
        if url_map.is_endpoint_expecting(endpoint, name)
    }
    return url_for(endpoint, **args, env=slug)


@bp.app_template_global()
def page_url(**cursor) -> str:
    """The current page with its filters and a new cursor (``after=`` or ``before=``)."""
    args = {name: value for name, value in request.args.items() if name not in ("after", "before")}
    return url_for(request.endpoint, **{**(request.view_args or {}), **args, **cursor})


@bp.app_template_global()
def action_name(action_type: str) -> str:
    """The human name of an action type ("Trigger workflow")."""
    action = current_state().registry.actions.get(action_type)
    return action.name if action is not None and action.name else action_type


@bp.app_template_filter("when")
def format_time(value) -> str:
    """A stored (UTC) time as ``2026-12-01 08:41:39``."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


@bp.app_template_filter("pretty")
def pretty_json(value) -> str:
    """A value as indented JSON."""
    return json.dumps(value, indent=2, ensure_ascii=False)


@bp.after_request
def _security_headers(response):
    # Own scripts and styles only: nothing inline, nothing from elsewhere.
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'",
    )
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.errorhandler(CSRFError)
def _csrf_error(exc):
    message = "This form has expired or did not come from this dashboard. Reload the page and try again."
    return render_template("error.html", status=400, title="Form refused", message=message), 400


@bp.errorhandler(TooManyRequests)
def _rate_limited(exc):
    message = "Too many sign-in attempts from your address. Wait a minute, then try again."
    return render_template("error.html", status=429, title="Slow down", message=message), 429


@bp.errorhandler(SourcesError)
def _sources_error(exc):
    return render_template("error.html", status=exc.status, title="Not possible", message=exc.message), exc.status


@bp.errorhandler(HTTPException)
def _http_error(exc):
    return render_template("error.html", status=exc.code, title=exc.name, message=exc.description), exc.code


@bp.errorhandler(Exception)
def _unexpected(exc):
    log.exception("unhandled error on a dashboard page")
    message = "Something went wrong on our side; the error has been logged."
    return render_template("error.html", status=500, title="Internal error", message=message), 500
