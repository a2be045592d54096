"""JWT verification, with real keys: every accepted and refused case of the contract."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from goldwire.gateway.auth import AuthError, TokenVerifier
from goldwire.gateway.settings import GatewaySettings

SECRET = "a-test-secret-that-is-long-enough-0123456789"


def _rsa() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public.decode()


RSA_PRIVATE, RSA_PUBLIC = _rsa()


def settings(**kw: object) -> GatewaySettings:
    return GatewaySettings(_env_file=None, **kw)  # type: ignore[call-arg]


def claims(**kw: object) -> dict:
    base = {"sub": "u1", "name": "Ada", "exp": int(time.time()) + 60, "rooms": ["doc:*"]}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def test_hs256_token_gives_its_principal() -> None:
    tok = jwt.encode(claims(tenant="acme", publish=["doc:1"]), SECRET, algorithm="HS256")
    who = TokenVerifier(settings(jwt_secret=SECRET)).verify(tok)
    assert (who.user_id, who.name, who.tenant) == ("u1", "Ada", "acme")
    assert who.rooms == ("doc:*",) and who.publish == ("doc:1",)


def test_no_tenant_claim_means_default_tenant() -> None:
    tok = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert TokenVerifier(settings(jwt_secret=SECRET)).verify(tok).tenant == "default"


def test_rs256_and_es256_with_public_key() -> None:
    tok = jwt.encode(claims(), RSA_PRIVATE, algorithm="RS256")
    assert TokenVerifier(settings(jwt_public_key=RSA_PUBLIC)).verify(tok).user_id == "u1"
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_public = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    tok = jwt.encode(claims(), ec_key, algorithm="ES256")
    assert TokenVerifier(settings(jwt_public_key=ec_public)).verify(tok).user_id == "u1"


def test_public_key_may_be_a_path(tmp_path) -> None:
    path = tmp_path / "key.pem"
    path.write_text(RSA_PUBLIC)
    tok = jwt.encode(claims(), RSA_PRIVATE, algorithm="RS256")
    assert TokenVerifier(settings(jwt_public_key=str(path))).verify(tok).user_id == "u1"


def _hs256_signed_with(secret: bytes, payload: dict) -> str:
    """Forge an HS256 token by hand (pyjwt refuses to use a PEM key as an HMAC secret)."""
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(json.dumps(payload).encode())
    sig = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64(sig)).decode()


REFUSED = {
    "alg none": lambda: jwt.encode(claims(), None, algorithm="none"),
    "wrong secret": lambda: jwt.encode(claims(), "another-secret-0123456789-0123456789",
                                       algorithm="HS256"),
    "expired": lambda: jwt.encode(claims(exp=int(time.time()) - 120), SECRET, algorithm="HS256"),
    "no exp": lambda: jwt.encode(claims(exp=None), SECRET, algorithm="HS256"),
    "missing sub": lambda: jwt.encode(claims(sub=None), SECRET, algorithm="HS256"),
    "not yet valid": lambda: jwt.encode(claims(nbf=int(time.time()) + 300), SECRET,
                                        algorithm="HS256"),
    "bad tenant": lambda: jwt.encode(claims(tenant="a/b"), SECRET, algorithm="HS256"),
    "garbage": lambda: "not.a.jwt",
    "hs256 signed with the rs public key": lambda: _hs256_signed_with(RSA_PUBLIC.encode(),
                                                                      claims()),
    "rs256 when only a secret is set": lambda: jwt.encode(claims(), RSA_PRIVATE, algorithm="RS256"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_tokens(case: str) -> None:
    verifier = TokenVerifier(settings(jwt_secret=SECRET))
    with pytest.raises(AuthError):
        verifier.verify(REFUSED[case]())


def test_hs_token_is_never_checked_with_the_public_key() -> None:
    """Both keys set: an HS256 token whose secret is the public PEM is still refused."""
    verifier = TokenVerifier(settings(jwt_secret=SECRET, jwt_public_key=RSA_PUBLIC))
    with pytest.raises(AuthError):
        verifier.verify(_hs256_signed_with(RSA_PUBLIC.encode(), claims()))
    assert verifier.verify(jwt.encode(claims(), SECRET, algorithm="HS256")).user_id == "u1"
    assert verifier.verify(jwt.encode(claims(), RSA_PRIVATE, algorithm="RS256")).user_id == "u1"


def test_audience_issuer_and_leeway() -> None:
    verifier = TokenVerifier(
        settings(jwt_secret=SECRET, jwt_audience="gw", jwt_issuer="goldleaves"))
    good = jwt.encode(claims(aud="gw", iss="goldleaves"), SECRET, algorithm="HS256")
    assert verifier.verify(good).user_id == "u1"
    for bad in (claims(aud="other", iss="goldleaves"), claims(aud="gw", iss="evil"),
                claims(iss="goldleaves")):
        with pytest.raises(AuthError):
            verifier.verify(jwt.encode(bad, SECRET, algorithm="HS256"))
    just_expired = jwt.encode(claims(exp=int(time.time()) - 10), SECRET, algorithm="HS256")
    assert TokenVerifier(settings(jwt_secret=SECRET)).verify(just_expired).user_id == "u1"


def test_empty_settings_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", SECRET)
    monkeypatch.setenv("JWT_PUBLIC_KEY", "")
    monkeypatch.setenv("JWT_AUDIENCE", "")
    s = GatewaySettings()
    assert s.jwt_public_key is None and s.jwt_audience is None
    assert TokenVerifier(s).verify(jwt.encode(claims(), SECRET, algorithm="HS256")).user_id == "u1"
