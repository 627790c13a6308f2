"""The control plane's services: sources, variables, encryption at rest, rehearsal, API keys.

What the JSON API and the pages call; they take and return plain values and
models, never Flask's request.
"""
