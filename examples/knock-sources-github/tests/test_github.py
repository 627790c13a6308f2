"""The GitHub provider: the knock-sources contract plus GitHub's own documented example."""

import pytest
from knock_sources_github import GitHubProvider

from knock_sources.errors import SignatureError
from knock_sources.testing import CONTRACT_CHECKS, config_for, make_envelope

PROVIDER = GitHubProvider()


@pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda check: check.__name__)
def test_contract(check):
    check(PROVIDER)


def test_githubs_documented_test_vector_verifies():
    # https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
    signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    envelope = make_envelope(b"Hello, World!", {"X-Hub-Signature-256": signature})
    PROVIDER.verify(envelope, config_for("It's a Secret to Everybody"))


def test_the_legacy_sha1_header_is_not_enough():
    envelope = make_envelope(b"{}", {"X-Hub-Signature": "sha1=0000000000000000000000000000000000000000"})
    with pytest.raises(SignatureError) as excinfo:
        PROVIDER.verify(envelope, config_for("secret"))
    assert excinfo.value.code == "signature_missing"


def test_a_signature_without_the_sha256_prefix_is_malformed():
    envelope = make_envelope(b"{}", {"X-Hub-Signature-256": "0" * 64})
    with pytest.raises(SignatureError) as excinfo:
        PROVIDER.verify(envelope, config_for("secret"))
    assert excinfo.value.code == "signature_malformed"
