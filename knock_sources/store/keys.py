"""The rules for keys: what a stored key may hold, checked before anything reaches the store.

One rule per kind of key, its length taken from the column that holds it,
so the JSON API, the pages and the actions refuse exactly what the store
could not hold (or what could never be addressed in a URL again).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from knock_sources.store.control import Source, Variable
from knock_sources.store.dataplane import Workflow


@dataclass(frozen=True)
class KeyRule:
    """A key's allowed characters (a full match of ``pattern``) and its longest length."""

    what: str
    pattern: re.Pattern
    max_length: int
    characters: str

    def problem(self, value) -> str | None:
        """Return what is wrong with ``value`` as such a key, or ``None`` when it is valid."""
        if not isinstance(value, str):
            return f"Expected a {self.what} (a string)."
        if not value:
            return f"The {self.what} must not be empty."
        if len(value) > self.max_length:
            return f"The {self.what} is {len(value)} characters long; at most {self.max_length} are allowed."
        if not self.pattern.fullmatch(value):
            return f"The {self.what} may contain only {self.characters}."
        return None


_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_SLUG_CHARACTERS = "letters, digits, '-', '_' and '.', starting with a letter or digit"

SOURCE_KEY = KeyRule("source key", _SLUG, Source.key.max_length, _SLUG_CHARACTERS)
WORKFLOW_KEY = KeyRule("workflow key", _SLUG, Workflow.key.max_length, _SLUG_CHARACTERS)
#: Scripts read variables as ``vars.KEY``, so their keys are identifiers.
VARIABLE_KEY = KeyRule(
    "variable key",
    re.compile(r"[A-Za-z_][A-Za-z0-9_]*"),
    Variable.key.max_length,
    "letters, digits and underscores, not starting with a digit",
)
