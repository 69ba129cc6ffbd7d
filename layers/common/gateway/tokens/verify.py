"""Token verification: the policy is decided here, the cryptography is pyjwt's.

The order of the checks is deliberate. Size first, before anything is split or decoded. Then the
header alone, because it decides which key and algorithm may be used, and those come from
configuration, never from the token: ``alg`` must be one of the configured algorithms, an HMAC
token is checked only with the configured secret and never with a key from the key set, and a
key from the key set is used only for the algorithm family (and curve) it belongs to. Only after
the signature verifies is the payload read, so a forged payload never reaches the claim checks.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jwt.algorithms import Algorithm, get_default_algorithms
from jwt.exceptions import InvalidKeyError

from .errors import (
    AlgorithmNotAllowedError,
    AudienceError,
    ClaimTypeError,
    ExpiredTokenError,
    HeaderError,
    ImmatureTokenError,
    IssuedInFutureError,
    IssuerError,
    KeyIdError,
    MalformedTokenError,
    MissingClaimError,
    MissingTokenError,
    SchemeError,
    SettingsError,
    SignatureError,
    TokenTooLargeError,
    TypeNotAllowedError,
)
from .jwks import JwksCache
from .settings import HMAC_ALGORITHMS, TokenSettings

__all__ = ["MAX_TOKEN_BYTES", "Identity", "TokenVerifier", "bearer_token", "check_token_size"]

MAX_TOKEN_BYTES = 8192
_ACCEPTED_TYPES = {"jwt", "at+jwt", "application/jwt", "application/at+jwt"}
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
# kid values are looked up in a dict, never used as a path or fetched; this pattern still turns
# away anything that is plainly not an identifier (URLs, "../" paths, whitespace, quotes).
_KID = re.compile(r"[A-Za-z0-9_.+/=-]{1,256}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_SUB_CHARS = 256
_MAX_ITEM_CHARS = 128


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token speaks for."""

    user_id: str
    roles: tuple[str, ...]
    projects: tuple[str, ...]
    claims: Mapping[str, Any]

    def context(self) -> dict[str, str]:
        """The authorizer context: strings only, lists comma-joined (docs/architecture.md)."""
        return {
            "userId": self.user_id,
            "roles": ",".join(self.roles),
            "projects": ",".join(self.projects),
        }


def check_token_size(token: str) -> None:
    """Refuse a token over :data:`MAX_TOKEN_BYTES` before anything looks inside it."""
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenTooLargeError(f"token of {len(token)} characters, over {MAX_TOKEN_BYTES}")


