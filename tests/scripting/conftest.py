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


@pytest.fixture(scope="module")
def patient_module_runner():
    # A time limit no bomb reaches however busy the machine is, so that a bomb
    # always meets the memory limit and never races the clock.
    with ScriptRunner(timeout_ms=20_000) as script_runner:
        yield script_runner


@pytest.fixture
def patient(patient_module_runner, request):
    """Like ``runner``, for tests of the memory limit: a time limit no bomb reaches."""
    return PrivateKeys(patient_module_runner, request.node.nodeid)
