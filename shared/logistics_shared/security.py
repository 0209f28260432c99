"""Bearer-JWT authentication, verified locally, and a role-based Pyramid 2 policy.

No call to a central service per request: every service holds the HS256
secret (or only a public key for RS256/EdDSA) and checks tokens itself.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import jwt
from pyramid.request import Request
from pyramid.security import Allowed, Denied

from .identity import Identity, Role
from .settings import Settings, SettingsError, jwt_secret

__all__ = ["UNDECLARED", "Identity", "JWTSecurityPolicy", "KeyRing", "Role"]


#: The default permission: nobody holds it, so a view that forgot to declare
#: one is closed rather than open.
UNDECLARED = "logistics:undeclared-permission"


@dataclass(frozen=True)
class KeyRing:
    algorithm: str
    verify_key: Any
    signing_key: Any | None
    issuer: str
    audience: str
    leeway: int
    #: Longest lifetime a token may have left (``exp - now``), minted or verified.
    max_ttl: int = 86400


def load_keyring(settings: Settings) -> KeyRing:
    signing: str | None
    if settings.jwt_algorithm == "HS256":
        secret = jwt_secret(settings)
        verify, signing = secret, secret
    else:
        try:
            verify = Path(settings.jwt_public_key_file).read_text()
            signing = (
                Path(settings.jwt_private_key_file).read_text() if settings.jwt_private_key_file else None
            )
        except OSError as exc:
            raise SettingsError(f"cannot read JWT key file: {exc}") from None
    return KeyRing(
        algorithm=settings.jwt_algorithm,
        verify_key=verify,
        signing_key=signing,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway=settings.jwt_leeway_seconds,
        max_ttl=settings.jwt_max_ttl_seconds,
    )


class InvalidToken(Exception):
    pass


class TokenLifetimeTooLong(ValueError):
    """A token asked to live longer than ``jwt_max_ttl_seconds`` allows."""


def verify_token(keyring: KeyRing, token: str) -> Identity:
    try:
        claims = jwt.decode(
            token,
            keyring.verify_key,
            # Explicit list: never let the token choose ("none", or HS256 with a public key).
            algorithms=[keyring.algorithm],
            audience=keyring.audience,
            issuer=keyring.issuer,
            leeway=keyring.leeway,
            options={"require": ["exp", "sub", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("The token has expired.") from None
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"The token is not valid: {exc}.") from None
    subject = claims["sub"]
    # PyJWT's "require" only refuses a missing claim; "" would be an identity with no name,
    # untraceable in the access log and in every row it writes.
    if not isinstance(subject, str) or not subject.strip():
        raise InvalidToken("The token has no subject (an empty `sub` claim).")
    # A stolen token is only as bad as it is long-lived: refuse one minted to outlive the cap,
    # whoever minted it (another signer of the same key, or an older, laxer configuration).
    # PyJWT has checked that int() of it works (and that it is not in the past).
    if int(claims["exp"]) > time.time() + keyring.max_ttl + keyring.leeway:
        raise InvalidToken(
            f"The token's lifetime exceeds the {keyring.max_ttl} s this service accepts; "
            "ask for a shorter-lived token."
        )
    try:
        role = Role(claims.get("role", ""))
    except ValueError:
        raise InvalidToken("The token has no known role.") from None
    warehouses = claims.get("warehouses") or []
    if not isinstance(warehouses, list) or not all(isinstance(w, str) for w in warehouses):
        raise InvalidToken("The token's warehouses claim is not a list of codes.")
    return Identity(subject=subject, role=role, warehouses=frozenset(warehouses))


def mint_token(
    keyring: KeyRing,
    *,
    role: Role,
    subject: str,
    warehouses: Iterable[str] = (),
    ttl_seconds: int = 3600,
) -> str:
    if keyring.signing_key is None:
        raise SettingsError("no private key configured (LOGISTICS_JWT_PRIVATE_KEY_FILE)")
    if ttl_seconds > keyring.max_ttl:
        # Minting what every service would refuse only moves the failure to the first request.
        raise TokenLifetimeTooLong(
            f"a lifetime of {ttl_seconds} s exceeds LOGISTICS_JWT_MAX_TTL_SECONDS ({keyring.max_ttl} s)"
        )
    if not subject.strip():
        raise ValueError("a token needs a non-empty subject")
    now = int(time.time())
    claims = {
        "sub": subject,
        "role": str(role),
        "warehouses": sorted(set(warehouses)),
        "iss": keyring.issuer,
        "aud": keyring.audience,
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, keyring.signing_key, algorithm=keyring.algorithm)


class TokenCache:
    """Verified tokens for up to a minute (never past their ``exp``).

    Verifying a signature is a fifth of a cheap read; clients send the same
    token on every request. Failures are not cached.

    A plain dict rather than a ``cachetools.TTLCache``: a hit is one ``dict.get``
    (atomic, so no lock) and a comparison with the entry's own deadline, where the
    TTLCache took a lock, its timer and its expiry bookkeeping on every request.
    Only inserts take the lock; a full cache drops its expired entries and, if that
    is not enough, its oldest tenth.
    """

    def __init__(self, keyring: KeyRing, ttl: float = 60.0, size: int = 10_000) -> None:
        self.keyring = keyring
        self.ttl = ttl
        self.size = size
        #: token -> (identity, valid until: the earlier of ``ttl`` after it was verified
        #: and its ``exp`` plus the leeway), oldest first.
        self._cache: dict[str, tuple[Identity, float]] = {}
        self._lock = threading.Lock()

    def verify(self, token: str) -> Identity:
        now = time.time()
        hit = self._cache.get(token)
        if hit is not None and hit[1] > now:
            return hit[0]
        identity = verify_token(self.keyring, token)
        expires = jwt.decode(token, options={"verify_signature": False}).get("exp", now)
        until = min(now + self.ttl, float(expires) + self.keyring.leeway)
        with self._lock:
            self._cache.pop(token, None)  # a re-verified token goes to the young end
            if len(self._cache) >= self.size:
                self._make_room(now)
            self._cache[token] = (identity, until)
        return identity

    def _make_room(self, now: float) -> None:
        for token in [t for t, (_identity, until) in self._cache.items() if until <= now]:
            del self._cache[token]
        if len(self._cache) >= self.size:
            # All still valid: the oldest tenth goes, so the scan above is rare.
            for token in list(itertools.islice(self._cache, max(1, self.size // 10))):
                del self._cache[token]


class JWTSecurityPolicy:
    """Pyramid 2 security policy: identity from the bearer token, permits by role."""

    def __init__(
        self, keyring: KeyRing | Callable[[], KeyRing], role_permissions: Mapping[Role, frozenset[str]]
    ) -> None:
        # A loader defers reading the keys to the first request: worker processes build the
        # same app (one configure()) but never verify a token, so they need no key at all;
        # web processes load it at start (cli.make_app) to fail fast on a missing key.
        self._load = keyring if callable(keyring) else (lambda: keyring)
        self._tokens: TokenCache | None = None
        self._loading = threading.Lock()
        self.role_permissions = role_permissions

    @property
    def tokens(self) -> TokenCache:
        if self._tokens is None:
            with self._loading:
                if self._tokens is None:
                    self._tokens = TokenCache(self._load())
        return self._tokens

    @property
    def keyring(self) -> KeyRing:
        return self.tokens.keyring

    def identity(self, request: Request) -> Identity | None:
        # Cached on the request: the policy is asked several times per request.
        cached = request.environ.get("logistics.identity", _MISSING)
        if cached is not _MISSING:
            return cast("Identity | None", cached)
        identity = None
        # The WSGI variable itself: request.headers is a view that translates every name.
        header = request.environ.get("HTTP_AUTHORIZATION", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                request.environ["logistics.auth_error"] = "Use 'Authorization: Bearer <token>'."
            else:
                try:
                    identity = self.tokens.verify(token.strip())
                except InvalidToken as exc:
                    request.environ["logistics.auth_error"] = str(exc)
        request.environ["logistics.identity"] = identity
        return identity

    def authenticated_userid(self, request: Request) -> str | None:
        identity = self.identity(request)
        return identity.subject if identity else None

    def permits(self, request: Request, context: Any, permission: str) -> Allowed | Denied:
        identity = self.identity(request)
        if identity is None:
            return Denied("not authenticated")
        if permission == UNDECLARED:
            return Denied("view declares no permission")
        # The message is formatted only when read (Pyramid's debug_authorization): not per request.
        if identity.role is Role.ADMIN or permission in self.role_permissions.get(identity.role, frozenset()):
            return Allowed("role %s holds %s", identity.role, permission)
        return Denied("role %s lacks %s", identity.role, permission)

    def remember(self, request: Request, userid: str, **kw: Any) -> list[tuple[str, str]]:
        return []

    def forget(self, request: Request, **kw: Any) -> list[tuple[str, str]]:
        return []


_MISSING = object()


def parse_duration(text: str) -> int:
    """``90s``, ``15m``, ``8h``, ``7d`` or plain seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            value = int(text[:-1]) * units[text[-1]]
        else:
            value = int(text)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 8h, 7d)") from None
    if value <= 0:
        raise ValueError("a duration must be positive")
    return value
