#!/usr/bin/env bash
# Brings up a second development fleet, dev-fleet-2, beside the `make run` fleet running from DIR,
# as its successor, and runs its members in the foreground (`make run-second-fleet`); Ctrl-C stops them:
#
#   softhsm/second-fleet.sh DIR N
#
#   DIR/fleet2/softhsm/        its own tokens vault-1..N and PINs (make-tokens.sh; SOFTHSM2_CONF in there)
#   DIR/fleet2/peer-tls/       its members' mutual-TLS certificates
#   DIR/fleet2/member-i.json   member i: clients on http://127.0.0.1: HSMVAULT_BASE_PORT + 400 + i - 1,
#                              peers on HSMVAULT_BASE_PORT + 500 + i - 1; the same dev tenant as DIR; and
#                              DIR/bundle.pb as its predecessor (HsmVault:Bundle:Predecessors), so that a
#                              move receipt signed by dev-fleet's signing key activates a user's record here
#   DIR/fleet2/data/member-i/  its members' data
#   DIR/fleet2/bundle.pb       its validation bundle: the next epoch of namespace dev-fleet (DIR/bundle.epoch
#                              counts the namespace's epochs), logged at DIR's running witnesses and signed
#                              by the same operator key DIR/operator.key.pem; published once, again after 20 days
#   DIR/fleet2/logs/           its members' logs
#   DIR/successor.pb           a copy of DIR/fleet2/bundle.pb, written once the new fleet answers: the members of
#                              dev-fleet read it (HsmVault:Bundle:SuccessorFile) within 5 seconds, without a
#                              restart, and serve it beside their own bundle, so the CLI, still pointed at
#                              dev-fleet, registers new users on dev-fleet-2 and moves a user there at their
#                              next successful recovery.
#
# Fleet keys are made as softhsm/dev-fleet.sh makes them: `hsmvault fleet init` in member 1's token, then
# the key ceremony to the other tokens. Idempotent: what exists is kept.
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 DIR N" >&2
    exit 2
fi

dir=$(cd "$1" && pwd)
count=$2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cli="dotnet $root/src/HsmVault.Cli/bin/Release/net10.0/hsmvault.dll"
daemon="$root/src/HsmVault.Daemon/bin/Release/net10.0/hsmvaultd.dll"
fleet=dev-fleet-2
base_port=$(( ${HSMVAULT_BASE_PORT:-7101} + 400 ))
peer_base_port=$((base_port + 100))
f2=$dir/fleet2

# The first fleet must be running: its bundle published, its witnesses answering.
witness_configs=("$dir"/witness-*.json)
if [[ ! -f $dir/bundle.pb || ! -e ${witness_configs[0]} ]]; then
    echo "second-fleet: $dir has no published fleet with witnesses; start it first with \`make run\` (RUN_DIR=$dir)" >&2
    exit 1
