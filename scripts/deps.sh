#!/usr/bin/env bash
# Installs what building and testing Warren needs on Debian 12, or says exactly what to run.
set -euo pipefail

# pkg-config module → Debian package that provides it.
declare -A providers=(
    [libsodium]=libsodium-dev
    [libcurl]=libcurl4-openssl-dev
    [libcrypto]=libssl-dev
    [sqlite3]=libsqlite3-dev
)
# command → Debian package (tests start real processes and network namespaces).
declare -A commands=(
    [pkg-config]=pkg-config
    [python3]=python3
    [ip]=iproute2
    [iptables]=iptables
    [openssl]=openssl
    [curl]=curl
    [conntrack]=conntrack
    # The ACME tests run Let's Encrypt's test CA; the package also ships pebble-challtestsrv.
    [pebble]=pebble
)

missing=()
for cmd in "${!commands[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${commands[$cmd]}")
done
# The WebSocket upgrade tests run a real server and client: python3's websockets, Debian's
# package (the tests use /usr/bin/python3 when another python3 comes first on PATH).
if ! /usr/bin/python3 -c 'import websockets' >/dev/null 2>&1 && ! python3 -c 'import websockets' >/dev/null 2>&1; then
    missing+=(python3-websockets)
fi
if command -v pkg-config >/dev/null 2>&1; then
    for mod in "${!providers[@]}"; do
        pkg-config --exists "$mod" || missing+=("${providers[$mod]}")
    done
else
    missing+=("${providers[@]}")
fi

if [ ${#missing[@]} -gt 0 ]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    if [ "$(id -u)" -eq 0 ]; then
        echo "Installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "Warren needs these Debian packages: ${missing[*]}" >&2
        echo "Install them with:" >&2
        echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

# The AWS provisioning tests run against moto's EC2 server (PyPI).
if [ "${WARREN_SKIP_MOTO:-}" != 1 ] && command -v python3 >/dev/null 2>&1 && ! python3 -c "import moto.server" >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "Installing moto[server] (for the AWS provisioning tests)"
        python3 -m pip install -q 'moto[server]' || echo "warning: moto could not be installed; the AWS tests will say they are skipped" >&2
    else
        echo "note: the AWS provisioning tests need moto: python3 -m pip install 'moto[server]'" >&2
    fi
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "Warren needs the Swift toolchain (6.1 or newer) on PATH; see https://www.swift.org/install/" >&2
    exit 1
fi
