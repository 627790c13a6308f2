"""The verification summary of each source environment, held against what its URL actually does.

``environment_settings.<env>.verification`` says which method authenticates
requests beyond the URL token, whether it is enforced, how many secrets
there are and when they expire, and whether the environment can accept
anything now; each case also sends an unauthenticated request and checks
that the answer agrees.
"""

import pytest

from knock_sources.store.control import Source

PAST, FUTURE = "2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z"
ENFORCED_SCRIPT = {"preprocess_script": {"source": "function main() { return {verified: false}; }"}}


def summary_of(api, key="my-source", **create):
    api.create_source(key, **create)
    return api.get(f"/v1/sources/{key}").get_json()["environment_settings"]["development"]["verification"]


@pytest.mark.parametrize(
    ("create", "method", "enforced", "accepts", "problem", "unauthenticated"),
    [
        ({}, "none", False, True, None, 204),
        ({"settings": {"signing_secret": "shared"}}, "shared_secret", True, True, None, 401),
        (
            {"settings": {"signing_secrets": [{"secret": "old", "expires_at": PAST}]}},
            "shared_secret",
            True,
            False,
            "secret_expired",
            401,
        ),
        (
            {"settings": {"signing_secrets": [{"secret": "s", "expires_at": FUTURE}]}},
            "shared_secret",
            True,
            True,
            None,
            401,
        ),
        ({"settings": {**ENFORCED_SCRIPT, "enforce_verification": True}}, "script", True, True, None, 401),
        ({"settings": {**ENFORCED_SCRIPT, "enforce_verification": False}}, "script", False, True, None, 204),
        ({"provider": "stripe"}, "provider_signature", True, False, "secret_missing", 401),
        (
            {"provider": "stripe", "settings": {"signing_secret": "whsec_x"}},
            "provider_signature",
            True,
            True,
            None,
            401,
        ),
        ({"provider": "supabase"}, "none", False, True, None, 204),
    ],
    ids=[
        "custom-open",
        "custom-shared-secret",
        "custom-secret-expired",
        "custom-secret-expiring",
        "custom-script-enforced",
        "custom-script-recorded",
        "stripe-without-secret",
        "stripe-with-secret",
        "supabase-open",
    ],
)
def test_summary_says_what_the_url_does(client, api, create, method, enforced, accepts, problem, unauthenticated):
    verification = summary_of(api, **create)
    assert (verification["method"], verification["enforced"]) == (method, enforced)
    assert verification["accepts_requests"] is accepts
    assert (verification["problem"] or {}).get("code") == problem
    assert client.post(api.endpoint(), json={"type": "a"}).status_code == unauthenticated


def test_secrets_are_counted_with_their_expiry(api):
    secrets = [{"secret": "a", "expires_at": FUTURE}, {"secret": "b", "expires_at": PAST}, {"secret": "c"}]
    verification = summary_of(api, settings={"signing_secrets": secrets})
    assert verification["secrets"] == {
        "count": 3,
        "usable": 2,
        "expired": 1,
        "undecryptable": 0,
        "expires_at": ["2999-01-01T00:00:00Z", "2000-01-01T00:00:00Z", None],
    }
    assert "a" not in str(verification["secrets"]["expires_at"])


def test_a_signed_provider_with_a_script_says_both(api):
    verification = summary_of(
        api, provider="stripe", settings={"signing_secret": "whsec_x", **ENFORCED_SCRIPT, "enforce_verification": False}
    )
    assert verification["method"] == "provider_signature"
    assert verification["script"] == {"enforced": False}


def test_a_source_whose_provider_is_gone_accepts_nothing(client, api, db):
    api.create_source()
    Source.update(provider="uninstalled").execute()
    verification = api.get("/v1/sources/my-source").get_json()["environment_settings"]["development"]["verification"]
    assert verification["accepts_requests"] is False
    assert verification["problem"]["code"] == "provider_missing"
    assert client.post(api.endpoint(), json={"type": "a"}).status_code == 401


def test_the_old_verified_flag_is_gone_and_a_get_body_can_be_put_back(api):
    body = api.create_source(provider="stripe")
    assert "verified" not in body["environment_settings"]["development"]
    assert api.put("/v1/sources/my-source", {"source": body}).status_code == 200
