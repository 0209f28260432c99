"""The ``logistics`` CLI: every command has --help; up, serve, migrate and token work."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from logistics_shared.cli import main
from logistics_shared.security import load_keyring, verify_token
from logistics_shared.settings import load_settings

from ..services import free_port_block

ROOT = Path(__file__).parents[2]
LOGISTICS = str(Path(sys.executable).with_name("logistics"))


@pytest.mark.parametrize("command", [[], ["up"], ["serve"], ["migrate"], ["token"], ["inventory"]])
def test_every_command_has_help(command):
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_token_is_verifiable_with_the_same_settings(tmp_path):
    env = {"LOGISTICS_VAR_DIR": str(tmp_path)}
    result = CliRunner(env=env).invoke(
        main,
        ["token", "--role", "warehouse_staff", "--warehouse", "AMS", "--warehouse", "RTM", "--ttl", "15m"],
    )
    assert result.exit_code == 0, result.output
    keyring = load_keyring(load_settings("inventory", {"var_dir": str(tmp_path)}, {}))
    identity = verify_token(keyring, result.output.strip())
    assert identity.warehouses == frozenset({"AMS", "RTM"})
    assert identity.subject == "warehouse_staff"


@pytest.mark.parametrize(
    "args",
    [
        ["token", "--role", "warehouse_staff"],
        ["token", "--role", "admin", "--ttl", "soon"],
        ["token", "--role", "x"],
    ],
)
def test_token_rejects_bad_arguments(args, tmp_path):
    result = CliRunner(env={"LOGISTICS_VAR_DIR": str(tmp_path)}).invoke(main, args)
    assert result.exit_code == 2


def test_migrate_and_unknown_service(tmp_path):
    env = {"LOGISTICS_SHIPPING_DATABASE_URL": f"sqlite:///{tmp_path}/s.sqlite3"}
    result = CliRunner(env=env).invoke(main, ["migrate", "shipping"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.sqlite3").exists()
    result = CliRunner().invoke(main, ["migrate", "warehouse"])
    assert result.exit_code == 2
    assert "unknown service 'warehouse'" in result.output


def test_bad_setting_stops_with_its_name(tmp_path):
    env = {"LOGISTICS_MAX_BODY_BYTES": "big", "LOGISTICS_VAR_DIR": str(tmp_path)}
    result = CliRunner(env=env).invoke(main, ["migrate", "inventory"])
    assert result.exit_code == 1
    assert "LOGISTICS_MAX_BODY_BYTES" in result.output


def _get(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_up_runs_every_service_on_the_embedded_default(tmp_path):
    offset = free_port_block()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGISTICS_")}
    proc = subprocess.Popen(
        [LOGISTICS, "up", "--port-offset", str(offset), "--var-dir", str(tmp_path / "var")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = {
            name: f"http://127.0.0.1:{port + offset}"
            for name, port in (("inventory", 6541), ("shipping", 6542), ("support", 6543))
        }
        deadline = time.monotonic() + 60
        while True:
            try:
                if all(_get(f"{url}/readyz")[0] == 200 for url in base.values()):
                    break
            except OSError:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "up did not become ready"
            time.sleep(0.3)
        token = subprocess.run(
            [LOGISTICS, "token", "--role", "admin"],
            cwd=tmp_path,
            env={**env, "LOGISTICS_VAR_DIR": str(tmp_path / "var")},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        status, body = _get(f"{base['inventory']}/v1/stock", token)
        assert (status, body) == (200, {"items": [], "next_cursor": None})
        assert sorted(p.name for p in (tmp_path / "var").glob("*.sqlite3")) == [
            "inventory.sqlite3",
            "shipping.sqlite3",
            "support.sqlite3",
        ]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"http://127.0.0.1:{6541 + offset}" in out


@pytest.mark.parametrize("service", ["inventory", "shipping", "support"])
def test_pastedeploy_ini_builds_the_app(service, tmp_path, monkeypatch):
    from pyramid.paster import get_app

    monkeypatch.setenv("LOGISTICS_VAR_DIR", str(tmp_path))
    app = get_app(str(ROOT / "services" / service / "development.ini"), "main")
    assert app.registry["logistics.service"].name == service


@pytest.mark.parametrize(
    ("ttl", "cap", "ok"),
    [
        ("24h", None, True),
        ("1d", None, True),
        ("25h", None, False),
        ("7d", None, False),
        ("2h", "3600", False),
    ],
)
def test_token_lifetime_is_capped(ttl, cap, ok, tmp_path):
    env = {"LOGISTICS_VAR_DIR": str(tmp_path)}
    if cap:
        env["LOGISTICS_JWT_MAX_TTL_SECONDS"] = cap
    result = CliRunner(env=env).invoke(main, ["token", "--role", "admin", "--ttl", ttl])
    if ok:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, result.output
    assert "--ttl" in result.output
    assert "LOGISTICS_JWT_MAX_TTL_SECONDS" in result.output


def _closed_port() -> int:
    # Bound but never listening: a connect is refused at once, not left to time out.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PG_NOWHERE = "postgresql://postgres@127.0.0.1:{port}/lt_hard_nowhere"


def _startup_cases() -> list:
    pserve = str(Path(sys.executable).with_name("pserve"))
    ini = str(ROOT / "services" / "inventory" / "development.ini")
    pg = {"LOGISTICS_INVENTORY_DATABASE_URL": PG_NOWHERE}
    short = {"LOGISTICS_JWT_SECRET": "too-short"}
    return [
        # LOGISTICS_JWT_SECRET is required with PostgreSQL, and only checked inside configure().
        pytest.param(
            [LOGISTICS, "serve", "inventory", "--port", "{free}"], pg, "LOGISTICS_JWT_SECRET", id="serve"
        ),
        # A worker verifies no token and needs no JWT key; a malformed setting still stops it.
        pytest.param(
            [LOGISTICS, "worker", "inventory", "--health-port", "{free}"],
            {**pg, "LOGISTICS_WAITRESS_CONNECTION_LIMIT": "many"},
            "LOGISTICS_WAITRESS_CONNECTION_LIMIT",
            id="worker-malformed",
        ),
        pytest.param([pserve, ini], pg, "LOGISTICS_JWT_SECRET", id="pserve"),
        pytest.param(
            [LOGISTICS, "up", "--port-offset", "{offset}"],
            short,
            "LOGISTICS_JWT_SECRET",
            id="up-short-secret",
        ),
        pytest.param(
            [LOGISTICS, "migrate", "inventory"], short, "LOGISTICS_JWT_SECRET", id="migrate-short-secret"
        ),
        pytest.param([pserve, ini], short, "LOGISTICS_JWT_SECRET", id="pserve-short-secret"),
        pytest.param(
            [LOGISTICS, "serve", "inventory", "--port", "{free}"],
            {"LOGISTICS_WAITRESS_CONNECTION_LIMIT": "many"},
            "LOGISTICS_WAITRESS_CONNECTION_LIMIT",
            id="serve-malformed",
        ),
        pytest.param(
            [LOGISTICS, "migrate", "inventory"],
            {**pg, "LOGISTICS_JWT_SECRET": "x" * 40},
            "LOGISTICS_INVENTORY_DATABASE_URL",
            id="migrate-unreachable",
        ),
    ]


@pytest.mark.parametrize(("argv", "env", "named"), _startup_cases())
def test_start_up_errors_are_one_line_naming_the_setting(argv, env, named, tmp_path):
    values = {"free": str(_free_port()), "offset": str(free_port_block())}
    argv = [part.format(**values) for part in argv]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOGISTICS_")}
    env = {k: v.format(port=_closed_port()) for k, v in env.items()}
    done = subprocess.run(
        argv,
        cwd=tmp_path,
        env={**clean, "LOGISTICS_VAR_DIR": str(tmp_path / "var"), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert named in lines[0], done.stderr


def test_a_port_in_use_is_one_line_too(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        clean = {k: v for k, v in os.environ.items() if not k.startswith("LOGISTICS_")}
        done = subprocess.run(
            [LOGISTICS, "serve", "inventory", "--port", str(port)],
            cwd=tmp_path,
            env={**clean, "LOGISTICS_VAR_DIR": str(tmp_path / "var")},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
