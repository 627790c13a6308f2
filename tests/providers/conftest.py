"""Fixtures for provider tests: fresh secrets and signed-request helpers."""

import pytest

from knock_sources.testing import make_secret


@pytest.fixture
def secret():
    """A fresh ``whsec_<base64>`` secret, valid for every built-in provider."""
    return make_secret()


@pytest.fixture
def other_secret():
    """A second secret, for wrong-secret and rotation tests."""
    return make_secret()
