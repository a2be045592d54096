"""JWT verification: who is connecting, and what their token lets them do.

HS* tokens are checked with `JWT_SECRET` and RS*/ES*/PS* tokens with
`JWT_PUBLIC_KEY`, never across: the algorithm family picks the key, and a
family with no key configured is refused. `alg: none` is always refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt

from goldwire.gateway.settings import GatewaySettings
from goldwire.protocol.errors import GoldwireError
from goldwire.protocol.names import DEFAULT_TENANT, is_tenant, is_user_id

HMAC_ALGS = ("HS256", "HS384", "HS512")
PUBLIC_ALGS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512")


class AuthError(GoldwireError):
    """A token that does not authenticate (closes with 4001)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified identity behind a connection or sync request."""

    user_id: str
    name: str | None
    tenant: str
    rooms: tuple[str, ...]
    publish: tuple[str, ...]
    expires_at: float
    # User-id patterns `send` may target; None (no claim) = anyone in the same tenant.
    send: tuple[str, ...] | None = None

    def public(self) -> dict[str, str | None]:
        return {"id": self.user_id, "name": self.name}


class TokenVerifier:
    def __init__(self, settings: GatewaySettings) -> None:
        self._secret = settings.jwt_secret
        self._public_key = settings.public_key_pem()
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self._leeway = settings.jwt_leeway

    def verify(self, token: str) -> Principal:
        """Return the token's principal, or raise AuthError saying why not."""
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError as exc:
            raise AuthError(f"malformed token: {exc}") from None
        if alg in HMAC_ALGS and self._secret:
            key, algs = self._secret, list(HMAC_ALGS)
        elif alg in PUBLIC_ALGS and self._public_key:
            key, algs = self._public_key, list(PUBLIC_ALGS)
        else:
            raise AuthError(f"token algorithm {alg!r} is not accepted")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algs,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        return _principal(claims)


def _principal(claims: dict) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not is_user_id(sub):
        raise AuthError("claim 'sub' must be 1 to 200 characters with no control characters")
    tenant = claims.get("tenant") or DEFAULT_TENANT
    if not isinstance(tenant, str) or not is_tenant(tenant):
        raise AuthError("claim 'tenant' is not a valid tenant name")
    name = claims.get("name")
    return Principal(
        user_id=sub,
        name=name if isinstance(name, str) else None,
        tenant=tenant,
        rooms=_patterns(claims.get("rooms")),
        publish=_patterns(claims.get("publish")),
        expires_at=float(claims["exp"]),
        send=None if claims.get("send") is None else _patterns(claims["send"]),
    )


def _patterns(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()
