"""The contract kit (``knock_sources.testing``) itself: it fails loudly, also under ``python -O``."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from knock_sources import testing
from knock_sources.testing import ContractError, assert_provider_contract
from plugins.stripe import StripeProvider
from tests.providers.contract_support import GullibleProvider, UndeclaredProvider, UntimedProvider

ROOT = Path(__file__).resolve().parents[2]
UNDECLARED = (
    "undeclared: a signed provider must declare tolerance_seconds (its replay window) "
    "or timestamped = False (its signature covers no timestamp)"
)
#: Every check that looks at timestamps, so every one that must refuse to skip them.
TIMESTAMP_CHECKS = (
    testing.check_metadata,
    testing.check_sign_then_verify,
    testing.check_timestamp_window,
    testing.check_timestamp_unit,
    testing.check_tolerance_override,
)
# Runs the kit with assert statements compiled away and reports what it raised.
OPTIMIZED_RUN = """
import json
from knock_sources.testing import ContractError, assert_provider_contract
from tests.providers.contract_support import GullibleProvider, UndeclaredProvider

def failure(provider):
    try:
        assert_provider_contract(provider)
    except ContractError as exc:
        return str(exc)
    return None

report = {"undeclared": failure(UndeclaredProvider()), "gullible": failure(GullibleProvider())}
print(json.dumps({"debug": __debug__, **report}))
"""


def contract_failure(provider):
    """Return the message of the ``ContractError`` that the whole contract raises for ``provider``."""
    with pytest.raises(ContractError) as excinfo:
        assert_provider_contract(provider)
    return str(excinfo.value)


@pytest.mark.parametrize("check", TIMESTAMP_CHECKS, ids=lambda check: check.__name__)
def test_a_signed_provider_declaring_no_timestamp_policy_fails(check):
    with pytest.raises(ContractError) as excinfo:
        check(UndeclaredProvider())
    assert str(excinfo.value) == UNDECLARED


def test_the_whole_contract_names_each_check_that_refused():
    assert contract_failure(UndeclaredProvider()).splitlines() == [
        f"{check.__name__}: {UNDECLARED}" for check in TIMESTAMP_CHECKS
    ]


def test_declaring_timestamped_false_passes_and_skips_the_timestamp_checks():
    assert_provider_contract(UntimedProvider())


def test_contradicting_declarations_fail():
    provider = UntimedProvider()
    provider.tolerance_seconds = 300
    with pytest.raises(ContractError, match="untimed: timestamped = False contradicts tolerance_seconds = 300"):
        testing.check_timestamp_window(provider)


@pytest.mark.parametrize("tolerance", [0, -1, True, 1.5, "300"])
def test_a_tolerance_that_would_disable_or_garble_the_checks_fails(tolerance):
    provider = StripeProvider()
    provider.tolerance_seconds = tolerance
    with pytest.raises(ContractError, match="stripe: tolerance_seconds must be a positive whole number"):
        testing.check_timestamp_window(provider)


def test_contract_errors_are_assertion_errors():
    assert issubclass(ContractError, AssertionError)


def test_the_kit_fails_the_same_way_under_python_dash_o():
    command = [sys.executable, "-O", "-c", OPTIMIZED_RUN]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "debug": False,
        "undeclared": contract_failure(UndeclaredProvider()),
        "gullible": contract_failure(GullibleProvider()),
    }
