#!/usr/bin/env bash
# `make bench`: starts a fleet of one and a fleet of three on this machine (their own tokens,
# data and ports under DIR), measures each with `hsmvault bench`, prints both, and stops them.
# For each fleet it also prints the members' inotify watches (the daemon must not watch its working
# directory, under which DIR lies) and, through `--pids`, their CPU time per recovery beside a same-run
# micro-benchmark of KE2, and (through `--token-config`) the same without the token work SoftHSM2 does on the
# daemons' CPU (a recovery's token operations, timed on member 1's token).
#
# Last, one member of the fleet of three loses its disk and starts again: the script prints how long it
# took to catch up (until it answers a read, which a follower does only once it has applied as far as
# the leader's commit index: by the leader's snapshot, sent in chunks, and the log after it).
#
# With --users N, both fleets are new ones (under DIR/users-N/) whose members' states are seeded, before their
# first start, with N synthetic registered users (`hsmvaultd seed-bench-users`), so the figures are those
# of a vault holding N users.
#
#   softhsm/bench-fleets.sh DIR [SECONDS] [CONCURRENCY] [--users N]
set -euo pipefail

users=0
positional=()
while (( $# > 0 )); do
    case $1 in
        --users) users=${2:?--users needs a count}; shift 2 ;;
        --users=*) users=${1#--users=}; shift ;;
        *) positional+=("$1"); shift ;;
    esac
done
dir=${positional[0]:?usage: bench-fleets.sh DIR [SECONDS] [CONCURRENCY] [--users N]}
seconds=${positional[1]:-10}
concurrency=${positional[2]:-8}
if (( users > 0 )); then
    dir=$dir/users-$users
    rm -rf "$dir"
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
daemon="$root/src/HsmVault.Daemon/bin/Release/net10.0/hsmvaultd.dll"
cli="$root/src/HsmVault.Cli/bin/Release/net10.0/hsmvault.dll"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT

# The benchmark's few users call far more often than a person does: lift the per-user and per-tenant limits, and the
# per-address one on unauthenticated calls (the floor it measures is GetFleetInfo calls).
unlimited=(--HsmVault:RateLimits:UserOpsPerSec=1000000 --HsmVault:RateLimits:UserBurstOps=1000000
    --HsmVault:Auth:Tenants:0:CapacityOpsPerSec=1000000 --HsmVault:Auth:Tenants:0:BurstOps=1000000
    --HsmVault:RateLimits:UnauthenticatedOpsPerSec=1000000 --HsmVault:RateLimits:UnauthenticatedBurstOps=1000000)

start_fleet() {  # name members base-port
    local name=$1 members=$2 port=$3
    HSMVAULT_WITNESSES=0 HSMVAULT_BASE_PORT=$port "$root/softhsm/dev-fleet.sh" "$dir/$name" "$members" >/dev/null 2>&1
    mkdir -p "$dir/$name/logs"
    if (( users > 0 )); then
        for i in $(seq 1 "$members"); do
            SOFTHSM2_CONF=$dir/$name/softhsm/softhsm2.conf dotnet "$daemon" seed-bench-users \
                --config "$dir/$name/member-$i.json" --users "$users" --tenant dev-tenant
        done
    fi
    for i in $(seq 1 "$members"); do
        start_member "$name" "$i"
    done
}

start_member() {  # name index: starts it and appends its pid to pids
    SOFTHSM2_CONF=$dir/$1/softhsm/softhsm2.conf dotnet "$daemon" --config "$dir/$1/member-$2.json" \
        --Logging:LogLevel:Default=Warning "${unlimited[@]}" >> "$dir/$1/logs/member-$2.log" 2>&1 &
    pids+=($!)
}

servers() {  # members base-port
    local list=""
    for i in $(seq 1 "$1"); do list+="${list:+,}http://127.0.0.1:$(($2 + i - 1))"; done
    echo "$list"
}

wait_ready() {  # name servers
    for _ in $(seq 1 60); do
        if SOFTHSM2_CONF=$dir/$1/softhsm/softhsm2.conf dotnet "$cli" status --user bench-probe --unverified-fleet \
            --server "${2%%,*}" --tenant-key "$dir/$1/dev-tenant.key.pem" >/dev/null 2>&1; then
            return 0
        fi
        sleep 1
    done
    echo "fleet '$1' did not become ready; see $dir/$1/logs" >&2
    exit 1
}

