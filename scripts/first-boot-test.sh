#!/usr/bin/env bash
# `make test-release`: runs a cloud gateway's first-boot script (the text `gateway create` writes)
# in a fresh Debian 12 root against the release `make release` made, served from loopback: it must
# install the libraries and the binary, which must then run (`warren --version`,
# `warren node start --help`); a tampered tarball must be refused with the hash mismatch named.
# The test itself is ProvisioningFirstBootReleaseTests; this script makes what it needs.
#
# The Debian root (debootstrap --variant=minbase, Debian's packages only, no Swift toolchain) is
# made once and cached in /var/cache/warren-debootstrap; each run works on a copy of it.
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT="${SWIFT:-swift}"
CACHE="${WARREN_DEBOOTSTRAP_CACHE:-/var/cache/warren-debootstrap}"
SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
TEMPLATE="$CACHE/$SUITE"

if [ "$(id -u)" -ne 0 ]; then
    echo "first-boot test: needs root (debootstrap and chroot); run it as root: sudo make test-release" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    echo "first-boot test: installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
if [ ! -e "$TEMPLATE/.warren-complete" ]; then
    echo "first-boot test: making a Debian 12 root in $TEMPLATE (once; a few minutes)"
    rm -rf "$TEMPLATE.partial"
    mkdir -p "$CACHE"
    debootstrap --variant=minbase "$SUITE" "$TEMPLATE.partial" "$MIRROR"
    rm -rf "$TEMPLATE"
    mv "$TEMPLATE.partial" "$TEMPLATE"
    touch "$TEMPLATE/.warren-complete"
fi

shopt -s nullglob
tarballs=(.build-release/dist/warren-*-linux-"$(uname -m)".tar.gz)
[ ${#tarballs[@]} -eq 1 ] || { echo "first-boot test: expected one release tarball in .build-release/dist (run make release), found ${#tarballs[@]}" >&2; exit 1; }

# The test binary must exist: `make test` builds it; build it here if not.
"$SWIFT" build --build-tests >/dev/null
WARREN_TEST_RELEASE="$PWD/${tarballs[0]}" WARREN_TEST_DEBIAN_ROOT="$TEMPLATE" \
    "$SWIFT" test --skip-build --no-parallel --filter ProvisioningFirstBootReleaseTests
