"""Signing in and out: ``/login`` and ``/logout``."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for

from knock_sources.control import admins
from knock_sources.views.ui.common import count_login_attempt, safe_next, start_session
from knock_sources.views.ui.forms import LoginForm

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the sign-in form; sign in with a username and password (rate-limited per client)."""
    if not admins.exists():
        return render_template("auth/setup.html"), 503
    target = safe_next(request.args.get("next")) or url_for("ui.sources.index")
    if g.admin is not None:
        return redirect(target)
    form = LoginForm()
    failed = False
    if request.method == "POST":
        count_login_attempt()
        if form.validate_on_submit():
            admin = admins.authenticate(form.username.data, form.password.data)
            if admin is not None:
                start_session(admin)
                return redirect(target)
            failed = True
    return render_template("auth/login.html", form=form, failed=failed)


@bp.post("/logout")
def logout():
    """Sign out: forget the session (the CSRF check keeps other sites from signing you out)."""
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("ui.auth.login"))
