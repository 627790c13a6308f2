"""Fixtures of the sandbox tests: one script host per module, seen per test through private keys."""

import pytest

from knock_sources.scripting import ScriptRunner
from tests.support.scripts import PrivateKeys


@pytest.fixture(scope="module")
def module_runner():
    with ScriptRunner() as script_runner:
        yield script_runner


@pytest.fixture
def runner(module_runner, request):
    return PrivateKeys(module_runner, request.node.nodeid)
