"""The JavaScript every script isolate evaluates before the script itself.

``RUNTIME_JS`` is a function expression; ``script_engine.py`` evaluates it as
``(RUNTIME_JS)(globalThis, <memory limit in bytes>, <token>)``. It removes
what mini-racer adds that could outlive a call, counts ArrayBuffer memory
against the limit (V8's heap limit does not see it), installs the Node-style
helpers (``crypto``, ``Buffer``, ``TextEncoder``, ``TextDecoder``, ``atob``,
``btoa``) and the ``__knock`` call protocol, which only a caller holding the
token can drive. The source is ``script_runtime.js`` beside this module
(package data), read by path so that the script host, which skips the
package's ``__init__``, can load it too.
"""

from pathlib import Path

RUNTIME_JS = Path(__file__).with_name("script_runtime.js").read_text(encoding="utf-8")
