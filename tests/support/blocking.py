"""An app for real ``flask worker`` processes with a ``block`` action, to stop a worker in the middle of a batch.

``flask --app 'tests.support.blocking:create_app("<marker>")' worker``: the
first event that runs ``block`` writes its id to ``<marker>`` and then waits
until the process is killed; once the marker exists, ``block`` does nothing.
A test waits for the marker, not for time, to know that a batch is half done.
"""

from __future__ import annotations

import threading
from pathlib import Path

from flask import Config
from marshmallow import Schema

from app import create_app as create_knock_sources_app
from knock_sources import config
from knock_sources.actions.base import Action
from knock_sources.hookspecs import hookimpl


class Block(Action):
    """Blocks the worker for good the first time it runs; a no-op once its marker exists."""

    action_type = "block"
    name = "Block"
    params_schema = Schema

    def __init__(self, marker: Path):
        self.marker = marker

    def execute(self, context, params):
        """Write the marker and wait to be killed, unless the marker was written before."""
        if self.marker.exists():
            return {"blocked": False}
        self.marker.write_text(str(context.event_log.id))
        threading.Event().wait()


class BlockingPlugin:
    """Registers ``block``."""

    def __init__(self, marker: Path):
        self.block = Block(marker)

    @hookimpl
    def register_actions(self):
        """Register the block action."""
        return [self.block]


def create_app(marker: str):
    """The app of ``flask worker``, configured from the environment as usual, with ``block`` installed."""
    settings = Config(Path(__file__).parent)
    settings.from_mapping(config.DEFAULTS)
    settings.from_prefixed_env("KNOCK_SOURCES")
    return create_knock_sources_app({**settings, "EXTRA_PLUGINS": [BlockingPlugin(Path(marker))]})
