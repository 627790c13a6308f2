"""The shared verification helpers in ``knock_sources.signing``."""

import pytest

from knock_sources import signing
from knock_sources.errors import SignatureError
from knock_sources.testing import make_envelope


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("t=1700000000,v1=abc", ("1700000000", ["abc"])),
        ("t=1700000000, v1=abc", ("1700000000", ["abc"])),
        (" t=1700000000 ,  v1=abc ", ("1700000000", ["abc"])),
        ("t=1700000000,v1=abc,v1=def", ("1700000000", ["abc", "def"])),
        ("t=1700000000,v0=old,v1=abc,v2=new", ("1700000000", ["abc"])),
        ("v1=abc,t=1700000000", ("1700000000", ["abc"])),
        ("t=1700000000,v1=abc,", ("1700000000", ["abc"])),
        ("t=1700000000,v1=abc, t=1700000000,v1=def", ("1700000000", ["abc", "def"])),
    ],
)
def test_parse_timestamped_header_accepts(header, expected):
    assert signing.parse_timestamped_header(header, "X-Sig") == expected


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("v1=abc", "signature_malformed"),
        ("t=1,t=2,v1=abc", "signature_malformed"),
        ("t=1700000000,v1abc", "signature_malformed"),
        ("t=1700000000,=abc", "signature_malformed"),
        ("t=1700000000,v1=", "signature_malformed"),
        ("t=1700000000", "signature_missing"),
        ("t=1700000000,v0=abc", "signature_missing"),
        ("t=17e8,v1=abc", "signature_malformed"),
        ("t=１７００,v1=abc", "signature_malformed"),
    ],
)
def test_parse_timestamped_header_rejects(header, code):
    with pytest.raises(SignatureError) as excinfo:
        signing.parse_timestamped_header(header, "X-Sig")
    assert excinfo.value.code == code


@pytest.mark.parametrize("value", ["", "-1", "+1", " 1", "1_000", "1.5", "٣", "１", "9" * 16])
def test_parse_timestamp_accepts_only_ascii_digits(value):
    with pytest.raises(SignatureError) as excinfo:
        signing.parse_timestamp(value, "X-Timestamp")
    assert excinfo.value.code == "signature_malformed"


def test_parse_timestamp_returns_an_int():
    assert signing.parse_timestamp("1700000000123", "X-Timestamp") == 1700000000123


@pytest.mark.parametrize("timestamp", [700, 1000, 1300])
def test_check_tolerance_accepts_the_window_inclusive(timestamp):
    signing.check_tolerance(timestamp, 300, now=1000)


@pytest.mark.parametrize("timestamp", [699, 1301])
def test_check_tolerance_rejects_both_directions(timestamp):
    with pytest.raises(SignatureError) as excinfo:
        signing.check_tolerance(timestamp, 300, now=1000)
    assert excinfo.value.code == "timestamp_out_of_tolerance"


@pytest.mark.parametrize(
    ("setting", "expected"),
    [(None, 300), (600, 600), (1, 1), (0, 300), (-1, 300), ("600", 300), (True, 300), (1.5, 300)],
)
def test_tolerance_seconds_only_takes_positive_ints(setting, expected):
    assert signing.tolerance_seconds({"tolerance_seconds": setting}, 300) == expected


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        (["a", "b"], ["a", "b"]),
        ([" a\n", "", "  ", None, 3, "b"], ["a", "b"]),
        ("a", ["a"]),
    ],
)
def test_signing_secrets_keeps_usable_secrets(configured, expected):
    assert signing.signing_secrets({"signing_secrets": configured}) == expected


@pytest.mark.parametrize("config", [{}, {"signing_secrets": None}, {"signing_secrets": []}, {"signing_secrets": [" "]}])
def test_signing_secrets_fails_closed(config):
    with pytest.raises(SignatureError) as excinfo:
        signing.signing_secrets(config)
    assert excinfo.value.code == "secret_missing"


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            b"1\xf2\x90\xf6\xbf\x06)\x8a\xabO\x08\xd4<?\x08,\xf6H\xa3b\xda-\xa4\xb0",
        ),
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", b"1\xf2\x90\xf6\xbf\x06)\x8a\xabO\x08\xd4<?\x08,\xf6H\xa3b\xda-\xa4\xb0"),
        ("whsec_YWJj", b"abc"),
        ("whsec_YWI", b"ab"),
    ],
)
def test_decode_base64_secret(secret, expected):
    assert signing.decode_base64_secret(secret) == expected


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not base64!", "whsec_é", "whsec_====", "whsec_YW=J"])
def test_decode_base64_secret_returns_none_when_invalid(secret):
    assert signing.decode_base64_secret(secret) is None


