"""The balancers' templates (deploy/nginx/nginx.conf.template, deploy/haproxy/haproxy.cfg.template)
rendered by deploy/render.sh for each deployment shape, and accepted by the real nginx and HAProxy.

The shapes' LOGISTICS_LB_* variables come from deploy/checks.py (``balancer_env``), which takes
them from where each shape keeps them: ``host`` from deploy/local/cluster.py (`make cluster`,
127.0.0.1 and two web replicas per service), ``compose`` from the nginx/haproxy services of
deploy/docker-compose.yml, ``k8s`` from the Services in deploy/k8s; deploy/validate.sh renders
the same table. Compose and Kubernetes names do not resolve here: nginx -t resolves upstream
names, so its copy points them at 127.0.0.1; HAProxy starts without them (init-addr none), so
its only tolerated warning is "could not resolve address".

Also: render.sh refuses a missing or empty upstream list, naming the variable, and writes no
configuration. (One X-Request-ID per response is checked through the running balancers, in
tests/cluster/.)
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ..services import services_required

ROOT = Path(__file__).resolve().parents[2]
SHAPES = ("host", "compose", "k8s")
BALANCERS = ("nginx", "haproxy")
LISTS = ("LOGISTICS_LB_INVENTORY_SERVERS", "LOGISTICS_LB_SHIPPING_SERVERS", "LOGISTICS_LB_SUPPORT_SERVERS")
#: The upstream servers' lines, whose host part nginx -t must be able to resolve.
NGINX_SERVER_NAME = re.compile(r"^(\s*server )[A-Za-z][A-Za-z0-9.-]*:(\d+)", re.M)


def load_checks() -> ModuleType:
    """deploy/checks.py as a module: the one description of each shape's variables."""
    spec = importlib.util.spec_from_file_location("logistics_deploy_checks", ROOT / "deploy" / "checks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first: its dataclasses look their module up while being defined.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


checks = load_checks()


def need_balancer(name: str) -> str:
    """The path of ``nginx`` or ``haproxy`` (Debian's, as .ci/run installs them): skip without
    it, or fail under LOGISTICS_REQUIRE_SERVICES=1 (like need_cluster_tools(), which also wants
    supervisord, which rendering and checking do not need)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
    found = shutil.which(name, path=path)
    if found is None:
        message = f"checking the {name} configurations needs {name} (apt-get install nginx haproxy)"
        if services_required():
            pytest.fail(f"{message}; LOGISTICS_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
        pytest.skip(message)
    return found


def render(balancer: str, env: dict[str, str], output: Path) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = checks.render(checks.TEMPLATES[balancer], output, env)
    return result


@pytest.mark.parametrize("balancer", BALANCERS)
@pytest.mark.parametrize("shape", SHAPES)
def test_rendering_is_accepted(shape: str, balancer: str, tmp_path: Path) -> None:
    binary = need_balancer(balancer)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = {**checks.balancer_env(shape, balancer), "LOGISTICS_LB_RUN_DIR": str(run_dir)}
    assert set(LISTS) <= set(env), f"{shape} gives {balancer} no {sorted(set(LISTS) - set(env))}"
    output = tmp_path / checks.TEMPLATES[balancer].stem

    done = render(balancer, env, output)
    assert done.returncode == 0, done.stderr
    text = output.read_text()
    assert "${LOGISTICS_LB_" not in text
    # Every address of every list is one server line (HAProxy: one server-template).
    keyword = "server" if balancer == "nginx" else r"server-template \S+ \d+"
    for name in LISTS:
        for address in env[name].replace(",", " ").split():
            lines = re.findall(rf"^\s*{keyword} {re.escape(address)}(?:\s|$)", text, re.M)
            assert len(lines) == 1, f"{address} ({name}) is on {len(lines)} {balancer} server lines"

    if balancer == "nginx":
        output.write_text(NGINX_SERVER_NAME.sub(r"\g<1>127.0.0.1:\2", text))
        argv = [binary, "-q", "-t", "-e", "stderr", "-p", str(run_dir), "-c", str(output)]
    else:
        argv = [binary, "-c", "-f", str(output)]
    checked = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    report = checked.stdout + checked.stderr
    assert checked.returncode == 0, report
    complaints = [
        line
        for line in report.splitlines()
        if re.search(r"\[(WARNING|ALERT|warn|emerg|alert|crit)\]", line)
        and "could not resolve address" not in line
    ]
    assert not complaints, report


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
@pytest.mark.parametrize("missing", LISTS)
@pytest.mark.parametrize("balancer", BALANCERS)
def test_render_refuses_a_missing_upstream_list(
    balancer: str, missing: str, value: str | None, tmp_path: Path
) -> None:
    env = {name: "127.0.0.1:1" for name in LISTS if name != missing}
    if value is not None:
        env[missing] = value
    output = tmp_path / "out.conf"

    done = render(balancer, env, output)

    assert done.returncode != 0
    assert missing in done.stderr
    assert not output.exists()
    assert not list(tmp_path.iterdir()), "render.sh left a temporary file behind"
