"""crypto, Buffer and friends, checked against Python's own implementations."""

import base64
import hashlib
import hmac

import pytest

from tests.support.scripts import (
    SECRET,
    make_ctx,
    run,
    run_error,
)

# --- crypto, Buffer and friends against Python ------------------------------------------------

# Block boundaries of both block sizes, multi-byte characters and a lone surrogate.
MESSAGES = ["", "abc", "caf\u00e9 \u20ac \U0001f600", "\ud800 lone surrogate"]
MESSAGES += ["a" * n for n in (55, 56, 63, 64, 111, 112, 127, 128, 1000)]


def python_encode(digest, encoding):
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


def utf8(text):
    return text.encode("utf-8", "replace").replace(b"?", "\ufffd".encode())


@pytest.mark.parametrize("encoding", ["hex", "base64"])
@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
def test_create_hash_matches_hashlib(runner, algorithm, encoding):
    source = """function main(ctx) {
      return {out: ctx.body.map((m) => crypto.createHash(ctx.headers.alg).update(m).digest(ctx.headers.enc))};
    }"""
    result = run(runner, source, make_ctx(body=MESSAGES, headers={"alg": algorithm, "enc": encoding}))
    assert result["out"] == [python_encode(hashlib.new(algorithm, utf8(m)).digest(), encoding) for m in MESSAGES]


@pytest.mark.parametrize("encoding", ["hex", "base64"])
@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
def test_create_hmac_matches_python(runner, algorithm, encoding):
    keys = [SECRET, "k", "\u00e9\u00e8", "long key " * 30]
    source = """function main(ctx) {
      const out = [];
      for (const key of ctx.vars.keys) {
        for (const m of ctx.body) out.push(crypto.createHmac(ctx.headers.alg, key).update(m).digest(ctx.headers.enc));
      }
      return {out};
    }"""
    ctx = make_ctx(body=MESSAGES, variables={"keys": keys}, headers={"alg": algorithm, "enc": encoding})
    expected = [python_encode(hmac.new(utf8(k), utf8(m), algorithm).digest(), encoding) for k in keys for m in MESSAGES]
    assert run(runner, source, ctx)["out"] == expected


def test_update_can_be_called_in_pieces(runner):
    source = """function main() {
      return {hex: crypto.createHash('sha256').update('ab').update(Buffer.from('c')).digest('hex')};
    }"""
    assert run(runner, source) == {"hex": hashlib.sha256(b"abc").hexdigest()}


def test_digest_without_encoding_returns_a_buffer(runner):
    source = """function main(ctx) {
      const digest = crypto.createHmac('sha256', Buffer.from(ctx.vars.SECRET)).update(ctx.rawBody).digest();
      return {isBuffer: Buffer.isBuffer(digest), length: digest.length, hex: digest.toString('hex')};
    }"""
    ctx = make_ctx(raw_body="payload")
    expected = hmac.new(SECRET.encode(), b"payload", hashlib.sha256).hexdigest()
    assert run(runner, source, ctx) == {"isBuffer": True, "length": 32, "hex": expected}


def test_digest_twice_throws_like_node(runner):
    error = run_error(runner, "function main() { const h = crypto.createHash('sha1'); h.digest(); h.digest(); }")
    assert error.message == "Error: Digest already called"


def test_unknown_digest_is_rejected(runner):
    assert (
        run_error(runner, "function main() { crypto.createHmac('md4', 'k'); }").message == "Error: Invalid digest: md4"
    )


@pytest.mark.parametrize(
    "text, encoding, expected",
    [
        ("h\u00e9llo \U0001f600", "utf8", "h\u00e9llo \U0001f600".encode()),
        ("68656c6c6f", "hex", b"hello"),
        ("68656c6c6fzz00", "hex", b"hello"),
        ("aGVsbG8gd29ybGQ=", "base64", b"hello world"),
        ("aGVsbG8gd29ybGQ", "base64", b"hello world"),
        ("aGVs bG8g\nd29y bGQ=", "base64", b"hello world"),
        ("-_8", "base64url", b"\xfb\xff"),
        ("caf\u00e9", "latin1", b"caf\xe9"),
    ],
)
def test_buffer_from_string_matches_node(runner, text, encoding, expected):
    source = "function main(ctx) { return {hex: Buffer.from(ctx.body.text, ctx.body.encoding).toString('hex')}; }"
    assert run(runner, source, make_ctx(body={"text": text, "encoding": encoding})) == {"hex": expected.hex()}