def bearer_token(value: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` value.

    The scheme is matched without regard to case (RFC 9110 section 11.1). Raises
    :class:`MissingTokenError`, :class:`SchemeError` or :class:`TokenTooLargeError`.
    """
    if value is None or not value.strip():
        raise MissingTokenError("no Authorization value")
    # "Bearer " plus a little whitespace; anything longer is refused unsplit.
    if len(value) > MAX_TOKEN_BYTES + 16:
        raise TokenTooLargeError(f"Authorization value of {len(value)} characters")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        # Name the scheme only when it looks like one: "Bearer<token>" with no space must not
        # put the start of a token into the log.
        shown = repr(scheme) if scheme.isalpha() and len(scheme) <= 16 else "an unnamed scheme"
        raise SchemeError(f"{shown} is not Bearer")
    token = token.strip()
    if not token:
        raise MissingTokenError("Bearer scheme with no token")
    check_token_size(token)
    return token


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number this verifier accepts")


# One decoder for every token: json.loads with an argument builds a new decoder on each call.
_JSON = json.JSONDecoder(parse_constant=_reject_constant)


def _decode_part(part: str, what: str) -> bytes:
    if not _BASE64URL.fullmatch(part):
        raise MalformedTokenError(f"{what} is not base64url")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedTokenError(f"{what} is not base64url") from exc


def _decode_object(part: str, what: str) -> dict[str, Any]:
    raw = _decode_part(part, what)
    try:
        value = _JSON.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise MalformedTokenError(f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise MalformedTokenError(f"{what} is not a JSON object")
    return value


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ClaimTypeError(f"{name} is not a finite number")
    return float(value)


def _plain_string(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value or len(value) > limit or _CONTROL.search(value):
        raise ClaimTypeError(f"{name} must be a non-empty string of at most {limit} characters")
    return value


def _string_items(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = claims.get(name)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ClaimTypeError(f"{name} must be a list of strings")
    items = tuple(_plain_string(item, name, _MAX_ITEM_CHARS) for item in value)
    # The context joins them with commas: a comma inside one would split it in two downstream.
    if any("," in item for item in items):
        raise ClaimTypeError(f"{name} items must not contain commas")
    return items


class TokenVerifier:
    """Checks compact JWS tokens against one :class:`TokenSettings`.

    ``keys`` is required when the settings name an RS, PS or ES algorithm. ``clock`` gives the
    current time in seconds since the epoch, for ``exp``, ``nbf`` and ``iat``.
    """

    def __init__(
        self,
        settings: TokenSettings,
        keys: JwksCache | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if settings.uses_key_set and keys is None:
            raise SettingsError("RS, PS and ES algorithms need a key set")
        self.settings = settings
        self.keys = keys
        self._clock = clock
        self._allowed = frozenset(settings.algorithms)
        known = get_default_algorithms()
        self._algorithms: dict[str, Algorithm] = {name: known[name] for name in settings.algorithms}
        self._hmac_key: bytes | None = None
        if settings.secret is not None and self._allowed & HMAC_ALGORITHMS:
            algorithm = self._algorithms[min(self._allowed & HMAC_ALGORITHMS)]
            try:
                self._hmac_key = algorithm.prepare_key(settings.secret)
            except InvalidKeyError as exc:
                raise SettingsError("the secret looks like an asymmetric key") from exc

    def verify(self, token: str) -> Identity:
        """The :class:`Identity` of a valid token; one :class:`TokenError` subclass otherwise."""
        check_token_size(token)
        if not token.isascii():
            raise MalformedTokenError("token has characters outside ASCII")
        parts = token.split(".")
        if len(parts) != 3:
            raise MalformedTokenError(f"{len(parts)} dot-separated parts, not 3")
        header_part, payload_part, signature_part = parts

        header = _decode_object(header_part, "header")
        alg = self._check_header(header)
        key = self._key_for(header, alg)
        signature = _decode_part(signature_part, "signature")
        signing_input = f"{header_part}.{payload_part}".encode("ascii")
        if not self._algorithms[alg].verify(signing_input, key, signature):
            raise SignatureError(f"{alg} signature does not verify")

        claims = _decode_object(payload_part, "payload")
        return self._check_claims(claims)

    def _check_header(self, header: Mapping[str, Any]) -> str:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._allowed:
            shown = alg[:16] if isinstance(alg, str) else type(alg).__name__
            raise AlgorithmNotAllowedError(f"alg {shown!r} is not configured")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYPES):
            raise TypeNotAllowedError("typ is not JWT or at+jwt")
        # RFC 7515 section 4.1.11: extensions listed in crit must be understood; none are here.
        if "crit" in header:
            raise HeaderError("crit header parameter present; no extension is supported")
        return alg

    def _key_for(self, header: Mapping[str, Any], alg: str) -> Any:
        if alg in HMAC_ALGORITHMS:
            # Only the configured secret: never key set material, whatever kid says.
            return self._hmac_key
        kid = header.get("kid")
        if kid is None:
            raise KeyIdError("no kid, and the key set needs one")
        if not isinstance(kid, str) or not _KID.fullmatch(kid) or ".." in kid:
            raise KeyIdError("kid is not a plain key identifier")
        assert self.keys is not None  # the constructor refuses key set algorithms without keys
        return self.keys.key_for(kid, alg)

    def _check_claims(self, claims: Mapping[str, Any]) -> Identity:
        now = self._clock()
        leeway = self.settings.leeway
        expires = _number(claims, "exp")
        if expires is None:
            raise MissingClaimError("exp is required")
        if now >= expires + leeway:
            raise ExpiredTokenError(f"expired {now - expires:.0f} s ago")
        not_before = _number(claims, "nbf")
        if not_before is not None and now + leeway < not_before:
            raise ImmatureTokenError(f"not valid for another {not_before - now:.0f} s")
        issued = _number(claims, "iat")
        if issued is not None and now + leeway < issued:
            raise IssuedInFutureError(f"issued {issued - now:.0f} s in the future")

        self._check_issuer(claims)
        self._check_audience(claims)
        if "sub" not in claims:
            raise MissingClaimError("sub is required")
        return Identity(
            user_id=_plain_string(claims["sub"], "sub", _MAX_SUB_CHARS),
            roles=_string_items(claims, "roles"),
            projects=_string_items(claims, "projects"),
            claims=claims,
        )

    def _check_issuer(self, claims: Mapping[str, Any]) -> None:
        if "iss" not in claims:
            raise MissingClaimError("iss is required")
        if claims["iss"] != self.settings.issuer:
            raise IssuerError("iss is not the configured issuer")

    def _check_audience(self, claims: Mapping[str, Any]) -> None:
        if "aud" not in claims:
            raise MissingClaimError("aud is required")
        audience = claims["aud"]
        if isinstance(audience, str):
            audience = [audience]
        if not isinstance(audience, list) or not all(isinstance(item, str) for item in audience):
            raise ClaimTypeError("aud must be a string or a list of strings")
        if not any(item in self.settings.audiences for item in audience):
            raise AudienceError("aud names none of the configured audiences")
