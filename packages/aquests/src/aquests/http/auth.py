"""Authorization headers: Basic, Bearer, and Digest answering a 401 challenge (AQ-18)."""
from __future__ import annotations

import base64
import hashlib
import os
from typing import Any
from urllib.request import parse_http_list

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256, "SHA-512-256": None}


def _no_breaks(what: str, value: str) -> str:
    if any(c in value for c in "\r\n\x00"):
        raise ValueError(f"auth {what} may not contain CR/LF/NUL")
    return value


def _quoted(value: str) -> str:
    """An RFC 9110 quoted-string: a '"' or '\\' in a user name or a server's realm cannot end it early."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Auth:
    """Normalised ``auth=`` argument.

    ``(user, password)`` sends Basic and switches to Digest when the server challenges with it;
    ``(user, password, "digest")`` waits for the challenge; a str is sent as a Bearer token.
    """

    __slots__ = ("user", "password", "preemptive", "bearer")

    def __init__(self, spec: Any) -> None:
        self.bearer = None
        self.user = self.password = ""
        self.preemptive = True
        if isinstance(spec, str):
            if not spec:
                raise ValueError("auth token is empty")
            self.bearer = _no_breaks("token", spec)
        elif isinstance(spec, (tuple, list)) and len(spec) in (2, 3):
            self.user, self.password = _no_breaks("user", str(spec[0])), str(spec[1])
            if len(spec) == 3:
                if str(spec[2]).lower() not in ("basic", "digest"):
                    raise ValueError(f"auth scheme must be 'basic' or 'digest', got {spec[2]!r}")
                self.preemptive = str(spec[2]).lower() == "basic"
        else:
            raise TypeError("auth must be (user, password), (user, password, 'digest') or a bearer token")

    def header(self) -> str | None:
        """The header to send before any challenge."""
        if self.bearer is not None:
            return f"Bearer {self.bearer}"
        if self.preemptive:
            raw = f"{self.user}:{self.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        return None


def parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    """``'Digest realm="x", nonce="y"'`` → ``('digest', {'realm': 'x', 'nonce': 'y'})``."""
    scheme, _, rest = value.strip().partition(" ")
    params = {}
    for item in parse_http_list(rest):
        # urllib's parse_keqv_list raises IndexError/ValueError on "realm" or "realm=": a server's
        # malformed challenge must not raise out of the request, so such items are skipped
        k, eq, v = item.partition("=")
        if not eq or not v:
            continue
        params[k] = v[1:-1] if len(v) > 1 and v[0] == v[-1] == '"' else v
    return scheme.lower(), params


def digest_header(auth: Auth, challenge: dict[str, str], method: str, uri: str, nc: int = 1) -> str:
    """The ``Authorization: Digest ...`` value answering ``challenge`` (RFC 7616, qop=auth)."""
    algorithm = challenge.get("algorithm", "MD5").upper()
    sess = algorithm.endswith("-SESS")
    base = algorithm[:-5] if sess else algorithm
    hfn = _HASHES.get(base)
    if hfn is None:
        raise ValueError(f"unsupported Digest algorithm {algorithm!r}")

    def H(s: str) -> str:
        return hfn(s.encode()).hexdigest()

    realm, nonce = challenge.get("realm", ""), challenge.get("nonce", "")
    cnonce = os.urandom(8).hex()
    ha1 = H(f"{auth.user}:{realm}:{auth.password}")
    if sess:
        ha1 = H(f"{ha1}:{nonce}:{cnonce}")
    ha2 = H(f"{method}:{uri}")
    qops = [q.strip() for q in challenge.get("qop", "").split(",") if q.strip()]
    ncs = f"{nc:08x}"
    parts = [f"username={_quoted(auth.user)}", f"realm={_quoted(realm)}", f"nonce={_quoted(nonce)}",
             f"uri={_quoted(uri)}", f"algorithm={algorithm}"]
    if "auth" in qops:
        parts.append(f'response="{H(f"{ha1}:{nonce}:{ncs}:{cnonce}:auth:{ha2}")}"')
        parts += ["qop=auth", f"nc={ncs}", f'cnonce="{cnonce}"']
    elif not qops:
        parts.append(f'response="{H(f"{ha1}:{nonce}:{ha2}")}"')
    else:
        raise ValueError(f"unsupported Digest qop {challenge.get('qop')!r}")
    if "opaque" in challenge:
        parts.append(f"opaque={_quoted(challenge['opaque'])}")
    return "Digest " + ", ".join(parts)
