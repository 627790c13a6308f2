"""Sandboxed JavaScript for custom source scripts.

The parent side (``runner.py``) runs in web and worker processes and starts
a script host process (``host.py``) that holds the V8 isolates
(``engine.py``, evaluating ``runtime.js`` before each script, through the
mini-racer glue of ``v8.py``). The two speak the frames of ``protocol.py``,
whose ``ScriptError`` is the one error shape on both sides of the pipe. Only
the host imports ``engine`` and ``v8``, and with them mini-racer.
"""

from knock_sources.scripting.protocol import ScriptError
from knock_sources.scripting.runner import REDACTED, ScriptRunner, check_script, redact_json, shared_runner

__all__ = ["REDACTED", "ScriptError", "ScriptRunner", "check_script", "redact_json", "shared_runner"]
