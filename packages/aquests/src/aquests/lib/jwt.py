"""JSON Web Tokens for the gateway (inventory AQ-21), on top of pyjwt.

Tokens are issued as RFC 7519 tokens (base64url, HMAC-SHA2). ``get_claim`` verifies in constant
time, checks ``exp``/``nbf`` when present and returns the claim dict, or ``None`` for any bad token,
so callers can treat "no claim" as "not authenticated" without catching anything.

Legacy tokens (issued by the original aquests: standard base64 with ``+``/``/``, padding
stripped) are still accepted, but only when the token contains ``+`` or ``/``. Any other token is
plain RFC 7519 and goes through pyjwt alone (the two encodings agree on every other character, so
a legacy token without ``+``/``/`` is already a valid RFC 7519 token). Legacy tokens get the same
checks as new ones: HS256/384/512 only, constant-time signature compare, ``exp``/``nbf``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any

try:
    import jwt as _pyjwt
except ImportError:  # pragma: no cover - depends on the install
    _pyjwt = None

ALGORITHMS: dict[str, Any] = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_LEGACY_MARKS = frozenset("+/")


def _require_pyjwt() -> Any:
    if _pyjwt is None:
        raise ImportError("aquests.lib.jwt needs pyjwt: pip install 'aquests[jwt]'")
    return _pyjwt


def _check_alg(alg: str) -> str:
    if alg not in ALGORITHMS:
        raise ValueError(f"unsupported JWT algorithm {alg!r}: use one of {', '.join(ALGORITHMS)}")
    return alg


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, str):
        return secret.encode("utf8")
    if isinstance(secret, (bytes, bytearray)):
        return bytes(secret)
    raise TypeError(f"secret must be str or bytes, not {type(secret).__name__}")


def gen_token(secret: str | bytes, claim: dict[str, Any], alg: str = "HS256") -> str:
    """Sign ``claim`` with ``secret`` and return an RFC 7519 token (str)."""
    if not isinstance(claim, dict):
        raise TypeError(f"claim must be a dict, not {type(claim).__name__}")
    pyjwt = _require_pyjwt()
    return pyjwt.encode(claim, _key(secret), algorithm=_check_alg(alg))


def get_claim(secret: str | bytes, token: str | bytes, *, verify_time: bool = True, leeway: float = 0,
              audience: str | None = None, legacy: bool = True) -> dict[str, Any] | None:
    """Return the verified claim of ``token``, or None if it is malformed, forged or out of date.

    ``verify_time=False`` skips the ``exp``/``nbf`` checks; ``audience`` also requires a matching
    ``aud``; ``legacy=False`` refuses tokens in the original standard-base64 encoding.
    """
    key = _key(secret)
    if isinstance(token, (bytes, bytearray)):
        try:
            token = bytes(token).decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(token, str) or token.count(".") != 2:
        return None
    if _LEGACY_MARKS.intersection(token):
        return _legacy_claim(key, token, verify_time, leeway, audience) if legacy else None
    return _rfc_claim(key, token, verify_time, leeway, audience)


def _rfc_claim(key: bytes, token: str, verify_time: bool, leeway: float,
               audience: str | None) -> dict[str, Any] | None:
    pyjwt = _require_pyjwt()
    options = {"verify_exp": verify_time, "verify_nbf": verify_time, "verify_iat": False,
               "verify_aud": audience is not None, "verify_iss": False, "verify_sub": False,
               "verify_jti": False}
    try:
        claim = pyjwt.decode(token, key, algorithms=list(ALGORITHMS), options=options,
                             leeway=leeway, audience=audience)
    except pyjwt.PyJWTError:
        return None
    return claim if isinstance(claim, dict) else None


def _b64std(segment: str) -> bytes:
    """Decode a standard-base64 segment whose padding was stripped; raises ValueError."""
    try:
        return base64.b64decode(segment + "=" * (-len(segment) % 4), validate=True)
    except binascii.Error as e:
        raise ValueError(str(e)) from None


def _legacy_claim(key: bytes, token: str, verify_time: bool, leeway: float,
                  audience: str | None) -> dict[str, Any] | None:
    header_b64, claim_b64, sig_b64 = token.split(".")
    try:
        header = json.loads(_b64std(header_b64))
        signature = _b64std(sig_b64)
        claim = json.loads(_b64std(claim_b64))
    except ValueError:
        return None
    if not isinstance(header, dict) or not isinstance(claim, dict):
        return None
    digest = ALGORITHMS.get(header.get("alg"))
    if digest is None:
        return None
    expected = hmac.new(key, f"{header_b64}.{claim_b64}".encode("ascii"), digest).digest()
    if not hmac.compare_digest(expected, signature):
        return None
    if verify_time and not _in_time(claim, leeway):
        return None
    if audience is not None and not _has_audience(claim, audience):
        return None
    return claim


def _in_time(claim: dict[str, Any], leeway: float) -> bool:
    now = time.time()
    try:
        if "exp" in claim and float(claim["exp"]) <= now - leeway:
            return False
        if "nbf" in claim and float(claim["nbf"]) > now + leeway:
            return False
    except (TypeError, ValueError):
        return False
    return True


def _has_audience(claim: dict[str, Any], audience: str) -> bool:
    aud = claim.get("aud")
    return aud == audience or (isinstance(aud, list) and audience in aud)
