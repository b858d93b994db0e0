#!/usr/bin/env bash
# Two sites behind NAT and a public segment, in network namespaces (the lab of SiteLab's tests).
#
#   gw1 198.18.0.10 ─┐                         ┌─ NAT router ra (WAN .1) ── 10.250.1.0/24: a1 .11, a2 .12
#   gw2 198.18.0.11 ─┼─ bridge in "wan" ───────┤
#   cli 198.18.0.20 ─┘   (198.18.0.0/24)       └─ NAT router rb (WAN .2) ── 10.250.2.0/24: b1 .11
#
# Every router masquerades its site's traffic and drops new connections from the WAN into the site,
# like a home or office NAT. The public nodes have no route to the sites' private networks, as on the
# internet; only the client has routes to them, through the routers, to show that the NATs drop its
# attempts. Addresses are from ranges reserved for tests (198.18.0.0/15, RFC 2544) and private use,
# and exist only inside these namespaces. Each router has a chain "LAB" that FORWARD passes first:
# the loss and partition commands put their rules there, "heal" empties it.
#
# Usage: scripts/sites.sh up | down | status | exec NODE CMD... | addr NODE
#          | readdress SITE ADDR | conntrack-flush SITE | loss SITE PERCENT | partition WHERE ADDR | heal WHERE
#   NODE is one of wan gw1 gw2 cli ra a1 a2 rb b1; SITE is a or b; WHERE is a site or a public node
#   (gw1 gw2 cli: it drops what comes from ADDR). Every namespace is named with the
#   prefix $WARREN_SITES_PREFIX (default "wsl-"), so several labs, and the host, never collide.
#   Veth pairs are made with both ends inside the lab's namespaces: nothing is named in the root
#   namespace. "down" removes everything and is safe to run at any time, also after a failed "up".
set -euo pipefail

prefix="${WARREN_SITES_PREFIX:-wsl-}"
if ! [[ "$prefix" =~ ^[a-z0-9-]{1,12}$ ]]; then
    echo "sites.sh: prefix \"$prefix\" must be 1 to 12 of a-z, 0-9 and -" >&2
    exit 2
fi
nodes=(wan gw1 gw2 cli ra a1 a2 rb b1)

ns() { echo "${prefix}$1"; }
in_ns() { local node=$1; shift; ip netns exec "$(ns "$node")" "$@"; }

addr() {
    case "$1" in
        gw1) echo 198.18.0.10 ;;
        gw2) echo 198.18.0.11 ;;
        cli) echo 198.18.0.20 ;;
        ra) in_ns ra ip -4 -o addr show dev wan 2>/dev/null | awk '{split($4, a, "/"); print a[1]; exit}' | grep . || echo 198.18.0.1 ;;
        rb) echo 198.18.0.2 ;;
        a1) echo 10.250.1.11 ;;
        a2) echo 10.250.1.12 ;;
        b1) echo 10.250.2.11 ;;
        *) echo "sites.sh: unknown node \"$1\" (gw1 gw2 cli ra a1 a2 rb b1)" >&2; return 2 ;;
    esac
}

router() {
    case "$1" in
        a) echo ra ;;
        b) echo rb ;;
        *) echo "sites.sh: unknown site \"$1\" (a or b)" >&2; return 2 ;;
    esac
}

