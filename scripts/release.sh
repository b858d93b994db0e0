#!/usr/bin/env bash
# `make release`: a self-contained warren for Linux, packed as
# warren-<version>-linux-<arch>.tar.gz (the binary `warren` at its top) beside its .sha256.
#
# The Swift runtime and Foundation are linked in (--static-swift-stdlib); the C libraries
# (libcurl, libsodium, SQLite, OpenSSL's libcrypto, libxml2, libstdc++) are the distribution's, which a
# gateway's first boot installs with apt-get (FirstBootScript.runtimePackages). The build has its
# own scratch path, so it never disturbs the debug build of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT="${SWIFT:-swift}"
SCRATCH="${RELEASE_SCRATCH:-.build-release}"
VERSION_FILE=Sources/MeshNode/API/WarrenVersion.swift
VERSION="$(sed -n 's/.*static let current = "\(.*\)".*/\1/p' "$VERSION_FILE")"
[ -n "$VERSION" ] || { echo "release: no version found in $VERSION_FILE" >&2; exit 1; }
ARCH="$(uname -m)"
NAME="warren-$VERSION-linux-$ARCH"
OUT="$SCRATCH/dist"

# Linking Foundation statically links FoundationXML against the system's libxml2 (and zlib):
# their development packages must be there, beside what deps.sh installs.
missing=()
for package in libxml2-dev zlib1g-dev; do
    dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "release: the static link needs ${missing[*]}: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

# The dependencies `make build` fetched already serve the release build too (same
# Package.resolved): no second download.
if [ ! -e "$SCRATCH/workspace-state.json" ] && [ -e .build/workspace-state.json ]; then
    mkdir -p "$SCRATCH"
    cp -a .build/checkouts .build/repositories .build/workspace-state.json "$SCRATCH"/
fi

# The commit `warren --version` prints (Package.swift reads it; "unknown" outside git).
export WARREN_COMMIT="${WARREN_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || true)}"
flags=(-c release --static-swift-stdlib --scratch-path "$SCRATCH")
"$SWIFT" build "${flags[@]}" --product warren
BIN="$("$SWIFT" build "${flags[@]}" --show-bin-path)/warren"

# Nothing of the Swift toolchain may be left to load at run time: a cloud image has none of it.
if ldd "$BIN" | grep -E 'libswift|libFoundation|libdispatch|libBlocksRuntime|_FoundationICU'; then
    echo "release: $BIN still needs the Swift libraries above; it would not run on a fresh image" >&2
    exit 1
fi

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
install -m 0755 "$BIN" "$STAGE/warren"
strip "$STAGE/warren"
mkdir -p "$OUT"
# Same bytes from the same commit: fixed order, owner and time, and gzip without a timestamp.
MTIME="$(git log -1 --format=%ct 2>/dev/null || echo 0)"
tar -C "$STAGE" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$MTIME" -cf - warren | gzip -9n > "$OUT/$NAME.tar.gz"
(cd "$OUT" && sha256sum "$NAME.tar.gz" > "$NAME.tar.gz.sha256")

echo "release: $OUT/$NAME.tar.gz"
echo "release: $OUT/$NAME.tar.gz.sha256: $(cut -d ' ' -f 1 "$OUT/$NAME.tar.gz.sha256")"
echo "release: needs these libraries of the distribution:"
ldd "$BIN" | awk '/=>/ { print "  " $1 }'
