"""Bearer JWTs: verified locally, explicit algorithms, clear 401s and 403s."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from logistics_shared.identity import Role
from logistics_shared.security import InvalidToken, load_keyring, mint_token, parse_duration, verify_token
from logistics_shared.settings import load_settings

from ..conftest import JWT_SECRET


@pytest.fixture
def app(service_client):
    return service_client("inventory")


def _claims(**over):
    now = int(time.time())
    return {"sub": "x", "role": "admin", "iss": "logistics", "aud": "logistics", "exp": now + 60, **over}


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        (lambda: jwt.encode(_claims(exp=int(time.time()) - 600), JWT_SECRET, "HS256"), "expired"),
        (lambda: jwt.encode(_claims(), "another-secret-of-sufficient-length-000000", "HS256"), "not valid"),
        (lambda: jwt.encode(_claims(), None, "none"), "not valid"),
        (lambda: jwt.encode(_claims(aud="elsewhere"), JWT_SECRET, "HS256"), "not valid"),
        (lambda: jwt.encode(_claims(iss="mallory"), JWT_SECRET, "HS256"), "not valid"),
        (lambda: jwt.encode(_claims(role="root"), JWT_SECRET, "HS256"), "no known role"),
        (
            lambda: jwt.encode({k: v for k, v in _claims().items() if k != "exp"}, JWT_SECRET, "HS256"),
            "not valid",
        ),
        (lambda: jwt.encode(_claims(warehouses="AMS"), JWT_SECRET, "HS256"), "warehouses"),
        (lambda: "not.a.jwt", "not valid"),
    ],
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