down() {
    for node in "${nodes[@]}"; do
        local name
        name="$(ns "$node")"
        [ -e "/run/netns/$name" ] || continue
        # A process still inside would keep the namespace's network alive after "ip netns del".
        local pids
        pids="$(ip netns pids "$name" 2>/dev/null || true)"
        [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
        ip netns del "$name" 2>/dev/null || true
    done
}

# A veth pair from NODE (named IF there) to a bridge port in BRIDGE_NODE.
plug() {
    local node=$1 ifname=$2 bridge_node=$3 bridge=$4 port=$5
    ip -n "$(ns "$node")" link add "$ifname" type veth peer name "$port" netns "$(ns "$bridge_node")"
    in_ns "$bridge_node" ip link set "$port" master "$bridge"
    in_ns "$bridge_node" ip link set "$port" up
    in_ns "$node" ip link set "$ifname" up
}

up() {
    down
    trap 'echo "sites.sh: up failed; removing what was made" >&2; down' ERR
    for node in "${nodes[@]}"; do
        ip netns add "$(ns "$node")"
        in_ns "$node" ip link set lo up
    done

    # The WAN: a bridge in its own namespace, one port per public node and router.
    in_ns wan ip link add wanbr type bridge
    in_ns wan ip link set wanbr up
    for node in gw1 gw2 cli ra rb; do
        plug "$node" wan wan wanbr "p-$node"
        in_ns "$node" ip addr add "$(addr "$node")/24" dev wan
    done

    # The sites: a bridge inside each router joins its LAN (site A has two nodes).
    for site in a b; do
        local r
        r="$(router "$site")"
        local net="10.250.1"
        [ "$site" = b ] && net="10.250.2"
        in_ns "$r" ip link add lan type bridge
        in_ns "$r" ip addr add "$net.1/24" dev lan
        in_ns "$r" ip link set lan up
        for node in a1 a2 b1; do
            [ "${node:0:1}" = "$site" ] || continue
            plug "$node" eth0 "$r" lan "p-$node"
            in_ns "$node" ip addr add "$(addr "$node")/24" dev eth0
            in_ns "$node" ip route add default via "$net.1"
        done
        in_ns "$r" sysctl -qw net.ipv4.ip_forward=1
        in_ns "$r" iptables -t nat -A POSTROUTING -s "$net.0/24" -o wan -j MASQUERADE
        in_ns "$r" iptables -N LAB
        in_ns "$r" iptables -A FORWARD -j LAB
        in_ns "$r" iptables -A FORWARD -i wan -o lan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
        in_ns "$r" iptables -A FORWARD -i wan -o lan -j DROP
    done
    # The client even knows where the sites' networks are: only the NATs stop it.
    in_ns cli ip route add 10.250.1.0/24 via "$(addr ra)"
    in_ns cli ip route add 10.250.2.0/24 via "$(addr rb)"
    trap - ERR
    echo "sites.sh: lab \"${prefix}\" is up: gw1 $(addr gw1), gw2 $(addr gw2), cli $(addr cli);" \
        "site A (a1 $(addr a1), a2 $(addr a2)) behind ra $(addr ra); site B (b1 $(addr b1)) behind rb $(addr rb)"
}

status() {
    ip netns list | grep "^${prefix}" || echo "sites.sh: no namespaces with prefix \"${prefix}\""
}

# The site router's outside address moves to ADDR (as when a provider hands out a new one): the
# masquerade follows it, and the connections it had mapped are gone.
readdress() {
    local r old
    r="$(router "$1")"
    old="$(addr "$r")"
    in_ns "$r" ip addr del "$old/24" dev wan
    in_ns "$r" ip addr add "$2/24" dev wan
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    addr) addr "${2:?node}" ;;
    exec)
        node="${2:?node}"
        shift 2
        [ "$node" = wan ] || [ "$node" = ra ] || [ "$node" = rb ] || addr "$node" >/dev/null
        in_ns "$node" "$@"
        ;;
    readdress) readdress "${2:?site}" "${3:?new outside address}" ;;
    conntrack-flush) in_ns "$(router "${2:?site}")" conntrack -F ;;
    loss)
        # Random loss of PERCENT % of the packets the router forwards, both ways.
        r="$(router "${2:?site}")"
        p="${3:?percent}"
        in_ns "$r" iptables -A LAB -m statistic --mode random --probability "$(awk -v p="$p" 'BEGIN{printf "%.4f", p/100}')" -j DROP
        ;;
    partition)
        # Nothing passes between the site (or the public node gw1, gw2, cli) and ADDR, either way.
        case "${2:?site or public node}" in
            gw1 | gw2 | cli)
                # A public node drops what comes from ADDR; ADDR's own node must drop what comes
                # from this one too (a second "partition") for the cut to hold both ways. Dropped on
                # input only, so that senders see silence, as across a real cut, not a local error.
                in_ns "$2" iptables -A INPUT -s "${3:?address}" -j DROP
                ;;
            *)
                r="$(router "$2")"
                in_ns "$r" iptables -A LAB -d "${3:?address}" -j DROP
                in_ns "$r" iptables -A LAB -s "$3" -j DROP
                ;;
        esac
        ;;
    heal)
        case "${2:?site or public node}" in
            gw1 | gw2 | cli) in_ns "$2" iptables -F INPUT ;;
            *) in_ns "$(router "$2")" iptables -F LAB ;;
        esac
        ;;
    *)
        echo "usage: $0 up | down | status | exec NODE CMD... | addr NODE | readdress SITE ADDR | conntrack-flush SITE" \
            "| loss SITE PERCENT | partition SITE|gw1|gw2|cli ADDR | heal SITE|gw1|gw2|cli" >&2
        exit 2
        ;;
esac
