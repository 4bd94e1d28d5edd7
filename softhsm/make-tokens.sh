#!/usr/bin/env bash
# Creates N SoftHSM2 tokens labelled <prefix>-1..<prefix>-N in a project-local folder.
#
#   softhsm/make-tokens.sh DIR N [label-prefix]
#
# Writes DIR/softhsm2.conf (from softhsm2.conf.template), DIR/tokens/, and for each token
# DIR/<label>.pin (user PIN) and DIR/<label>.so.pin (SO PIN), mode 0600. PINs are random
# and never printed. Tokens that already exist are left alone, so the script is idempotent.
# Prints the SOFTHSM2_CONF line to export. Never touches /etc/softhsm.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "usage: $0 DIR N [label-prefix]" >&2
    exit 2
fi

dir=$1
count=$2
prefix=${3:-vault}
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if ! [[ $count =~ ^[0-9]+$ ]] || (( count < 1 )); then
    echo "N must be a positive integer, got '$count'" >&2
    exit 2
fi

if ! command -v softhsm2-util >/dev/null 2>&1; then
    echo "softhsm2-util not found; installing softhsm2 with apt-get" >&2
    if [[ $(id -u) -eq 0 ]]; then
        apt-get install -y softhsm2 >/dev/null || { apt-get update >/dev/null && apt-get install -y softhsm2 >/dev/null; }
    else
        sudo apt-get install -y softhsm2 >/dev/null
    fi
fi

mkdir -p "$dir/tokens"
dir=$(cd "$dir" && pwd)
chmod 0700 "$dir" "$dir/tokens"
conf="$dir/softhsm2.conf"
sed "s|@TOKENDIR@|$dir/tokens|" "$script_dir/softhsm2.conf.template" > "$conf"
export SOFTHSM2_CONF=$conf

random_pin() {
    # 32 hex characters from the kernel's CSPRNG.
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n'
}

umask 077
for i in $(seq 1 "$count"); do
    label="$prefix-$i"
    if softhsm2-util --show-slots 2>/dev/null | grep -Eq "^[[:space:]]*Label:[[:space:]]+$label[[:space:]]*$"; then
        echo "token '$label' exists; skipped" >&2
        continue
    fi
    so_pin=$(random_pin)
    user_pin=$(random_pin)
    printf '%s\n' "$so_pin" > "$dir/$label.so.pin"
    printf '%s\n' "$user_pin" > "$dir/$label.pin"
    chmod 0600 "$dir/$label.so.pin" "$dir/$label.pin"
    # softhsm2-util only takes PINs as arguments (or from a terminal); they are visible in
    # the process list for the moment it runs. Fine for development tokens, not for real HSMs.
    softhsm2-util --init-token --free --label "$label" --so-pin "$so_pin" --pin "$user_pin" >/dev/null
    unset so_pin user_pin
    echo "token '$label' initialised; user PIN in $dir/$label.pin" >&2
done

echo "export SOFTHSM2_CONF=$conf"
