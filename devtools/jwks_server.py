"""A local token issuer: signing keys, a real JWKS endpoint, and a command that mints tokens.

``JwksServer`` listens on 127.0.0.1 (ephemeral port) and serves whatever key set it
holds, counts requests, and can be told to fail (HTTP 500), hang (the client times
out) or serve arbitrary bytes. ``SigningKey`` generates an RSA or EC P-256 key pair
with the ``cryptography`` library and signs tokens with it. ``Issuer`` is what an
identity provider is to a deployment (a key, an ``iss``, an ``aud``), saved to a file
so another process can mint tokens for it (the rehearsal)::

    python -m devtools.jwks_server mint --issuer-file build/rehearse/issuer.json USER [--admin]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

Mode = Literal["ok", "error", "hang"]


@dataclass
class SigningKey:
    """A private key, its ``kid`` and the one algorithm it signs with."""

    kid: str | None
    alg: Literal["RS256", "ES256"]
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = field(repr=False)

    @classmethod
    def rsa(cls, kid: str | None = "rsa-1", bits: int = 2048) -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        return cls(kid=kid, alg="RS256", private_key=key)

    @classmethod
    def ec(cls, kid: str | None = "ec-1") -> SigningKey:
        return cls(kid=kid, alg="ES256", private_key=ec.generate_private_key(ec.SECP256R1()))

    def with_kid(self, kid: str | None) -> SigningKey:
        """The same key material under another kid."""
        return SigningKey(kid=kid, alg=self.alg, private_key=self.private_key)

    def public_jwk(self, **extra: Any) -> dict[str, Any]:
        public = self.private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk: dict[str, Any] = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        if self.kid is not None:
            jwk["kid"] = self.kid
        jwk.update({"use": "sig", "alg": self.alg}, **extra)
        return jwk

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        hdrs = dict(headers or {})
        if self.kid is not None:
            hdrs.setdefault("kid", self.kid)
        return jwt.encode(claims, self.private_key, algorithm=self.alg, headers=hdrs)

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_pem(cls, pem: bytes, kid: str | None) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if isinstance(key, rsa.RSAPrivateKey):
            return cls(kid=kid, alg="RS256", private_key=key)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return cls(kid=kid, alg="ES256", private_key=key)
        raise ValueError("only RSA and EC P-256 keys are supported")


@dataclass(frozen=True)
class Issuer:
    """An identity provider as a deployment sees it: ``AUTH_ISSUER``, ``AUTH_AUDIENCE`` and
    the key behind ``AUTH_JWKS_URL``."""

    key: SigningKey
    issuer: str
    audience: str

    def mint(self, user_id: str, *, admin: bool = False, ttl_s: int = 3600) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user_id,
            "iat": now,
            "exp": now + ttl_s,
        }
        if admin:
            claims["role"] = "admin"
        return self.key.sign(claims)

    def save(self, path: Path) -> None:
        """Write the issuer (private key included) for ``load``; readable by the owner only."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        document = {
            "issuer": self.issuer,
            "audience": self.audience,
            "kid": self.key.kid,
            "private_key_pem": self.key.private_pem().decode(),
        }
        path.write_text(json.dumps(document, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Issuer:
        doc = json.loads(path.read_text(encoding="utf-8"))
        key = SigningKey.from_pem(doc["private_key_pem"].encode(), doc["kid"])
        return cls(key=key, issuer=doc["issuer"], audience=doc["audience"])


def jwks(keys: Iterable[SigningKey]) -> dict[str, Any]:
    return {"keys": [k.public_jwk() for k in keys]}


class JwksServer:
    """``with JwksServer(jwks([...])) as srv: srv.url`` — a JWKS endpoint on localhost."""

    def __init__(self, document: dict[str, Any] | None = None, *, hang_s: float = 5.0) -> None:
        self._lock = threading.Lock()
        self._body = json.dumps(document or {"keys": []}).encode()
        self._mode: Mode = "ok"
        self._requests = 0
        self._hang_s = hang_s
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/.well-known/jwks.json"

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._requests

    def set_keys(self, keys: Iterable[SigningKey]) -> None:
        """Rotate: serve exactly these keys from now on."""
        self.set_document(jwks(keys))

    def set_document(self, document: Any) -> None:
        self.set_raw(json.dumps(document).encode())

    def set_raw(self, body: bytes) -> None:
        with self._lock:
            self._body = body

    def set_mode(self, mode: Mode) -> None:
        """``ok`` serves the keys, ``error`` answers 500, ``hang`` stalls past timeouts."""
        with self._lock:
            self._mode = mode

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer._lock:
                    outer._requests += 1
                    mode, body = outer._mode, outer._body
                if mode == "hang":
                    outer._release.wait(outer._hang_s)
                if mode == "error":
                    status, body = 500, b'{"error": "boom"}'
                else:
                    status = 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (timeout tests)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def main(argv: Sequence[str] | None = None) -> int:
    """``mint``: print a token for a user from a saved issuer (see the module doc)."""
    parser = argparse.ArgumentParser(prog="python -m devtools.jwks_server")
    sub = parser.add_subparsers(dest="command", required=True)
    mint = sub.add_parser("mint", help="print a bearer token signed by a saved issuer")
    mint.add_argument("--issuer-file", type=Path, required=True)
    mint.add_argument("user_id")
    mint.add_argument("--admin", action="store_true", help='add role: "admin"')
    mint.add_argument("--ttl-s", type=int, default=3600)
    args = parser.parse_args(argv)
    issuer = Issuer.load(args.issuer_file)
    print(issuer.mint(args.user_id, admin=args.admin, ttl_s=args.ttl_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
