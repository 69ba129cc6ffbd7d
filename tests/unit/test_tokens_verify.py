"""TokenVerifier: the policy on header, key and claims, with keys served from an in-memory JWKS."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gateway.tokens import (
    AlgorithmNotAllowedError,
    AudienceError,
    ClaimTypeError,
    ExpiredTokenError,
    HeaderError,
    ImmatureTokenError,
    IssuedInFutureError,
    IssuerError,
    JwksCache,
    KeyIdError,
    KeyNotFoundError,
    MalformedTokenError,
    MissingClaimError,
    MissingTokenError,
    SchemeError,
    SettingsError,
    SignatureError,
    TokenSettings,
    TokenTooLargeError,
    TokenVerifier,
    TypeNotAllowedError,
    bearer_token,
)
from tests.support.jwt_keys import (
    AUDIENCE,
    HS_SECRET,
    ISSUER,
    b64url,
    claims,
    ec_key,
    forge,
    make_token,
    rsa_key,
)

NOW = 1_800_000_000.0


def settings(**overrides: Any) -> TokenSettings:
    values: dict[str, Any] = {
        "issuer": ISSUER,
        "audiences": (AUDIENCE,),
        "algorithms": ("RS256", "PS256", "ES256", "ES384"),
        "jwks_url": "http://127.0.0.1:9/jwks.json",
        "secret": None,
        "leeway": 30.0,
    }
    values.update(overrides)
    return TokenSettings(**values)


class StaticKeySet:
    """A fetch function for JwksCache that serves a fixed document and counts calls."""

    def __init__(self, *keys: Any) -> None:
        self.document: dict[str, Any] = {
            "keys": [key.public_jwk() if hasattr(key, "public_jwk") else key for key in keys]
        }
        self.calls = 0

    def __call__(self, url: str, timeout: float) -> dict[str, Any]:
        self.calls += 1
        return self.document


def verifier(*keys: Any, **overrides: Any) -> tuple[TokenVerifier, StaticKeySet]:
    fetch = StaticKeySet(*keys)
    cache = JwksCache(
        "http://127.0.0.1:9/jwks.json",
        min_refetch_seconds=30,
        cache_seconds=300,
        fetch_timeout=1.0,
        clock=lambda: 0.0,
        fetch=fetch,
    )
    return TokenVerifier(settings(**overrides), cache, clock=lambda: NOW), fetch


def token_at(key: Any, **overrides: Any) -> str:
    """A token whose times are relative to NOW rather than the wall clock."""
    values: dict[str, Any] = {"iat": int(NOW), "nbf": int(NOW), "exp": int(NOW) + 600}
    values.update(overrides)
    return make_token(key, **values)


def hs_verifier(**overrides: Any) -> TokenVerifier:
    values: dict[str, Any] = {
        "algorithms": ("HS256",),
        "jwks_url": None,
        "secret": HS_SECRET.encode(),
    }
    values.update(overrides)
    return TokenVerifier(settings(**values), clock=lambda: NOW)


def test_verifier_accepts_rs256_token_and_returns_identity() -> None:
    check, _ = verifier(rsa_key("rsa-1"))

    identity = check.verify(token_at(rsa_key("rsa-1"), sub="u-42", roles=["admin", "member"]))

    assert identity.user_id == "u-42"
    assert identity.context() == {"userId": "u-42", "roles": "admin,member", "projects": "p-1,p-2"}


def test_verifier_accepts_es256_and_ps256_tokens() -> None:
    check, _ = verifier(ec_key("ec-1"), rsa_key("rsa-ps", alg="PS256"))

    assert check.verify(token_at(ec_key("ec-1"))).user_id == "user-1"
    assert check.verify(token_at(rsa_key("rsa-ps", alg="PS256"))).user_id == "user-1"


def test_verifier_accepts_hs256_token_with_configured_secret() -> None:
    identity = hs_verifier().verify(token_at(HS_SECRET, projects=["p-9"]))

    assert identity.projects == ("p-9",)


def test_verifier_context_is_empty_strings_when_roles_and_projects_absent() -> None:
    identity = hs_verifier().verify(token_at(HS_SECRET, roles=None, projects=None))

    assert identity.context() == {"userId": "user-1", "roles": "", "projects": ""}


def test_verifier_fetches_key_set_once_for_many_tokens() -> None:
    check, fetch = verifier(rsa_key("rsa-1"))

    for _ in range(5):
        check.verify(token_at(rsa_key("rsa-1")))

    assert fetch.calls == 1


def test_verifier_rejects_algorithm_not_configured() -> None:
    check, _ = verifier(rsa_key("rsa-1"), algorithms=("ES256",))

    with pytest.raises(AlgorithmNotAllowedError):
        check.verify(token_at(rsa_key("rsa-1")))


def test_verifier_rejects_rsa_key_used_for_es256_token() -> None:
    # The token claims ES256 but names the RSA key: the key's family decides, not the token.
    check, _ = verifier(rsa_key("rsa-1"))
    token = token_at(ec_key("ec-1"), headers={"kid": "rsa-1"})

    with pytest.raises(AlgorithmNotAllowedError):
        check.verify(token)


def test_verifier_rejects_p256_key_for_es384_token() -> None:
    p256 = ec_key("ec-1").public_jwk(alg=None)
    check, _ = verifier(p256)
    token = token_at(ec_key("ec-384", alg="ES384"), headers={"kid": "ec-1"})

    with pytest.raises(AlgorithmNotAllowedError):
        check.verify(token)


def test_verifier_rejects_key_whose_jwk_alg_differs_from_token_alg() -> None:
    check, _ = verifier(rsa_key("rsa-1").public_jwk(alg="RS384"))

    with pytest.raises(AlgorithmNotAllowedError):
        check.verify(token_at(rsa_key("rsa-1")))


def test_verifier_hs256_never_uses_key_set_even_when_kid_names_a_key() -> None:
    rsa = rsa_key("rsa-1")
    check, fetch = verifier(rsa, algorithms=("HS256", "RS256"), secret=HS_SECRET.encode())
    header = {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}
    token = forge(header, claims(), hmac_key=rsa.public_pem())

    with pytest.raises(SignatureError):
        check.verify(token)
    assert fetch.calls == 0


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt", "application/at+jwt"])
def test_verifier_accepts_jwt_and_access_token_types(typ: str) -> None:
    assert hs_verifier().verify(token_at(HS_SECRET, headers={"typ": typ})).user_id == "user-1"


def test_verifier_rejects_other_token_type() -> None:
    with pytest.raises(TypeNotAllowedError):
        hs_verifier().verify(token_at(HS_SECRET, headers={"typ": "JWE"}))


def test_verifier_rejects_crit_header() -> None:
    with pytest.raises(HeaderError):
        hs_verifier().verify(token_at(HS_SECRET, headers={"crit": ["exp"], "exp": 1}))


def test_verifier_rejects_key_set_token_without_kid() -> None:
    check, _ = verifier(rsa_key("rsa-1"))
    token = make_token(rsa_key("rsa-1").private, alg="RS256")

    with pytest.raises(KeyIdError):
        check.verify(token)


def test_verifier_rejects_unknown_kid() -> None:
    check, _ = verifier(rsa_key("rsa-1"))

    with pytest.raises(KeyNotFoundError):
        check.verify(token_at(rsa_key("rsa-other")))


def test_verifier_accepts_expired_token_within_leeway() -> None:
    token = token_at(HS_SECRET, exp=int(NOW) - 20)

    assert hs_verifier(leeway=30.0).verify(token).user_id == "user-1"


def test_verifier_rejects_expired_token_beyond_leeway() -> None:
    with pytest.raises(ExpiredTokenError):
        hs_verifier(leeway=30.0).verify(token_at(HS_SECRET, exp=int(NOW) - 31))


def test_verifier_rejects_token_without_exp() -> None:
    with pytest.raises(MissingClaimError):
        hs_verifier().verify(token_at(HS_SECRET, exp=None))


def test_verifier_accepts_nbf_within_leeway_and_rejects_beyond() -> None:
    check = hs_verifier(leeway=10.0)

    assert check.verify(token_at(HS_SECRET, nbf=int(NOW) + 5)).user_id == "user-1"
    with pytest.raises(ImmatureTokenError):
        check.verify(token_at(HS_SECRET, nbf=int(NOW) + 11))


def test_verifier_rejects_iat_in_future() -> None:
    with pytest.raises(IssuedInFutureError):
        hs_verifier(leeway=0.0).verify(token_at(HS_SECRET, iat=int(NOW) + 60))


@pytest.mark.parametrize("exp", ["soon", True, [1]])
def test_verifier_rejects_non_numeric_exp(exp: Any) -> None:
    with pytest.raises(ClaimTypeError):
        hs_verifier().verify(token_at(HS_SECRET, exp=exp))


def test_verifier_rejects_nan_exp_as_malformed() -> None:
    # json.dumps writes NaN, which a lenient parser would read back and compare as never expired.
    payload = b64url(b'{"exp": NaN, "sub": "u"}')
    header = b64url({"alg": "HS256"})
    token = forge({"alg": "HS256"}, b'{"exp": NaN, "sub": "u"}', hmac_key=HS_SECRET.encode())
    assert token.startswith(f"{header}.{payload}.")

    with pytest.raises(MalformedTokenError):
        hs_verifier().verify(token)


def test_verifier_rejects_wrong_issuer() -> None:
    with pytest.raises(IssuerError):
        hs_verifier().verify(token_at(HS_SECRET, iss="https://evil.example"))


def test_verifier_accepts_audience_list_naming_configured_audience() -> None:
    token = token_at(HS_SECRET, aud=["other", AUDIENCE])

    assert hs_verifier().verify(token).user_id == "user-1"


def test_verifier_rejects_audience_list_without_configured_audience() -> None:
    with pytest.raises(AudienceError):
        hs_verifier().verify(token_at(HS_SECRET, aud=["other", "another"]))


@pytest.mark.parametrize("claim", ["iss", "aud", "sub"])
def test_verifier_rejects_token_missing_required_claim(claim: str) -> None:
    with pytest.raises(MissingClaimError):
        hs_verifier().verify(token_at(HS_SECRET, **{claim: None}))


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("sub", ""),
        ("sub", 42),
        ("sub", "user\r\nx-user-roles: admin"),
        ("roles", "admin"),
        ("roles", ["admin,owner"]),
        ("projects", [1, 2]),
        ("aud", {"name": AUDIENCE}),
    ],
)
def test_verifier_rejects_claim_of_wrong_shape(claim: str, value: Any) -> None:
    with pytest.raises(ClaimTypeError):
        hs_verifier().verify(token_at(HS_SECRET, **{claim: value}))


def test_verifier_rejects_non_ascii_token() -> None:
    token = token_at(HS_SECRET)

    with pytest.raises(MalformedTokenError):
        hs_verifier().verify(token[:-2] + "é" + token[-1])


def test_verifier_rejects_token_over_8kb_before_parsing() -> None:
    # Not even a JWT: if the size check came later, this would fail as malformed instead.
    with pytest.raises(TokenTooLargeError):
        hs_verifier().verify("x" * 8193)


def test_verifier_rejects_settings_with_rs256_and_no_key_set() -> None:
    with pytest.raises(SettingsError):
        TokenVerifier(settings())


def test_verifier_rejects_secret_that_is_a_public_key() -> None:
    pem = rsa_key("rsa-1").public_pem()

    with pytest.raises(SettingsError):
        TokenVerifier(settings(algorithms=("HS256",), secret=pem))


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Bearer abc.def.ghi", "abc.def.ghi"), ("bearer  abc.def.ghi ", "abc.def.ghi")],
)
def test_bearer_token_takes_scheme_in_any_case(value: str, expected: str) -> None:
    assert bearer_token(value) == expected


@pytest.mark.parametrize("value", [None, "", "   ", "Bearer", "Bearer   "])
def test_bearer_token_without_token_raises_missing(value: str | None) -> None:
    with pytest.raises(MissingTokenError):
        bearer_token(value)


def test_bearer_token_with_glued_scheme_does_not_name_token_in_error() -> None:
    token = token_at(HS_SECRET)

    with pytest.raises(SchemeError) as raised:
        bearer_token("Bearer" + token)

    assert token[:8] not in str(raised.value)


def test_tokens_round_trip_with_wall_clock_claims() -> None:
    # The helpers' default claims are valid now; NOW-based tests above do not prove that.
    check = TokenVerifier(
        settings(algorithms=("HS256",), jwks_url=None, secret=HS_SECRET.encode()), clock=time.time
    )

    assert check.verify(make_token(HS_SECRET)).user_id == "user-1"
