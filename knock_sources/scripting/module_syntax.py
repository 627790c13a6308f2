"""Knock's ES module scripts as classic scripts, which is what mini-racer evaluates.

Scripts arrive as the modules Knock accepts (``export function main``,
``export default async (ctx) => ...``); ``to_classic_script`` rewrites the
module syntax into an equivalent classic script that keeps every line and,
where possible, every column where it was, so error locations point at the
user's source (``SCRIPT_URL``). Text only: no V8 here.
"""

from __future__ import annotations

import json
import re

SCRIPT_URL = "script.js"

# Comments and string literals come first so that ``export`` inside them is
# skipped; template literals with nested backticks are not recognised, which
# only matters if one contains the word export.
_MODULE_SYNTAX = re.compile(
    r"""
    (?P<skip>//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`)
    | (?<![\w$.])(?P<default>export\s+default)(?![\w$])
      (?=\s+(?:async\s+)?function\b\s*\*?\s*(?P<function>[A-Za-z_$][\w$]*)|\s+class\s+(?P<cls>[A-Za-z_$][\w$]*)|)
    | (?<![\w$.])(?P<export>export)(?=\s+(?:async\s+function|function|class|const|let|var)(?![\w$]))
    | (?<![\w$.])(?P<list>export\s*\{(?P<names>[^}]*)\}\s*;?)
    """,
    re.S | re.X,
)
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*")


def _blank(text: str) -> str:
    """Replace ``text`` by spaces of the same length, keeping its newlines."""
    return re.sub(r"[^\n]", " ", text)


def to_classic_script(source: str) -> str:
    """Rewrite the ES module syntax Knock accepts into a classic script.

    ``export`` before a declaration is dropped, ``export default`` of a named
    function or class becomes that declaration, any other ``export default``
    expression and ``export {a as b}`` lists are recorded on the ``__kx``
    exports object. ``import`` is left alone, so V8 reports it as a syntax
    error at its own line. Every line, and where possible every column, stays
    where it was, so error locations point at the user's source.
    """
    appended: list[str] = []

    def rewrite(match: re.Match) -> str:
        text = match.group(0)
        if match.group("skip"):
            return text
        if match.group("default"):
            name = match.group("function") or match.group("cls")
            if name:
                appended.append(f"__kx.default = {name};")
                return _blank(text)
            target = "__kx.default="
            newlines = text.count("\n")
            return target.ljust(len(text) - newlines) + "\n" * newlines
        if match.group("export"):
            return _blank(text)
        for item in match.group("names").split(","):
            parts = item.split()
            if len(parts) == 1 and _IDENTIFIER.fullmatch(parts[0]):
                appended.append(f"__kx[{json.dumps(parts[0])}] = {parts[0]};")
            elif len(parts) == 3 and parts[1] == "as" and _IDENTIFIER.fullmatch(parts[0]):
                exported = json.dumps(parts[2].strip("'\""))
                appended.append(f"__kx[{exported}] = {parts[0]};")
        return _blank(text)

    body = _MODULE_SYNTAX.sub(rewrite, source)
    tail = "\n;" + " ".join(appended) if appended else ""
    return f"{body}{tail}\n//# sourceURL={SCRIPT_URL}\n"
