"""Demo Auth service: logs the seeded users in with RS256 tokens and publishes its JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from demo.users import USERS, User
from demo.web import JsonRequest, Reply, Router

__all__ = ["AuthService"]


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class AuthService:
    """Tokens for ``issuer`` and ``audience``, valid ``lifetime`` s, signed with a fresh key."""

    def __init__(self, issuer: str, audience: str, lifetime: int = 900) -> None:
        self.issuer = issuer
        self.audience = audience
        self.lifetime = lifetime
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.key.public_key().public_numbers()
        self.jwk = {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "n": _b64(numbers.n),
            "e": _b64(numbers.e),
        }
        thumbprint = json.dumps({k: self.jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
        self.jwk["kid"] = base64.urlsafe_b64encode(hashlib.sha256(thumbprint.encode()).digest())[
            :16
        ].decode()
        self._refresh: dict[str, str] = {}
        self._lock = threading.Lock()

    def router(self) -> Router:
        router = Router()
        router.add("POST", "/auth/login", self.login)
        router.add("POST", "/auth/refresh", self.refresh)
        router.add("GET", "/auth/.well-known/jwks.json", self.jwks)
        router.add("GET", "/auth/me", self.me)
        return router

    def issue(self, user: User) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user.username,
            "roles": list(user.roles),
            "projects": list(user.projects),
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime,
        }
        token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.jwk["kid"]})
        refresh = secrets.token_urlsafe(24)
        with self._lock:
            self._refresh[refresh] = user.username
        return {
            "accessToken": token,
            "tokenType": "Bearer",
            "expiresIn": self.lifetime,
            "refreshToken": refresh,
        }

    def login(self, request: JsonRequest) -> Reply:
        body = request.json()
        if not isinstance(body, dict):
            return Reply(400, {"message": 'expected {"username", "password"}'})
        user = USERS.get(str(body.get("username")))
        if user is None or not secrets.compare_digest(user.password, str(body.get("password"))):
            return Reply(401, {"message": "wrong username or password"})
        return Reply(200, self.issue(user))

    def refresh(self, request: JsonRequest) -> Reply:
        body = request.json()
        token = body.get("refreshToken") if isinstance(body, dict) else None
        with self._lock:
            username = self._refresh.pop(str(token), None)  # one use each
        if username is None:
            return Reply(401, {"message": "unknown or used refresh token"})
        return Reply(200, self.issue(USERS[username]))

    def jwks(self, request: JsonRequest) -> Reply:
        return Reply(200, {"keys": [self.jwk]}, {"cache-control": "max-age=300"})

    def me(self, request: JsonRequest) -> Reply:
        if request.user_id is None:
            return Reply(401, {"message": "no x-user-id: call through the gateway"})
        roles = [r for r in request.headers.get("x-user-roles", "").split(",") if r]
        return Reply(200, {"userId": request.user_id, "roles": roles})
