#!/usr/bin/env bash
# A NAT lab in network namespaces: a public side with a gateway and a client, and a site behind a
# masquerading router where the runner and its app live.
#
#   client 198.18.0.20 ─┐
#   public 198.18.0.10 ─┼─ bridge in "router" (WAN 198.18.0.1) ── NAT ── 10.213.0.1 ─── site 10.213.0.2
#
# Addresses are from ranges reserved for tests (198.18.0.0/15, RFC 2544) and private use, and
# exist only inside these namespaces. The router masquerades the site's traffic and drops new
# connections from the WAN into the site, like a home or office NAT.
#
# Usage: scripts/netns.sh up | down | status | exec NODE CMD... | addr NODE
#   NODE is public, router, site or client. Everything is named with the prefix $WARREN_NETNS_PREFIX
#   (default "wrn-", at most 6 characters) so that several labs, and the host, never collide.
#   "down" removes everything and is safe to run at any time, also after a failed "up".
set -euo pipefail

prefix="${WARREN_NETNS_PREFIX:-wrn-}"
if [ "${#prefix}" -gt 6 ]; then
    echo "netns.sh: prefix \"$prefix\" is longer than 6 characters (interface names are limited to 15)" >&2
    exit 2
fi
nodes=(public router site client)

ns() { echo "${prefix}$1"; }
in_ns() { local node=$1; shift; ip netns exec "$(ns "$node")" "$@"; }

addr() {
    case "$1" in
        public) echo 198.18.0.10 ;;
        client) echo 198.18.0.20 ;;
        router) echo 198.18.0.1 ;;
        site) echo 10.213.0.2 ;;
        *) echo "netns.sh: unknown node \"$1\" (public, router, site, client)" >&2; return 2 ;;
    esac
}

down() {
    for node in "${nodes[@]}"; do
        ip netns del "$(ns "$node")" 2>/dev/null || true
    done
    # Veth ends left in the root namespace by an interrupted "up".
    for link in pub0 pub1 cli0 cli1 lan0 lan1; do
        ip link del "${prefix}${link}" 2>/dev/null || true
    done
}

# A veth pair whose ends go into two namespaces under the names given.
veth() {
    local a_node=$1 a_name=$2 b_node=$3 b_name=$4
    ip link add "${prefix}${a_name}" type veth peer name "${prefix}${b_name}"
    ip link set "${prefix}${a_name}" netns "$(ns "$a_node")"
    ip link set "${prefix}${b_name}" netns "$(ns "$b_node")"
}

up() {
    down
    trap 'echo "netns.sh: up failed; removing what was made" >&2; down' ERR
    for node in "${nodes[@]}"; do
        ip netns add "$(ns "$node")"
        in_ns "$node" ip link set lo up
    done

    # The WAN: a bridge inside the router joins the public host, the client and the router.
    in_ns router ip link add "${prefix}wan" type bridge
    in_ns router ip addr add 198.18.0.1/24 dev "${prefix}wan"
    in_ns router ip link set "${prefix}wan" up
    veth public pub0 router pub1
    veth client cli0 router cli1
    for end in pub1 cli1; do
        in_ns router ip link set "${prefix}${end}" master "${prefix}wan"
        in_ns router ip link set "${prefix}${end}" up
    done
    in_ns public ip addr add 198.18.0.10/24 dev "${prefix}pub0"
    in_ns public ip link set "${prefix}pub0" up
    in_ns client ip addr add 198.18.0.20/24 dev "${prefix}cli0"
    in_ns client ip link set "${prefix}cli0" up
    # The client even knows where the site's network is: only the NAT stops it.
    in_ns client ip route add 10.213.0.0/24 via 198.18.0.1

    # The LAN: the site behind the router.
    veth router lan0 site lan1
    in_ns router ip addr add 10.213.0.1/24 dev "${prefix}lan0"
    in_ns router ip link set "${prefix}lan0" up
    in_ns site ip addr add 10.213.0.2/24 dev "${prefix}lan1"
    in_ns site ip link set "${prefix}lan1" up
    in_ns site ip route add default via 10.213.0.1

    # NAT: masquerade the site, refuse new connections from the WAN into it.
    in_ns router sysctl -qw net.ipv4.ip_forward=1
    in_ns router iptables -t nat -A POSTROUTING -s 10.213.0.0/24 -o "${prefix}wan" -j MASQUERADE
    in_ns router iptables -A FORWARD -i "${prefix}wan" -o "${prefix}lan0" -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    in_ns router iptables -A FORWARD -i "${prefix}wan" -o "${prefix}lan0" -j DROP
    trap - ERR
    echo "netns.sh: lab \"${prefix}\" is up: public $(addr public), client $(addr client), site $(addr site) behind router $(addr router)"
}

status() {
    ip netns list | grep "^${prefix}" || echo "netns.sh: no namespaces with prefix \"${prefix}\""
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    addr) addr "${2:?node}" ;;
    exec)
        node="${2:?node}"
        shift 2
        addr "$node" >/dev/null
        in_ns "$node" "$@"
        ;;
    *)
        echo "usage: $0 up | down | status | exec NODE CMD... | addr NODE   (NODE: public, router, site, client)" >&2
        exit 2
        ;;
esac
