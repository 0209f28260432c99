"""Bearer JWTs: verified locally, explicit algorithms, clear 401s and 403s."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from logistics_shared.identity import Role
from logistics_shared.security import (
    InvalidToken,
    TokenLifetimeTooLong,
    load_keyring,
    mint_token,
    parse_duration,
    verify_token,
)
from logistics_shared.settings import load_settings

from ..conftest import JWT_SECRET


@pytest.fixture
def app(service_client):
    return service_client("inventory")


def _claims(**over):
    now = int(time.time())
    return {"sub": "x", "role": "admin", "iss": "logistics", "aud": "logistics", "exp": now + 60, **over}


def _without(claim):
    return {k: v for k, v in _claims().items() if k != claim}


DAY = 86400  # the default LOGISTICS_JWT_MAX_TTL_SECONDS
LEEWAY = 30  # the default LOGISTICS_JWT_LEEWAY_SECONDS


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        (lambda: jwt.encode(_claims(exp=int(time.time()) - 600), JWT_SECRET, "HS256"), "expired"),
        (lambda: jwt.encode(_claims(), "another-secret-of-sufficient-length-000000", "HS256"), "not valid"),
        (lambda: jwt.encode(_claims(), None, "none"), "not valid"),
        (lambda: jwt.encode(_claims(aud="elsewhere"), JWT_SECRET, "HS256"), "not valid"),
        (lambda: jwt.encode(_claims(iss="mallory"), JWT_SECRET, "HS256"), "not valid"),
        (lambda: jwt.encode(_claims(role="root"), JWT_SECRET, "HS256"), "no known role"),
        (lambda: jwt.encode(_without("exp"), JWT_SECRET, "HS256"), "not valid"),
        (lambda: jwt.encode(_claims(warehouses="AMS"), JWT_SECRET, "HS256"), "warehouses"),
        (lambda: "not.a.jwt", "not valid"),
        # The subject: missing, empty, blank, not a string.
        (lambda: jwt.encode(_without("sub"), JWT_SECRET, "HS256"), "not valid"),
        (lambda: jwt.encode(_claims(sub=""), JWT_SECRET, "HS256"), "no subject"),
        (lambda: jwt.encode(_claims(sub="   "), JWT_SECRET, "HS256"), "no subject"),
        (lambda: jwt.encode(_claims(sub=42), JWT_SECRET, "HS256"), "not valid"),
        # The lifetime: valid signatures, but `exp` further ahead than the cap (+ leeway) allows.
        (
            lambda: jwt.encode(_claims(exp=int(time.time()) + DAY + LEEWAY + 120), JWT_SECRET, "HS256"),
            "lifetime exceeds",
        ),
        (
            lambda: jwt.encode(_claims(exp=int(time.time()) + 365 * DAY), JWT_SECRET, "HS256"),
            "lifetime exceeds",
        ),
        (
            lambda: jwt.encode(_claims(exp=str(int(time.time()) + 2 * DAY)), JWT_SECRET, "HS256"),
            "lifetime exceeds",
        ),
    ],
    ids=lambda value: None if callable(value) else value,
)
def test_bad_tokens_get_401_with_the_reason(app, token, detail):
    res = app.anonymous.get("/v1/stock", headers={"Authorization": f"Bearer {token()}"}, status=401)
    assert res.content_type == "application/problem+json"
    assert detail in res.json["detail"]
    assert res.headers["WWW-Authenticate"].startswith("Bearer")


def test_missing_or_non_bearer_credentials_are_401(app):
    assert app.anonymous.get("/v1/stock", status=401).json["status"] == 401
    res = app.anonymous.get("/v1/stock", headers={"Authorization": "Basic dXNlcjpwdw=="}, status=401)
    assert "Bearer" in res.json["detail"]


def test_a_role_without_the_permission_is_403(app):
    res = app.as_("support_agent").post_json("/v1/items", {"sku": "A"}, status=403)
    assert res.json["title"] == "Forbidden"


def test_asymmetric_keys_verify_with_only_the_public_key(tmp_path):
    key = ed25519.Ed25519PrivateKey.generate()
    private = tmp_path / "jwt.key"
    public = tmp_path / "jwt.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    signer = load_keyring(
        load_settings(
            "inventory",
            {
                "jwt_algorithm": "EdDSA",
                "jwt_public_key_file": str(public),
                "jwt_private_key_file": str(private),
            },
            {},
        )
    )
    verifier = load_keyring(
        load_settings("inventory", {"jwt_algorithm": "EdDSA", "jwt_public_key_file": str(public)}, {})
    )
    assert verifier.signing_key is None
    token = mint_token(signer, role=Role.WAREHOUSE_STAFF, subject="ann", warehouses=["AMS"])
    identity = verify_token(verifier, token)
    assert identity.warehouses == frozenset({"AMS"})
    # An HS256 token "signed" with the public key must not pass (algorithm confusion).
    forged = jwt.encode(_claims(), "not-the-key-0000000000000000000000000000", "HS256")
    with pytest.raises(InvalidToken):
        verify_token(verifier, forged)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("8h", 28800), ("7d", 604800), ("30", 30)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "-5m", "0", "1w", "soon"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_a_token_exactly_at_the_lifetime_cap_is_accepted(app):
    # The other side of the "lifetime exceeds" rows: the cap itself must not be refused.
    token = jwt.encode(_claims(exp=int(time.time()) + DAY), JWT_SECRET, "HS256")
    assert app.anonymous.get("/v1/stock", headers={"Authorization": f"Bearer {token}"}).status_int == 200


def test_the_lifetime_cap_is_a_setting(service_client):
    client = service_client("inventory", jwt_max_ttl_seconds=600)
    assert client.keyring.max_ttl == 600
    headers = {
        "Authorization": f"Bearer {jwt.encode(_claims(exp=int(time.time()) + 3600), JWT_SECRET, 'HS256')}"
    }
    res = client.anonymous.get("/v1/stock", headers=headers, status=401)
    assert "600 s" in res.json["detail"]


def test_minting_refuses_a_lifetime_beyond_the_cap(tmp_path):
    keyring = load_keyring(
        load_settings("inventory", {"jwt_secret": JWT_SECRET, "jwt_max_ttl_seconds": "7200"}, {})
    )
    with pytest.raises(TokenLifetimeTooLong, match="LOGISTICS_JWT_MAX_TTL_SECONDS"):
        mint_token(keyring, role=Role.ADMIN, subject="a", ttl_seconds=7201)
    token = mint_token(keyring, role=Role.ADMIN, subject="a", ttl_seconds=7200)
    assert verify_token(keyring, token).subject == "a"


@pytest.mark.parametrize("subject", ["", "  "])
def test_minting_refuses_an_empty_subject(subject):
    keyring = load_keyring(load_settings("inventory", {"jwt_secret": JWT_SECRET}, {}))
    with pytest.raises(ValueError, match="subject"):
        mint_token(keyring, role=Role.ADMIN, subject=subject)
