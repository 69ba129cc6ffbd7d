"""The exceptions of :mod:`gateway.tokens`; the tree is drawn in the package docstring.

Every exception carries a ``reason``: a short, stable code for the log line and for metrics. The
message says more, for the log only; neither ever contains the token.
"""

from __future__ import annotations

__all__ = [
    "AlgorithmNotAllowedError",
    "AudienceError",
    "ClaimError",
    "ClaimTypeError",
    "CredentialsError",
    "ExpiredTokenError",
    "HeaderError",
    "ImmatureTokenError",
    "IssuedInFutureError",
    "IssuerError",
    "JwksFetchError",
    "KeyIdError",
    "KeyNotFoundError",
    "MalformedTokenError",
    "MissingClaimError",
    "MissingTokenError",
    "SchemeError",
    "SettingsError",
    "SignatureError",
    "TokenError",
    "TokenTooLargeError",
    "TypeNotAllowedError",
    "VerifierError",
]


class TokenError(Exception):
    """Base of every error this package raises."""

    reason = "token_error"


class CredentialsError(TokenError):
    """The request carries no usable credentials; nothing of the token was parsed."""

    reason = "credentials"


class MissingTokenError(CredentialsError):
    """No ``Authorization`` header or ``token`` query string, or an empty value."""

    reason = "missing_token"


class SchemeError(CredentialsError):
    """The ``Authorization`` header does not use the ``Bearer`` scheme."""

    reason = "scheme"


class TokenTooLargeError(CredentialsError):
    """The token is longer than the limit; refused before any parsing."""

    reason = "too_large"


class MalformedTokenError(TokenError):
    """Not a compact JWS: wrong number of parts, bad base64url, or a part not a JSON object."""

    reason = "malformed"


class HeaderError(TokenError):
    """The JOSE header is well formed but asks for something this verifier refuses."""

    reason = "header"


class AlgorithmNotAllowedError(HeaderError):
    """``alg`` is absent, ``none``, or not among the configured algorithms."""

    reason = "algorithm"


class TypeNotAllowedError(HeaderError):
    """``typ`` is present and is neither ``JWT`` nor ``at+jwt``."""

    reason = "typ"


class KeyIdError(HeaderError):
    """``kid`` is missing where a key set is used, or is not a plain identifier (a path, a URL)."""

    reason = "kid"


class KeyNotFoundError(TokenError):
    """No key of the key set has this ``kid`` (after the refetch the rate limit allows)."""

    reason = "unknown_kid"


class SignatureError(TokenError):
    """The signature does not verify with the selected key."""

    reason = "signature"


class ClaimError(TokenError):
    """A registered or SyncroBoard claim fails its check."""

    reason = "claim"


class MissingClaimError(ClaimError):
    """A required claim (``exp``, ``iss``, ``aud``, ``sub``) is absent."""

    reason = "missing_claim"


class ClaimTypeError(ClaimError):
    """A claim has the wrong type or shape (``exp`` not a number, ``roles`` not strings, ...)."""

    reason = "claim_type"


class ExpiredTokenError(ClaimError):
    """``exp`` is in the past, beyond the leeway."""

    reason = "expired"


class ImmatureTokenError(ClaimError):
    """``nbf`` is in the future, beyond the leeway."""

    reason = "not_yet_valid"


class IssuedInFutureError(ClaimError):
    """``iat`` is in the future, beyond the leeway."""

    reason = "issued_in_future"


class IssuerError(ClaimError):
    """``iss`` is not the configured issuer."""

    reason = "issuer"


class AudienceError(ClaimError):
    """``aud`` names none of the configured audiences."""

    reason = "audience"


class VerifierError(TokenError):
    """The verifier itself cannot decide: the fault is on the server's side, not the token's."""

    reason = "verifier"


class SettingsError(VerifierError):
    """The JWT settings cannot be read or are invalid."""

    reason = "settings"


class JwksFetchError(VerifierError):
    """The key set could not be fetched or parsed, and no usable cached copy exists."""

    reason = "jwks_fetch"
