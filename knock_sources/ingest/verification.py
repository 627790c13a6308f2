"""Running a source environment's script on a request: the verdict and the preprocess output.

The script is the environment's ``preprocess_script`` setting
(``{"language": "javascript", "source": ...}``). Its ``main(ctx)`` returns
``{verified: boolean, ...}``: the other keys become ``preprocess.*`` for
paths. With ``enforce_verification`` on, anything but ``verified === true``
(false, missing, a throw, a timeout, too much memory) rejects the request
with 401; with it off the outcome is only recorded as the verification
status (``unenforced:verified`` or ``unenforced:unverified``).
"""

from __future__ import annotations

from dataclasses import dataclass

from knock_sources import scripting
from knock_sources.errors import SignatureError
from knock_sources.scripting import ScriptError, ScriptRunner

RUNNER_EXTENSION = "knock_sources.script_runner"
# What a rejected sender is told; the details go to the event log only.
REJECTION_MESSAGE = "The request could not be verified."


@dataclass(frozen=True)
class ScriptVerdict:
    """What the script said about one request."""

    verification_status: str
    preprocess_output: dict | None
    error: ScriptError | None = None


def script_source(settings: dict) -> str | None:
    """Return the environment's script source, or ``None`` when it has none."""
    script = settings.get("preprocess_script") or {}
    return script.get("source") or None


def build_context(envelope, variables: dict) -> dict:
    """Return Knock's ``ctx``: vars, parsed body, raw body text, lower-cased headers."""
    return {
        "vars": variables,
        "body": envelope.body,
        "rawBody": envelope.raw_body.decode("utf-8", "replace"),
        "headers": dict(envelope.headers),
    }


def judge(result: dict | None, error: ScriptError | None, enforce: bool) -> ScriptVerdict:
    """Turn a script's result (or failure) into a verdict; raise ``SignatureError`` if enforced."""
    verified = error is None and result.get("verified") is True
    if enforce and not verified:
        detail = f"script {error.kind}: {error}" if error else "the script did not return verified: true"
        raise SignatureError(REJECTION_MESSAGE, code="script_unverified", detail=detail)
    output = None if error else {key: value for key, value in result.items() if key != "verified"}
    status = f"{'enforced' if enforce else 'unenforced'}:{'verified' if verified else 'unverified'}"
    return ScriptVerdict(status, output, error)


def run_script(runner: ScriptRunner, cache_key, source: str, ctx: dict, enforce: bool) -> ScriptVerdict:
    """Run ``source`` for one request (compiled once per ``cache_key``) and judge it."""
    try:
        return judge(runner.run(cache_key, source, ctx), None, enforce)
    except ScriptError as error:
        return judge(None, error, enforce)


def shared_runner(timeout_ms: int, memory_mb: int) -> ScriptRunner:
    """Return this process's runner for these limits.

    One per process rather than per app, and the same one ``check_script``
    uses: each runner keeps a script host process with its compiled scripts,
    which discarding an app (and its runner) would throw away.
    """
    return scripting.shared_runner(timeout_ms, memory_mb)


def init_app(app):
    """Give the app the process's script runner for its configured limits."""
    app.extensions[RUNNER_EXTENSION] = shared_runner(app.config["SCRIPT_TIMEOUT_MS"], app.config["SCRIPT_MEMORY_MB"])
