"""Mint development JWTs in the shape the gateway expects.

Why here and not in the gateway: the CLI (`goldwire token`, `goldwire up`)
and the tests both need tokens, and none of them should import the server to
get one. Production tokens come from the Goldleaves identity service; this is
for development and tests only.

Claims: `sub`, `name` and `tenant` (each omitted when not given), `rooms`
and `publish` (lists of room patterns such as "doc:*"), `send` (user-id
patterns the `send` op may target; only when given, since no claim means
anyone in the tenant and `[]` means no one), `iat`, `exp`, and `aud`/`iss`
when given (empty strings count as not given).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import jwt

DEFAULT_TTL = 3600


def split_patterns(value: str | Iterable[str] | None) -> list[str]:
    """Turn "doc:*, chat:*" (or an iterable of such strings) into a clean list."""
    if value is None:
        return []
    parts = [value] if isinstance(value, str) else list(value)
    return [item.strip() for part in parts for item in part.split(",") if item.strip()]


def mint_token(
    secret: str | None,
    user: str,
    name: str | None = None,
    tenant: str | None = None,
    rooms: str | Iterable[str] = (),
    publish: str | Iterable[str] = (),
    send: str | Iterable[str] | None = None,
    ttl: int = DEFAULT_TTL,
    audience: str | None = None,
    issuer: str | None = None,
    algorithm: str = "HS256",
    key: Any = None,
) -> str:
    """Return a signed JWT for `user`.

    `key` overrides `secret` as the signing key, for asymmetric algorithms
    (e.g. an RSA private key with "RS256"). Raises `ValueError` when there is
    no key at all or `ttl` is not positive; PyJWT's own errors pass through.
    """
    signing_key = key if key is not None else secret
    if not signing_key:
        raise ValueError("no signing key: pass a secret (JWT_SECRET) or a key")
    if not user:
        raise ValueError("user must not be empty")
    if ttl <= 0:
        raise ValueError("ttl must be a positive number of seconds")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": str(user)}
    if name:
        claims["name"] = name
    if tenant:
        claims["tenant"] = tenant
    claims["rooms"] = split_patterns(rooms)
    claims["publish"] = split_patterns(publish)
    if send is not None:
        claims["send"] = split_patterns(send)
    claims["iat"] = now
    claims["exp"] = now + int(ttl)
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, signing_key, algorithm=algorithm)
