"""knock-sources: a self-hosted implementation of Knock's incoming-webhook Sources.

Plugin authors import what they need from here::

    from knock_sources import DefaultMapping, Provider, hookimpl
"""

from knock_sources.actions.base import Action, ActionContext
from knock_sources.errors import SignatureError
from knock_sources.hookspecs import hookimpl
from knock_sources.providers import DefaultMapping, Envelope, Provider

__all__ = [
    "Action",
    "ActionContext",
    "DefaultMapping",
    "Envelope",
    "Provider",
    "SignatureError",
    "hookimpl",
]
