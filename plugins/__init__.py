"""Built-in provider plugins, one module per provider (``plugins/<slug>.py``).

Each module defines one ``Provider`` subclass and a ``register_providers``
hookimpl, and is listed in ``knock_sources.plugins.DEFAULT_PLUGINS`` under
its dotted path (for example ``"plugins.stripe"``), which is also the name a
deployment passes to ``DISABLED_PLUGINS`` to replace it with its own.
"""
