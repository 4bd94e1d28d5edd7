#!/usr/bin/env bash
# Runs the development fleet softhsm/dev-fleet.sh prepared, in the foreground (`make run`):
#
#   softhsm/run-dev.sh DIR N
#
# 1. starts the witnesses (DIR/witness-j.json), and reads each one's verifier key from its log;
# 2. publishes the fleet's validation bundle at every witness (`hsmvault fleet bundle`, namespace
#    dev-fleet, countersigned by member 1's token) unless DIR/bundle.pb is younger than 20 days;
#    each publication takes the namespace's next epoch (DIR/bundle.epoch, which softhsm/second-fleet.sh
#    moves on too). Once a successor is named (DIR/successor.pb), the fleet is retired: its bundle is
#    no longer renewed, and past its not-after the fleet refuses registrations and still serves recoveries;
# 3. writes DIR/trust.env (sourced by DIR/env): the pinned witness keys, the witness policy (all of
#    them), the operator's public key and the client's trust state file, so that `hsmvault
#    register`/`recover` verify the bundle before they send a password-derived byte;
# 4. starts the N members and waits; Ctrl-C stops everything. Logs go to DIR/logs/.
set -euo pipefail

dir=$(cd "$1" && pwd)
count=$2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cli="dotnet $root/src/HsmVault.Cli/bin/Release/net10.0/hsmvault.dll"
daemon="$root/src/HsmVault.Daemon/bin/Release/net10.0/hsmvaultd.dll"
witness="$root/src/HsmVault.WitnessDaemon/bin/Release/net10.0/hsmvault-witness.dll"
export SOFTHSM2_CONF=$dir/softhsm/softhsm2.conf
mkdir -p "$dir/logs"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' INT TERM EXIT

witness_configs=("$dir"/witness-*.json)
[[ -e ${witness_configs[0]} ]] || witness_configs=()
keys=() urls=()
for config in "${witness_configs[@]}"; do
    name=$(basename "$config" .json)
    log=$dir/logs/$name.log
    : > "$log"
    dotnet "$witness" --config "$config" > >(tee "$log") 2>&1 & pids+=($!)
    urls+=("$(sed -n 's/.*"Url": "\(http[^"]*\)".*/\1/p' "$config")")
    # The witness logs its verifier key (event 7000) once its token key and its log are open.
    for _ in $(seq 1 300); do
        key=$(sed -n 's/.*verifier key \([^ ]*+[0-9a-f]\{8\}+[A-Za-z0-9+\/=]*\).*/\1/p' "$log" | head -n 1)
        [[ -n $key ]] && break
        sleep 0.2
    done
    [[ -n $key ]] || { echo "run-dev: $name did not start; see $log" >&2; exit 1; }
    keys+=("$key")
done

if (( ${#keys[@]} > 0 )); then
    if [[ ! -f $dir/bundle.pb ]] || { [[ ! -f $dir/successor.pb ]] && [[ -n $(find "$dir/bundle.pb" -mtime +20) ]]; }; then
        epoch=$(( $(cat "$dir/bundle.epoch" 2>/dev/null || echo 0) + 1 ))
        configs=() witnesses=()
        for i in $(seq 1 "$count"); do configs+=(--config "$dir/member-$i.json"); done
        for url in "${urls[@]}"; do witnesses+=(--witness "$url"); done
        $cli fleet bundle "${configs[@]}" --namespace dev-fleet --epoch "$epoch" --operator-key "$dir/operator.key.pem" \
            "${witnesses[@]}" --out "$dir/bundle.pb"
        echo "$epoch" > "$dir/bundle.epoch"
    fi
    cat > "$dir/trust.env" <<ENV
export HSMVAULT_WITNESS_KEYS="${keys[*]}"
export HSMVAULT_WITNESS_POLICY=${#keys[@]}
export HSMVAULT_OPERATOR_KEYS=$dir/operator.pub
export HSMVAULT_TRUST_STATE=$dir/trust-state.json
ENV
fi

for i in $(seq 1 "$count"); do
    dotnet "$daemon" --config "$dir/member-$i.json" > >(tee "$dir/logs/member-$i.log") 2>&1 & pids+=($!)
done
echo "fleet of $count starting with ${#keys[@]} witness(es); in another shell: source $dir/env && hsmvault register --user alice"
wait
