"""Which process holds which JWT key: web verifies with a public key only, a worker starts with
no key at all (the Kubernetes manifests' configuration), and `logistics token` refuses to
mint without the private key, naming the setting."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pyramid.interfaces import ISecurityPolicy
from webtest import TestApp

from logistics_shared.cli import main as cli
from logistics_shared.identity import Role
from logistics_shared.security import load_keyring, mint_token
from logistics_shared.settings import SettingsError, load_settings

LOGISTICS = str(Path(sys.executable).with_name("logistics"))


@pytest.fixture
def key_pair(tmp_path: Path) -> tuple[Path, Path]:
    """(private, public) Ed25519 PEM files, as deploy/README.md "JWT keys" makes them."""
    key = ed25519.Ed25519PrivateKey.generate()
    private, public = tmp_path / "jwt-private.pem", tmp_path / "jwt-public.pem"
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
    return private, public


def _public_only(public: Path) -> dict[str, str]:
    """The JWT settings a Kubernetes web or worker container gets (deploy/k8s/<svc>/web.yaml)."""
    return {"LOGISTICS_JWT_ALGORITHM": "EdDSA", "LOGISTICS_JWT_PUBLIC_KEY_FILE": str(public)}


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LOGISTICS_")}


def test_web_with_only_the_public_key_verifies_tokens(database_factory, specs, tmp_path, key_pair) -> None:
    private, public = key_pair
    spec = specs["inventory"]
    settings = load_settings(
        "inventory",
        {"database_url": database_factory(spec, "sqlite"), "var_dir": str(tmp_path / "var")},
        environ=_public_only(public),
    )
    assert not settings.jwt_secret and not settings.jwt_private_key_file
    wsgi = spec.configure(settings).make_wsgi_app()
    keyring = wsgi.registry.queryUtility(ISecurityPolicy).keyring
    assert keyring.algorithm == "EdDSA"
    assert keyring.signing_key is None  # this process cannot mint
    app = TestApp(wsgi)
    signer = load_keyring(
        load_settings(
            "inventory",
            {},
            environ=_public_only(public) | {"LOGISTICS_JWT_PRIVATE_KEY_FILE": str(private)},
        )
    )
    token = mint_token(signer, role=Role.ADMIN, subject="ops")
    assert app.get("/v1/stock", headers={"Authorization": f"Bearer {token}"}).status_int == 200
    # Nothing to confuse it with: an HS256 token is refused, whatever its "secret".
    now = int(time.time())
    claims = {"sub": "x", "role": "admin", "iss": "logistics", "aud": "logistics", "exp": now + 60}
    forged = jwt.encode(claims, "any-secret-at-all-0123456789-0123456789", "HS256")
    res = app.get("/v1/stock", headers={"Authorization": f"Bearer {forged}"}, status=401)
    assert "not valid" in res.json["detail"]
    # The embedded default generates an HS256 secret only for HS256: none was written.
    assert not (tmp_path / "var" / "jwt-secret").exists()


def test_token_refuses_to_mint_without_the_private_key(key_pair) -> None:
    private, public = key_pair
    unset = dict.fromkeys(("LOGISTICS_JWT_SECRET", "LOGISTICS_JWT_PRIVATE_KEY_FILE"))
    result = CliRunner().invoke(cli, ["token", "--role", "admin"], env={**unset, **_public_only(public)})
    assert result.exit_code == 1, result.output
    assert "LOGISTICS_JWT_PRIVATE_KEY_FILE" in result.output
    assert "eyJ" not in result.output
    # With it (outside the cluster, where tokens are minted), the same command prints a token
    # that a public-key-only keyring accepts.
    env = {**unset, **_public_only(public), "LOGISTICS_JWT_PRIVATE_KEY_FILE": str(private)}
    minted = CliRunner().invoke(cli, ["token", "--role", "admin", "--ttl", "15m"], env=env)
    assert minted.exit_code == 0, minted.output
    verifier = load_keyring(load_settings("inventory", {}, environ=_public_only(public)))
    claims = jwt.decode(
        minted.output.strip(),
        verifier.verify_key,
        algorithms=["EdDSA"],
        audience="logistics",
        issuer="logistics",
    )
    assert claims["role"] == "admin"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("keys", "backend"),
    [
        pytest.param("public", "sqlite", id="public-key-only"),
        # As the Kubernetes worker Deployments run: a worker verifies no token and gets no key.
        # On PostgreSQL a web process without a key refuses to start (tests/shared/test_cli.py).
        pytest.param("none", "postgres", id="no-jwt-settings", marks=pytest.mark.postgres),
    ],
)
def test_a_worker_starts_without_any_signing_key(
    database_factory, specs, tmp_path, key_pair, keys: str, backend: str
) -> None:
    """`logistics worker` with no HS256 secret and no private key: it never verifies a token."""
    _, public = key_pair
    port = _free_port()
    env = _clean_env() | (_public_only(public) if keys == "public" else {})
    env |= {
        "LOGISTICS_INVENTORY_DATABASE_URL": database_factory(specs["inventory"], backend),
        "LOGISTICS_VAR_DIR": str(tmp_path / "var"),
        "LOGISTICS_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [LOGISTICS, "worker", "inventory", "--health-port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as res:
                    status = res.status
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        assert status == 200, f"worker did not answer /healthz on {port} within 60 s (exit {proc.poll()})"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert not (tmp_path / "var" / "jwt-secret").exists()


def test_configure_reads_no_key_until_a_token_is_verified(specs) -> None:
    """configure() needs no JWT settings (a worker's app); the first verification asks for them."""
    settings = load_settings(
        "inventory", {"database_url": "postgresql://postgres@127.0.0.1:1/none"}, environ={}
    )
    policy = specs["inventory"].configure(settings).make_wsgi_app().registry.queryUtility(ISecurityPolicy)
    with pytest.raises(SettingsError, match="LOGISTICS_JWT_SECRET"):
        policy.keyring  # noqa: B018