@pytest.mark.parametrize(
    "encoding, expected",
    [
        ("utf8", b"\x00\xff\xfeabc\xe2\x82\xac".decode("utf-8", "replace")),
        ("hex", "00fffe616263e282ac"),
        ("base64", base64.b64encode(b"\x00\xff\xfeabc\xe2\x82\xac").decode()),
        ("base64url", base64.urlsafe_b64encode(b"\x00\xff\xfeabc\xe2\x82\xac").decode().rstrip("=")),
        ("latin1", b"\x00\xff\xfeabc\xe2\x82\xac".decode("latin1")),
    ],
)
def test_buffer_to_string_matches_python(runner, encoding, expected):
    source = "function main(ctx) { return {text: Buffer.from(ctx.body.hex, 'hex').toString(ctx.body.encoding)}; }"
    assert run(runner, source, make_ctx(body={"hex": "00fffe616263e282ac", "encoding": encoding})) == {"text": expected}


@pytest.mark.parametrize("hex_bytes", ["c328", "e282", "f09f98", "eda080", "f4908080", "80bf", "c0af", "ff"])
def test_invalid_utf8_is_replaced_like_python(runner, hex_bytes):
    source = "function main(ctx) { return {text: new TextDecoder().decode(Buffer.from(ctx.body.hex, 'hex'))}; }"
    raw = bytes.fromhex(hex_bytes) + b"z"
    assert run(runner, source, make_ctx(body={"hex": raw.hex()})) == {"text": raw.decode("utf-8", "replace")}


def test_buffer_length_helpers(runner):
    source = """function main() {
      const b = Buffer.from('\u00e9t\u00e9');
      return {length: b.length, byteLength: Buffer.byteLength('\u00e9t\u00e9'), isBuffer: Buffer.isBuffer(b),
              plain: Buffer.isBuffer(new Uint8Array(2)), hexLength: Buffer.byteLength('abcd', 'hex')};
    }"""
    assert run(runner, source) == {"length": 5, "byteLength": 5, "isBuffer": True, "plain": False, "hexLength": 2}


@pytest.mark.parametrize("left, right, expected", [("ab", "ab", 0), ("ab", "b", -1), ("b", "ab", 1), ("ab", "a", 1)])
def test_buffer_compare_orders_bytes_like_node(runner, left, right, expected):
    source = (
        "function main(ctx) { return {order: Buffer.compare(Buffer.from(ctx.body[0]), Buffer.from(ctx.body[1]))}; }"
    )
    assert run(runner, source, make_ctx(body=[left, right])) == {"order": expected}


def test_buffer_concat_equals_and_slice(runner):
    source = """function main() {
      const joined = Buffer.concat([Buffer.from('ab'), Buffer.from('cd')]);
      return {text: joined.toString(), equal: joined.equals(Buffer.from('abcd')), slice: joined.slice(1, 3).toString()};
    }"""
    assert run(runner, source) == {"text": "abcd", "equal": True, "slice": "bc"}


@pytest.mark.parametrize(
    "left, right, expected", [("'abc'", "'abc'", True), ("'abc'", "'abd'", False)], ids=["equal", "different"]
)
def test_timing_safe_equal(runner, left, right, expected):
    source = (
        f"function main() {{ return {{equal: crypto.timingSafeEqual(Buffer.from({left}), Buffer.from({right}))}}; }}"
    )
    assert run(runner, source) == {"equal": expected}


def test_timing_safe_equal_throws_on_length_mismatch_like_node(runner):
    source = """function main() {
      try { crypto.timingSafeEqual(Buffer.from('a'), Buffer.from('ab')); }
      catch (e) { return {name: e.name, code: e.code}; }
    }"""
    assert run(runner, source) == {"name": "RangeError", "code": "ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH"}


def test_timing_safe_equal_rejects_strings(runner):
    assert run_error(runner, "function main() { crypto.timingSafeEqual('a', 'a'); }").message.startswith("TypeError")


def test_atob_and_btoa(runner):
    source = "function main() { return {encoded: btoa('hi\u00ff'), decoded: atob('aGn/')}; }"
    assert run(runner, source) == {"encoded": base64.b64encode(b"hi\xff").decode(), "decoded": "hi\u00ff"}


def test_text_encoder_and_decoder_round_trip(runner):
    source = """function main() {
      const bytes = new TextEncoder().encode('\u00e9\U0001f600');
      return {bytes: Array.from(bytes), text: new TextDecoder().decode(bytes), plain: bytes instanceof Uint8Array};
    }"""
    assert run(runner, source) == {
        "bytes": list("\u00e9\U0001f600".encode()),
        "text": "\u00e9\U0001f600",
        "plain": True,
    }
