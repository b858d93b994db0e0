#!/usr/bin/env bash
# `make demo`: the walkthrough of the README on this machine. A runner node (127.0.0.3) in a
# temporary state directory makes a gateway node (127.0.0.2) with `warren gateway create --backend
# local`; the runner runs examples/service.dstack.yml, which the gateway publishes at
# http://127.0.0.2:5001. Everything stops on exit, even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

warren="$PWD/.build/debug/warren"
gateway=127.0.0.2
runner=127.0.0.3
node_port=7420
service_port=5001   # examples/service.dstack.yml: port "5001:8000"
app_port=8000

[ -x "$warren" ] || { echo "demo: $warren is missing; run \`make demo\` (it builds first)" >&2; exit 1; }

# The ports the demo needs must be free; say what holds one that isn't.
busy=0
for hp in "$gateway:$node_port" "$runner:$node_port" "$gateway:$service_port" "*:$app_port"; do
    port=${hp##*:}
    host=${hp%:*}
    while read -r local; do
        lhost=${local%:*}
        if [ "$host" = "*" ] || [ "$lhost" = "$host" ] || [ "$lhost" = "0.0.0.0" ] || [ "$lhost" = "*" ] || [ "$lhost" = "[::]" ]; then
            echo "demo: port $port ($hp) is in use:" >&2
            ss -Hltnp "sport = :$port" >&2 || true
            busy=1
            break
        fi
    done < <(ss -Hltn "sport = :$port" | awk '{print $4}')
done
[ "$busy" = 0 ] || { echo "demo: stop what holds those ports (or an earlier demo), then run it again" >&2; exit 1; }

state=$(mktemp -d /tmp/warren-demo.XXXXXX)
export WARREN_HOME="$state/rn"   # the CLI talks to the runner node
rn_pid="" run_name="" gateway_made=""

cleanup() {
    status=$?
    set +e
    echo
    echo "== cleaning up"
    if [ -n "$run_name" ] && [ -n "$rn_pid" ] && kill -0 "$rn_pid" 2>/dev/null; then
        echo "\$ warren stop $run_name"
        "$warren" stop "$run_name"
    fi
    if [ -n "$gateway_made" ] && [ -n "$rn_pid" ] && kill -0 "$rn_pid" 2>/dev/null; then
        echo "\$ warren gateway delete demo-gw -y"
        "$warren" gateway delete demo-gw -y
    fi
    # The gateway runs detached from the runner node: stop it by its pid file if it still runs.
    gw_pid=$(cat "$state/rn/gateways/demo-gw/gateway.pid" 2>/dev/null)
    for pid in $rn_pid $gw_pid; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in $rn_pid $gw_pid; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ "$status" != 0 ]; then
        echo "demo failed; the nodes' logs:" >&2
        tail -n 20 "$state"/*.log "$state"/rn/gateways/*/gateway.log >&2 2>/dev/null
    fi
    rm -rf "$state"
    echo "both nodes stopped; $state removed"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo; echo "\$ $*"; }

say "warren node start --state-dir $state/rn --listen $runner:$node_port &"
"$warren" node start --state-dir "$state/rn" --listen "$runner:$node_port" >"$state/runner.log" 2>&1 &
rn_pid=$!
for i in $(seq 100); do
    "$warren" peers >/dev/null 2>&1 && break
    [ "$i" = 100 ] && { echo "demo: the runner node did not start within 20 s" >&2; exit 1; }
    sleep 0.2
done

say "export WARREN_HOME=$WARREN_HOME"
say "warren gateway create --project local --backend local --name demo-gw --address $gateway"
gateway_made=1
"$warren" gateway create --project local --backend local --name demo-gw --address "$gateway"

say "warren secrets add GATEWAY_IP $gateway --project local"
"$warren" secrets add GATEWAY_IP "$gateway" --project local

say "warren run . -f examples/service.dstack.yml --project local -d"
out=$("$warren" run . -f examples/service.dstack.yml --project local -d)
echo "$out"
run_name=$(echo "$out" | awk '/^Run /{print $2; exit}')
url=$(echo "$out" | grep -o 'http://[^ ]*' | tail -n 1)

echo
echo "The service is at $url"
say "curl -s $url | head -n 8"
curl -sS --max-time 5 -o "$state/page.html" "$url"
head -n 8 "$state/page.html"

say "warren ps"
"$warren" ps
say "warren leases"
"$warren" leases
say "warren gateway list"
"$warren" gateway list
