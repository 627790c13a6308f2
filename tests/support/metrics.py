"""Reading Prometheus' text format in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict:
    """Return ``{(sample name, sorted label items): value}`` of an exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels) -> float:
    """Return one sample's value (0 when absent, as for a counter not yet incremented)."""
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)
