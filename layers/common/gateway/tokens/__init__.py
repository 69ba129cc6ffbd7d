"""JWT verification for the gateway: settings source, JWKS cache, verifier.

``Authenticator().authenticate(token)`` returns an :class:`Identity` or raises one subclass of
:class:`TokenError` per failed check. The pieces, each usable alone:

- :mod:`.settings`: :class:`SettingsSource` reads :class:`TokenSettings` from Secrets Manager, SSM
  or the environment, and caches them;
- :mod:`.jwks`: :class:`JwksCache` holds the Auth service's public keys by ``kid``, with a
  rate-limited refetch and a hard fetch timeout;
- :mod:`.verify`: :class:`TokenVerifier` decides the policy; pyjwt's algorithms do the crypto.

Neither boto3 nor an HTTP client is imported until a fetch needs it.

Exceptions (``reason`` is the code logged for each)::

    TokenError                       token_error
    ├── CredentialsError             credentials        nothing parsed yet
    │   ├── MissingTokenError        missing_token
    │   ├── SchemeError              scheme             not Bearer
    │   └── TokenTooLargeError       too_large          over 8 KB
    ├── MalformedTokenError          malformed          not a compact JWS of JSON objects
    ├── HeaderError                  header             e.g. a crit parameter
    │   ├── AlgorithmNotAllowedError algorithm          none, unconfigured, wrong key family
    │   ├── TypeNotAllowedError      typ
    │   └── KeyIdError               kid                missing, or a path or URL
    ├── KeyNotFoundError             unknown_kid
    ├── SignatureError               signature
    ├── ClaimError                   claim
    │   ├── MissingClaimError        missing_claim      exp, iss, aud or sub absent
    │   ├── ClaimTypeError           claim_type
    │   ├── ExpiredTokenError        expired
    │   ├── ImmatureTokenError       not_yet_valid      nbf
    │   ├── IssuedInFutureError      issued_in_future   iat
    │   ├── IssuerError              issuer
    │   └── AudienceError            audience
    └── VerifierError                verifier           the server's fault, not the token's
        ├── SettingsError            settings
        └── JwksFetchError           jwks_fetch
"""

from . import errors
from .authenticator import Authenticator
from .errors import *  # noqa: F403 - the whole tree is public, listed once in errors.__all__
from .jwks import JwksCache
from .settings import SettingsSource, TokenSettings, parse_settings
from .verify import MAX_TOKEN_BYTES, Identity, TokenVerifier, bearer_token

__all__ = [
    "MAX_TOKEN_BYTES",
    "Authenticator",
    "Identity",
    "JwksCache",
    "SettingsSource",
    "TokenSettings",
    "TokenVerifier",
    "bearer_token",
    "parse_settings",
]
__all__ += errors.__all__
