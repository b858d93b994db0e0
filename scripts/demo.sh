#!/usr/bin/env bash
# The main job on the embedded default: check the example service as `warren run` will read it.
set -euo pipefail
cd "$(dirname "$0")/.."
warren=".build/debug/warren"
echo "== warren config check -f examples/service.dstack.yml (GATEWAY_IP=127.0.0.2)"
"$warren" config check -f examples/service.dstack.yml --project local --secret GATEWAY_IP=127.0.0.2
