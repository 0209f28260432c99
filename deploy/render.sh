#!/bin/sh
# Render a balancer template (deploy/nginx/nginx.conf.template, deploy/haproxy/haproxy.cfg.template)
# from environment variables: the one place the upstream addresses come from, on a plain host
# (`make cluster`), in docker compose and in Kubernetes.
#
#   render.sh TEMPLATE OUTPUT                 write OUTPUT (atomically)
#   render.sh TEMPLATE OUTPUT -- COMMAND...   then exec COMMAND (a container's entry point)
#
# POSIX sh and awk only (the official nginx and HAProxy images have nothing more), in the
# spirit of the nginx image's envsubst templates, with two differences:
#   - only ${LOGISTICS_LB_*} placeholders are replaced, so nginx's own $variables and any
#     other ${...} pass through untouched, and one that is neither set nor defaulted below
#     stops the rendering with its name (envsubst would silently write an empty string);
#   - a line holding a list placeholder, ${LOGISTICS_LB_<SERVICE>_SERVERS}, is written once
#     per address of the list ("host:port", separated by spaces or commas), with
#     ${LOGISTICS_LB_INDEX} as the address's position (1, 2, ...): a variable number of
#     upstream servers, which neither envsubst nor HAProxy's "${VAR}" expansion can express.
#
# Variables (the list ones are required, the others have these defaults):
#   LOGISTICS_LB_INVENTORY_SERVERS, LOGISTICS_LB_SHIPPING_SERVERS, LOGISTICS_LB_SUPPORT_SERVERS
#                                     each service's web replicas: IP:port (a plain host) or
#                                     name:port (compose, Kubernetes: resolved by the balancer)
#   LOGISTICS_LB_NGINX_LISTEN=8080            nginx's public listen address
#   LOGISTICS_LB_HAPROXY_BIND=:8080           HAProxy's public bind address
#   LOGISTICS_LB_HAPROXY_STATS_BIND=:8404     HAProxy's stats page and Prometheus metrics
#   LOGISTICS_LB_HAPROXY_SLOTS=1              HAProxy servers per address (server-template): 1 for
#                                             an IP or a name with one address, more for a name that
#                                             resolves to several replicas (compose --scale)
#   LOGISTICS_LB_RUN_DIR=/tmp                 writable directory for nginx's pid and temp files
set -eu

: "${LOGISTICS_LB_NGINX_LISTEN:=8080}"
: "${LOGISTICS_LB_HAPROXY_BIND:=:8080}"
: "${LOGISTICS_LB_HAPROXY_STATS_BIND:=:8404}"
: "${LOGISTICS_LB_HAPROXY_SLOTS:=1}"
: "${LOGISTICS_LB_RUN_DIR:=/tmp}"
export LOGISTICS_LB_NGINX_LISTEN LOGISTICS_LB_HAPROXY_BIND LOGISTICS_LB_HAPROXY_STATS_BIND \
    LOGISTICS_LB_HAPROXY_SLOTS LOGISTICS_LB_RUN_DIR

if [ "$#" -lt 2 ]; then
    echo "usage: $0 TEMPLATE OUTPUT [-- COMMAND...]" >&2
    exit 2
fi
template=$1
output=$2
shift 2

tmp="$output.tmp.$$"
trap 'rm -f "$tmp"' EXIT
awk -v template="$template" '
    # Literal (not regular-expression) replacement of every occurrence of `from`.
    function replace(text, from, to,    out, at) {
        out = ""
        while ((at = index(text, from)) > 0) {
            out = out substr(text, 1, at - 1) to
            text = substr(text, at + length(from))
        }
        return out text
    }
    function scalars(text,    out, name) {
        out = ""
        while (match(text, /\$\{LOGISTICS_LB_[A-Z0-9_]+\}/)) {
            name = substr(text, RSTART + 2, RLENGTH - 3)
            if (!(name in ENVIRON)) {
                printf "render.sh: %s:%d needs %s (not set)\n", template, NR, name > "/dev/stderr"
                failed = 1
            }
            out = out substr(text, 1, RSTART - 1) ENVIRON[name]
            text = substr(text, RSTART + RLENGTH)
        }
        return out text
    }
    match($0, /\$\{LOGISTICS_LB_[A-Z0-9_]+_SERVERS\}/) {
        placeholder = substr($0, RSTART, RLENGTH)
        name = substr($0, RSTART + 2, RLENGTH - 3)
        count = split(ENVIRON[name], addresses, /[ ,]+/)
        index_ = 0
        for (i = 1; i <= count; i++) {
            if (addresses[i] == "") continue
            index_++
            line = replace(replace($0, placeholder, addresses[i]), "${LOGISTICS_LB_INDEX}", index_)
            print scalars(line)
        }
        if (index_ == 0) {
            printf "render.sh: %s:%d needs %s: one or more host:port (not set or empty)\n",
                template, NR, name > "/dev/stderr"
            failed = 1
        }
        next
    }
    { print scalars($0) }
    END { exit failed }
' "$template" >"$tmp"
mv "$tmp" "$output"
trap - EXIT

if [ "$#" -gt 0 ]; then
    if [ "$1" != "--" ]; then
        echo "usage: $0 TEMPLATE OUTPUT [-- COMMAND...]" >&2
        exit 2
    fi
    shift
    exec "$@"
fi
