"""The dashboard: server-rendered pages under ``/``, for signed-in administrators only.

``common.py`` holds what every page shares (the parent blueprint, CSRF, the
sign-in gate, the environment in the URL, HTML errors); each area is a child
blueprint in its own module. Views stay thin: they read models and call
``knock_sources.control``; templates live in the top-level ``templates/``.
"""

from knock_sources.views.ui import auth, common, data, logs, mappings, settings, sources, variables, workflows
from knock_sources.views.ui.common import bp

# Nested once at import: a blueprint cannot gain children after its first registration.
for _area in (auth, sources, settings, mappings, logs, workflows, data, variables):
    bp.register_blueprint(_area.bp)


def init_app(app) -> None:
    """Configure sessions, CSRF and the login limiter, and register the pages."""
    common.configure(app)
    app.register_blueprint(bp)