fi
witness_urls="" witnesses=()
for config in "${witness_configs[@]}"; do
    url=$(sed -n 's/.*"Url": "\(http[^"]*\)".*/\1/p' "$config")
    port=${url##*:}
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "second-fleet: the witness at $url does not answer; start the first fleet with \`make run\` (RUN_DIR=$dir)" >&2
        exit 1
    fi
    witness_urls+="${witness_urls:+, }\"$url\""
    witnesses+=(--witness "$url")
done

mkdir -p "$f2/logs"
eval "$("$root/softhsm/make-tokens.sh" "$f2/softhsm" "$count" vault)"

peers=""
members=()
for i in $(seq 1 "$count"); do
    peers+="${peers:+, }{ \"Id\": \"member-$i\", \"PeerAddress\": \"https://127.0.0.1:$((peer_base_port + i - 1))\" }"
    members+=(--member "member-$i")
done
if (( count > 1 )) && [[ ! -f $f2/peer-tls/peer-ca.pem ]]; then
    $cli fleet certs --out "$f2/peer-tls" --fleet "$fleet" "${members[@]}" >/dev/null
fi

configs=()
for i in $(seq 1 "$count"); do
    mkdir -p "$f2/data/member-$i"
    cat > "$f2/member-$i.json" <<JSON
{
  "HsmVault": {
    "FleetId": "$fleet",
    "MemberId": "member-$i",
    "DataDirectory": "$f2/data/member-$i",
    "Bundle": { "File": "$f2/bundle.pb", "Predecessors": [ "$dir/bundle.pb" ], "ReloadInterval": "00:00:05", "Witnesses": [$witness_urls] },
    "Peer": {
      "Members": [$peers],
      "CertificateFile": "$f2/peer-tls/member-$i.peer.pem",
      "KeyFile": "$f2/peer-tls/member-$i.peer.key.pem",
      "CaFile": "$f2/peer-tls/peer-ca.pem"
    },
    "Token": {
      "ModulePath": "/usr/lib/softhsm/libsofthsm2.so",
      "TokenLabel": "vault-$i",
      "PinFile": "$f2/softhsm/vault-$i.pin"
    },
    "Auth": {
      "Tenants": [ { "Issuer": "dev-tenant", "PublicKeyFile": "$dir/dev-tenant.pub.pem" } ]
    }
  },
  "Kestrel": { "Endpoints": { "Grpc": { "Url": "http://127.0.0.1:$((base_port + i - 1))" } } }
}
JSON
    configs+=(--config "$f2/member-$i.json")
done
$cli fleet init "${configs[@]}"

# The namespace's next epoch, above the first fleet's: members of dev-fleet serve as their successor only
# a bundle of a higher epoch, and the witnesses log one digest per epoch.
if [[ ! -f $f2/bundle.pb ]] || [[ -n $(find "$f2/bundle.pb" -mtime +20) ]]; then
    epoch=$(( $(cat "$dir/bundle.epoch") + 1 ))
    $cli fleet bundle "${configs[@]}" --namespace dev-fleet --epoch "$epoch" --operator-key "$dir/operator.key.pem" \
        "${witnesses[@]}" --out "$f2/bundle.pb"
    echo "$epoch" > "$dir/bundle.epoch"
fi

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' INT TERM EXIT
for i in $(seq 1 "$count"); do
    dotnet "$daemon" --config "$f2/member-$i.json" > >(tee "$f2/logs/member-$i.log") 2>&1 & pids+=($!)
done

# Named as the successor only once it answers (it has a leader): clients follow the name at once.
ready=""
for _ in $(seq 1 120); do
    if $cli status --user second-fleet-probe --server "http://127.0.0.1:$base_port" --tenant-key "$dir/dev-tenant.key.pem" \
        --unverified-fleet >/dev/null 2>&1; then
        ready=yes
        break
    fi
    sleep 0.5
done
[[ -n $ready ]] || { echo "second-fleet: $fleet did not answer within 60 s; see $f2/logs" >&2; exit 1; }

if ! cmp -s "$f2/bundle.pb" "$dir/successor.pb"; then
    cp "$f2/bundle.pb" "$dir/successor.pb.tmp"
    mv -f "$dir/successor.pb.tmp" "$dir/successor.pb"
fi
# Each member of dev-fleet logs event 1015 when it serves the successor (1014, and why, when it refuses it).
naming() { grep -l "names fleet '$fleet'" "$dir"/logs/member-*.log 2>/dev/null | wc -l; }
first_count=$(ls "$dir"/member-*.json | wc -l)
for _ in $(seq 1 60); do
    (( $(naming) >= first_count )) && break
    sleep 0.5
done
if (( $(naming) >= first_count )); then
    echo "dev-fleet names $fleet as its successor; in another shell: source $dir/env && hsmvault recover --user alice"
else
    echo "second-fleet: $(naming) of dev-fleet's $first_count members name $fleet as their successor; see $dir/logs (event 1014 says why)" >&2
fi
wait
