"""aquests.lib.jwt: RFC 7519 tokens through pyjwt, and legacy standard-base64 tokens (AQ-21)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt as pyjwt
import pytest

from aquests.lib import jwt

SECRET = b"8fa06210-e109-11e6-934f-001b216d6e71-padded-to-64-bytes-for-hs512-keys!!"
CLAIM = {"user": "Hans Roh", "roles": ["user"]}


def _b64std(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def legacy_token(secret: bytes, claim: dict, alg: str = "HS256", *, want_marks: bool = True) -> str:
    """Build a token the way the original aquests did (standard base64, padding stripped)."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}.get(alg, hashlib.sha256)
    for n in range(10000):
        body = dict(claim, n=n)
        header = _b64std(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        payload = _b64std(json.dumps(body).encode())
        sig = _b64std(hmac.new(secret, f"{header}.{payload}".encode(), digest).digest())
        token = f"{header}.{payload}.{sig}"
        if (("+" in token) or ("/" in token)) == want_marks:
            return token
    raise AssertionError("no suitable legacy token found")


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_roundtrip_each_hs_algorithm(alg):
    token = jwt.gen_token(SECRET, CLAIM, alg)
    assert "+" not in token and "/" not in token and "=" not in token
    assert pyjwt.get_unverified_header(token)["alg"] == alg
    assert jwt.get_claim(SECRET, token) == CLAIM


def test_str_secret_and_bytes_token():
    token = jwt.gen_token("a-text-secret-that-is-long-enough-for-hs256", CLAIM)
    assert jwt.get_claim("a-text-secret-that-is-long-enough-for-hs256", token.encode()) == CLAIM


def test_wrong_secret_and_tampering_give_none():
    token = jwt.gen_token(SECRET, CLAIM)
    assert jwt.get_claim(SECRET + b"x", token) is None
    header, payload, sig = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"user": "root", "roles": ["admin"]}).encode()).decode().rstrip("=")
    assert jwt.get_claim(SECRET, f"{header}.{forged}.{sig}") is None
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    assert jwt.get_claim(SECRET, f"{header}.{payload}.{flipped}") is None


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d", "!!!.???.***", "e30.e30.", b"\xff.\xfe.\xfd"])
def test_garbage_gives_none(token):
    assert jwt.get_claim(SECRET, token) is None


def test_expired_and_not_yet_valid():
    now = int(time.time())
    expired = jwt.gen_token(SECRET, dict(CLAIM, exp=now - 10))
    assert jwt.get_claim(SECRET, expired) is None
    assert jwt.get_claim(SECRET, expired, leeway=60) == dict(CLAIM, exp=now - 10)
    assert jwt.get_claim(SECRET, expired, verify_time=False)["user"] == "Hans Roh"
    early = jwt.gen_token(SECRET, dict(CLAIM, nbf=now + 60))
    assert jwt.get_claim(SECRET, early) is None
    fresh = jwt.gen_token(SECRET, dict(CLAIM, exp=now + 60, nbf=now - 1))
    assert jwt.get_claim(SECRET, fresh)["user"] == "Hans Roh"


def test_audience_checked_only_when_asked():
    token = jwt.gen_token(SECRET, dict(CLAIM, aud="gateway"))
    assert jwt.get_claim(SECRET, token)["aud"] == "gateway"
    assert jwt.get_claim(SECRET, token, audience="gateway")["aud"] == "gateway"
    assert jwt.get_claim(SECRET, token, audience="other") is None


def test_alg_none_and_non_hs_rejected():
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    payload = base64.urlsafe_b64encode(json.dumps(CLAIM).encode()).decode().rstrip("=")
    assert jwt.get_claim(SECRET, f"{header}.{payload}.") is None
    # a legacy-looking token claiming alg none is refused too
    legacy = legacy_token(SECRET, CLAIM, "none")
    assert jwt.get_claim(SECRET, legacy) is None
    # RS256-labelled token signed with the secret as an HMAC key (key confusion) is refused
    rs_header = base64.urlsafe_b64encode(b'{"alg":"RS256","typ":"JWT"}').decode().rstrip("=")
    sig = base64.urlsafe_b64encode(
        hmac.new(SECRET, f"{rs_header}.{payload}".encode(), hashlib.sha256).digest()).decode().rstrip("=")
    assert jwt.get_claim(SECRET, f"{rs_header}.{payload}.{sig}") is None


def test_gen_token_bad_arguments():
    with pytest.raises(ValueError, match="unsupported JWT algorithm"):
        jwt.gen_token(SECRET, CLAIM, "RS256")
    with pytest.raises(ValueError):
        jwt.gen_token(SECRET, CLAIM, "none")
    with pytest.raises(TypeError):
        jwt.gen_token(SECRET, ["not", "a", "dict"])
    with pytest.raises(TypeError):
        jwt.gen_token(12345, CLAIM)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_legacy_token_with_std_base64_marks_accepted(alg):
    token = legacy_token(SECRET, CLAIM, alg)
    assert "+" in token or "/" in token
    claim = jwt.get_claim(SECRET, token)
    assert claim is not None and claim["user"] == "Hans Roh"
    assert jwt.get_claim(SECRET, token, legacy=False) is None


def test_legacy_token_without_marks_is_plain_rfc7519():
    token = legacy_token(SECRET, CLAIM, want_marks=False)
    assert jwt.get_claim(SECRET, token)["user"] == "Hans Roh"


def test_legacy_token_tampered_or_expired_rejected():
    token = legacy_token(SECRET, CLAIM)
    assert jwt.get_claim(SECRET + b"!", token) is None
    header, payload, sig = token.split(".")
    assert jwt.get_claim(SECRET, f"{header}.{payload}.{sig[::-1]}") is None
    expired = legacy_token(SECRET, dict(CLAIM, exp=time.time() - 5))
    assert jwt.get_claim(SECRET, expired) is None
    assert jwt.get_claim(SECRET, expired, verify_time=False)["user"] == "Hans Roh"
    early = legacy_token(SECRET, dict(CLAIM, nbf=time.time() + 60))
    assert jwt.get_claim(SECRET, early) is None


def test_the_seed_sample_token_verifies():
    # token printed in the original aquests source for this secret and claim (order: roles, user)
    sample = ("eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJyb2xlcyI6IFsidXNlciJdLCAidXNlciI6ICJIYW5zIFJvaCJ9."
              "ls7R30APuI9QkeI0nVa0YOV3fBo2SlFg0ESzdyPzuv0")
    claim = jwt.get_claim(b"8fa06210-e109-11e6-934f-001b216d6e71", sample)
    assert claim == {"roles": ["user"], "user": "Hans Roh"}