inotify_watches() {  # pid...: inotify watches held by these processes together
    local total=0 n
    for pid in "$@"; do
        n=$(cat /proc/"$pid"/fdinfo/* 2>/dev/null | grep -c '^inotify wd:' || true)
        total=$((total + n))
    done
    echo "$total"
}

# Other work may share this machine (a `make run` fleet, tests): each fleet gets a base port whose client ports
# (base..) and peer ports (base+100..) nobody listens on when the script starts.
free_base_port() {  # members [above]: prints the first base port, in steps of 1000 from 20000, with all its ports free
    local members=$1 above=${2:-0} base port listening
    listening=$(ss -Htln | awk '{ n = split($4, a, ":"); print a[n] }' | sort -u)
    for base in $(seq 20000 1000 60000); do
        (( base > above )) || continue
        for port in $(seq "$base" $((base + members - 1))) $(seq $((base + 100)) $((base + 100 + members - 1))); do
            grep -qx "$port" <<< "$listening" && continue 2
        done
        echo "$base"
        return 0
    done
    echo "no free ports for a fleet of $members between 20000 and 60000" >&2
    exit 1
}
one_port=$(free_base_port 1)
three_port=$(free_base_port 3 "$one_port")

start_fleet one 1 "$one_port"
start_fleet three 3 "$three_port"
one_pids=("${pids[0]}")
three_pids=("${pids[@]:1:3}")
wait_ready one "$(servers 1 "$one_port")"
wait_ready three "$(servers 3 "$three_port")"

echo "HsmVault benchmark: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), SoftHSM2 $(dpkg-query -W -f='${Version}' softhsm2 2>/dev/null)$( (( users > 0 )) && echo ", $users seeded users per member")"
echo "inotify watches held by the daemons: fleet of 1: $(inotify_watches "${one_pids[@]}"), fleet of 3: $(inotify_watches "${three_pids[@]}")"
SOFTHSM2_CONF=$dir/one/softhsm/softhsm2.conf dotnet "$cli" bench --server "$(servers 1 "$one_port")" \
    --tenant-key "$dir/one/dev-tenant.key.pem" --seconds "$seconds" --concurrency "$concurrency" --label "fleet of 1 (no peers)" \
    --pids "$(IFS=,; echo "${one_pids[*]}")" --token-config "$dir/one/member-1.json"
SOFTHSM2_CONF=$dir/three/softhsm/softhsm2.conf dotnet "$cli" bench --server "$(servers 3 "$three_port")" \
    --tenant-key "$dir/three/dev-tenant.key.pem" --seconds "$seconds" --concurrency "$concurrency" --label "fleet of 3 on one machine" \
    --pids "$(IFS=,; echo "${three_pids[*]}")" --token-config "$dir/three/member-1.json"

# Catch-up of a wiped follower: member 3 of the fleet of three is killed, its data directory deleted, and
# it is started again. Timed from its start until a read it serves succeeds; the figure includes the
# start of the process and of the CLI that asks (about a second here), so it bounds the catch-up from above.
kill "${three_pids[2]}"
wait "${three_pids[2]}" 2>/dev/null || true
rm -rf "$dir/three/data/member-3"
catch_up_start=$(date +%s.%N)
start_member three 3
caught_up=""
for _ in $(seq 1 600); do
    if SOFTHSM2_CONF=$dir/three/softhsm/softhsm2.conf dotnet "$cli" status --user bench-probe --unverified-fleet \
        --server "http://127.0.0.1:$((three_port + 2))" --tenant-key "$dir/three/dev-tenant.key.pem" >/dev/null 2>&1; then
        caught_up=$(date +%s.%N)
        break
    fi
    sleep 0.2
done
if [[ -z $caught_up ]]; then
    echo "catch-up of a wiped follower: it did not answer within 10 minutes; see $dir/three/logs/member-3.log" >&2
    exit 1
fi
echo "catch-up of a wiped follower (fleet of 3$( (( users > 0 )) && echo ", $users seeded users"), after the load above): $(awk -v a="$catch_up_start" -v b="$caught_up" 'BEGIN { printf "%.1f", b - a }') s from its start to its first answered read"