def test_hmac_helpers_agree():
    raw = signing.hmac_sha256("key", b"message")
    assert signing.hmac_sha256_hex("key", b"message") == raw.hex()
    assert signing.hmac_sha256_base64(b"key", b"message") == "bp7ym3X//Ft6uuUn1Y/a2y/kLnIZARl2kXNDBl9Y7Uo="


def test_check_signatures_accepts_any_expected_against_any_candidate():
    signing.check_signatures(["aaa", "bbb"], ["ccc", "bbb"])


def test_check_signatures_without_candidates_is_missing():
    with pytest.raises(SignatureError) as excinfo:
        signing.check_signatures(["aaa"], [])
    assert excinfo.value.code == "signature_missing"


def test_check_signatures_mismatch():
    with pytest.raises(SignatureError) as excinfo:
        signing.check_signatures(["aaa"], ["aab", "é\udcff"])
    assert excinfo.value.code == "signature_mismatch"


@pytest.mark.parametrize(("a", "b", "equal"), [("é", "é", True), ("é", "e", False), (b"x", "x", True)])
def test_constant_time_equal_handles_non_ascii(a, b, equal):
    assert signing.constant_time_equal(a, b) is equal


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, "authorization"),
        ({"secret_header": "X-Hook-Token "}, "x-hook-token"),
        ({"secret_header": ""}, "authorization"),
        ({"secret_header": 7}, "authorization"),
    ],
)
def test_secret_header_setting(config, expected):
    assert signing.secret_header(config, "authorization") == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [("authorization", {"Authorization": "Bearer s3"}), ("x-webhook-secret", {"x-webhook-secret": "s3"})],
)
def test_shared_secret_headers(header, expected):
    assert signing.shared_secret_headers(header, "s3") == expected


@pytest.mark.parametrize("value", ["Bearer s3", "bearer s3", "BEARER  s3 ", "s3"])
def test_verify_shared_secret_accepts_bearer_or_bare(value):
    envelope = make_envelope(b"{}", {"Authorization": value})
    signing.verify_shared_secret(envelope, {"signing_secrets": ["other", "s3"]}, "authorization")


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "signature_missing"),
        ({"authorization": "Bearer nope"}, "signature_mismatch"),
        ({"authorization": "Basic czM="}, "signature_mismatch"),
    ],
)
def test_verify_shared_secret_rejects(headers, code):
    with pytest.raises(SignatureError) as excinfo:
        signing.verify_shared_secret(make_envelope(b"{}", headers), {"signing_secrets": ["s3"]}, "authorization")
    assert excinfo.value.code == code


def test_require_header_treats_blank_as_missing():
    with pytest.raises(SignatureError) as excinfo:
        signing.require_header(make_envelope(b"{}", {"x-sig": "  "}), "X-Sig")
    assert excinfo.value.code == "signature_missing"


def test_sign_timestamped_hmac_signs_the_timestamp_and_the_body():
    value = signing.sign_timestamped_hmac(b"{}", "key", timestamp=1700000000, unit="s", separator=", ")
    assert value == f"t=1700000000, v1={signing.hmac_sha256_hex('key', b'1700000000.{}')}"


@pytest.mark.parametrize(("unit", "scale"), sorted(signing.TIMESTAMP_UNITS.items()))
def test_verify_timestamped_hmac_accepts_what_was_signed_now_in_its_unit(unit, scale):
    header = signing.sign_timestamped_hmac(b"{}", "key", timestamp=None, unit=unit)
    timestamp, _ = signing.parse_timestamped_header(header, "X-Sig")
    assert abs(int(timestamp) - signing.now_seconds() * scale) <= scale
    envelope = make_envelope(b"{}", {"X-Sig": header})
    signing.verify_timestamped_hmac(envelope, {"signing_secrets": ["key"]}, "X-Sig", tolerance=60, unit=unit)


@pytest.mark.parametrize(("secret", "code"), [("other", "signature_mismatch"), ("key", "timestamp_out_of_tolerance")])
def test_verify_timestamped_hmac_checks_the_signature_before_the_timestamp(secret, code):
    stale = signing.sign_timestamped_hmac(b"{}", secret, timestamp=1700000000, unit="s")
    with pytest.raises(SignatureError) as excinfo:
        signing.verify_timestamped_hmac(
            make_envelope(b"{}", {"X-Sig": stale}), {"signing_secrets": ["key"]}, "X-Sig", tolerance=60, unit="s"
        )
    assert excinfo.value.code == code
